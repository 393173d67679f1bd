package attackrecord

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteRead: a record written is read back by its rung, the latest
// replacing the one before; a directory that does not exist holds none,
// and a file that does not parse is an error naming it.
func TestWriteRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "attacks")
	if recs, err := ReadDir(dir); err != nil || len(recs) != 0 {
		t.Fatalf("no directory: %v %v", recs, err)
	}
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	first := Record{Rung: "multiproc-strict", Test: "TestA", Recorded: at, Attacks: []Outcome{{Attack: "x", N: 2, Code: "sandbox_denied"}, {Attack: "w", N: 1}}}
	if err := Write(dir, first); err != nil {
		t.Fatal(err)
	}
	second := first
	second.Test, second.Passed = "TestB", true
	if err := Write(dir, second); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, Record{Rung: "multiproc", Test: "TestA", Recorded: at, Attacks: []Outcome{{Attack: "w", N: 1}}}); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := recs["multiproc-strict"]
	if len(recs) != 2 || got.Test != "TestB" || !got.Passed || !got.Recorded.Equal(at) || got.Stopped() != 1 {
		t.Fatalf("records %+v", recs)
	}
	if got.Attacks[0].N != 1 || got.Attacks[0].Stopped() || !got.Attacks[1].Stopped() {
		t.Errorf("attacks %+v: want them by n, the first succeeded", got.Attacks)
	}
	if err := Write(dir, Record{}); err == nil {
		t.Error("a record with no rung was written")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a broken record: %v", err)
	}
}
