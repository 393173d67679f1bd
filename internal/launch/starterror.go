package launch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/pythonplugins"
)

// What a StartError keeps of a plugin's stderr.
const (
	stderrTailLines = 20
	stderrLineBytes = 1024 // a longer line is cut
	// exitWait bounds the wait, after a failed handshake, for go-plugin to
	// see the process gone (it first reads the plugin's output to its end).
	exitWait = 2 * time.Second
)

// StartError is a plugin that ended before its handshake, in words that
// say why: how it ended, the last lines it wrote on stderr, and a hint
// when the cause is one we know.
type StartError struct {
	Path   string
	NotRun bool     // it could not be executed at all
	How    string   // "exit status 2", "signal: killed", or why it could not run
	Stderr []string // its last lines on stderr, oldest first
	Hint   string
}

func (e *StartError) Error() string {
	var b strings.Builder
	if e.NotRun {
		fmt.Fprintf(&b, "%s cannot be run: %s", e.Path, e.How)
		if e.Hint != "" {
			b.WriteString("\n  hint: ")
			b.WriteString(e.Hint)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s exited before its handshake (%s)", e.Path, e.How)
	if len(e.Stderr) > 0 {
		b.WriteString("; the last lines of its stderr:")
		for _, l := range e.Stderr {
			b.WriteString("\n    ")
			b.WriteString(l)
		}
	} else {
		b.WriteString(", and wrote nothing on stderr")
	}
	if e.Hint != "" {
		b.WriteString("\n  hint: ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// pythonNeeds says whether module, as an ImportError names it, is one of
// the Python plugins' packages (pythonplugins.Packages), or its parent
// ("google" of "google.protobuf").
func pythonNeeds(module string) bool {
	top, _, _ := strings.Cut(module, ".")
	for _, p := range pythonplugins.Packages {
		if ptop, _, _ := strings.Cut(p.Module, "."); module == p.Module || top == ptop {
			return true
		}
	}
	return false
}

var missingModule = regexp.MustCompile(`No module named '([^']+)'`)

// hintFor is what the lines a plugin left say of why it ended, or "".
func hintFor(path string, lines []string) string {
	for _, l := range lines {
		m := missingModule.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if pythonNeeds(m[1]) {
			return "the Python plugins need grpcio and protobuf (and cryptography): run make python-deps"
		}
		return fmt.Sprintf("the Python module %q that it imports is not installed for its interpreter (%s)", m[1], interpreter(path))
	}
	return ""
}

// execFailure is the StartError of a binary that could not be executed at
// all, or nil when err is not that.
func execFailure(path string, err error) *StartError {
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !strings.Contains(err.Error(), "exec format error") {
		return nil
	}
	if _, serr := os.Stat(path); serr != nil {
		return &StartError{Path: path, NotRun: true, How: serr.Error()}
	}
	se := &StartError{Path: path, NotRun: true, How: err.Error()}
	if in := interpreter(path); in != "" {
		if _, serr := os.Stat(strings.Fields(in)[0]); serr != nil {
			se.Hint = fmt.Sprintf("its first line names the interpreter %s, which this machine lacks", in)
		}
	} else if errors.Is(err, fs.ErrPermission) {
		se.Hint = "it is not executable: chmod +x it"
	}
	return se
}

// interpreter is what a script's #! line names, or "".
func interpreter(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReaderSize(f, 256).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return ""
	}
	return strings.TrimSpace(line[2:])
}

// stderrTail keeps the last lines a plugin writes on stderr, for a
// StartError; go-plugin hands it every line of the plugin's stderr.
type stderrTail struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = appendBounded(t.partial, p)
			break
		}
		t.partial = appendBounded(t.partial, p[:i])
		t.push(string(t.partial))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func appendBounded(dst, p []byte) []byte {
	if room := stderrLineBytes - len(dst); len(p) > room {
		p = p[:max(room, 0)]
	}
	return append(dst, p...)
}

func (t *stderrTail) push(line string) {
	if len(t.lines) == stderrTailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:stderrTailLines-1]
	}
	t.lines = append(t.lines, line)
}

// Lines are the lines kept, and the one being written if any.
func (t *stderrTail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	return out
}
