package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/hostproc"
)

// TestLiveURL: the live page is on the host's address, over https for a
// wss:// host, with the token escaped in the query when there is one.
func TestLiveURL(t *testing.T) {
	for _, c := range []struct{ url, token, want string }{
		{"ws://127.0.0.1:8765/ws", "", "http://127.0.0.1:8765/live"},
		{"ws://127.0.0.1:8765/ws", "a b&c", "http://127.0.0.1:8765/live?token=a+b%26c"},
		{"wss://[::1]:9/ws", "t", "https://[::1]:9/live?token=t"},
	} {
		h := &hostproc.Host{URL: c.url, Addr: strings.TrimSuffix(strings.SplitN(c.url, "//", 2)[1], "/ws")}
		if got := liveURL(h, c.token); got != c.want {
			t.Errorf("liveURL(%s, %q) = %s, want %s", c.url, c.token, got, c.want)
		}
	}
}

// TestBrowserCommand: $BROWSER's first command that exists, else
// xdg-open only where there is a display, else none.
func TestBrowserCommand(t *testing.T) {
	sh, err := os.Executable() // any executable will do
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	t.Setenv("BROWSER", "/nonexistent/browser:"+sh+" --new-tab %s")
	if got, want := browserCommand(), []string{sh, "--new-tab", "%s"}; !slices.Equal(got, want) {
		t.Errorf("browserCommand() = %q, want %q", got, want)
	}
	t.Setenv("BROWSER", "")
	if got := browserCommand(); got != nil {
		t.Errorf("no $BROWSER and no display: %q, want none", got)
	}
}

// TestLiveOpener: the live page's URL is printed and handed to the
// browser, a real process the opener waits for.
func TestLiveOpener(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "opened")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+got+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := newLiveOpener(&out, "s3cret", []string{script, "--tab=%s"})
	o.hostStarted("pool", 2, &hostproc.Host{URL: "ws://127.0.0.1:4242/ws", Addr: "127.0.0.1:4242"})
	start := time.Now()
	o.close()
	if took := time.Since(start); took >= browserGrace {
		t.Errorf("close took %s: the browser was killed, not waited for", took)
	}
	const page = "http://127.0.0.1:4242/live?token=s3cret"
	if want := "lab: live page of pool, round 2: " + page + "\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("the browser was not run: %v", err)
	}
	if string(b) != "--tab="+page+"\n" {
		t.Errorf("the browser got %q", b)
	}

	// No browser: printed only.
	out.Reset()
	o = newLiveOpener(&out, "", nil)
	o.hostStarted("inproc", 1, &hostproc.Host{URL: "ws://127.0.0.1:4242/ws", Addr: "127.0.0.1:4242"})
	o.close()
	if !strings.HasSuffix(out.String(), ": http://127.0.0.1:4242/live\n") {
		t.Errorf("printed %q", out.String())
	}
}

// TestLiveOpenerStopsBrowser: a browser still running browserGrace after
// the lab is done is killed by its PID.
func TestLiveOpenerStopsBrowser(t *testing.T) {
	script := filepath.Join(t.TempDir(), "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := newLiveOpener(&out, "", []string{script})
	o.hostStarted("inproc", 1, &hostproc.Host{URL: "ws://127.0.0.1:4242/ws", Addr: "127.0.0.1:4242"})
	o.mu.Lock()
	var pid int
	for p := range o.procs {
		pid = p.Pid
	}
	o.mu.Unlock()
	if pid == 0 {
		t.Fatalf("no browser running; printed %q", out.String())
	}
	start := time.Now()
	o.close()
	if took := time.Since(start); took < browserGrace || took > browserGrace+5*time.Second {
		t.Errorf("close took %s, want about %s", took, browserGrace)
	}
	if len(o.procs) != 0 { // each is removed once waited for: it has exited
		t.Errorf("the browser, pid %d, was not waited for", pid)
	}
}
