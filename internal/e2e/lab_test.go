//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/browsercheck"
	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/lab"
)

// runLab runs bin/lab with a tiny configuration and returns its exit code
// and the report it wrote.
func runLab(t *testing.T, bin string, ini string, args ...string) (int, *labReport, string) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "lab"), append([]string{"--config", conf, "--out", out, "--bin-dir", bin}, args...)...)
	output, _ := cmd.CombinedOutput()
	t.Logf("lab output:\n%s", output)
	for _, name := range []string{"report.md", "report.json", "report.html"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s not written: %v", name, err)
		}
	}
	r, err := lab.ReadReport(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	return cmd.ProcessState.ExitCode(), &labReport{r, out}, string(md)
}

// labReport is a report and the folder it was written to.
type labReport struct {
	*lab.Report
	dir string
}

const tinyLab = `[client]
num_client = 5
[lab]
rounds = 2
warmup_ms = 100
duration_ms = 500
cpu_clients = 2
cpu_n = 200000
sleep_clients = 3
sleep_ms = 100
noop_clients = 2
cpu_pipeline = 2
noop_pipeline = 4
rtt_count = 50
capacity_rates = 50, 100, 200
capacity_step_ms = 300
capacity_clients = 4
slo_p99_ms = 1000
`

// TestLabTiny runs the whole lab on a tiny load in two rounds: every
// strategy and an outside contender under every scenario, capacity at
// three rates, all three report files, numbers where there must be
// numbers; then a second, smaller run, and `lab compare` of the two.
func TestLabTiny(t *testing.T) {
	ini := tinyLab + "external = contender: " + filepath.Join(binDir, "contender") + " --port {port}\n"
	code, r, md := runLab(t, binDir, ini)
	if code != 0 {
		t.Fatalf("lab exited %d", code)
	}
	plugins, err := host.ListPlugins(filepath.Join(binDir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"inproc"}, plugins...) // every plugin found
	if len(sandbox.Check()) == 0 {
		want = append(want, "multiproc-strict") // multiproc's variant, where the kernel has what it needs
	}
	want = append(want, "contender")
	got := slices.Clone(r.Strategies)
	slices.Sort(got[1 : len(got)-1]) // plugins come in directory order
	slices.Sort(want[1 : len(want)-1])
	if !slices.Equal(got, want) || r.Rounds != 2 || len(r.Contenders) != 1 {
		t.Errorf("strategies %v in %d rounds, contenders %v; want %v in 2 rounds", r.Strategies, r.Rounds, r.Contenders, want)
	}
	rungs := 0 // the ladder runs on its rungs alone
	for _, s := range r.Strategies {
		if slices.Contains([]string{"inproc", "wasm", "pool", "multiproc", "multiproc-strict", "distributed"}, s) {
			rungs++
		}
	}
	if len(r.Results) != len(r.Strategies)*5+rungs {
		t.Fatalf("%d results for %d strategies × 5 scenarios, capacity, and the ladder's %d rungs", len(r.Results), len(r.Strategies), rungs)
	}
	for _, res := range r.Results {
		name := res.Strategy + "/" + res.Scenario
		if res.Failed != "" || len(res.Trials) != 2 || res.Throughput.N() != 2 {
			t.Errorf("%s: %d trials, %d measured, failed %q", name, len(res.Trials), res.Throughput.N(), res.Failed)
			continue
		}
		if res.Errors != 0 || res.P50.Median <= 0 || res.Throughput.Median <= 0 || res.Scenario == "cpu" && res.CPUPerTask.Median <= 0 {
			t.Errorf("%s: %d errors, p50 %v ms, %v tasks/s, %v CPU µs/task", name, res.Errors, res.P50.Median, res.Throughput.Median, res.CPUPerTask.Median)
		}
		wantProcs := 2
		if res.Strategy == "inproc" || res.Strategy == "contender" {
			wantProcs = 1
		}
		if res.PeakRSSMB.Median <= 0 || res.Processes < wantProcs {
			t.Errorf("%s: peak RSS %.1f MB, %d processes", name, res.PeakRSSMB.Median, res.Processes)
		}
		if (res.Strategy == "inproc") != (res.VsInproc == nil) {
			t.Errorf("%s: comparison with inproc %+v", name, res.VsInproc)
		}
		if res.Scenario == "cpu" && res.Strategy != "contender" && (res.QueueUS.N() != 2 || res.RunUS.Median <= 0) {
			t.Errorf("%s: queue %+v, run %+v µs: the replies' timings are not read", name, res.QueueUS, res.RunUS)
		}
		if res.Scenario == "rtt" && res.Strategy != "inproc" && res.IsolationUS == nil {
			t.Errorf("%s: no isolation cost", name)
		}
		if !strings.Contains(md, "| "+res.Strategy+" |") {
			t.Errorf("report.md has no row for %s", res.Strategy)
		}
	}
	if len(r.Capacity) != len(r.Strategies) {
		t.Fatalf("%d capacity curves for %d strategies", len(r.Capacity), len(r.Strategies))
	}
	for _, c := range r.Capacity {
		if len(c.Points) != 3 || c.Failed != "" || c.Sustained < 50 || c.Points[0].P99.N() != 2 {
			t.Errorf("capacity of %s: sustained %v, failed %q, points %+v", c.Strategy, c.Sustained, c.Failed, c.Points)
		}
	}
	for _, s := range []string{"## Verdict", "- **capacity**: highest rate", "- **machine**", "## Contenders"} {
		if !strings.Contains(md, s) {
			t.Errorf("report.md lacks %q", s)
		}
	}

	// A second run, and the comparison of the two.
	code, r2, _ := runLab(t, binDir, tinyLab, "--strategies", "inproc,pool", "--scenarios", "noop,capacity")
	if code != 0 || len(r2.Results) != 2 {
		t.Fatalf("second lab run: exit %d, %d results", code, len(r2.Results))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	page := filepath.Join(t.TempDir(), "compare.html")
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "lab"), "compare", "--html", page,
		filepath.Join(r.dir, "report.json"), r2.dir).CombinedOutput()
	t.Logf("lab compare:\n%s", out)
	if err != nil {
		t.Fatalf("lab compare: %v", err)
	}
	for _, s := range []string{"noop · tasks/s", "  inproc", "  pool", "(p=", "n=2+2", "capacity at p99"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("lab compare's table lacks %q", s)
		}
	}
	if strings.Contains(string(out), "contender") || strings.Contains(string(out), "cpu ·") {
		t.Error("lab compare lists what only one run measured")
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), `data-chart="capacity"`) || !strings.Contains(string(html), `data-chart="tasks-s-noop"`) {
		t.Errorf("compare.html lacks the overlaid charts (%v)", err)
	}

	// The real pages, drawn by a real browser.
	for _, path := range []string{filepath.Join(r.dir, "report.html"), page} {
		browsercheck.Check(ctx, t, path)
	}
}

// TestLabReportsFailedStrategy: a plugin that cannot start is reported as
// failed, not skipped, and the lab exits non-zero after writing the report.
func TestLabReportsFailedStrategy(t *testing.T) {
	bin := t.TempDir()
	if err := os.Mkdir(filepath.Join(bin, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"host", "lab", "plugins/pool"} {
		if err := os.Link(filepath.Join(binDir, name), filepath.Join(bin, name)); err != nil {
			t.Skipf("cannot link binaries: %v", err)
		}
	}
	broken := "#!/bin/sh\necho 'this plugin is broken' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "plugins", "broken"), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	code, r, md := runLab(t, bin, tinyLab, "--scenarios", "noop", "--rounds", "1")
	if code == 0 {
		t.Error("lab exited 0 although a strategy failed")
	}
	got := map[string]lab.Result{}
	for _, res := range r.Results {
		got[res.Strategy] = res
	}
	if got["broken"].Failed == "" {
		t.Errorf("broken plugin not reported as failed: %+v", got["broken"])
	}
	for _, ok := range []string{"inproc", "pool"} {
		if got[ok].Failed != "" || got[ok].Throughput.N() != 1 {
			t.Errorf("%s should have run: %+v", ok, got[ok])
		}
	}
	if !strings.Contains(md, "failed") {
		t.Error("report.md does not say a strategy failed")
	}
}
