package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tetratelabs/wazero"
)

// maxCachedModules bounds the compiled modules kept in a cache directory
// (about 12 MiB each): one per build of the guest, the least recently
// used removed first.
const maxCachedModules = 4

// DefaultCacheDir is the per-user cache directory under the system's temp
// directory.
func DefaultCacheDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("wslab-wasm-cache-%d", os.Getuid()))
}

// OpenCache is wazero's file cache for module in a directory of its own
// under root, which it makes (0700) if need be. Compiled code from it is
// run as it is, so root must be this user's alone: one that another user
// owns or may write to is refused. The directories of other builds beyond
// the newest maxCachedModules are removed.
func OpenCache(root string, module []byte) (wazero.CompilationCache, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("wasm compilation cache: %w", err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByMe(fi) {
		return nil, fmt.Errorf("wasm compilation cache %s: not a directory of this user's that only it may write to (%v); refusing to run code from it", root, fi.Mode())
	}
	sum := sha256.Sum256(module)
	dir := filepath.Join(root, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wasm compilation cache: %w", err)
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // its last use, for pruneCache
	pruneCache(root, dir)
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm compilation cache: %w", err)
	}
	return cache, nil
}

// pruneCache removes the module directories of root beyond the newest
// maxCachedModules, never keep. A process that still reads a removed one
// keeps its open file; one that meant to write to it compiles without it.
func pruneCache(root, keep string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type entry struct {
		path string
		used time.Time
	}
	var dirs []entry
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && e.IsDir() {
			dirs = append(dirs, entry{filepath.Join(root, e.Name()), fi.ModTime()})
		}
	}
	slices.SortFunc(dirs, func(a, b entry) int { return b.used.Compare(a.used) })
	for i, d := range dirs {
		if i >= maxCachedModules && d.path != keep {
			os.RemoveAll(d.path)
		}
	}
}
