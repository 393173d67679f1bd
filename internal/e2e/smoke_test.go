package e2e

import (
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	for _, s := range strategies {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "")
			ws := h.dial(t)
			for _, f := range []string{"cpu", "io", "2", "nope", `{"id":1,"task":"fib","n":90}`} {
				got, err := call(ws, f, 10*time.Second)
				t.Logf("%s -> %q %v", f, got, err)
			}
			t.Logf("%+v", h.stats(t))
		})
	}
}
