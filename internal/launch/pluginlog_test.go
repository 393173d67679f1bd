package launch

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// deliberateNote is why the conformance kit expects its plugin's exit.
const deliberateNote = exitedMsg + ": killed on purpose by the conformance kit (check: one reply per task when killed)"

// go-plugin's error line for the exit of a plugin killed on purpose
// (ExpectExit) is an info line that says so, through the loggers go-plugin
// derives (Named, With); before, and for any other line, the level stays.
func TestPluginLogRelevelsAnExpectedExit(t *testing.T) {
	var buf bytes.Buffer
	p := &Process{}
	log := pluginLog{Logger: hclog.New(&hclog.LoggerOptions{Name: "pool", Output: &buf, Level: hclog.Info}), p: p}
	derived := log.Named("pool").With("k", "v")
	derived.Error(exitedMsg, "error", "exit status 2") // died by itself
	p.ExpectExit("killed on purpose by the conformance kit (check: one reply per task when killed)")
	derived.Error(exitedMsg, "error", "signal: killed")
	derived.Error("something else")
	derived.Log(hclog.Error, exitedMsg, "error", "signal: killed")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		"[ERROR] pool.pool: plugin process exited: k=v error=\"exit status 2\"",
		"[INFO]  pool.pool: " + deliberateNote + ": k=v error=\"signal: killed\"",
		"[ERROR] pool.pool: something else: k=v",
		"[INFO]  pool.pool: " + deliberateNote + ": k=v error=\"signal: killed\"",
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], w)
		}
	}
}
