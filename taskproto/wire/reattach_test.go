package wire

import (
	"strings"
	"testing"
)

func TestReattachRoundTrip(t *testing.T) {
	r := Reattach{Strategy: "pool", Version: 3, Network: "unix", Addr: "/tmp/plugin1", PID: 42, Data: "/tmp/d/data.sock"}
	got, err := ParseReattach(r.String())
	if err != nil || got != r {
		t.Fatalf("%+v, %v; want %+v", got, err, r)
	}
	for _, bad := range []string{"", "{}", `{"strategy":"pool"}`, `{"strategy":"pool","network":"unix","addr":"/x","pid":1}`, "pool"} {
		if _, err := ParseReattach(bad); err == nil || !strings.Contains(err.Error(), "reattach") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
