package launch

import "github.com/hashicorp/go-hclog"

// What go-plugin logs of a plugin's end.
const (
	exitedMsg   = "plugin process exited"            // at error level when the process failed
	ungracefulM = "plugin failed to exit gracefully" // at warn level, before it kills the process
)

// pluginLog is go-plugin's logger for one plugin, which says in the host's
// words what go-plugin logs of the plugin's end where the host knows
// better: its exit, when that was expected (Process.ExpectExit), is an
// info line that says why; its warning that the plugin "failed to exit
// gracefully" is dropped when the plugin had exited already (before its
// handshake, say): there was nothing to ask. Every other line, and those
// lines otherwise, pass as they are, through the loggers go-plugin
// derives too.
type pluginLog struct {
	hclog.Logger
	p *Process
}

func (l pluginLog) Log(level hclog.Level, msg string, args ...any) {
	switch {
	case level == hclog.Error && msg == exitedMsg:
		if why := l.p.expected.Load(); why != nil {
			l.Logger.Info(exitedMsg+": "+*why, args...)
			return
		}
	case level == hclog.Warn && msg == ungracefulM && l.p.gone():
		l.Logger.Debug("plugin had exited already", args...)
		return
	}
	l.Logger.Log(level, msg, args...)
}

func (l pluginLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
func (l pluginLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }

func (l pluginLog) Named(name string) hclog.Logger {
	return pluginLog{Logger: l.Logger.Named(name), p: l.p}
}

func (l pluginLog) ResetNamed(name string) hclog.Logger {
	return pluginLog{Logger: l.Logger.ResetNamed(name), p: l.p}
}

func (l pluginLog) With(args ...any) hclog.Logger {
	return pluginLog{Logger: l.Logger.With(args...), p: l.p}
}
