# wslab: `make lab` runs the comparison, `make test` runs every test.
GO      ?= go
BIN     := bin
FUZZTIME ?= 10s

.PHONY: build test lab bench proto vet fmt-check fuzz clean

build:
	$(GO) build -o $(BIN)/host ./cmd/host
	$(GO) build -o $(BIN)/plugins/ ./plugins/...

test: build fmt-check vet
	$(GO) test -race -timeout 9m ./...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/wsproto

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2000x -count 5 ./internal/e2e ./tasks

lab: build
	@echo "lab: not yet: the stress client and the lab report come with issue 3."

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

clean:
	rm -rf $(BIN)
