package launch

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ChecksumsFile is the manifest of a plugin directory that `make build`
// writes: one "HEX  NAME" line per plugin binary, and per support file a
// plugin reads (the Python plugins' package: "HEX  python/wslab/serve.py"),
// as sha256sum prints them.
const ChecksumsFile = "SHA256SUMS"

// maxManifestLines bounds what ReadChecksums reads of a manifest.
const maxManifestLines = 10_000

// ReadChecksums reads dir's manifest: file name, relative to dir → SHA-256.
func ReadChecksums(dir string) (map[string][]byte, error) {
	path := filepath.Join(dir, ChecksumsFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plugin checksums: %w", err)
	}
	defer f.Close()
	sums := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if line > maxManifestLines {
			return nil, fmt.Errorf("%s: more than %d lines", path, maxManifestLines)
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		hexSum, name, ok := strings.Cut(text, " ")
		name = strings.TrimPrefix(strings.TrimSpace(name), "*") // sha256sum's binary mode
		sum, err := hex.DecodeString(hexSum)
		name = filepath.ToSlash(filepath.Clean(name))
		if !ok || err != nil || len(sum) != sha256.Size || name == "" || !filepath.IsLocal(name) {
			return nil, fmt.Errorf("%s:%d: not a line of sha256sum naming a file of the directory: %q", path, line, text)
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return sums, nil
}

// FileChecksum is the SHA-256 of the file at path.
func FileChecksum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// CheckSupportFiles checks the files of dir's manifest that sit in a
// subdirectory (what plugins read besides their binary, which go-plugin
// checks itself) against their SHA-256, and refuses any other file in
// those subdirectories: a module dropped beside a plugin's package would
// be imported as surely as a changed one.
func CheckSupportFiles(dir string, sums map[string][]byte) error {
	for name, want := range sums {
		if !strings.Contains(name, "/") {
			continue
		}
		have, err := FileChecksum(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("check %s of the plugin manifest: %w", name, err)
		}
		if !bytes.Equal(have, want) {
			return fmt.Errorf("%s has SHA-256 %x, the manifest says %x: refusing to start plugins that may read it", name, have, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read plugin directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		err := filepath.WalkDir(filepath.Join(dir, e.Name()), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if _, listed := sums[filepath.ToSlash(rel)]; !listed {
				return fmt.Errorf("%s is not in the plugin manifest: refusing to start plugins that may read it", rel)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
