package distributed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// The executor a wrapped worker's wrap is given runs the task set, and
// stops a task whose context ends.
func TestRunnerExecutor(t *testing.T) {
	e := runnerExecutor{tasks.Runner{DataDir: t.TempDir(), LargeFileName: "large_file.txt"}}
	res, err := taskproto.Run(t.Context(), e, taskproto.Task{Kind: taskproto.KindFib, N: 90})
	if err != nil || res.Value != "2880067194370816120" {
		t.Fatalf("fib 90: %q %v", res.Value, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = taskproto.Run(ctx, e, taskproto.Task{Kind: taskproto.KindSleep, N: 10_000})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a 10 s sleep past a 50 ms deadline: %v after %s", err, time.Since(start))
	}
	var te *taskproto.Error
	if !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &te) {
		t.Errorf("a sleep past its deadline: %v, want the deadline's error", err)
	}
}
