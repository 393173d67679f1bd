package multiproc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/taskproto"
)

// TestStaleCgroupsRemoved: a plugin that was killed leaves its workers'
// cgroups behind; the next multiproc executor under a sandbox removes
// them, keeps those of a plugin still running, and removes its own when
// it closes.
func TestStaleCgroupsRemoved(t *testing.T) {
	if missing := sandbox.Check(); len(missing) > 0 {
		t.Skipf("this kernel lacks what strict needs: %v", missing)
	}
	var bases []string
	for _, b := range sandbox.CgroupBases() {
		if _, err := os.Stat(filepath.Dir(b)); err == nil {
			bases = append(bases, b)
		}
	}
	if os.Geteuid() != 0 || len(bases) == 0 {
		t.Skip("needs root and a cgroup hierarchy to make cgroups in")
	}
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale := cgroupPrefixOf(gone.Process.Pid) + "w0"
	kept := cgroupPrefixOf(os.Getppid()) + "w0" // go test's: alive
	for _, b := range bases {
		for _, name := range []string{stale, kept} {
			dir := filepath.Join(b, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(dir) })
		}
	}
	e := newExecutor(t, func(o *Options) { o.Sandbox = sandbox.Strict; o.Processes = 1 })
	// A worker joins its cgroup before it takes a task.
	if o := run(t, e, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}, hangMax); o.err != nil {
		t.Fatalf("noop: %v", o.err)
	}
	names := sandbox.CgroupNames(cgroupStem)
	if slices.Contains(names, stale) {
		t.Errorf("the cgroup of a plugin that is gone (%s) is still there: %v", stale, names)
	}
	if !slices.Contains(names, kept) {
		t.Errorf("the cgroup of a plugin still running (%s) was removed: %v", kept, names)
	}
	if own := cgroupName("w0"); !slices.Contains(names, own) {
		t.Errorf("the worker's own cgroup %s is missing: %v", own, names)
	}
	closeAndCheck(t, e)
	if names := sandbox.CgroupNames(cgroupPrefix()); len(names) > 0 {
		t.Errorf("the closed executor's cgroups are still there: %v", names)
	}
}
