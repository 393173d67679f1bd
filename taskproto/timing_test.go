package taskproto_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wslab/wslab/taskproto"
)

// Monotonic is CLOCK_MONOTONIC as another process reads it.
func TestMonotonicIsTheKernelClock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CLOCK_MONOTONIC is Go's own clock on Linux only")
	}
	for range 100 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		ours := taskproto.Monotonic()
		if d := ours - ts.Nano(); d < 0 || d > int64(50*time.Millisecond) {
			t.Fatalf("Monotonic %d is %d ns from CLOCK_MONOTONIC read just before it", ours, d)
		}
	}
}

func TestTimelineStampsAndMerges(t *testing.T) {
	var none *taskproto.Timeline
	none.Stamp(taskproto.StageHostRead) // a request that asked for nothing
	if none.At(taskproto.StageHostRead) != 0 || len(none.Map()) != 0 {
		t.Fatal("a nil timeline holds stamps")
	}
	tl := &taskproto.Timeline{}
	ctx := taskproto.WithTimeline(context.Background(), tl)
	taskproto.Stamp(ctx, taskproto.StageHostSubmit)
	tl.Merge(map[string]int64{"plugin_recv": 5, "no_such_stage": 7})
	tl.EndedAt(100, 30*time.Nanosecond)
	if taskproto.TimelineFrom(context.Background()) != nil {
		t.Fatal("a bare context carries a timeline")
	}
	m := tl.Map()
	if m["plugin_recv"] != 5 || m["task_end"] != 100 || m["task_start"] != 70 || m["host_submit"] == 0 || len(m) != 4 {
		t.Fatalf("timeline %v", m)
	}
	tl.EndedAt(200, time.Second) // stamped already: kept
	if tl.At(taskproto.StageTaskEnd) != 100 {
		t.Fatal("EndedAt overwrote the strategy's own stamp")
	}
	for s := range taskproto.NumStages {
		if got, ok := taskproto.StageNamed(s.String()); !ok || got != s {
			t.Fatalf("stage %d: name %q does not name it", s, s)
		}
	}
}
