package plugin

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ChecksumsFile is the manifest of a plugin directory that `make build`
// writes: one "HEX  NAME" line per plugin binary, as sha256sum prints them.
const ChecksumsFile = "SHA256SUMS"

// maxManifestLines bounds what ReadChecksums reads of a manifest.
const maxManifestLines = 10_000

// ReadChecksums reads dir's manifest: plugin name → SHA-256.
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
		if !ok || err != nil || len(sum) != sha256.Size || name == "" {
			return nil, fmt.Errorf("%s:%d: not a line of sha256sum: %q", path, line, text)
		}
		sums[filepath.Base(name)] = sum
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
