// Package pythonplugins knows where the Python plugins live and what they
// need, for the tests that run them (the conformance kit's and the
// end-to-end tests); `make build` installs them the same way.
package pythonplugins

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/wslab/wslab/internal/conformance"
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

// SkippingTB is conformance.TB with Skip.
type SkippingTB interface {
	conformance.TB
	Skip(args ...any)
}

// RunConformance is a Python plugin's conformance test: it runs the kit
// on the executable at path (in the source tree, beside the test), and
// skips, saying why, where the plugins cannot run.
func RunConformance(t SkippingTB, path string, opt conformance.Options) {
	t.Helper()
	if why := Missing(); why != "" {
		t.Skip(why)
	}
	conformance.Run(t, path, opt)
}
