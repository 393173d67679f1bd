package strategy

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/wslab/wslab/taskproto"
)

// Every strategy gives the right answers to many concurrent callers; the
// race detector watches its shared state.
func TestStrategiesConcurrent(t *testing.T) {
	cases := []struct {
		task taskproto.Task
		want string
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 1}, "1"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 10}, "55"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 50}, "12586269025"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 100}, "354224848179261915075"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 10}, "45"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 100_000}, "4999950000"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 100}, "100"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 70_000}, "70000"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 0}, "Request done"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 1}, "Request done"},
		{noop, ""},
	}
	const callers, perCaller = 50, 14

	strategies := []struct {
		name string
		new  func(taskproto.Config) (taskproto.Executor, error)
	}{
		{"inproc", func(c taskproto.Config) (taskproto.Executor, error) { return NewInproc(c), nil }},
		{"semaphore", func(c taskproto.Config) (taskproto.Executor, error) {
			c.Settings = semaphoreSettings(4)
			return NewSemaphore(c)
		}},
		{"pool", func(c taskproto.Config) (taskproto.Executor, error) {
			c.Settings = poolSettings(4, callers) // one task per caller at a time: never overloaded
			p, err := NewPool(c)
			if err == nil {
				t.Cleanup(func() { closePool(t, p) })
			}
			return p, err
		}},
	}
	for _, s := range strategies {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			ex, err := s.new(taskproto.Config{DataDir: dir, LargeFileName: "large_file.txt"})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan string, callers*perCaller)
			for i := range callers {
				wg.Go(func() {
					for j := range perCaller {
						c := cases[(i*5+j)%len(cases)]
						res, err := taskproto.Run(context.Background(), ex, c.task)
						if err != nil || res.Value != c.want {
							errs <- c.task.Kind + ": got " + res.Value + " want " + c.want + " err " + errString(err)
						}
						if res.Worker == "" {
							errs <- c.task.Kind + ": empty Worker"
						}
						// Reading stats while others run is part of the test.
						if _, err := ex.Stats(context.Background()); err != nil {
							errs <- "Stats: " + err.Error()
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			st := statsOf(t, ex)
			if st.Completed != callers*perCaller || st.Failed != 0 || st.Running != 0 || st.Queued != 0 {
				t.Errorf("final stats %+v: want %d completed and nothing else", st, callers*perCaller)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("io tasks left %d files behind", len(entries))
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
