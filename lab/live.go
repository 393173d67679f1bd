package lab

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/hostproc"
)

// browserGrace is how long, once the lab is done, a browser it started
// may take to exit by itself before it is killed: an opener such as
// xdg-open exits at once; a browser that stays in the foreground shows a
// page whose host is gone.
const browserGrace = 5 * time.Second

// liveOpener is --live: it prints the live page of each host the lab
// starts and opens it in a browser when there is one.
type liveOpener struct {
	out     io.Writer
	token   string
	browser []string // the command, "%s" standing for the URL; nil: print only

	wg    sync.WaitGroup
	mu    sync.Mutex
	procs map[*os.Process]struct{} // browsers not yet exited
}

func newLiveOpener(out io.Writer, token string, browser []string) *liveOpener {
	return &liveOpener{out: out, token: token, browser: browser, procs: map[*os.Process]struct{}{}}
}

// liveURL is the live page of h, carrying token when there is one.
func liveURL(h *hostproc.Host, token string) string {
	u := url.URL{Scheme: "http", Host: h.Addr, Path: "/live"}
	if strings.HasPrefix(h.URL, "wss:") {
		u.Scheme = "https"
	}
	if token != "" {
		u.RawQuery = url.Values{"token": {token}}.Encode()
	}
	return u.String()
}

// browserCommand is the browser to open pages with: the first command of
// $BROWSER (commands separated by colons) that exists, else xdg-open
// where there is a display to open on, else none.
func browserCommand() []string {
	for entry := range strings.SplitSeq(os.Getenv("BROWSER"), ":") {
		if args := strings.Fields(entry); len(args) > 0 {
			if path, err := exec.LookPath(args[0]); err == nil {
				return append([]string{path}, args[1:]...)
			}
		}
	}
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return nil // xdg-open would open a text browser on the lab's terminal
	}
	if path, err := exec.LookPath("xdg-open"); err == nil {
		return []string{path}
	}
	return nil
}

// hostStarted prints the live page of h, the host of strategy for round,
// and opens it.
func (o *liveOpener) hostStarted(strategy string, round int, h *hostproc.Host) {
	page := liveURL(h, o.token)
	fmt.Fprintf(o.out, "lab: live page of %s, round %d: %s\n", strategy, round, page)
	if o.browser == nil {
		return
	}
	args := make([]string, 0, len(o.browser)+1)
	substituted := false
	for _, a := range o.browser {
		if strings.Contains(a, "%s") {
			a, substituted = strings.ReplaceAll(a, "%s", page), true
		}
		args = append(args, a)
	}
	if !substituted {
		args = append(args, page)
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(o.out, "lab: open the live page with %s: %v\n", args[0], err)
		return
	}
	o.mu.Lock()
	o.procs[cmd.Process] = struct{}{}
	o.mu.Unlock()
	o.wg.Go(func() {
		cmd.Wait()
		o.mu.Lock()
		delete(o.procs, cmd.Process)
		o.mu.Unlock()
	})
}

// close waits up to browserGrace for the browsers it started to exit, and
// kills, by PID, those that have not.
func (o *liveOpener) close() {
	done := make(chan struct{})
	go func() { // ends when every browser has been waited for: below, by kill at the latest
		o.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(browserGrace):
	}
	o.mu.Lock()
	for p := range o.procs {
		p.Kill()
	}
	o.mu.Unlock()
	<-done
}
