package conformance

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The kit catches a plugin that breaks the contract: each fault fails the
// check that looks for it, and a plugin without the fault passes.
func TestKitCatchesBrokenPlugins(t *testing.T) {
	bin, err := BuildGo("testdata/broken", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ fault, check, want string }{
		{"", "", ""},
		{"wrong-result", "exact results", "fib n=93 = 12200160415121876739, want 12200160415121876738"},
		{"lost-reply", "exact results", "no reply to task"},
		{"ignore-cancel", "deadline", "no reply to task"},
	} {
		t.Run(c.fault, func(t *testing.T) {
			t.Setenv("WSLAB_BROKEN", c.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, r := range Check(ctx, bin, Options{}) {
				switch {
				case r.Check == c.check && (r.Err == nil || !strings.Contains(r.Err.Error(), c.want)):
					t.Errorf("%s: %v; want an error saying %q", r.Check, r.Err, c.want)
				case r.Check != c.check && r.Err != nil && r.Err != errSkipped:
					t.Errorf("%s failed where the fault is not: %v", r.Check, r.Err)
				case c.fault == "" && r.Err != nil:
					t.Errorf("%s: %v", r.Check, r.Err)
				}
			}
		})
	}
}
