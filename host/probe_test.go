package host

import (
	"fmt"
	"testing"
)

func TestProbeSlotReleasedBeforeReply(t *testing.T) {
	ts := startServer(t, Options{Strategy: newFake(), MaxInflight: 1, MaxQueued: 1})
	ws := dial(t, ts)
	bad := 0
	for i := range 3000 {
		sendText(t, ws, fmt.Sprintf(`{"id":%d,"task":"noop"}`, i))
		r := readReply(t, ws)
		if !r.OK {
			bad++
			if bad < 3 {
				t.Logf("request %d: %+v", i, *r.Error)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 3000 strictly sequential requests were refused", bad)
	}
}
