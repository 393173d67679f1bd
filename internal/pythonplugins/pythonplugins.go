// Package pythonplugins knows where the Python plugins live and what they
// need, for the tests that run them (the conformance kit's and the
// end-to-end tests); `make build` installs them the same way.
package pythonplugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Interpreter is the Python the plugins' first line names: Debian's, for
// Debian's python3-grpcio.
const Interpreter = "/usr/bin/python3"

// Names are the Python plugins, each plugins/NAME/NAME in the source tree:
// every plugins/python-* there, which is where `make build` finds them (a
// test holds this list to the tree).
var Names = []string{"python-asyncio", "python-multiprocessing"}

// Missing says why the Python plugins cannot run on this machine, "" when
// they can.
func Missing() string {
	out, err := exec.Command(Interpreter, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("the Python plugins need %s with Debian's python3-grpcio, python3-protobuf and python3-cryptography (make deps installs them): %v %s",
			Interpreter, err, out)
	}
	return ""
}

// Packages are what the Python plugins import beyond Python's standard
// library: the module, and the package that provides it (Debian's
// python3-NAME, pip's NAME).
var Packages = []struct{ Module, Package string }{
	{"grpc", "grpcio"},
	{"google.protobuf", "protobuf"},
	{"cryptography", "cryptography"}, // the host's AutoMTLS certificate
}

// importCheck prints each module of its arguments that cannot be imported.
const importCheck = `import importlib, sys
for m in sys.argv[1:]:
    try:
        importlib.import_module(m)
    except Exception:
        print(m)
`

// MissingPackages runs python, an interpreter's command line (its path, and
// its options as a plugin's first line gives them), and returns the
// Packages it cannot import, in their order. Its error says the
// interpreter did not run.
func MissingPackages(ctx context.Context, python ...string) ([]string, error) {
	if len(python) == 0 {
		return nil, errors.New("no interpreter")
	}
	args := append(slices.Clone(python[1:]), "-c", importCheck)
	for _, p := range Packages {
		args = append(args, p.Module)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python[0], args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w %s", strings.Join(python, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	failed := strings.Fields(string(out))
	var missing []string
	for _, p := range Packages {
		if slices.Contains(failed, p.Module) {
			missing = append(missing, p.Package)
		}
	}
	return missing, nil
}

// Hint says what a Python plugin lacking the packages missing needs, and
// how to get it: "needs grpcio and protobuf: run make python-deps".
func Hint(missing []string) string {
	list := strings.Join(missing, ", ")
	if n := len(missing); n > 1 {
		list = strings.Join(missing[:n-1], ", ") + " and " + missing[n-1]
	}
	return "needs " + list + ": run make python-deps"
}

// Install copies the Python plugins of the source tree at root, and their
// package (plugins/python/wslab), into the plugin directory dir.
func Install(root, dir string) error {
	for _, name := range Names {
		if err := copyFile(filepath.Join(root, "plugins", name, name), filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
	}
	pkg := filepath.Join(root, "plugins", "python", "wslab")
	files, err := filepath.Glob(filepath.Join(pkg, "*.py"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("install python plugins: no package in %s (%v)", pkg, err)
	}
	to := filepath.Join(dir, "python", "wslab")
	if err := os.MkdirAll(to, 0o755); err != nil {
		return fmt.Errorf("install python plugins: %w", err)
	}
	for _, f := range files {
		if err := copyFile(f, filepath.Join(to, filepath.Base(f)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, mode)
	}
	if err != nil {
		return fmt.Errorf("install python plugins: %w", err)
	}
	return nil
}
