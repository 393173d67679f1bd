//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/faults"
)

// clResult is one run of bin/client.
type clResult struct {
	code           int
	stdout, stderr string
	summary        map[string]any // --json, when asked for
	raw            []byte
}

// clRun runs bin/client with args (plus --json into a temporary file and
// --quiet) and returns its exit code, output and summary.
func clRun(t *testing.T, args ...string) clResult {
	t.Helper()
	return clRunTimeout(t, 30*time.Second, args...)
}

// clRunTimeout is clRun, with the client killed after limit.
func clRunTimeout(t *testing.T, limit time.Duration, args ...string) clResult {
	t.Helper()
	bin := filepath.Join(binDir, "client")
	jsonPath := filepath.Join(t.TempDir(), "summary.json")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--quiet", "--json", jsonPath}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("client %v: %v", args, err)
	}
	r := clResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if data, err := os.ReadFile(jsonPath); err == nil && len(data) > 0 {
		r.raw = data
		if err := json.Unmarshal(data, &r.summary); err != nil {
			t.Fatalf("--json output is not JSON: %v\n%s", err, data)
		}
	}
	t.Logf("client %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// clConfig writes a client config.ini pointing at addr.
func clConfig(t *testing.T, addr, extra string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(t.TempDir(), "client.ini")
	conf := fmt.Sprintf("[server]\nhost = %s\nport = %s\n%s", host, port, extra)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// num reads a number at a path of keys in a decoded summary.
func num(t *testing.T, m map[string]any, path ...string) float64 {
	t.Helper()
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("summary: %s is not an object", strings.Join(path, "."))
		}
		if v, ok = obj[k]; !ok {
			t.Fatalf("summary lacks %s", strings.Join(path, "."))
		}
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("summary: %s = %v is not a number", strings.Join(path, "."), v)
	}
	return f
}

// TestClientPythonLabRun is the Python lab's default run through the real
// binaries: 50 clients each sending fib, cpu, io in plain text, every
// strategy. It also checks the --json schema.
func TestClientPythonLabRun(t *testing.T) {
	for _, s := range strategies {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "")
			cfg := clConfig(t, h.addr, "[client]\nnum_client = 50\ntasks = fib, cpu, io\n")
			r := clRun(t, "--config", cfg, "--verbose")
			if r.code != client.ExitOK {
				t.Fatalf("exit %d, want 0", r.code)
			}
			m := r.summary
			for _, k := range []string{"sent", "replies", "ok"} {
				if got := num(t, m, k); got != 150 {
					t.Errorf("%s = %v, want 150", k, got)
				}
			}
			for _, k := range []string{"wrong", "missing", "unsent", "connection_failures"} {
				if got := num(t, m, k); got != 0 {
					t.Errorf("%s = %v, want 0", k, got)
				}
			}
			if num(t, m, "connections") != 50 || num(t, m, "clients") != 50 || num(t, m, "pipeline") != 1 {
				t.Errorf("connections/clients/pipeline: %v %v %v", m["connections"], m["clients"], m["pipeline"])
			}
			if m["mode"] != "sequence" || m["protocol"] != "plain" || m["url"] != "ws://"+h.addr+"/ws" {
				t.Errorf("mode %v protocol %v url %v", m["mode"], m["protocol"], m["url"])
			}
			if errs, ok := m["errors"].(map[string]any); !ok || len(errs) != 0 {
				t.Errorf("errors = %v, want {}", m["errors"])
			}
			for _, k := range []string{"wall_seconds", "throughput"} {
				if num(t, m, k) <= 0 {
					t.Errorf("%s is not positive", k)
				}
			}
			for _, kind := range []string{"fib", "cpu", "io", "all"} {
				want := 50.0
				if kind == "all" {
					want = 150
				}
				if got := num(t, m, "latency", kind, "count"); got != want {
					t.Errorf("latency.%s.count = %v, want %v", kind, got, want)
				}
				for _, f := range []string{"min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"} {
					if num(t, m, "latency", kind, f) <= 0 {
						t.Errorf("latency.%s.%s is not positive", kind, f)
					}
				}
				if num(t, m, "latency", kind, "p50_ms") > num(t, m, "latency", kind, "max_ms") {
					t.Errorf("latency.%s: p50 above max", kind)
				}
			}
			if num(t, m, "client_seconds", "count") != 50 || num(t, m, "client_seconds", "max_ms") <= 0 {
				t.Errorf("client_seconds = %v", m["client_seconds"])
			}
			if _, ok := m["queue"]; ok {
				t.Error("plain text carries no queue times, yet the summary has them")
			}
			if n := strings.Count(r.stdout, " took "); n != 50 {
				t.Errorf("--verbose printed %d per-client lines, want 50", n)
			}
			for _, want := range []string{"wall time", "throughput", "p99.9", "PASS"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("report lacks %q", want)
				}
			}
		})
	}
}

// TestClientJSONPipelinedDuration: a closed-loop timed run, 8 requests in
// flight per connection, with the host's queue and run times.
func TestClientJSONPipelinedDuration(t *testing.T) {
	h := startHost(t, "pool", "")
	r := clRun(t, "--url", "ws://"+h.addr+"/ws", "--clients", "4", "--protocol", "json", "--pipeline", "8",
		"--tasks", "noop,cpu", "--n", "cpu=1000", "--duration", "1s")
	if r.code != client.ExitOK {
		t.Fatalf("exit %d, want 0", r.code)
	}
	m := r.summary
	sent := num(t, m, "sent")
	if sent < 100 || num(t, m, "ok") != sent || num(t, m, "missing") != 0 || m["mode"] != "duration" {
		t.Errorf("sent %v ok %v missing %v mode %v", sent, m["ok"], m["missing"], m["mode"])
	}
	if w := num(t, m, "wall_seconds"); w < 1 || w > 5 {
		t.Errorf("wall_seconds %v for a 1 s run", w)
	}
	if num(t, m, "run", "all", "count") != sent || num(t, m, "queue", "noop", "count") == 0 {
		t.Errorf("queue/run split missing: queue %v run %v", m["queue"], m["run"])
	}
}

// TestClientOpenLoopRate: at a constant arrival rate the client sends
// rate × duration requests, and times each from when it was due.
func TestClientOpenLoopRate(t *testing.T) {
	h := startHost(t, "inproc", "")
	r := clRun(t, "--url", "ws://"+h.addr+"/ws", "--clients", "4", "--protocol", "json", "--pipeline", "4",
		"--tasks", "noop", "--rate", "200", "--duration", "2s")
	if r.code != client.ExitOK {
		t.Fatalf("exit %d, want 0", r.code)
	}
	m := r.summary
	if sent := num(t, m, "sent"); sent < 0.8*400 || sent > 1.05*400 {
		t.Errorf("sent %v, want about 200/s × 2 s = 400", sent)
	}
	if num(t, m, "latency", "all", "count") != num(t, m, "ok") || num(t, m, "latency", "all", "p50_ms") <= 0 {
		t.Errorf("latency %v", m["latency"])
	}
	if m["mode"] != "rate" || num(t, m, "rate") != 200 || num(t, m, "send_lag", "count") == 0 {
		t.Errorf("mode %v rate %v send_lag %v", m["mode"], m["rate"], m["send_lag"])
	}
}

// TestClientThresholds: crossing --max-p99 or --min-rate exits 99 and says
// which.
func TestClientThresholds(t *testing.T) {
	h := startHost(t, "inproc", "")
	url := "ws://" + h.addr + "/ws"
	r := clRun(t, "--url", url, "--clients", "5", "--tasks", "cpu,io", "--max-p99", "1us")
	if r.code != client.ExitThreshold || !strings.Contains(r.stderr, "--max-p99 1µs") {
		t.Errorf("--max-p99 1us: exit %d, stderr %q; want 99 naming --max-p99", r.code, r.stderr)
	}
	r = clRun(t, "--url", url, "--clients", "5", "--tasks", "cpu,io", "--min-rate", "1e9")
	if r.code != client.ExitThreshold || !strings.Contains(r.stderr, "--min-rate") {
		t.Errorf("--min-rate 1e9: exit %d, stderr %q; want 99 naming --min-rate", r.code, r.stderr)
	}
	r = clRun(t, "--url", url, "--clients", "5", "--tasks", "cpu,io", "--max-p99", "1m", "--min-rate", "1")
	if r.code != client.ExitOK {
		t.Errorf("generous thresholds: exit %d", r.code)
	}
	// Error replies: a sleep past timeout_sec is refused (out_of_range).
	r = clRun(t, "--url", url, "--clients", "2", "--tasks", "io,99999")
	if r.code != client.ExitIncorrect || num(t, r.summary, "errors", "out_of_range") != 2 {
		t.Errorf("error replies: exit %d, errors %v; want 1 and out_of_range 2", r.code, r.summary["errors"])
	}
	r = clRun(t, "--url", url, "--clients", "2", "--tasks", "io,99999", "--max-errors", "2")
	if r.code != client.ExitOK {
		t.Errorf("error replies within --max-errors: exit %d", r.code)
	}
}

// clFake is a WebSocket server that answers the plain protocol, wrongly
// for "cpu" when wrongCPU is set, and never answers a connection's
// dropNth request.
func clFake(t *testing.T, wrongCPU bool, dropNth int) string {
	t.Helper()
	right := map[string]string{"fib": fibString(5000), "cpu": "499999500000", "io": "1000000"}
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for n := 1; ; n++ {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if n == dropNth {
				continue
			}
			reply := right[string(data)]
			if wrongCPU && string(data) == "cpu" {
				reply = "42"
			}
			if ws.WriteMessage(websocket.TextMessage, []byte(reply)) != nil {
				return
			}
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "ws://" + ln.Addr().String() + "/ws"
}

func TestClientWrongReplies(t *testing.T) {
	url := clFake(t, true, 0)
	r := clRun(t, "--url", url, "--clients", "3", "--tasks", "fib,cpu,io")
	if r.code != client.ExitIncorrect {
		t.Fatalf("exit %d, want 1", r.code)
	}
	m := r.summary
	if num(t, m, "wrong") != 3 || num(t, m, "ok") != 6 || num(t, m, "missing") != 0 {
		t.Errorf("wrong %v ok %v missing %v; want 3, 6, 0", m["wrong"], m["ok"], m["missing"])
	}
	if !strings.Contains(r.stdout, `cpu: got "42", want "499999500000"`) || !strings.Contains(r.stderr, "3 wrong replies") {
		t.Errorf("the report does not show the wrong replies")
	}
}

func TestClientMissingReply(t *testing.T) {
	url := clFake(t, false, 2) // every connection's io goes unanswered
	start := time.Now()
	r := clRun(t, "--url", url, "--clients", "3", "--tasks", "fib,io,cpu", "--reply-timeout", "300ms")
	if r.code != client.ExitIncorrect {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v with --reply-timeout 300ms", took)
	}
	m := r.summary
	if num(t, m, "missing") != 3 || num(t, m, "ok") != 3 || num(t, m, "unsent") != 3 {
		t.Errorf("missing %v ok %v unsent %v; want 3, 3, 3", m["missing"], m["ok"], m["unsent"])
	}
	if !strings.Contains(r.stderr, "3 replies missing") {
		t.Errorf("stderr does not say the replies are missing")
	}
}

func TestClientConnectionFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := clRun(t, "--url", "ws://"+addr+"/ws", "--clients", "4", "--tasks", "fib,cpu")
	if r.code != client.ExitIncorrect {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if num(t, r.summary, "connection_failures") != 4 || num(t, r.summary, "sent") != 0 {
		t.Errorf("connection_failures %v sent %v", r.summary["connection_failures"], r.summary["sent"])
	}
	if !strings.Contains(r.stderr, "4 connection failures") {
		t.Errorf("stderr does not report the connection failures")
	}
}

func TestClientBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.ini")
	os.WriteFile(path, []byte("[client]\nnum_client = -3\n"), 0o600)
	r := clRun(t, "--config", path)
	if r.code != client.ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "[client] num_client") {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming [client] num_client", r.code, r.stderr)
	}
	if r.raw != nil {
		t.Errorf("a run that did not happen wrote a summary")
	}
	r = clRun(t, "--url", "ws://127.0.0.1:1/ws", "--pipeline", "4")
	if r.code != client.ExitUsage || !strings.Contains(r.stderr, "--protocol json") {
		t.Errorf("plain with --pipeline 4: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestClientInterrupt: SIGINT stops the run, and the partial figures are
// reported.
func TestClientInterrupt(t *testing.T) {
	h := startHost(t, "inproc", "")
	bin := filepath.Join(binDir, "client")
	cmd := exec.Command(bin, "--quiet", "--url", "ws://"+h.addr+"/ws", "--clients", "2", "--protocol", "json",
		"--tasks", "noop", "--duration", "1m")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("client did not stop within 10 s of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != client.ExitIncorrect ||
		!strings.Contains(stdout.String(), "INTERRUPTED") || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestClientAgainstFaultyHost: a real host whose worker answers one task
// wrongly, or never answers it, makes the real client count it and exit 1.
func TestClientAgainstFaultyHost(t *testing.T) {
	for _, c := range []struct {
		fault, counter string
	}{
		{"wrong:cpu:7", "wrong"},
		{"stall:cpu:7", "missing"},
	} {
		t.Run(c.counter, func(t *testing.T) {
			h := startHostEnv(t, "multiproc", "plugin_dir = "+faultyPlugins()+"\n[other]\nmultiprocessing_processes = 2\n",
				[]string{faults.Env + "=" + c.fault})
			r := clRun(t, "--url", "ws://"+h.addr+"/ws", "--protocol", "json", "--clients", "2",
				"--tasks", "noop,cpu", "--n", "cpu=7", "--reply-timeout", "1s")
			if r.code != client.ExitIncorrect {
				t.Fatalf("exit %d, want %d", r.code, client.ExitIncorrect)
			}
			if got := num(t, r.summary, c.counter); got != 2 {
				t.Errorf("%s = %v, want 2 (one cpu task per client)", c.counter, got)
			}
			if got := num(t, r.summary, "ok"); got != 2 {
				t.Errorf("ok = %v, want 2 (the noops)", got)
			}
		})
	}
}
