//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/lab"
)

// runLab runs bin/lab with a tiny configuration and returns its exit code
// and the report it wrote.
func runLab(t *testing.T, bin string, ini string, args ...string) (int, *lab.Report, string) {
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
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r lab.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	return cmd.ProcessState.ExitCode(), &r, string(md)
}

const tinyLab = `[client]
num_client = 5
[lab]
duration_sec = 1
cpu_clients = 2
cpu_n = 200000
sleep_clients = 3
sleep_sec = 1
noop_clients = 2
pipeline = 4
`

// TestLabTiny runs the whole lab on a tiny load: every strategy under every
// scenario, all three report files, numbers where there must be numbers.
func TestLabTiny(t *testing.T) {
	code, r, md := runLab(t, binDir, tinyLab)
	if code != 0 {
		t.Fatalf("lab exited %d", code)
	}
	if len(r.Strategies) != len(strategies) || r.Strategies[0] != "inproc" {
		t.Errorf("strategies %v, want inproc first, then every plugin of %v", r.Strategies, strategies)
	}
	if len(r.Results) != len(r.Strategies)*4 {
		t.Fatalf("%d results for %d strategies × 4 scenarios", len(r.Results), len(r.Strategies))
	}
	for _, res := range r.Results {
		name := res.Strategy + "/" + res.Scenario
		if res.Failed != "" || res.Summary == nil {
			t.Errorf("%s failed: %s", name, res.Failed)
			continue
		}
		s := res.Summary
		if s.OK == 0 || s.Throughput <= 0 || s.Latency["all"].P50 <= 0 || s.Wrong+s.Missing+s.ConnFailures != 0 {
			t.Errorf("%s: ok %d, %.1f/s, p50 %.3f ms, wrong %d, missing %d, conn failures %d",
				name, s.OK, s.Throughput, s.Latency["all"].P50, s.Wrong, s.Missing, s.ConnFailures)
		}
		wantProcs := 2
		if res.Strategy == "inproc" {
			wantProcs = 1
		}
		if res.PeakRSSMB <= 0 || res.Processes < wantProcs || res.RelThroughput <= 0 {
			t.Errorf("%s: peak RSS %.1f MB, %d processes, ×inproc %.2f", name, res.PeakRSSMB, res.Processes, res.RelThroughput)
		}
		if res.Scenario == "cpu" && res.CPUSeconds <= 0 {
			t.Errorf("%s: no CPU time measured", name)
		}
		if !strings.Contains(md, "| "+res.Strategy+" |") {
			t.Errorf("report.md has no row for %s", res.Strategy)
		}
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
	code, r, md := runLab(t, bin, tinyLab, "--scenarios", "noop")
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
		if got[ok].Failed != "" || got[ok].Summary == nil {
			t.Errorf("%s should have run: %+v", ok, got[ok])
		}
	}
	if !strings.Contains(md, "failed") {
		t.Error("report.md does not say a strategy failed")
	}
}
