// Package attackrecord is what the attack tests saw, kept for the lab:
// each test that runs internal/attacks' tasks through a rung of the
// isolation ladder writes one Record per rung, and bin/lab's ladder cites
// those records (with their date, kernel and commit) in its attacks column.
//
// The lab cannot run the attacks itself: they are a test-only task set,
// built into a test plugin and never into what `make build` ships. So the
// column is the tests' own observations, never a list written by hand, and
// a rung whose attacks no test has recorded says so.
//
// This package holds only the record's shape: it imports nothing of the
// attacks, so that the lab can read records without carrying them.
package attackrecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DirEnv, when set, is where the tests write their records and where the
// lab reads them, instead of Dir(binDir).
const DirEnv = "WSLAB_ATTACK_RECORDS"

// Dir is where records live beside a build: bin/attacks, next to the
// binaries the tests and the lab run.
func Dir(binDir string) string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return filepath.Join(binDir, "attacks")
}

// Record is one rung's attacks as one test run saw them.
type Record struct {
	// Rung is the lab's name of the strategy: "multiproc" (sandbox = none),
	// "multiproc-strict", "wasm", ...
	Rung string `json:"rung"`
	// Test names the test that ran the attacks; Passed says whether it
	// passed (false: its assertions on this rung or another failed).
	Test     string    `json:"test"`
	Passed   bool      `json:"passed"`
	Recorded time.Time `json:"recorded"`
	// Kernel is the release the test ran on, Commit the checkout's
	// revision (with "+dirty" for uncommitted changes), when known.
	Kernel  string    `json:"kernel,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Attacks []Outcome `json:"attacks"`
}

// Outcome is one attack's reply.
type Outcome struct {
	Attack string `json:"attack"` // its name, as internal/attacks.Names says it
	N      int64  `json:"n"`      // the fib n that runs it
	// Code is the reply's error code; "" when the attack succeeded.
	Code    string `json:"code"`
	Message string `json:"message,omitempty"` // the reply's error message, or its result
	// Effect is what the test saw outside the reply, when it looked: "file
	// unchanged", "listener accepted 1 connection".
	Effect string `json:"effect,omitempty"`
}

// Stopped says whether the rung stopped the attack: it got an error reply.
func (o Outcome) Stopped() bool { return o.Code != "" }

// Stopped counts the attacks the rung stopped.
func (r Record) Stopped() int {
	n := 0
	for _, o := range r.Attacks {
		if o.Stopped() {
			n++
		}
	}
	return n
}

// file is where the rung's record goes in dir.
func file(dir, rung string) string {
	return filepath.Join(dir, strings.Map(func(c rune) rune {
		if c == '/' || c == os.PathSeparator {
			return '_'
		}
		return c
	}, rung)+".json")
}

// Write saves r in dir, replacing the rung's earlier record.
func Write(dir string, r Record) error {
	if r.Rung == "" {
		return errors.New("attackrecord: a record needs its rung")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".record-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), file(dir, r.Rung))
}

// ReadDir reads every record in dir, by rung; none when dir does not
// exist. A file that does not parse is an error naming it.
func ReadDir(dir string) (map[string]Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]Record{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return out, err
		}
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		if r.Rung == "" || len(r.Attacks) == 0 {
			return out, fmt.Errorf("%s: no rung or no attacks", path)
		}
		slices.SortFunc(r.Attacks, func(a, b Outcome) int { return int(a.N - b.N) })
		out[r.Rung] = r
	}
	return out, nil
}
