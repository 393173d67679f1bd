package main

import (
	"strings"
	"testing"

	"github.com/wslab/wslab/internal/conformance"
	"github.com/wslab/wslab/internal/sandbox"
)

// The plugin, built as the host runs it, passes the conformance kit, with
// its workers as they are and confined by [multiproc] sandbox = strict (a
// worker that cannot confine itself under strict exits, so the kit's
// checks fail unless every worker they ran was confined).
func TestConformance(t *testing.T) {
	bin, err := conformance.BuildGo(".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name     string
		settings map[string]string
	}{
		{"plain", map[string]string{"other.multiprocessing_processes": "2"}},
		{"strict", map[string]string{"other.multiprocessing_processes": "2", "multiproc.sandbox": sandbox.Strict}},
	} {
		t.Run(v.name, func(t *testing.T) {
			if v.settings["multiproc.sandbox"] == sandbox.Strict {
				if missing := sandbox.Check(); len(missing) > 0 {
					t.Skipf("this kernel lacks what [multiproc] sandbox = strict needs: %s", strings.Join(missing, "; "))
				}
			}
			conformance.Run(t, bin, conformance.Options{Settings: v.settings})
		})
	}
}
