//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/pythonplugins"
	"github.com/wslab/wslab/taskproto/plugin"
)

// The out-of-tree Python strategy: examples/python-bounded, on the wslab
// package as pip installs it (plugins/python/pyproject.toml).
const (
	pyExample     = "python-bounded"
	pyExampleFile = "examples/python-bounded/python_bounded.py"
)

// TestPyOutOfTree is docs/writing-a-strategy.md's "Out of the tree, in
// Python", step by step: a virtual environment on Debian's interpreter
// that sees Debian's gRPC, the SDK pip-installed into it offline, the
// example's own unit tests on that install, the example as a plugin
// executable whose first line names the environment's interpreter, a
// SHA256SUMS written by sha256sum, `bin/host --conformance` with
// verify_plugins on, and a host serving the Python lab's run with it.
func TestPyOutOfTree(t *testing.T) {
	if pythonMissing != "" {
		t.Skip(pythonMissing)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	python := filepath.Join(venv, "bin", "python")
	if out, err := exec.Command(pythonplugins.Interpreter, "-m", "venv", "--system-site-packages", venv).CombinedOutput(); err != nil {
		t.Skipf("%s cannot make a virtual environment (Debian's python3-venv, which make deps installs): %v\n%s",
			pythonplugins.Interpreter, err, out)
	}
	if out, err := exec.Command(python, "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Skipf("no pip in the virtual environment (Debian's python3-pip and python3-venv, which make deps installs): %v\n%s", err, out)
	}
	if out, err := exec.Command(python, "-c", "import setuptools").CombinedOutput(); err != nil {
		t.Skipf("no setuptools to build the package with (Debian's python3-setuptools, which make deps installs): %v\n%s", err, out)
	}

	// pip builds a local path in place (build/, wslab.egg-info/): it
	// builds a copy of plugins/python, the files make build ships, so
	// that the tree stays as it is and parallel runs do not share a build.
	sdk := filepath.Join(dir, "sdk")
	copyInto(t, filepath.Join(root, "plugins", "python", "pyproject.toml"), filepath.Join(sdk, "pyproject.toml"))
	files, err := filepath.Glob(filepath.Join(root, "plugins", "python", "wslab", "*.py"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no package in plugins/python/wslab: %v", err)
	}
	for _, f := range files {
		copyInto(t, f, filepath.Join(sdk, "wslab", filepath.Base(f)))
	}
	// Offline: no index, no build isolation (which would fetch setuptools);
	// --isolated ignores this machine's PIP_* settings, and no cache is
	// kept in a home directory CI may not have.
	pip := exec.Command(python, "-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--no-cache-dir",
		"--no-index", "--no-build-isolation", sdk)
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install %s: %v\n%s", sdk, err, out)
	}

	// What is imported is the install, not the tree; its version's major
	// is the contract's.
	out, err := exec.Command(python, "-IB", "-c", "import importlib.metadata as m, wslab, wslab.handshake as h; "+
		"print(m.version('wslab'), h.PROTOCOL_VERSION, wslab.__file__)").CombinedOutput()
	if err != nil {
		t.Fatalf("import the installed wslab: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 3 {
		t.Fatalf("import the installed wslab: %q", out)
	}
	want := strconv.Itoa(plugin.ProtocolVersion)
	if major, _, _ := strings.Cut(fields[0], "."); major != want || fields[1] != want {
		t.Errorf("wslab %s speaks version %s of the contract; both should be the host's %s (pyproject.toml's version, handshake.PROTOCOL_VERSION)",
			fields[0], fields[1], want)
	}
	if !strings.HasPrefix(fields[2], filepath.Join(venv, "lib")+"/") {
		t.Errorf("wslab was imported from %s, not from the virtual environment %s", fields[2], venv)
	}

	t.Run("unit tests", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, "-IB", "-m", "unittest", "discover", "-s", filepath.Dir(pyExampleFile))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the example's unit tests: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "\nOK") || strings.Contains(string(out), "Ran 0 tests") {
			t.Fatalf("the example's unit tests did not run and pass:\n%s", out)
		}
	})

	// The plugin directory: the executable, its first line the
	// environment's interpreter, and the manifest sha256sum writes.
	plugins := filepath.Join(dir, "plugins")
	src, err := os.ReadFile(filepath.Join(root, pyExampleFile))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "\n")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, pyExample), []byte("#!"+python+" -IB\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	sums := exec.Command("sha256sum", pyExample)
	sums.Dir = plugins
	manifest, err := sums.Output()
	if err != nil {
		t.Fatalf("sha256sum: %v", err)
	}
	if err := os.WriteFile(filepath.Join(plugins, launch.ChecksumsFile), manifest, 0o644); err != nil {
		t.Fatal(err)
	}

	ini := "verify_plugins = true\nplugin_dir = " + plugins + "\n[python_bounded]\nconcurrency = 4\n"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conform := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--config", writeConfig(t, ini), "--conformance", pyExample)
	report, err := conform.CombinedOutput()
	if err != nil || !strings.Contains(string(report), pyExample+": conforms") {
		t.Fatalf("bin/host --conformance %s: %v\n%s", pyExample, err, report)
	}
	t.Logf("bin/host --conformance %s:\n%s", pyExample, report)

	h := startHost(t, pyExample, ini)
	st := h.stats(t)
	if st.Strategy != pyExample || st.Executor.Capacity != 4 {
		t.Errorf("the host serves %q with capacity %d, want %s with [python_bounded] concurrency 4", st.Strategy, st.Executor.Capacity, pyExample)
	}
	r := clRun(t, "--config", clConfig(t, h.addr, "[client]\nnum_client = 50\ntasks = fib, cpu, io\n"))
	if r.code != client.ExitOK {
		t.Fatalf("client exit %d, want 0", r.code)
	}
	for _, k := range []string{"sent", "replies", "ok"} {
		if got := num(t, r.summary, k); got != 150 {
			t.Errorf("%s = %v, want 150", k, got)
		}
	}
	for _, k := range []string{"wrong", "missing", "unsent", "connection_failures"} {
		if got := num(t, r.summary, k); got != 0 {
			t.Errorf("%s = %v, want 0", k, got)
		}
	}
	if st := h.stats(t); st.Executor.Completed < 150 || st.PluginRestarts != 0 {
		t.Errorf("the plugin completed %d tasks with %d restarts, want 150 or more and none", st.Executor.Completed, st.PluginRestarts)
	}
}

// copyInto copies the file from to the path to, making its directory.
func copyInto(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
			err = os.WriteFile(to, data, 0o644)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
