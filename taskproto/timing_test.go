package taskproto_test

import (
	"context"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

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
