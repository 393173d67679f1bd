package lab

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/config"
)

// sampleLadder adds the ladder to the sample report: inproc and pool ran
// it (pool's noop 40 µs over inproc's, its plugin restarted in 120 ms, in
// one round the kill's probe failed), wasm's plugin was not installed, the
// kernel lacked what strict needs, and the attack tests recorded pool (as
// a test of the table, not of pool) and multiproc-strict.
func sampleLadder(r *Report, trial func(round int, tput, p50, p99 float64, kinds map[string]client.Percentiles, json bool) Trial) {
	r.Scenarios = append(r.Scenarios, Scenario{Name: scenarioLadder, Description: "The isolation ladder.", Load: "1 clients × 40 × (noop, fib, io), json, sequence once"})
	lat := func(p50 float64) client.Percentiles {
		return client.Percentiles{Count: 40, Min: p50 / 2, Mean: p50, P50: p50, P90: p50 * 1.5, P99: p50 * 2, P999: p50 * 2, Max: p50 * 3}
	}
	rung := func(name string, noopMS, fibMS, ioMS, memMB, startMS float64, replaced, memOf string) Result {
		res := Result{Strategy: name, Scenario: scenarioLadder}
		for round := 1; round <= 6; round++ {
			k := 1 + 0.01*float64(round%3)
			t := trial(round, 3000, noopMS*k, noopMS*2, map[string]client.Percentiles{
				"noop": lat(noopMS * k), "fib": lat(fibMS * k), "io": lat(ioMS * k)}, true)
			t.Ladder = &LadderTrial{MemoryMB: memMB * k, MemoryOf: memOf, Workers: 1, Replaced: replaced}
			if replaced != "" {
				t.Ladder.StartupMS = startMS * k
			}
			if name == "pool" && round == 3 {
				t.Ladder.StartupMS, t.Ladder.StartupFailed = 0, "after the kill of plugin process: no right reply within 30s"
			}
			res.Trials = append(res.Trials, t)
		}
		return res
	}
	r.Results = append(r.Results,
		rung("inproc", 0.040, 0.15, 0.5, 25, 0, "", "host process"),
		rung("pool", 0.080, 0.2, 0.55, 22, 120, "plugin process", "plugin process"))
	recorded := time.Date(2026, 2, 27, 10, 0, 0, 0, time.UTC)
	outcome := func(n int64, name, code string) attackrecord.Outcome {
		return attackrecord.Outcome{Attack: name, N: n, Code: code}
	}
	r.Ladder = &Ladder{
		Skipped: []LadderSkip{
			{"wasm", "its plugin is not installed (no bin/plugins/wasm; make build installs every plugin)"},
			{strictRung, "this kernel lacks what it needs: Landlock ABI 4 or later (this kernel: 1)"},
		},
		AttacksDir: "bin/attacks",
		Attacks: map[string]attackrecord.Record{
			"pool": {Rung: "pool", Test: "TestSample/pool", Passed: true, Recorded: recorded, Kernel: "6.1.0", Commit: "abc123",
				Attacks: []attackrecord.Outcome{outcome(9001, "read /etc/passwd", ""), outcome(9007, "loop past the deadline", "timeout")}},
			strictRung: {Rung: strictRung, Test: "TestSample/strict", Passed: false, Recorded: recorded, Kernel: "5.10.0",
				Attacks: []attackrecord.Outcome{outcome(9001, "read /etc/passwd", "sandbox_denied"), outcome(9004, "connect to a loopback listener", "sandbox_denied")}},
		},
	}
}

// TestLadderRows: the ladder's figures come from the ladder trials, round
// by round against inproc, and say what was measured.
func TestLadderRows(t *testing.T) {
	r := sampleReport()
	if r.Ladder == nil || len(r.Ladder.Rows) != 2 {
		t.Fatalf("ladder %+v, want rows for inproc and pool", r.Ladder)
	}
	in, pool := r.Ladder.Rows[0], r.Ladder.Rows[1]
	if in.Rung != "inproc" || pool.Rung != "pool" {
		t.Fatalf("rows %s, %s: want the ladder's order", in.Rung, pool.Rung)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.03 {
			t.Errorf("%s: %v, want about %v", what, got, want)
		}
	}
	near("inproc noop µs", in.NoopUS.Median, 40)
	near("pool noop µs", pool.NoopUS.Median, 80)
	near("pool fib ms", pool.FibMS.Median, 0.2)
	near("pool io ms", pool.IOMS.Median, 0.55)
	if in.NoopOverInprocUS != nil || pool.NoopOverInprocUS == nil || pool.NoopOverInprocUS.N() != 6 {
		t.Fatalf("noop over inproc: inproc %+v, pool %+v", in.NoopOverInprocUS, pool.NoopOverInprocUS)
	}
	near("pool noop over inproc µs", pool.NoopOverInprocUS.Median, 40)
	// The cpu scenario's sample throughputs: pool 605 against inproc's
	// 612.4, round 4 of pool's failed.
	if pool.CPUVsInproc == nil || pool.CPUVsInproc.N() != 5 {
		t.Fatalf("pool cpu vs inproc %+v, want 5 paired rounds", pool.CPUVsInproc)
	}
	near("pool cpu vs inproc", pool.CPUVsInproc.Median, 605/612.4)
	if in.Replaced != "" || in.StartupMS.N() != 0 || in.MemoryOf != "host process" {
		t.Errorf("inproc: replaced %q, start-up %+v, memory of %q", in.Replaced, in.StartupMS, in.MemoryOf)
	}
	if pool.StartupMS.N() != 5 || !strings.Contains(pool.StartupFailed, "round 3") || pool.Replaced != "plugin process" {
		t.Errorf("pool start-up %+v, failed %q, replaced %q", pool.StartupMS, pool.StartupFailed, pool.Replaced)
	}
	near("pool start-up ms", pool.StartupMS.Median, 120)
	near("pool memory MB", pool.MemoryMB.Median, 22)
}

// TestLadderInReports: report.md and report.html have the ladder table,
// the attacks each rung got, a line per rung left out and the attacks'
// sources; report.html its charts.
func TestLadderInReports(t *testing.T) {
	dir, _ := writeSample(t)
	md := readFile(t, filepath.Join(dir, "report.md"))
	for _, want := range []string{
		"## ladder", "| rung | noop round trip µs |", "| inproc | 40", "0 (the base)", "| pool | 80",
		"plugin process", "nothing: tasks run in the host", "1 of 2 (TestSample/pool, 2026-02-27)", "not recorded",
		"wasm is left out: its plugin is not installed", "multiproc strict is left out: this kernel lacks",
		"stopped: sandbox_denied", "succeeded", "stopped: timeout", "kernel 5.10.0 (not this run's kernel)", "and the test failed",
		"No test has recorded the attacks on inproc", "pool: start-up not measured in round 3",
		"- **ladder**: a noop's round trip over inproc's in the same round: pool +40",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if strings.Index(md, "| rung | read /etc/passwd |") < strings.Index(md, "| rung | noop round trip µs |") {
		t.Error("the attacks table should follow the ladder table")
	}
	page := readFile(t, filepath.Join(dir, "report.html"))
	for _, want := range []string{`data-table="ladder"`, `data-table="attacks"`, `data-chart="ladder-noop"`, `data-chart="ladder-memory"`,
		`data-chart="ladder-startup"`, "wasm is left out"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	// No placeholder row for what did not run.
	for _, absent := range []string{"| wasm |", "| multiproc strict |", "| distributed |"} {
		if strings.Contains(md, absent) && strings.Index(md, absent) < strings.Index(md, "| rung | read /etc/passwd |") {
			t.Errorf("report.md's ladder has a row %q for a rung that did not run", absent)
		}
	}
}

// TestVariantConfig: a variant's settings, appended to the configuration,
// win over the file's own, and the rest of the file stands.
func TestVariantConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "variant.ini")
	base := []byte("[other]\nmultiprocessing_processes = 3\n[multiproc]\nsandbox = none\nworker_memory_mb = 64")
	if err := os.WriteFile(path, []byte(variantConfig(strictRung, base)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Raw["multiproc.sandbox"]; got != "strict" {
		t.Errorf("multiproc.sandbox = %q, want strict", got)
	}
	if got := cfg.Raw["multiproc.worker_memory_mb"]; got != "64" || cfg.Raw["other.multiprocessing_processes"] != "3" {
		t.Errorf("the file's other keys: worker_memory_mb %q, processes %q", got, cfg.Raw["other.multiprocessing_processes"])
	}
	if variantConfig("pool", base) != "" || pluginOf(strictRung) != "multiproc" || pluginOf("pool") != "pool" {
		t.Error("a strategy that is no variant has no variant settings and serves its own plugin")
	}
}

// TestWithVariants: a variant follows its plugin when the machine can run
// it, and is left out (and said so) when it cannot or its plugin is not
// installed.
func TestWithVariants(t *testing.T) {
	saved := variants[strictRung]
	t.Cleanup(func() { variants[strictRung] = saved })
	v := saved
	v.Check = func() []string { return nil }
	variants[strictRung] = v
	if got := withVariants([]string{"inproc", "multiproc", "pool"}); !slices.Equal(got, []string{"inproc", "multiproc", strictRung, "pool"}) {
		t.Errorf("with a kernel that has it: %v", got)
	}
	if got := withVariants([]string{"inproc", "pool"}); !slices.Equal(got, []string{"inproc", "pool"}) {
		t.Errorf("without multiproc: %v", got)
	}
	v.Check = func() []string { return []string{"seccomp filters"} }
	variants[strictRung] = v
	if got := withVariants([]string{"inproc", "multiproc"}); !slices.Equal(got, []string{"inproc", "multiproc"}) {
		t.Errorf("with a kernel that lacks it: %v", got)
	}
	bin := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bin, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "plugins", "multiproc"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	skips := map[string]string{}
	for _, s := range ladderSkips([]string{"inproc", "multiproc"}, bin) {
		skips[s.Rung] = s.Why
	}
	for rung, want := range map[string]string{
		"wasm": "its plugin is not installed", strictRung: "this kernel lacks what it needs: seccomp filters",
		"pool": "its plugin is not installed", "distributed": "its plugin is not installed",
	} {
		if !strings.Contains(skips[rung], want) {
			t.Errorf("%s left out because %q, want %q", rung, skips[rung], want)
		}
	}
	if _, ok := skips["multiproc"]; ok || len(skips) != 4 {
		t.Errorf("skips %v", skips)
	}
}

// TestWorkerTree: the processes that run tasks, from this test's own
// process tree: with no child, the root itself.
func TestWorkerTree(t *testing.T) {
	procs, what := workerTree(os.Getpid())
	if what != "host process" || len(procs) != 1 || procs[0].pid != os.Getpid() || procs[0].rssBytes <= 0 {
		t.Errorf("workerTree of a process with no child: %q %+v", what, procs)
	}
}
