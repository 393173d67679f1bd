package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// launchFails launches path and returns the StartError it must fail
// with, and what go-plugin logged meanwhile.
func launchFails(t *testing.T, path string) (*StartError, string) {
	t.Helper()
	var logged strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Debug})
	p, err := Launch(context.Background(), LaunchOptions{Name: "x", Path: path, Logger: log})
	if err == nil {
		p.Kill()
		t.Fatal("launched a plugin that cannot start")
	}
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("error %T %v, want a *StartError", err, err)
	}
	if strings.Contains(logged.String(), "failed to exit gracefully") {
		t.Errorf("go-plugin's graceful-exit warning for a plugin already gone:\n%s", logged.String())
	}
	return se, logged.String()
}

func script(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A Go plugin that panics before Serve: how it ended and its panic, in
// the error.
func TestStartErrorPanic(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { panic(\"the strategy could not start\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "panicker")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	se, _ := launchFails(t, bin)
	msg := se.Error()
	for _, want := range []string{bin + " exited before its handshake (exit status 2)", "panic: the strategy could not start", "goroutine 1 [running]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "Unrecognized remote plugin message") || strings.Contains(msg, "architecture") {
		t.Errorf("go-plugin's guess instead of the cause:\n%s", msg)
	}
}

// A Python plugin whose import fails says which module, and for the
// modules the Python plugins need, how to get them.
func TestStartErrorPythonModule(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	se, _ := launchFails(t, script(t, "#!/usr/bin/python3 -I\nimport wslab_no_such_module\n"))
	if want := `the Python module "wslab_no_such_module" that it imports is not installed for its interpreter (/usr/bin/python3 -I)`; se.Hint != want {
		t.Errorf("hint %q, want %q", se.Hint, want)
	}
	if !strings.Contains(se.Error(), "ModuleNotFoundError: No module named 'wslab_no_such_module'") || se.How != "exit status 1" {
		t.Errorf("error:\n%s", se.Error())
	}
	// -S: without site-packages, where Debian's grpc is.
	se, _ = launchFails(t, script(t, "#!/usr/bin/python3 -IS\nimport grpc\n"))
	if want := "the Python plugins need grpcio and protobuf (and cryptography): run make python-deps"; se.Hint != want {
		t.Errorf("hint %q, want %q", se.Hint, want)
	}
}

// A script whose interpreter is not there cannot be run, and says so.
func TestStartErrorInterpreter(t *testing.T) {
	se, _ := launchFails(t, script(t, "#!/usr/bin/wslab-no-such-python\nprint(1)\n"))
	if !se.NotRun || se.Hint != "its first line names the interpreter /usr/bin/wslab-no-such-python, which this machine lacks" {
		t.Errorf("%+v", se)
	}
}

// The tail keeps the last lines, each bounded, however the writes split
// them.
func TestStderrTail(t *testing.T) {
	var tail stderrTail
	for i := range stderrTailLines + 5 {
		tail.Write([]byte("line "))
		tail.Write([]byte{byte('a' + i%26)})
		tail.Write([]byte("\n"))
	}
	tail.Write([]byte(strings.Repeat("x", 3*stderrLineBytes)))
	got := tail.Lines()
	if len(got) != stderrTailLines+1 || got[0] != "line f" || len(got[len(got)-1]) != stderrLineBytes {
		t.Errorf("%d lines, first %q, last %d bytes", len(got), got[0], len(got[len(got)-1]))
	}
}
