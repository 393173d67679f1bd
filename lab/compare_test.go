package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/browsercheck"
)

// twoRuns are the sample and a second run of it in which pool is a fifth
// faster under mixed.
func twoRuns() (old, new *Report) {
	old, new = sampleReport(), sampleReport()
	res := new.result("pool", "mixed")
	for i := range res.Trials {
		res.Trials[i].Summary.Throughput *= 1.2
	}
	new.aggregate()
	return old, new
}

func TestCompareRuns(t *testing.T) {
	c := Compare(twoRuns())
	c.OldPath, c.NewPath = "old/report.json", "new/report.json"
	row := func(scenario, strategy, figure string) CompareRow {
		for _, r := range c.Rows {
			if r.Scenario == scenario && r.Strategy == strategy && r.Figure == figure {
				return r
			}
		}
		t.Fatalf("no row for %s %s %s", scenario, strategy, figure)
		return CompareRow{}
	}
	if r := row("mixed", "pool", "tasks/s"); !r.Change.Significant || r.change() != "+20% (p=0.002 n=6+6)" {
		t.Errorf("pool's faster mixed: %s", r.change())
	}
	if r := row("mixed", "inproc", "tasks/s"); r.Change.Significant || !strings.HasPrefix(r.change(), "~ (p=1.000") {
		t.Errorf("inproc's unchanged mixed: %s", r.change())
	}
	row("rtt", "pool", "isolation µs")
	row("capacity", "pool", "p99 ms at 200/s")
	var b strings.Builder
	c.WriteTable(&b)
	for _, s := range []string{"old: old/report.json", "mixed · tasks/s", "  pool", "+20% (p=0.002 n=6+6)", "capacity at p99 ≤ 50 ms", "~ (p="} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the table lacks %q:\n%s", s, b.String())
		}
	}
	if strings.Contains(b.String(), "machines differ") {
		t.Error("the same machine is said to differ")
	}
	page, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "compare.html")
	if err := os.WriteFile(path, page, 0o644); err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, s := range []string{`data-chart="tasks-s-mixed"`, `data-chart="capacity"`, "20% (p=0.002 n=6&#43;6)"} {
		if !strings.Contains(html, s) {
			t.Errorf("compare.html lacks %q", s)
		}
	}
	if m := externalRef.FindString(html); m != "" || scriptTag.MatchString(html) {
		t.Errorf("compare.html is not self-contained: %q", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	browsercheck.Check(ctx, t, path)
}

// lab compare takes report files or their folders, and says what is wrong
// with anything else.
func TestCompareMain(t *testing.T) {
	old, new := twoRuns()
	dirs := []string{filepath.Join(t.TempDir(), "old"), filepath.Join(t.TempDir(), "new")}
	for i, r := range []*Report{old, new} {
		if _, err := WriteReports(dirs[i], r); err != nil {
			t.Fatal(err)
		}
	}
	var out, errs strings.Builder
	if code := Main([]string{"compare", filepath.Join(dirs[0], "report.json"), dirs[1]}, &out, &errs); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "+20%") {
		t.Errorf("output:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dirs[1], "compare.html")); err != nil {
		t.Errorf("compare.html not beside NEW: %v", err)
	}
	bogus := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(bogus, []byte(`{"results": []}`), 0o644)
	for _, args := range [][]string{{"compare", dirs[0]}, {"compare", dirs[0], bogus}, {"compare", dirs[0], "/nonexistent"}} {
		errs.Reset()
		if code := Main(args, &out, &errs); code != ExitUsage || errs.Len() == 0 {
			t.Errorf("%v: exit %d, said %q", args, code, errs.String())
		}
	}
}
