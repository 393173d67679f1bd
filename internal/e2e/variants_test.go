//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/sandbox"
)

// variant is a strategy served under configuration of its own: a name in
// strategies that the harness (startHostEnv) maps to the plugin it runs
// and the lines it adds to the test's configuration, so that every test
// that runs over strategies runs it as it runs the plain ones.
type variant struct {
	plugin string
	ini    string
	// missing says why the variant cannot run on this machine; "" when
	// it can.
	missing func() string
}

// variants are the strategies' variants by name.
var variants = map[string]variant{
	// multiproc's workers confined by [multiproc] sandbox = strict:
	// Landlock, seccomp, no capabilities, rlimits and a cgroup.
	"multiproc-strict": {plugin: "multiproc", ini: "[multiproc]\nsandbox = strict\n", missing: func() string {
		if m := sandbox.Check(); len(m) > 0 {
			return "this kernel lacks what [multiproc] sandbox = strict needs: " + strings.Join(m, "; ")
		}
		return ""
	}},
}

// The variants run wherever strategies are iterated over. They are added
// here, not in strategies' own list, so that the list's line stays the
// plain strategies.
func init() { strategies = append(strategies, "multiproc-strict") }

// pluginOf is the strategy the host serves for a name of strategies: the
// variant's plugin, or the name itself. Replies and /stats carry it.
func pluginOf(name string) string {
	if v, ok := variants[name]; ok {
		return v.plugin
	}
	return name
}

// resolveStrategy is the plugin and configuration a test's host runs for
// a name of strategies with the test's ini; a variant the machine cannot
// run skips the test, saying why. The variant's lines come after the
// test's, whose lines before any section header belong to [server].
func resolveStrategy(t testing.TB, name, ini string) (string, string) {
	t.Helper()
	v, ok := variants[name]
	if !ok {
		return name, ini
	}
	if why := v.missing(); why != "" {
		t.Skipf("%s: %s", name, why)
	}
	return v.plugin, fmt.Sprintf("%s\n%s", ini, v.ini)
}

// pluginStrategies are the strategies that run in a plugin process: all
// but inproc.
func pluginStrategies() []string {
	var out []string
	for _, s := range strategies {
		if s != "inproc" {
			out = append(out, s)
		}
	}
	return out
}

// checkVariant makes sure that a variant's host runs what the variant
// says, so that a test passing under its name has tested it: the workers
// of multiproc-strict are confined (the kernel says so of each).
func checkVariant(t testing.TB, h *hostProc, name string) {
	t.Helper()
	if name != "multiproc-strict" {
		return
	}
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st := h.stats(t)
		confined := 0
		for _, w := range st.Executor.Workers {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.PID))
			if err != nil {
				last = err.Error()
				continue
			}
			if s := string(status); strings.Contains(s, "NoNewPrivs:\t1") && strings.Contains(s, "Seccomp:\t2") && strings.Contains(s, "CapEff:\t0000000000000000") {
				confined++
			} else {
				last = fmt.Sprintf("worker %s (pid %d) is not confined yet", w.ID, w.PID)
			}
		}
		if n := len(st.Executor.Workers); n > 0 && confined == n {
			return
		}
	}
	t.Fatalf("%s: the host's workers are not confined by the sandbox: %s", name, last)
}
