//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// errReplyWait bounds every read of a reply in this file.
const errReplyWait = 10 * time.Second

// errExpectJSONError checks that raw is a JSON error reply with code and a
// non-empty message, echoing wantID (raw JSON; "" when the request had no
// valid id, in which case the reply's id must be null or absent).
func errExpectJSONError(t *testing.T, what, raw, code, wantID string) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Errorf("%s: reply %q is not JSON: %v", what, raw, err)
		return r
	}
	if r.OK {
		t.Errorf("%s: reply %q has ok:true, want ok:false", what, raw)
	}
	if r.Error == nil {
		t.Errorf("%s: reply %q has no error object", what, raw)
		return r
	}
	if r.Error.Code != code {
		t.Errorf("%s: error code %q, want %q (reply %q)", what, r.Error.Code, code, raw)
	}
	if strings.TrimSpace(r.Error.Message) == "" {
		t.Errorf("%s: empty error message (reply %q)", what, raw)
	}
	got := string(bytes.TrimSpace(r.ID))
	if wantID == "" {
		if got != "" && got != "null" {
			t.Errorf("%s: id %s echoed for a request without a valid id (reply %q)", what, got, raw)
		}
	} else if got != wantID {
		t.Errorf("%s: id %q, want %q (reply %q)", what, got, wantID, raw)
	}
	return r
}

// errExpectNoopOK checks that ws still answers a JSON noop with ok:true.
func errExpectNoopOK(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	got, err := call(ws, `{"id":"alive","task":"noop"}`, errReplyWait)
	if err != nil {
		t.Fatalf("noop after errors: %v", err)
	}
	r := decode(t, got)
	if !r.OK || string(r.ID) != `"alive"` {
		t.Fatalf("noop after errors: got %q, want ok:true with id \"alive\"", got)
	}
}

func TestErrorCodesFromOutside(t *testing.T) {
	for _, s := range []string{"inproc", "pool"} {
		t.Run(s, func(t *testing.T) {
			h := startHost(t, s, "timeout_sec = 30\n[limits]\nmax_inflight_per_conn = 2\n")
			ws := h.dial(t)

			jsonCases := []struct {
				name, frame, code, id string
			}{
				{"not JSON", `{oops`, "bad_request", ""},
				{"task wrong type", `{"task":5}`, "bad_request", ""},
				{"id object", `{"id":{},"task":"noop"}`, "bad_request", ""},
				{"n string", `{"id":"x","task":"cpu","n":"5"}`, "bad_request", `"x"`},
				{"unknown task", `{"id":3,"task":"nope"}`, "unknown_task", "3"},
				{"fib too large", `{"id":"f","task":"fib","n":9999999}`, "out_of_range", `"f"`},
				{"sleep past timeout", `{"id":7,"task":"sleep","n":30001}`, "out_of_range", "7"},
			}
			for _, c := range jsonCases {
				got, err := call(ws, c.frame, errReplyWait)
				if err != nil {
					t.Fatalf("%s (%s): %v", c.name, c.frame, err)
				}
				errExpectJSONError(t, c.name, got, c.code, c.id)
			}

			// A binary frame.
			ws.SetWriteDeadline(time.Now().Add(errReplyWait))
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte(`{"id":1,"task":"noop"}`)); err != nil {
				t.Fatalf("write binary frame: %v", err)
			}
			got, err := read(ws, errReplyWait)
			if err != nil {
				t.Fatalf("binary frame: %v", err)
			}
			errExpectJSONError(t, "binary frame", got, "bad_request", "")

			// A text frame that looks like JSON but is not valid UTF-8.
			ws.SetWriteDeadline(time.Now().Add(errReplyWait))
			if err := ws.WriteMessage(websocket.TextMessage, []byte("{\"task\":\"noop\",\"x\":\"\xff\xfe\"}")); err != nil {
				t.Logf("client library refused an invalid UTF-8 text frame (%v); case skipped", err)
				ws = h.dial(t)
			} else {
				got, err := read(ws, errReplyWait)
				if err != nil {
					t.Fatalf("invalid UTF-8 frame: %v", err)
				}
				errExpectJSONError(t, "invalid UTF-8", got, "bad_request", "")
			}

			// Plain-text errors.
			for _, c := range []struct{ name, frame string }{
				{"plain unknown", "nope"},
				{"plain sleep past timeout", "999"}, // timeout_sec is 30 < 999
			} {
				got, err := call(ws, c.frame, errReplyWait)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if !strings.HasPrefix(got, "error: ") || len(got) <= len("error: ") {
					t.Errorf("%s: reply %q, want \"error: <message>\"", c.name, got)
				}
			}

			// overloaded: three pipelined sleeps with at most 2 in flight.
			for i := 1; i <= 3; i++ {
				ws.SetWriteDeadline(time.Now().Add(errReplyWait))
				frame := `{"id":` + strconv.Itoa(i) + `,"task":"sleep","n":500}`
				if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
					t.Fatalf("write sleep %d: %v", i, err)
				}
			}
			var ok, overloaded int
			seen := map[string]bool{}
			for range 3 {
				got, err := read(ws, errReplyWait)
				if err != nil {
					t.Fatalf("reading pipelined sleeps: %v", err)
				}
				r := decode(t, got)
				seen[string(r.ID)] = true
				switch {
				case r.OK:
					ok++
				case r.code() == "overloaded":
					overloaded++
					errExpectJSONError(t, "overloaded", got, "overloaded", string(r.ID))
				default:
					t.Errorf("pipelined sleep: unexpected reply %q", got)
				}
			}
			if ok != 2 || overloaded != 1 {
				t.Errorf("pipelined sleeps: %d ok and %d overloaded, want 2 and 1", ok, overloaded)
			}
			for _, id := range []string{"1", "2", "3"} {
				if !seen[id] {
					t.Errorf("pipelined sleeps: no reply for id %s (ids seen: %v)", id, seen)
				}
			}

			errExpectNoopOK(t, ws)
		})
	}
}

func TestErrorTimeout(t *testing.T) {
	for _, c := range []struct{ strategy, ini string }{
		{"semaphore", "timeout_sec = 1\n[other]\nasyn_semaphore = 1\n"},
		{"pool", "timeout_sec = 1\n[pool]\nworkers = 1\n"},
	} {
		t.Run(c.strategy, func(t *testing.T) {
			h := startHost(t, c.strategy, c.ini)
			ws := h.dial(t)
			for _, f := range []string{`{"id":"a","task":"sleep","n":800}`, `{"id":"b","task":"sleep","n":800}`} {
				ws.SetWriteDeadline(time.Now().Add(errReplyWait))
				if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					t.Fatal(err)
				}
			}
			byID := map[string]string{}
			for range 2 {
				got, err := read(ws, errReplyWait)
				if err != nil {
					t.Fatalf("reading sleeps: %v", err)
				}
				byID[string(decode(t, got).ID)] = got
			}
			// Tasks of one connection reach the strategy in arrival order:
			// "a" takes the one slot, "b" waits behind it and times out.
			if r := decode(t, byID[`"a"`]); !r.OK {
				t.Errorf("first sleep: %s, want ok", byID[`"a"`])
			}
			errExpectJSONError(t, "queued sleep past timeout_sec", byID[`"b"`], "timeout", `"b"`)
			errExpectNoopOK(t, ws)
		})
	}
}

func TestFrameTooLarge(t *testing.T) {
	h := startHost(t, "inproc", "[limits]\nmax_frame_bytes = 1024\n")

	// A frame of exactly max_frame_bytes is accepted.
	ws := h.dial(t)
	head := `{"id":"edge","task":"noop","pad":"`
	edge := head + strings.Repeat("a", 1024-len(head)-2) + `"}`
	if len(edge) != 1024 {
		t.Fatalf("edge frame is %d bytes", len(edge))
	}
	got, err := call(ws, edge, errReplyWait)
	if err != nil {
		t.Fatalf("1024-byte frame: %v", err)
	}
	if r := decode(t, got); !r.OK {
		t.Errorf("1024-byte frame: %q, want ok:true", got)
	}

	big := `{"id":"big","task":"noop","pad":"` + strings.Repeat("a", 4096) + `"}`
	ws.SetWriteDeadline(time.Now().Add(errReplyWait))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatalf("write big frame: %v", err)
	}
	deadline := time.Now().Add(errReplyWait)
	var rerr error
	for i := 0; i < 10 && time.Now().Before(deadline); i++ {
		ws.SetReadDeadline(deadline)
		if _, data, err := ws.ReadMessage(); err != nil {
			rerr = err
			break
		} else {
			t.Logf("frame before close: %q", data)
		}
	}
	if !websocket.IsCloseError(rerr, websocket.CloseMessageTooBig) {
		t.Errorf("after a 4 KiB frame: read error %v, want close 1009", rerr)
	}

	errExpectNoopOK(t, h.dial(t))
}

// errRunHost runs bin/host with args within 10 s.
func errRunHost(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "host"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Dir = t.TempDir() // no config.ini lying around
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("host %v did not exit within 10 s; stderr:\n%s", args, errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("host %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func errWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigExits2(t *testing.T) {
	const loop = "[server]\nhost = 127.0.0.1\nport = 0\n"
	cases := []struct {
		name, plugin, ini, section, key string
	}{
		{"negative num_client", "inproc", loop + "[client]\nnum_client = -3\n", "client", "num_client"},
		{"unknown task", "inproc", loop + "[client]\ntasks = fib, nope\n", "client", "tasks"},
		{"port out of range", "inproc", "[server]\nhost = 127.0.0.1\nport = 70000\n", "server", "port"},
		// The keys a plugin declares are checked as the host's own, once
		// the plugin has said which they are, and before the host serves.
		{"semaphore not a number", "semaphore", loop + "[other]\nasyn_semaphore = abc\n", "other", "asyn_semaphore"},
		{"negative pool workers", "pool", loop + "[pool]\nworkers = -1\n", "pool", "workers"},
		{"multiproc processes 0", "multiproc", loop + "[other]\nmultiprocessing_processes = 0\n", "other", "multiprocessing_processes"},
		{"distributed storage", "distributed", loop + "[distributed]\nstorage = tape\n", "distributed", "storage"},
		{"adaptive queue", "adaptive", loop + "[adaptive]\nmax_queue_ms = soon\n", "adaptive", "max_queue_ms"},
		{"wasm memory cap", "wasm", loop + "[wasm]\nmax_memory_mb = 4\n", "wasm", "max_memory_mb"},
		{"python processes", "python-multiprocessing", loop + "[other]\nmultiprocessing_processes = 2000\n", "other", "multiprocessing_processes"},
	}
	// oneLine is the line that says what is wrong: for a plugin's key, the
	// last, after the log line of the plugin stopped.
	oneLine := func(t *testing.T, stderr string) string {
		t.Helper()
		lines := strings.Split(strings.TrimRight(stderr, "\r\n"), "\n")
		line := lines[len(lines)-1]
		if strings.TrimSpace(line) == "" {
			t.Errorf("stderr does not end with a line that says what is wrong: %q", stderr)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.Contains(l, "[INFO]") && !strings.Contains(l, "[DEBUG]") {
				t.Errorf("stderr holds more than the line that says what is wrong: %q", l)
			}
		}
		return line
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			skipMissingPython(t, c.plugin)
			path := errWriteFile(t, "bad.ini", c.ini)
			_, stderr, code := errRunHost(t, "--config", path, "--plugin", c.plugin, "--plugin-dir", filepath.Join(binDir, "plugins"))
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
			}
			line := oneLine(t, stderr)
			for _, want := range []string{path, "[" + c.section + "]", c.key} {
				if !strings.Contains(line, want) {
					t.Errorf("stderr %q does not name %q", line, want)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no-such-config.ini")
		_, stderr, code := errRunHost(t, "--config", path)
		if code != 2 {
			t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
		}
		if line := oneLine(t, stderr); !strings.Contains(line, path) {
			t.Errorf("stderr %q does not name %q", line, path)
		}
	})
	t.Run("unknown plugin", func(t *testing.T) {
		path := errWriteFile(t, "empty.ini", "")
		_, stderr, code := errRunHost(t, "--config", path, "--plugin", "nosuch")
		if code != 2 {
			t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
		}
		if line := oneLine(t, stderr); !strings.Contains(line, "nosuch") {
			t.Errorf("stderr %q does not name the plugin", line)
		}
	})
}

func TestListPlugins(t *testing.T) {
	empty := errWriteFile(t, "empty.ini", "")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"plugin-dir flag", []string{"--list-plugins", "--plugin-dir", filepath.Join(binDir, "plugins"), "--config", empty}},
		{"default plugin dir", []string{"--list-plugins", "--config", empty}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := errRunHost(t, c.args...)
			if code != 0 {
				t.Errorf("exit status %d, want 0; stderr %q", code, stderr)
			}
			var names []string
			for _, line := range strings.Split(stdout, "\n") {
				if f := strings.Fields(line); len(f) > 0 {
					names = append(names, f[0])
				}
			}
			for _, want := range []string{"inproc", "semaphore", "pool"} {
				if n := len(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s != want })); n != 1 {
					t.Errorf("%s listed %d times, want once; stdout:\n%s", want, n, stdout)
				}
			}
		})
	}
}

// errDial dials the host with header and returns the handshake response.
func errDial(t *testing.T, h *hostProc, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: errReplyWait}
	ws, resp, err := d.Dial("ws://"+h.addr+"/ws"+query, header)
	if resp != nil && resp.Body != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

func errStatus(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func TestAuthAndOrigin(t *testing.T) {
	h := startHost(t, "inproc", "auth_token = s3cret\nallowed_origins = http://good.example\n")
	bearer := http.Header{"Authorization": {"Bearer s3cret"}}
	with := func(origin string) http.Header {
		hd := bearer.Clone()
		hd.Set("Origin", origin)
		return hd
	}
	for _, c := range []struct {
		name   string
		query  string
		header http.Header
		status int // 0: the upgrade must succeed
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"wrong token", "", http.Header{"Authorization": {"Bearer s3cre"}}, http.StatusUnauthorized},
		{"bearer token", "", bearer, 0},
		{"token query", "?token=s3cret", nil, 0},
		{"evil origin", "", with("http://evil.example"), http.StatusForbidden},
		{"good origin", "", with("http://good.example"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, resp, err := errDial(t, h, c.query, c.header)
			if c.status != 0 {
				if err == nil {
					t.Fatalf("upgrade succeeded, want HTTP %d", c.status)
				}
				if got := errStatus(resp); got != c.status {
					t.Fatalf("upgrade: HTTP %d (%v), want %d", got, err, c.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("upgrade: %v (HTTP %d)", err, errStatus(resp))
			}
			errExpectNoopOK(t, ws)
		})
	}
	t.Run("stats needs token", func(t *testing.T) {
		resp, err := http.Get("http://" + h.addr + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/stats without token: HTTP %d, want 401", resp.StatusCode)
		}
	})
}

// errWaitConnections polls /stats until it reports n connections.
func errWaitConnections(t *testing.T, h *hostProc, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		if got = h.stats(t).Connections; got == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/stats reports %d connections, want %d", got, n)
}

func TestConnectionLimit(t *testing.T) {
	h := startHost(t, "inproc", "[limits]\nmax_connections = 2\n")
	first := h.dial(t)
	h.dial(t)
	errWaitConnections(t, h, 2)

	ws, resp, err := errDial(t, h, "", nil)
	if err == nil {
		ws.Close()
		t.Fatal("third connection was upgraded, want HTTP 503")
	}
	if got := errStatus(resp); got != http.StatusServiceUnavailable {
		t.Fatalf("third connection: HTTP %d (%v), want 503", got, err)
	}

	// Once one closes, a new connection is accepted again.
	first.Close()
	errWaitConnections(t, h, 1)
	ws, resp, err = errDial(t, h, "", nil)
	if err != nil {
		t.Fatalf("connection after one closed: %v (HTTP %d)", err, errStatus(resp))
	}
	errExpectNoopOK(t, ws)
}

func TestHealthzAndStats(t *testing.T) {
	for _, s := range withPython() {
		t.Run(s, func(t *testing.T) {
			skipMissingPython(t, s)
			h := startHost(t, s, "")
			if code := h.healthz(); code != http.StatusOK {
				t.Errorf("/healthz: HTTP %d, want 200", code)
			}
			resp, err := http.Get("http://" + h.addr + "/stats")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/stats: HTTP %d: %s", resp.StatusCode, body)
			}
			var st struct {
				Strategy string `json:"strategy"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("/stats is not JSON: %v: %s", err, body)
			}
			if st.Strategy != pluginOf(s) {
				t.Errorf("/stats strategy %q, want %q", st.Strategy, pluginOf(s))
			}
		})
	}
}
