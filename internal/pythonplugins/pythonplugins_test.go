package pythonplugins

import (
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
