//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/browsercheck"
	"github.com/wslab/wslab/internal/sandbox"
)

// TestLabLadder runs the real lab's isolation ladder in two rounds on the
// rungs this build has: each rung's row has its round trips, the cpu
// throughput against inproc's, a worker's memory and, but for inproc, a
// start-up really measured (its workers or plugin killed and replaced);
// multiproc strict's workers report strict in force; a rung whose plugin
// is missing is left out with a line saying so; the attacks column cites
// the records it found; and the ladder table renders in report.html in
// headless Chromium.
func TestLabLadder(t *testing.T) {
	records := t.TempDir()
	t.Setenv(attackrecord.DirEnv, records)
	recorded := time.Now().UTC().Truncate(time.Second)
	if err := attackrecord.Write(records, attackrecord.Record{Rung: "multiproc", Test: "TestLabLadder/record", Passed: true, Recorded: recorded,
		Attacks: []attackrecord.Outcome{{Attack: "read /etc/passwd", N: 9001}, {Attack: "loop past the deadline", N: 9007, Code: "timeout"}}}); err != nil {
		t.Fatal(err)
	}
	strict := len(sandbox.Check()) == 0
	strategies := []string{"inproc", "pool", "multiproc", "distributed"}
	if strict {
		strategies = slices.Insert(strategies, 3, "multiproc-strict")
	}
	code, r, md := runLab(t, binDir, tinyLab+"ladder_count = 5\n", "--strategies", strings.Join(strategies, ","), "--scenarios", "cpu,ladder")
	if code != 0 {
		t.Fatalf("lab exited %d", code)
	}
	if r.Ladder == nil || len(r.Ladder.Rows) != len(strategies) {
		t.Fatalf("ladder %+v, want a row for each of %v", r.Ladder, strategies)
	}
	for i, row := range r.Ladder.Rows {
		if row.Rung != strategies[i] {
			t.Errorf("row %d is %s, want %s (the ladder's order)", i, row.Rung, strategies[i])
		}
		if row.Failed != "" || row.NoopUS.N() != 2 || row.FibMS.Median <= 0 || row.IOMS.Median <= 0 || row.MemoryMB.Median <= 0 {
			t.Errorf("%s: failed %q, noop %+v, fib %v ms, io %v ms, memory %v MB", row.Rung, row.Failed, row.NoopUS, row.FibMS.Median, row.IOMS.Median, row.MemoryMB.Median)
		}
		wantMem := map[string]string{"inproc": "host process", "pool": "plugin process"}[row.Rung]
		if wantMem == "" {
			wantMem = "worker process"
		}
		if row.MemoryOf != wantMem {
			t.Errorf("%s: memory of %q, want %q", row.Rung, row.MemoryOf, wantMem)
		}
		if row.Rung == "inproc" {
			if row.Replaced != "" || row.StartupMS.N() != 0 || row.CPUVsInproc != nil {
				t.Errorf("inproc: replaced %q, start-up %+v, cpu vs itself %+v", row.Replaced, row.StartupMS, row.CPUVsInproc)
			}
			continue
		}
		// A replacement waits out the supervisor's first backoff (100 ms)
		// before it starts: a figure below it was not a replacement.
		if row.StartupFailed != "" || row.StartupMS.N() != 2 || row.StartupMS.Median < 100 || row.Replaced == "" {
			t.Errorf("%s: start-up %+v ms after a kill of %q, failed %q", row.Rung, row.StartupMS, row.Replaced, row.StartupFailed)
		}
		if row.CPUVsInproc == nil || row.CPUVsInproc.Median <= 0 || row.NoopOverInprocUS == nil {
			t.Errorf("%s: cpu vs inproc %+v, noop over inproc %+v", row.Rung, row.CPUVsInproc, row.NoopOverInprocUS)
		}
		if row.Rung == "multiproc-strict" && (!strings.Contains(row.Sandbox, "mode=strict") || row.NoopOverBaseUS == nil) {
			t.Errorf("multiproc strict: workers under %q, over multiproc %+v", row.Sandbox, row.NoopOverBaseUS)
		}
	}
	for _, want := range []string{"## ladder", "| rung | noop round trip µs |", "1 of 2 (TestLabLadder/record, " + recorded.Format("2006-01-02") + ")",
		"No test has recorded the attacks on inproc", "- **ladder**: a noop's round trip over inproc's"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(binDir, "plugins", "wasm")); err != nil && !strings.Contains(md, "wasm is left out: its plugin is not installed") {
		t.Error("report.md does not say why wasm is left out")
	}
	if !strict && !strings.Contains(md, "multiproc strict is left out: ") {
		t.Error("report.md does not say why multiproc strict is left out")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := browsercheck.Check(ctx, t, filepath.Join(r.dir, "report.html"))
	lt := p.Table("ladder")
	if lt == nil || lt.Width <= 0 || lt.Height <= 0 || len(lt.Rows) != len(strategies) {
		t.Fatalf("the ladder table in the browser: %+v", lt)
	}
	for i, row := range lt.Rows {
		if name := strings.Replace(strategies[i], "multiproc-strict", "multiproc strict", 1); len(row) != len(lt.Header) || row[0] != name {
			t.Errorf("ladder row %d in the browser: %q, want %s with %d cells", i, row, name, len(lt.Header))
		}
	}
	if at := p.Table("attacks"); at == nil || len(at.Rows) != 1 || !slices.Contains(at.Rows[0], "stopped: timeout") {
		t.Errorf("the attacks table in the browser: %+v", at)
	}
	for _, id := range []string{"ladder-noop", "ladder-memory", "ladder-startup"} {
		if !slices.ContainsFunc(p.Charts, func(c browsercheck.Chart) bool { return c.ID == id }) {
			t.Errorf("report.html has no chart %s", id)
		}
	}
}
