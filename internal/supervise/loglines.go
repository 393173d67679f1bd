package supervise

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine bounds a line a child process writes on stderr: a longer one
// is relayed in pieces of this size.
const maxLogLine = 64 << 10

// LogLines is a child process's stderr relayed through log. A line that is
// a JSON log entry (hclog's JSON output, which wslab's workers write) is
// logged at its own level, under its own name (@module), with its fields;
// anything else (a panic's or the runtime's crash report) is logged as an
// error naming the process. A plugin writes its workers' lines so rather
// than to its own stderr, which go-plugin has by then turned into a stream
// the host does not log.
func LogLines(log hclog.Logger, process string) *LogWriter {
	return &LogWriter{log: log, process: process}
}

// LogWriter is what LogLines returns; it is safe for concurrent use.
type LogWriter struct {
	log     hclog.Logger
	process string

	mu      sync.Mutex
	partial []byte
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 && len(w.partial) < maxLogLine {
			return len(p), nil
		}
		if i < 0 || i >= maxLogLine {
			i = maxLogLine - 1
		}
		w.relay(w.partial[:i+1])
		w.partial = w.partial[i+1:]
	}
}

func (w *LogWriter) relay(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var entry map[string]any
	if line[0] == '{' && json.Unmarshal(line, &entry) == nil {
		if msg, ok := entry["@message"].(string); ok {
			level := hclog.LevelFromString(stringField(entry, "@level"))
			if level == hclog.NoLevel {
				level = hclog.Info
			}
			log := w.log
			if name := stringField(entry, "@module"); name != "" {
				log = log.ResetNamed(name)
			}
			args := make([]any, 0, 2*len(entry))
			for k, v := range entry {
				if !strings.HasPrefix(k, "@") {
					args = append(args, k, v)
				}
			}
			log.Log(level, msg, args...)
			return
		}
	}
	w.log.Error("process output", "process", w.process, "line", string(line))
}

func stringField(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
