package host

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
)

// guard bounds every wait in these tests: long enough never to matter on a
// loaded machine, short enough that a hang fails instead of timing out the
// whole package.
const guard = 10 * time.Second

// fakeStrategy is a scripted Strategy. noop tasks return at once (with
// noopValue when set); every other task registers a fakeCall on started and
// blocks until the test finishes it or its context is done.
type fakeStrategy struct {
	started   chan *fakeCall
	calls     atomic.Int64
	cancelled atomic.Int64
	returned  atomic.Int64
	notReady  atomic.Bool
	noopValue string
}

type fakeCall struct {
	task     taskproto.Task
	ctx      context.Context
	outcome  chan fakeOutcome
	returned chan struct{}
}

type fakeOutcome struct {
	res taskproto.Result
	err error
}

func newFake() *fakeStrategy {
	return &fakeStrategy{started: make(chan *fakeCall, 4096)}
}

func (f *fakeStrategy) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	f.calls.Add(1)
	if t.Kind == taskproto.KindNoop {
		v := f.noopValue
		if v == "" {
			v = "noop"
		}
		f.returned.Add(1)
		done(taskproto.Result{Value: v, Worker: "fake"}, nil)
		return
	}
	c := &fakeCall{task: t, ctx: ctx, outcome: make(chan fakeOutcome, 1), returned: make(chan struct{})}
	go func() {
		defer close(c.returned)
		defer f.returned.Add(1)
		select {
		case f.started <- c:
		case <-ctx.Done():
			f.cancelled.Add(1)
			done(taskproto.Result{}, ctx.Err())
			return
		}
		select {
		case o := <-c.outcome:
			done(o.res, o.err)
		case <-ctx.Done():
			f.cancelled.Add(1)
			done(taskproto.Result{}, ctx.Err())
		}
	}()
}

func (f *fakeStrategy) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "fake", Description: "scripted test strategy"}
}

func (f *fakeStrategy) Stats(context.Context) (taskproto.Stats, error) {
	return taskproto.Stats{Completed: f.returned.Load()}, nil
}

func (f *fakeStrategy) Ready() bool { return !f.notReady.Load() }

// waitStarted returns the next n calls, keyed by task N.
func (f *fakeStrategy) waitStarted(t *testing.T, n int) map[int64]*fakeCall {
	t.Helper()
	got := make(map[int64]*fakeCall, n)
	timer := time.NewTimer(guard)
	defer timer.Stop()
	for len(got) < n {
		select {
		case c := <-f.started:
			got[c.task.N] = c
		case <-timer.C:
			t.Fatalf("only %d of %d tasks reached the strategy", len(got), n)
		}
	}
	return got
}

// finish makes the call return value; it waits until done has been called.
func (c *fakeCall) finish(t *testing.T, value string) {
	t.Helper()
	c.outcome <- fakeOutcome{res: taskproto.Result{Value: value, Worker: "fake"}}
	c.wait(t)
}

func (c *fakeCall) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.returned:
	case <-time.After(guard):
		t.Fatalf("task %v was not answered", c.task)
	}
}

func inproc(t *testing.T) Strategy {
	return readyAlways{strategy.NewInproc(taskproto.Config{DataDir: t.TempDir(), LargeFileName: "large_file.txt"})}
}

// testServer is a Server serving on a loopback listener.
type testServer struct {
	*Server
	addr   string
	served chan error
}

func (ts *testServer) wsURL() string   { return "ws://" + ts.addr + "/ws" }
func (ts *testServer) httpURL() string { return "http://" + ts.addr }

// startServer fills in the options a test leaves zero and serves them. The
// server is shut down when the test ends.
func startServer(t *testing.T, opt Options) *testServer {
	t.Helper()
	if opt.Strategy == nil {
		opt.Strategy = newFake()
	}
	if opt.TaskTimeout == 0 {
		opt.TaskTimeout = 5 * time.Second
	}
	if opt.MaxFrameBytes == 0 {
		opt.MaxFrameBytes = 65536
	}
	if opt.MaxInflight == 0 {
		opt.MaxInflight = 16
	}
	if opt.MaxQueued == 0 {
		opt.MaxQueued = 10000
	}
	if opt.MaxConnections == 0 {
		opt.MaxConnections = 200
	}
	if opt.MaxPendingReplyBytes == 0 {
		opt.MaxPendingReplyBytes = 1 << 20
	}
	if opt.MinReplyReadRate == 0 {
		opt.MinReplyReadRate = 64 << 10
	}
	if opt.Window == nil {
		opt.Window = limit.New(4096, 4096, 4096, time.Second)
	}
	if opt.Limits == (taskproto.Limits{}) {
		opt.Limits = taskproto.Limits{MaxFibN: 100000, MaxCPUN: 10_000_000, MaxIOBytes: 10_000_000, MaxSleep: time.Hour}
	}
	if opt.Defaults == (wsproto.Defaults{}) {
		opt.Defaults = wsproto.Defaults{FibN: 5000}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: NewServer(opt), addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(ln) }()
	t.Cleanup(func() {
		shutdownWithin(t, ts.Server, time.Second, guard)
		select {
		case err := <-ts.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(guard):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// shutdownWithin runs Shutdown(grace) and fails if it takes longer than limit.
func shutdownWithin(t *testing.T, s *Server, grace, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		s.Shutdown(grace)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("Shutdown(%s) did not return within %s", grace, limit)
	}
	return time.Since(start)
}

func (ts *testServer) connCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.conns)
}

// outstanding counts the tasks accepted and not yet answered.
func (ts *testServer) outstanding() int {
	_, _, n, _ := ts.sched.Counts()
	return n
}

// inflight is the number of in-flight slots taken on every connection.
func (ts *testServer) inflight() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for c := range ts.conns {
		c.replies.mu.Lock()
		n += c.replies.inflight
		c.replies.mu.Unlock()
	}
	return n
}

// waitFor polls cond until it holds or the guard runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, ts *testServer) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", ts.wsURL(), err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func sendText(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	ws.SetWriteDeadline(time.Now().Add(guard))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("send %q: %v", frame, err)
	}
}

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(guard))
	mt, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("reply is message type %d, want text", mt)
	}
	return string(data)
}

// reply is a JSON reply as the client sees it; it is decoded independently
// of wsproto.Reply so that these tests check the wire format.
type reply struct {
	ID       json.RawMessage `json:"id"`
	Task     string          `json:"task"`
	OK       bool            `json:"ok"`
	Result   *string         `json:"result"`
	Strategy *string         `json:"strategy"`
	Worker   *string         `json:"worker"`
	QueueUS  *int64          `json:"queue_us"`
	RunUS    *int64          `json:"run_us"`
	Error    *struct {
		Code    taskproto.Code `json:"code"`
		Message string         `json:"message"`
	} `json:"error"`
}

func readReply(t *testing.T, ws *websocket.Conn) reply {
	t.Helper()
	return decodeReply(t, readText(t, ws))
}

func decodeReply(t *testing.T, frame string) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal([]byte(frame), &r); err != nil {
		t.Fatalf("reply %q is not JSON: %v", frame, err)
	}
	return r
}

// idOf is a reply's id as a plain string ("7" for 7, "a" for "a").
func idOf(r reply) string {
	var s string
	if len(r.ID) > 0 && r.ID[0] == '"' && json.Unmarshal(r.ID, &s) == nil {
		return s
	}
	return string(r.ID)
}

func wantOK(t *testing.T, r reply, id, value string) {
	t.Helper()
	if idOf(r) != id || !r.OK || r.Result == nil || *r.Result != value || r.Error != nil {
		t.Fatalf("reply %+v (error %+v), want ok for id %s with result %q", r, r.Error, id, value)
	}
}

func wantError(t *testing.T, r reply, id string, code taskproto.Code) {
	t.Helper()
	if idOf(r) != id || r.OK || r.Error == nil || r.Error.Code != code {
		t.Fatalf("reply %+v (error %+v), want error %s for id %s", r, r.Error, code, id)
	}
}

// readUntilClose collects every frame until the connection fails, and
// returns them with the error that ended reading.
func readUntilClose(ws *websocket.Conn) ([]string, error) {
	var frames []string
	ws.SetReadDeadline(time.Now().Add(guard))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return frames, err
		}
		frames = append(frames, string(data))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: guard}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}
