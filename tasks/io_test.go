package tasks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func assertEmptyDir(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	for _, e := range entries {
		t.Errorf("%s: leftover entry %q", dir, e.Name())
	}
}

func dirNames(t testing.TB, dir string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	m := make(map[string]bool, len(entries))
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

func TestIOSizes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int64{0, 1, 2, 25, 26, 27, ioChunk - 1, ioChunk, ioChunk + 1, 3*ioChunk + 5, 1_000_000} {
		got, err := IO(context.Background(), dir, "large_file.txt", n)
		if err != nil {
			t.Fatalf("IO(%d): %v", n, err)
		}
		if got != n {
			t.Errorf("IO(%d) = %d", n, got)
		}
		assertEmptyDir(t, dir)
	}
}

func TestIONegative(t *testing.T) {
	dir := t.TempDir()
	if _, err := IO(context.Background(), dir, "large_file.txt", -1); err == nil {
		t.Error("IO(-1) returned no error")
	}
	assertEmptyDir(t, dir)
}

func TestIOBadDir(t *testing.T) {
	ctx := context.Background()
	if _, err := IO(ctx, "", "large_file.txt", 10); err == nil {
		t.Error(`IO with dir "" returned no error`)
	}
	missing := filepath.Join(t.TempDir(), "does", "not", "exist")
	if _, err := IO(ctx, missing, "large_file.txt", 10); err == nil {
		t.Error("IO with a missing dir returned no error")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IO created the missing dir: stat err = %v", err)
	}
	// A regular file is not a directory.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := IO(ctx, file, "large_file.txt", 10); err == nil {
		t.Error("IO with a regular file as dir returned no error")
	}
}

func TestIOCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, n := range []int64{1, ioChunk, 1_000_000} {
		got, err := IO(ctx, dir, "large_file.txt", n)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("IO(%d) on cancelled ctx: err = %v, want context.Canceled", n, err)
		}
		if got != 0 {
			t.Errorf("IO(%d) on cancelled ctx = %d, want 0", n, got)
		}
		assertEmptyDir(t, dir)
	}
}

// watchIO runs IO with a large n in the background, waits until its file
// appears in dir, records the names seen, then cancels it. It returns the
// names seen and IO's error. ok is false if IO finished before its file was
// seen (which would only happen on an unusually fast disk).
func watchIO(t *testing.T, dir, largeFileName string) (seen []string, ok bool, ioErr error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := IO(ctx, dir, largeFileName, DefaultMaxIOBytes)
		done <- err
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-done:
			return seen, false, err
		case <-deadline:
			cancel()
			err := <-done
			t.Fatalf("no file appeared in %s within 60s (IO err %v)", dir, err)
		default:
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 0 {
			for _, e := range entries {
				seen = append(seen, e.Name())
			}
			cancel()
			return seen, true, <-done
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestIOFileNameWhileItExists(t *testing.T) {
	for _, tc := range []struct {
		large, pattern string
	}{
		{"large_file.txt", "large_file-*.txt"},
		{"../../etc/passwd", "passwd-*"},
		{"/abs/dir/data.bin", "data-*.bin"},
		{"", "large_file-*.txt"},
	} {
		dir := t.TempDir()
		seen, ok, err := watchIO(t, dir, tc.large)
		if !ok {
			t.Logf("%q: IO finished (err %v) before its file was seen; skipping name check", tc.large, err)
			assertEmptyDir(t, dir)
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%q: IO cancelled mid-run: err = %v, want context.Canceled", tc.large, err)
		}
		if len(seen) != 1 {
			t.Errorf("%q: entries while running: %q, want exactly one", tc.large, seen)
		}
		for _, name := range seen {
			if m, _ := filepath.Match(tc.pattern, name); !m {
				t.Errorf("%q: file name %q does not match %q", tc.large, name, tc.pattern)
			}
		}
		// Cancelled mid-run, the file is still removed.
		assertEmptyDir(t, dir)
	}
}

func TestFilePattern(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"large_file.txt", "large_file-*.txt"},
		{"../../etc/passwd", "passwd-*"},
		{"/etc/passwd", "passwd-*"},
		{"dir/sub/name.dat", "name-*.dat"},
		{"name", "name-*"},
		{"archive.tar.gz", "archive.tar-*.gz"},
		{"", "large_file-*.txt"},
		{"/", "large_file-*.txt"},
		{"//", "large_file-*.txt"},
		{".", "large_file-*.txt"},
		{"a*b.txt", "ab-*.txt"},
		{"*large*.t*xt", "large-*.txt"},
		{"dir*/x*.log", "x-*.log"},
		{"trailing/", "trailing-*"},
	} {
		if got := filePattern(tc.in); got != tc.want {
			t.Errorf("filePattern(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkPatternSafe checks the invariants every pattern must keep: exactly one
// '*', for os.CreateTemp's random part, and no path separator.
func checkPatternSafe(t *testing.T, in, p string) {
	t.Helper()
	if n := strings.Count(p, "*"); n != 1 {
		t.Errorf("filePattern(%q) = %q has %d '*', want 1", in, p, n)
	}
	if strings.ContainsRune(p, filepath.Separator) || strings.ContainsRune(p, '/') {
		t.Errorf("filePattern(%q) = %q contains a path separator", in, p)
	}
	name := strings.Replace(p, "*", "123456", 1)
	if name == "." || name == ".." {
		t.Errorf("filePattern(%q) = %q names a special directory", in, p)
	}
}

func TestFilePatternSafe(t *testing.T) {
	for _, in := range []string{
		"", "/", ".", "..", "...", "*", "**", "*/", "/*", "*.*", ".*", "*.",
		"../", "../..", "../../../../tmp/evil", "a/../../b", "./x", "x/.", "x/..",
		"dir/", "-", "-*", "\\..\\..\\win.ini", "x\x00y", " ", "name with spaces.txt",
	} {
		checkPatternSafe(t, in, filePattern(in))
	}
}

func TestIOStaysInsideDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, parent)
	for _, name := range []string{
		"../escape.txt",
		"../../escape.txt",
		"..",
		"../",
		"../*",
		"*/../x",
		filepath.Join(parent, "abs.txt"),
		"/abs.txt",
		"sub/dir/file.txt",
		"./../x",
		"..\\..\\win.txt",
	} {
		got, err := IO(context.Background(), dir, name, 1000)
		if err != nil {
			t.Errorf("IO(large_file_name %q): %v", name, err)
		} else if got != 1000 {
			t.Errorf("IO(large_file_name %q) = %d, want 1000", name, got)
		}
		assertEmptyDir(t, dir)
		after := dirNames(t, parent)
		for n := range after {
			if !before[n] {
				t.Errorf("IO(large_file_name %q) created %q in the parent of dir", name, n)
			}
		}
		if len(after) != len(before) {
			t.Errorf("IO(large_file_name %q): parent had %d entries, now %d", name, len(before), len(after))
		}
	}
	// Nothing was created above the parent either.
	if _, err := os.Stat(filepath.Join(filepath.Dir(parent), "escape.txt")); err == nil {
		t.Errorf("IO created %s", filepath.Join(filepath.Dir(parent), "escape.txt"))
	}
}

func TestIOStaysInsideDirWhileRunning(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seen, ok, err := watchIO(t, dir, "../escape.txt")
	if ok {
		if len(seen) != 1 {
			t.Errorf("entries in dir while running: %q", seen)
		}
		for _, name := range seen {
			if m, _ := filepath.Match("escape-*.txt", name); !m {
				t.Errorf("file name %q does not match escape-*.txt", name)
			}
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	}
	assertEmptyDir(t, dir)
	if names := dirNames(t, parent); len(names) != 1 || !names["data"] {
		t.Errorf("parent of dir holds %v, want only data", names)
	}
}

func TestIOConcurrent(t *testing.T) {
	// Several io tasks share one directory without colliding.
	dir := t.TempDir()
	const workers = 8
	errs := make(chan error, workers)
	for range workers {
		go func() {
			_, err := IO(context.Background(), dir, "large_file.txt", 200_000)
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	assertEmptyDir(t, dir)
}
