package launch

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ReadChecksums reads what sha256sum writes (make build's manifest), and
// FileChecksum agrees with it.
func TestReadChecksums(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"pool": "a binary", "python-asyncio": "#!/usr/bin/python3\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sha256sum", "pool", "python-asyncio")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("no sha256sum here: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ChecksumsFile), out, 0o644); err != nil {
		t.Fatal(err)
	}
	sums, err := ReadChecksums(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pool", "python-asyncio"} {
		want, err := FileChecksum(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(sums[name], want) {
			t.Errorf("%s: manifest %x, file %x (%v)", name, sums[name], want, err)
		}
	}
	if len(sums) != 2 {
		t.Errorf("read %d checksums, want 2", len(sums))
	}
	for _, bad := range []string{"abc  pool\n", strings.Repeat("0", 64) + "\n", strings.Repeat("g", 64) + "  pool\n", strings.Repeat("0", 64) + "  ../pool\n"} {
		os.WriteFile(filepath.Join(dir, ChecksumsFile), []byte(bad), 0o644)
		if _, err := ReadChecksums(dir); err == nil || !strings.Contains(err.Error(), "not a line of sha256sum") {
			t.Errorf("manifest %q: %v, want an error naming the line", bad, err)
		}
	}
}

// A support file that changed after the manifest was written is refused.
func TestCheckSupportFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "python", "wslab"), 0o755)
	lib := filepath.Join(dir, "python", "wslab", "serve.py")
	os.WriteFile(lib, []byte("print('ok')\n"), 0o644)
	sum, _ := FileChecksum(lib)
	sums := map[string][]byte{"python/wslab/serve.py": sum, "pool": make([]byte, 32)}
	if err := CheckSupportFiles(dir, sums); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	extra := filepath.Join(dir, "python", "grpc.py")
	os.WriteFile(extra, []byte("import os\n"), 0o644)
	if err := CheckSupportFiles(dir, sums); err == nil || !strings.Contains(err.Error(), "python/grpc.py is not in the plugin manifest") {
		t.Errorf("a file dropped beside the package: %v, want an error naming it", err)
	}
	os.Remove(extra)
	os.WriteFile(lib, []byte("print('changed')\n"), 0o644)
	if err := CheckSupportFiles(dir, sums); err == nil || !strings.Contains(err.Error(), "python/wslab/serve.py has SHA-256") {
		t.Errorf("changed: %v, want an error naming the file", err)
	}
}
