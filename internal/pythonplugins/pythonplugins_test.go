package pythonplugins

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const root = "../.."

// Names must be what `make build` installs: every plugins/python-* of the
// tree, each with its executable plugins/NAME/NAME.
func TestNamesAreTheTreesPythonPlugins(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(root, "plugins", "python-*"))
	if err != nil {
		t.Fatal(err)
	}
	var tree []string
	for _, d := range dirs {
		name := filepath.Base(d)
		fi, err := os.Stat(filepath.Join(d, name))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s has no executable %s (%v)", d, name, err)
		}
		tree = append(tree, name)
	}
	names := slices.Sorted(slices.Values(Names))
	if !slices.Equal(tree, names) {
		t.Errorf("Names = %v, the tree's plugins/python-* are %v", names, tree)
	}
}

// Install lays the plugins out as `make build` does: the executables in
// the plugin directory, the package's modules in python/wslab.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	if err := Install(root, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range Names {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", name, fi, err)
		}
	}
	want, _ := filepath.Glob(filepath.Join(root, "plugins", "python", "wslab", "*.py"))
	got, _ := filepath.Glob(filepath.Join(dir, "python", "wslab", "*.py"))
	if len(want) == 0 || len(got) != len(want) {
		t.Errorf("installed %d of the package's %d modules", len(got), len(want))
	}
}

func TestHint(t *testing.T) {
	for _, c := range []struct {
		missing []string
		want    string
	}{
		{[]string{"grpcio", "protobuf"}, "needs grpcio and protobuf: run make python-deps"},
		{[]string{"grpcio", "protobuf", "cryptography"}, "needs grpcio, protobuf and cryptography: run make python-deps"},
		{[]string{"cryptography"}, "needs cryptography: run make python-deps"},
	} {
		if got := Hint(c.missing); got != c.want {
			t.Errorf("Hint(%v) = %q, want %q", c.missing, got, c.want)
		}
	}
}

// MissingPackages runs the interpreter as a plugin's first line does:
// without its site-packages (-S) it has none of the packages; as the
// plugins run it, all of them where the plugins can run.
func TestMissingPackages(t *testing.T) {
	if _, err := os.Stat(Interpreter); err != nil {
		t.Skipf("%s: %v", Interpreter, err)
	}
	ctx := context.Background()
	got, err := MissingPackages(ctx, Interpreter, "-IBS")
	if want := []string{"grpcio", "protobuf", "cryptography"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("MissingPackages(%s -IBS) = %v, %v; want %v", Interpreter, got, err, want)
	}
	if _, err := MissingPackages(ctx, "/nonexistent/python3"); err == nil {
		t.Error("MissingPackages of no interpreter: no error")
	}
	if why := Missing(); why != "" {
		t.Skip(why)
	}
	if got, err := MissingPackages(ctx, Interpreter, "-IB"); err != nil || len(got) != 0 {
		t.Errorf("MissingPackages(%s -IB) = %v, %v; want none", Interpreter, got, err)
	}
}
