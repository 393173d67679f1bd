package launch

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BinaryWatch reports new content once it has settled, and only once
// accepted; a touch, a half-written file and a file gone for a moment
// report nothing. Time is the test's: Poll is given its now.
func TestBinaryWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	write := func(content string, mtime time.Time) {
		t.Helper()
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	write("v1", base)
	const settle = time.Second
	w, err := NewBinaryWatch(path, settle)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	poll := func(what string, at time.Duration, want []byte) {
		t.Helper()
		got, err := w.Poll(now.Add(at))
		if err != nil {
			t.Fatalf("%s: Poll: %v", what, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: Poll = %x, want %x", what, got, want)
		}
	}
	sum := func(content string) []byte {
		t.Helper()
		tmp := filepath.Join(t.TempDir(), "f")
		os.WriteFile(tmp, []byte(content), 0o600)
		s, err := FileChecksum(tmp)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	poll("unchanged", 0, nil)
	poll("unchanged later", 10*time.Second, nil)

	// A touch: same content, another time and file. Seen, settled, read,
	// found the same: nothing, and nothing after.
	write("v1", base.Add(time.Minute))
	poll("touched", 11*time.Second, nil)
	poll("touched, settled", 13*time.Second, nil)
	poll("touched, later", 15*time.Second, nil)

	// New content, still being written: reported only once it has kept
	// its size and time for the settle time.
	write("v2-partial", base.Add(2*time.Minute))
	poll("being written", 20*time.Second, nil)
	write("v2-whole-binary", base.Add(3*time.Minute))
	poll("still being written", 20*time.Second+settle/2, nil)
	poll("not settled yet", 20*time.Second+settle, nil)
	poll("settled", 22*time.Second, sum("v2-whole-binary"))
	poll("until accepted", 23*time.Second, sum("v2-whole-binary"))
	w.Accept(sum("v2-whole-binary"))
	poll("accepted", 24*time.Second, nil)

	// Gone for a moment (rm, then cp): nothing while gone.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	poll("gone", 30*time.Second, nil)
	poll("still gone", 40*time.Second, nil)
	write("v3", base.Add(4*time.Minute))
	poll("back", 41*time.Second, nil)
	poll("back, settled", 43*time.Second, sum("v3"))
	w.Accept(sum("v3"))

	// The content accepted last, written back: nothing.
	write("v3", base.Add(5*time.Minute))
	poll("v3 again", 50*time.Second, nil)
	poll("v3 again, settled", 52*time.Second, nil)
}
