package conformance

import (
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// exitedMsg is what go-plugin logs when a plugin process ends: at error
// level when the process failed, as one killed by a signal has.
const exitedMsg = "plugin process exited"

// killLogger is the kit's logger for a plugin it kills on purpose (the
// check "one reply per task when killed"): once killed is set, go-plugin's
// error line for the plugin's exit is what the check asked for, and is
// logged as an info line that says so. Every other line, and that one
// before the kill (a plugin that died by itself), is logged as it is.
type killLogger struct {
	hclog.Logger
	killed *atomic.Bool
}

func newKillLogger(log hclog.Logger) killLogger {
	return killLogger{Logger: log, killed: new(atomic.Bool)}
}

// deliberate says whether a line at level with msg is the exit of the
// plugin the kit has killed.
func (l killLogger) deliberate(level hclog.Level, msg string) bool {
	return level == hclog.Error && msg == exitedMsg && l.killed.Load()
}

const deliberateNote = exitedMsg + ": killed on purpose by the conformance kit (check: one reply per task when killed)"

func (l killLogger) Log(level hclog.Level, msg string, args ...any) {
	if l.deliberate(level, msg) {
		l.Logger.Info(deliberateNote, args...)
		return
	}
	l.Logger.Log(level, msg, args...)
}

func (l killLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l killLogger) Named(name string) hclog.Logger {
	return killLogger{Logger: l.Logger.Named(name), killed: l.killed}
}

func (l killLogger) ResetNamed(name string) hclog.Logger {
	return killLogger{Logger: l.Logger.ResetNamed(name), killed: l.killed}
}

func (l killLogger) With(args ...any) hclog.Logger {
	return killLogger{Logger: l.Logger.With(args...), killed: l.killed}
}
