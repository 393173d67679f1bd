package strategy

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

func TestInprocKinds(t *testing.T) {
	dir := t.TempDir()
	s := NewInproc(taskproto.Config{DataDir: dir, LargeFileName: "large_file.txt"})
	cases := []struct {
		task taskproto.Task
		want string
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 10}, "55"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 10}, "45"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 100}, "100"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 1}, "Request done"},
		{noop, ""},
	}
	for i, c := range cases {
		res, err := taskproto.Run(context.Background(), s, c.task)
		if err != nil {
			t.Fatalf("%+v: %v", c.task, err)
		}
		if res.Value != c.want {
			t.Errorf("%+v: value %q, want %q", c.task, res.Value, c.want)
		}
		if res.Worker != "inproc" {
			t.Errorf("%+v: worker %q, want inproc", c.task, res.Worker)
		}
		if !tasks.UsesCPU(c.task.Kind) && res.Queue != 0 {
			t.Errorf("%+v: queue %v, want 0: a wait starts at once", c.task, res.Queue)
		}
		if st := statsOf(t, s); st.Completed != int64(i+1) || st.Failed != 0 || st.Running != 0 || st.Queued != 0 {
			t.Errorf("after %d tasks: stats %+v", i+1, st)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("io task left %d files in the data directory", len(entries))
	}

	info := s.Info()
	if info.Name != "inproc" || info.Concurrency != runtime.NumCPU() {
		t.Errorf("Info %+v: want name inproc, concurrency one per core (its CPU work)", info)
	}
	if st := statsOf(t, s); st.Capacity != int64(info.Concurrency) {
		t.Errorf("Capacity %d, want its concurrency %d", st.Capacity, info.Concurrency)
	}
}

func TestInprocUnknownKind(t *testing.T) {
	s := NewInproc(taskproto.Config{})
	_, err := taskproto.Run(context.Background(), s, taskproto.Task{Kind: "nope"})
	var te *taskproto.Error
	if !errors.As(err, &te) || te.Code != taskproto.CodeUnknownTask {
		t.Fatalf("err %v, want unknown_task", err)
	}
	if st := statsOf(t, s); st.Failed != 1 || st.Completed != 0 {
		t.Errorf("stats %+v: want 1 failed, 0 completed", st)
	}
}

func TestInprocCancelledContext(t *testing.T) {
	s := NewInproc(taskproto.Config{})

	// Already cancelled: the cpu loop stops at its first look.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := await(t, execAsync(s, ctx, longCPU), "cpu task with a cancelled context")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", o.err)
	}

	// Cancelled while it runs.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	ch := execAsync(s, ctx, longCPU)
	waitStats(t, s, "the cpu task to run", func(st taskproto.Stats) bool { return st.Running == 1 })
	cancel()
	o = await(t, ch, "cpu task cancelled while running")
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", o.err)
	}
	if o.res.Value != "" {
		t.Errorf("cancelled task has value %q", o.res.Value)
	}
	if st := statsOf(t, s); st.Failed != 2 || st.Completed != 0 || st.Running != 0 {
		t.Errorf("stats %+v: want 2 failed, 0 completed, 0 running", st)
	}
}

// CPU-bound tasks run on at most as many goroutines as there are cores, in
// arrival order; waits do not wait for them.
func TestInprocGatesCPUWork(t *testing.T) {
	s := NewInproc(taskproto.Config{})
	n := runtime.NumCPU()
	var gates []*gateCtx
	var held []<-chan outcome
	for range n {
		g := newGate(t)
		gates = append(gates, g)
		held = append(held, execAsync(s, g, cpuOne))
		g.waitStarted(t, "cpu task")
	}
	behind := execAsync(s, context.Background(), cpuOne)
	waitStats(t, s, "a cpu task to wait for a core", func(st taskproto.Stats) bool {
		return st.Running == int64(n) && st.Queued == 1
	})
	// Sleeps start while every core is taken.
	var naps []<-chan outcome
	for range 3 * n {
		naps = append(naps, execAsync(s, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1}))
	}
	for _, ch := range naps {
		if o := await(t, ch, "sleep beside busy cores"); o.err != nil {
			t.Fatal(o.err)
		}
	}
	for _, g := range gates {
		g.open()
	}
	for _, ch := range append(held, behind) {
		if o := await(t, ch, "cpu task"); o.err != nil || o.res.Value != "0" {
			t.Fatalf("cpu task: %+v, %v", o.res, o.err)
		}
	}
}
