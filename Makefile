# wslab: `make lab` runs the comparison, `make test` runs every test.
GO      ?= go
BIN     := bin
# Unset, each fuzz target runs its own count of inputs; FUZZTIME=30s (or
# 1000000x) runs every target that long instead.
FUZZTIME ?=

.PHONY: build test lab bench soak proto vet fmt-check cross fuzz deps python-deps pytest clean examples

# Chromium draws report.html in the lab's browser test; nats-server runs a
# real NATS cluster in the distributed strategy's test. Installed when
# missing and we may (root, apt); otherwise those tests skip and say so.
CHROMIUM ?= /usr/bin/chromium
# The Python plugins run on Debian's interpreter with Debian's gRPC. Fixed
# (override: not even the command line changes it), for it must be the one
# their first lines (#!/usr/bin/python3) and pythonplugins.Interpreter name.
override PYTHON := /usr/bin/python3
PYTHON_PACKAGES := python3 python3-grpcio python3-protobuf python3-cryptography
# Succeeds when $(PYTHON) has what the Python plugins import.
PYTHON_READY := $(PYTHON) -c 'import grpc, google.protobuf, cryptography' 2>/dev/null
# What an out-of-tree Python strategy is installed with (the SDK as a
# package, plugins/python/pyproject.toml, pip-installed offline into a
# virtual environment), for the end-to-end test of examples/python-bounded.
PYTHON_SDK_PACKAGES := python3-pip python3-venv python3-setuptools
# (Found, not imported: pip imported before setuptools upsets its distutils.)
PYTHON_SDK_READY := $(PYTHON) -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("ensurepip", "pip", "setuptools")))' 2>/dev/null
# The Python plugins' executables: each plugins/NAME/NAME, NAME python-*.
PYTHON_PLUGINS := $(foreach d,$(patsubst %/,%,$(wildcard plugins/python-*/)),$(d)/$(notdir $(d)))
# Where the wasm plugin finds its module, beside it (internal/wasm ModuleDir).
WASM_MODULE_DIR := wasm-modules

build:
	$(GO) build -o $(BIN)/host ./cmd/host
	$(GO) build -o $(BIN)/client ./cmd/client
	$(GO) build -o $(BIN)/lab ./cmd/lab
	$(GO) build -o $(BIN)/plugins/ ./plugins/...
	install -m 0755 $(PYTHON_PLUGINS) $(BIN)/plugins/
	rm -rf $(BIN)/plugins/python && install -d $(BIN)/plugins/python/wslab
	install -m 0644 plugins/python/wslab/*.py $(BIN)/plugins/python/wslab/
	@# The wasm plugin's task set: package tasks as a WebAssembly reactor,
	@# built by the go command itself (no other toolchain), beside it.
	rm -rf $(BIN)/plugins/$(WASM_MODULE_DIR) && install -d $(BIN)/plugins/$(WASM_MODULE_DIR)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $(BIN)/plugins/$(WASM_MODULE_DIR)/tasks.wasm ./internal/wasm/guest
	chmod 0644 $(BIN)/plugins/$(WASM_MODULE_DIR)/tasks.wasm
	@# The manifest [server] verify_plugins checks plugins (and the files
	@# they read: the Python plugins' package, the wasm module) against.
	cd $(BIN)/plugins && { find . -maxdepth 1 -type f -perm -u+x; find python -type f -name '*.py'; \
		find $(WASM_MODULE_DIR) -type f -name '*.wasm'; } | \
		sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
	@# Once, at the end: the plugins that cannot run on this machine, and why
	@# (the third field of --list-plugins).
	@$(BIN)/host --list-plugins --config /dev/null --plugin-dir $(BIN)/plugins | \
		awk -F'\t' 'NF > 2 { print "note: plugin " $$1 " " $$3 }'

# Shell for the deps targets: each adds what is missing to $missing, then
# APT_INSTALL installs it all with one apt-get update, when we may (root,
# apt); otherwise the tests that need it skip and say so, and the lab leaves
# the Python plugins out.
PYTHON_MISSING = $(PYTHON_READY) || missing="$$missing $(PYTHON_PACKAGES)"
PYTHON_SDK_MISSING = $(PYTHON_SDK_READY) || missing="$$missing $(PYTHON_SDK_PACKAGES)"
APT_INSTALL = if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
		echo "$$missing could not be installed: what needs it skips (the Python plugins will not start)"; \
	fi

# Debian's gRPC for the Python plugins.
python-deps:
	@missing=; $(PYTHON_MISSING); $(APT_INSTALL)

# The Python plugins' packages, pip, venv and setuptools for the
# out-of-tree Python strategy's test, and chromium, nats-server, iproute2
# and prometheus for the browser, NATS cluster, network and Prometheus
# tests (prometheus's promtool checks /metrics too).
deps:
	@missing=; $(PYTHON_MISSING); $(PYTHON_SDK_MISSING); \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	$(APT_INSTALL)

test: deps build fmt-check vet cross examples
	$(GO) test -race -timeout 9m ./...
	$(MAKE) pytest
	$(MAKE) fuzz

# The strategies in modules of their own (examples/NAME/go.mod): vetted
# and unit-tested in their module; internal/e2e builds them and runs
# them through the conformance kit and a load.
EXAMPLES := $(patsubst %/go.mod,%,$(wildcard examples/*/go.mod))
examples:
	@for d in $(EXAMPLES); do (cd $$d && $(GO) vet ./... && $(GO) test ./...) || exit 1; done

# The Python plugins' own unit tests (the kit and the end-to-end tests run
# them from Go as well). examples/python-bounded's run on the SDK as
# installed, in the virtual environment of TestPyOutOfTree (go test).
pytest:
	@if $(PYTHON_READY); then \
		$(PYTHON) -B -m unittest discover -s plugins/python; \
	else echo "$(PYTHON) lacks grpc, protobuf or cryptography: Python plugin tests skipped"; fi

# The code builds beyond Linux: process groups and the parent-death signal
# sit behind build tags, and the plugin's own parent watch covers systems
# without that signal.
cross:
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) vet ./...

# A bounded run of each fuzz target on top of its checked-in seed corpus.
# Budgets count inputs (about five seconds each here), not seconds: when a
# duration runs out while a worker is busy, Go 1.26's fuzzer can fail the
# run with a bare "context deadline exceeded" and no failing input. Short
# minimisation keeps the run fuzzing rather than shrinking inputs.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),150000x) -fuzzminimizetime 2s ./internal/wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(or $(FUZZTIME),10000x) -fuzzminimizetime 2s ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzFilePattern$$' -fuzztime $(or $(FUZZTIME),250000x) -fuzzminimizetime 2s ./tasks
	$(GO) test -run '^$$' -fuzz '^FuzzMessageBuffered$$' -fuzztime $(or $(FUZZTIME),20000x) -fuzzminimizetime 2s ./host

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The table of issue 9: the machine's floors and every strategy beside
# them, medians of interleaved trials; figures also in bench.json. The
# Python packages are installed (or found missing, which build then says)
# before the Python plugins are measured.
bench: python-deps build
	$(BIN)/lab bench --out bench.json

# A bounded soak, not part of make test: every strategy under a steady load
# beside abusive clients for a share of SOAK, reporting memory, goroutines
# and file descriptors at the start and the end.
SOAK ?= 5m
soak: build
	WSLAB_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -v -count=1 -timeout 60m ./internal/e2e

lab: python-deps build
	$(BIN)/lab --config config.ini

# Regenerates taskproto/pb from executor.proto (protoc from Debian's
# protobuf-compiler, the Go generators pinned here).
proto:
	command -v protoc >/dev/null || (apt-get update && apt-get install -y protobuf-compiler)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc \
		--go_out=. --go_opt=module=github.com/wslab/wslab \
		--go-grpc_out=. --go-grpc_opt=module=github.com/wslab/wslab \
		taskproto/pb/executor.proto
	protoc -I taskproto/pb --python_out=plugins/python/wslab taskproto/pb/executor.proto

clean:
	rm -rf $(BIN)
