// Package hostproc starts a real host process, waits until it serves, and
// stops it: the one harness that the lab and the end-to-end tests share.
// The host listens on port 0 and announces the address it got ("listening
// URL" on stdout), so nothing probes for a free port and races for it.
// An outside server (a lab contender) is started the same way from a shell
// command that names its port.
package hostproc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/internal/telemetry"
)

// Options say how to start a host.
type Options struct {
	// Command is the host binary followed by its arguments (--config,
	// --plugin, ...). Start adds --port 0. A wrapper that execs the host
	// (`ip netns exec NS bin/host ...`) works too.
	Command []string
	// NoPortZero leaves the port to the configuration: for a host that must
	// listen where others will look for it.
	NoPortZero bool
	Env        []string  // added to this process's environment
	Log        io.Writer // the host's stderr and the rest of its stdout; nil: discarded
	// Ready bounds the wait for /healthz to answer 200 (default 20 s).
	Ready time.Duration
	// Shell, instead of Command, is an outside server's command line, run
	// by /bin/sh in a process group of its own: {port} in it becomes a
	// free port, and the server is ready once it accepts connections
	// there. It has no /healthz or /stats; its URL is
	// ws://127.0.0.1:PORT/ws.
	Shell string
	// TLS is the client configuration for a host that serves wss://.
	TLS *tls.Config
}

// Host is a running host process.
type Host struct {
	cmd  *exec.Cmd
	URL  string // the WebSocket URL it announced: ws://127.0.0.1:PORT/ws
	Addr string // its host:port
	http *http.Client
	base string // http(s)://Addr

	proc   *supervise.Command
	exited <-chan struct{} // proc.Exited(); once closed, cmd.ProcessState is set
	stopMu sync.Mutex
}

// Start starts the host and returns once /healthz answers 200. On failure
// the host is stopped and the error says what it printed last.
func Start(ctx context.Context, opt Options) (*Host, error) {
	var (
		cmd  *exec.Cmd
		port int // an outside server's; 0 for a host, which announces its own
	)
	switch {
	case opt.Shell != "":
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
		cmd = exec.Command("/bin/sh", "-c", strings.ReplaceAll(opt.Shell, "{port}", strconv.Itoa(port)))
	case len(opt.Command) > 0:
		args := append([]string(nil), opt.Command[1:]...)
		if !opt.NoPortZero {
			args = append(args, "--port", "0")
		}
		cmd = exec.Command(opt.Command[0], args...)
	default:
		return nil, errors.New("hostproc: no command")
	}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	tail := &lastLines{w: log}
	cmd.Env = append(os.Environ(), opt.Env...)
	cmd.Stderr = tail
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("host stdout: %w", err)
	}
	// With the parent-death signal: a lab or test that dies takes its
	// hosts along. An outside server's shell gets a group of its own, so
	// that what it starts is stopped with it.
	proc, err := supervise.Spawn(cmd, opt.Shell != "")
	if err != nil {
		return nil, err
	}
	h := &Host{cmd: cmd, proc: proc, exited: proc.Exited()}
	announced := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := port != 0 // an outside server announces nothing
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "listening "); ok && !sent {
				announced <- u
				sent = true
				continue
			}
			fmt.Fprintln(tail, line)
		}
		if !sent {
			close(announced)
		}
	}()

	limit := opt.Ready
	if limit <= 0 {
		limit = 20 * time.Second
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	fail := func(why string) (*Host, error) {
		h.Stop(5 * time.Second)
		return nil, fmt.Errorf("host %s: %s", why, tail.last())
	}
	if port != 0 {
		h.setURL(fmt.Sprintf("ws://127.0.0.1:%d/ws", port), nil)
	} else {
		select {
		case u, ok := <-announced:
			if !ok {
				<-h.exited
				return fail(fmt.Sprintf("exited with status %d before it listened", h.ExitCode()))
			}
			if err := h.setURL(u, opt.TLS); err != nil {
				return fail(err.Error())
			}
		case <-timer.C:
			return fail(fmt.Sprintf("did not listen within %s", limit))
		case <-ctx.Done():
			return fail("start interrupted")
		}
	}
	for !h.ready(port != 0) {
		select {
		case <-h.exited:
			return fail(fmt.Sprintf("exited with status %d before it was ready", h.ExitCode()))
		case <-timer.C:
			return fail(fmt.Sprintf("not ready within %s", limit))
		case <-ctx.Done():
			return fail("start interrupted")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return h, nil
}

// ready says whether the host answers /healthz with 200 or, for an
// outside server, accepts a connection.
func (h *Host) ready(outside bool) bool {
	if !outside {
		return h.Health() == http.StatusOK
	}
	c, err := net.DialTimeout("tcp", h.Addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort is a port nothing listens on now. An outside server must be
// told its port, so unlike a host it cannot take port 0; another process
// could take the port first, and the start then fails and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (h *Host) setURL(u string, tlsConfig *tls.Config) error {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return fmt.Errorf("announced a bad URL %q", u)
	}
	h.URL, h.Addr = u, parsed.Host
	h.http = &http.Client{Timeout: 2 * time.Second}
	h.base = "http://" + h.Addr
	if parsed.Scheme == "wss" {
		h.http.Transport = &http.Transport{TLSClientConfig: tlsConfig}
		h.base = "https://" + h.Addr
	}
	return nil
}

// MetricsURL is where the host serves its Prometheus metrics: its
// /metrics, on the address it announced (an outside server serves none).
func (h *Host) MetricsURL() string { return h.base + "/metrics" }

// PID is the host process's ID.
func (h *Host) PID() int { return h.cmd.Process.Pid }

// Health is the status /healthz answers, 0 when it does not answer.
func (h *Host) Health() int {
	resp, err := h.http.Get(h.base + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Stats decodes what /stats answers into v (a *host.HostStats).
func (h *Host) Stats(v any) error {
	resp, err := h.http.Get(h.base + "/stats")
	if err != nil {
		return fmt.Errorf("GET /stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode /stats: %w", err)
	}
	return nil
}

// maxMetricsBytes bounds what Metrics reads of a host's /metrics.
const maxMetricsBytes = 16 << 20

// Metrics scrapes the host's /metrics, by family name.
func (h *Host) Metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := h.http.Get(h.base + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	text, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	mfs, err := telemetry.ParseText(text)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return mfs, nil
}

// Signal sends sig to the host.
func (h *Host) Signal(sig os.Signal) error { return h.cmd.Process.Signal(sig) }

// Exited is closed when the host has exited.
func (h *Host) Exited() <-chan struct{} { return h.exited }

// ExitCode is the host's exit status, once Exited is closed.
func (h *Host) ExitCode() int { return h.cmd.ProcessState.ExitCode() }

// WaitExit waits up to limit for the host to exit.
func (h *Host) WaitExit(limit time.Duration) (code int, exited bool) {
	select {
	case <-h.exited:
		return h.ExitCode(), true
	case <-time.After(limit):
		return 0, false
	}
}

// Stop sends SIGTERM, waits up to grace for the host to exit, kills it
// after that, and returns its exit status. It is safe to call more than
// once, from several goroutines.
func (h *Host) Stop(grace time.Duration) int {
	h.stopMu.Lock()
	defer h.stopMu.Unlock()
	select {
	case <-h.exited:
		return h.ExitCode()
	default:
	}
	supervise.SignalGroup(h.cmd, syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(grace):
		h.proc.Kill()
		<-h.exited
	}
	return h.ExitCode()
}

// lastLines passes output on and remembers its last non-empty line, for
// error messages.
type lastLines struct {
	mu      sync.Mutex
	w       io.Writer
	partial []byte
	line    string
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(l.partial[:i])); s != "" {
			l.line = s
		}
		l.partial = l.partial[i+1:]
	}
	return l.w.Write(p)
}

func (l *lastLines) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line == "" {
		return "(no output)"
	}
	return l.line
}

// Buffer is an io.Writer safe for concurrent use whose contents can be
// read at any time: for capturing a process's logs in tests.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
