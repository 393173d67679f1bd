package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/taskproto"
)

// namedFake is a fakeStrategy under a name of its own, which counts its
// Close calls.
type namedFake struct {
	*fakeStrategy
	name   string
	closed atomic.Int32
}

func newNamedFake(name string) *namedFake { return &namedFake{fakeStrategy: newFake(), name: name} }

func (f *namedFake) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: f.name, Description: "scripted " + f.name}
}

func (f *namedFake) Close() error {
	f.closed.Add(1)
	return nil
}

// builderOf builds the strategies of m by name, and refuses others as
// unknown; fail makes it fail to start that name.
func builderOf(m map[string]Strategy, fail map[string]error) StrategyBuilder {
	return func(_ context.Context, name string) (Strategy, error) {
		if err := fail[name]; err != nil {
			return nil, err
		}
		s, ok := m[name]
		if !ok {
			return nil, &UnknownStrategyError{Name: name, Available: []string{"a", "b"}}
		}
		return s, nil
	}
}

// postSwitch sends POST /admin/strategy with body and the bearer token (if
// any) and returns the status and decoded answer.
func postSwitch(t *testing.T, ts *testServer, token, contentType, body string) (int, SwitchReply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.httpURL()+"/admin/strategy", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: guard}).Do(req)
	if err != nil {
		t.Fatalf("POST /admin/strategy: %v", err)
	}
	defer resp.Body.Close()
	var rep SwitchReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("POST /admin/strategy answered %s, not JSON: %v", resp.Status, err)
	}
	return resp.StatusCode, rep
}

// A switch under way: tasks held by the old strategy stay its own and are
// answered by it, under its name; tasks that arrive after the switch go to
// the new one; a second switch is refused with 409 until the old one has
// answered what it held, and then it is closed; every request gets exactly
// one reply.
func TestSwitchStrategyKeepsHeldTasks(t *testing.T) {
	a, b := newNamedFake("a"), newNamedFake("b")
	ts := startServer(t, Options{Strategy: a, MaxInflight: 64,
		Build: builderOf(map[string]Strategy{"a": a, "b": b}, nil)})
	ws := dial(t, ts)
	const held = 5
	for i := range held {
		sendText(t, ws, fmt.Sprintf(`{"id":"old-%d","task":"sleep","n":%d}`, i, i))
	}
	calls := a.waitStarted(t, held)

	status, rep := postSwitch(t, ts, "", "application/json", `{"strategy":"b"}`)
	if status != http.StatusOK || rep.Strategy != "b" || rep.Description != "scripted b" {
		t.Fatalf("switch to b: %d %+v, want 200 naming b", status, rep)
	}
	if got := ts.Strategy().Info().Name; got != "b" {
		t.Fatalf("serving %q after the switch, want b", got)
	}
	// New tasks go to b, and are answered in its name.
	for i := range 3 {
		sendText(t, ws, fmt.Sprintf(`{"id":"new-%d","task":"sleep","n":%d}`, i, 100+i))
	}
	for n, c := range b.waitStarted(t, 3) {
		c.finish(t, fmt.Sprintf("b%d", n))
	}
	for range 3 {
		r := readReply(t, ws)
		if !strings.HasPrefix(idOf(r), "new-") || r.Strategy == nil || *r.Strategy != "b" {
			t.Fatalf("reply %+v, want a new task answered by b", r)
		}
	}
	if got := a.calls.Load(); got != held {
		t.Errorf("a was handed %d tasks, want only the %d before the switch", got, held)
	}

	// a still holds its tasks: the switch is in progress.
	st := statsOf(t, ts)
	if st.Strategy != "b" || st.Retiring == nil || st.Retiring.Strategy != "a" || st.Retiring.Held != held {
		t.Fatalf("/stats strategy %q retiring %+v, want b serving and a holding %d", st.Strategy, st.Retiring, held)
	}
	if status, rep := postSwitch(t, ts, "", "application/json", `{"strategy":"a"}`); status != http.StatusConflict ||
		!strings.Contains(rep.Error, "a still holds 5 tasks") {
		t.Fatalf("switch during the drain: %d %+v, want 409 saying what a holds", status, rep)
	}
	if a.closed.Load() != 0 {
		t.Fatal("a was closed while it held tasks")
	}

	// a answers what it holds, in its own name; then it is closed.
	for n, c := range calls {
		c.finish(t, fmt.Sprintf("a%d", n))
	}
	for range held {
		r := readReply(t, ws)
		if !strings.HasPrefix(idOf(r), "old-") || r.Strategy == nil || *r.Strategy != "a" {
			t.Fatalf("reply %+v, want an old task answered by a", r)
		}
	}
	waitFor(t, "a closed once drained", func() bool { return a.closed.Load() == 1 && !ts.switching.Load() })
	if st := statsOf(t, ts); st.Retiring != nil {
		t.Errorf("/stats retiring %+v after the drain, want none", st.Retiring)
	}
	if ts.outstanding() != 0 {
		t.Errorf("%d tasks outstanding", ts.outstanding())
	}
	// Nothing more comes on the connection: every request had one reply.
	ws.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, extra, err := ws.ReadMessage(); err == nil {
		t.Errorf("an extra reply: %s", extra)
	}

	// Back to a: its answers count in its own series, which are kept.
	if status, rep := postSwitch(t, ts, "", "application/json", `{"strategy":"a"}`); status != http.StatusOK || rep.Strategy != "a" {
		t.Fatalf("switch back to a: %d %+v", status, rep)
	}
	_, metrics := get(t, ts.httpURL()+"/metrics", nil)
	for _, want := range []string{`strategy="a"`, `strategy="b"`} {
		if !strings.Contains(metrics, `kind="sleep",`+want) && !strings.Contains(metrics, want+`,`) {
			t.Errorf("/metrics lacks the tasks_total series of %s:\n%s", want, grepLines(metrics, "wslab_tasks_total"))
		}
	}
	if !strings.Contains(metrics, `wslab_tasks_outstanding{strategy="a"}`) {
		t.Errorf("/metrics' gauges are not labelled with the strategy now serving (a)")
	}
}

func statsOf(t *testing.T, ts *testServer) HostStats {
	t.Helper()
	code, body := get(t, ts.httpURL()+"/stats", nil)
	if code != http.StatusOK {
		t.Fatalf("/stats: %d %s", code, body)
	}
	var st HostStats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// The answers of POST /admin/strategy when nothing switches: an unknown
// strategy (400), a strategy that fails to start (500, the old one keeps
// serving), a bad body (400), a body not declared JSON (415), the token
// (401), and a server that cannot switch (501).
func TestSwitchStrategyRefusals(t *testing.T) {
	a := newNamedFake("a")
	ts := startServer(t, Options{Strategy: a, AuthToken: "s3cret",
		Build: builderOf(map[string]Strategy{"a": a}, map[string]error{"broken": errors.New("plugin broken exited before its handshake")})})
	for _, c := range []struct {
		name, token, contentType, body string
		status                         int
		says                           string
	}{
		{"no token", "", "application/json", `{"strategy":"a"}`, http.StatusUnauthorized, "unauthorized"},
		{"wrong token", "guess", "application/json", `{"strategy":"a"}`, http.StatusUnauthorized, "unauthorized"},
		{"unknown", "s3cret", "application/json", `{"strategy":"nope"}`, http.StatusBadRequest, `unknown strategy "nope"; available: a, b`},
		{"fails to start", "s3cret", "application/json", `{"strategy":"broken"}`, http.StatusInternalServerError,
			"the new strategy did not start; a keeps serving: plugin broken exited before its handshake"},
		{"not JSON", "s3cret", "application/json", `strategy=a`, http.StatusBadRequest, `want {"strategy": "NAME"}`},
		{"no name", "s3cret", "application/json", `{"strategy":" "}`, http.StatusBadRequest, `want {"strategy": "NAME"}`},
		{"unknown field", "s3cret", "application/json", `{"strategy":"a","now":true}`, http.StatusBadRequest, "unknown field"},
		{"form", "s3cret", "text/plain", `{"strategy":"a"}`, http.StatusUnsupportedMediaType, "Content-Type: application/json"},
	} {
		status, rep := postSwitch(t, ts, c.token, c.contentType, c.body)
		if status != c.status || !strings.Contains(rep.Error, c.says) {
			t.Errorf("%s: %d %+v, want %d saying %q", c.name, status, rep, c.status, c.says)
		}
		if ts.Strategy() != Strategy(a) || ts.switching.Load() {
			t.Fatalf("%s: the strategy changed or a switch is left in progress", c.name)
		}
	}
	if st := ts.Strategy().Info().Name; st != "a" {
		t.Errorf("after the refusals %s serves, want a", st)
	}

	fixed := startServer(t, Options{Strategy: newNamedFake("a")})
	if status, rep := postSwitch(t, fixed, "", "application/json", `{"strategy":"a"}`); status != http.StatusNotImplemented {
		t.Errorf("a server without a builder: %d %+v, want 501", status, rep)
	}
}

// A strategy that never answers what it holds is stopped after the
// retirement wait (the task timeout, answerGrace and retireGrace), and its
// Close answers the rest; the client had its timeout reply, once.
func TestSwitchStrategyRetirementIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the retirement bound")
	}
	stuck := &stuckStrategy{held: make(chan taskproto.Done, 16)}
	b := newNamedFake("b")
	ts := startServer(t, Options{Strategy: stuck, TaskTimeout: 200 * time.Millisecond,
		Build: builderOf(map[string]Strategy{"b": b}, nil)})
	ws := dial(t, ts)
	sendText(t, ws, `{"id":"x","task":"sleep","n":1}`)
	waitFor(t, "the task with the stuck strategy", func() bool { return len(stuck.held) == 1 })
	start := time.Now()
	if _, err := ts.SwitchStrategy("b"); err != nil {
		t.Fatal(err)
	}
	wantError(t, readReply(t, ws), "x", taskproto.CodeTimeout)
	deadline := time.Now().Add(ts.retireWait() + guard)
	for stuck.closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	if stuck.closed.Load() != 1 {
		t.Fatalf("the stuck strategy was not closed within %s", ts.retireWait()+guard)
	}
	if took < ts.retireWait() {
		t.Errorf("closed after %s, before the retirement wait (%s)", took, ts.retireWait())
	}
	waitFor(t, "the switch to end", func() bool { return !ts.switching.Load() })
	ws.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, extra, err := ws.ReadMessage(); err == nil {
		t.Errorf("an extra reply: %s", extra)
	}
}

// stuckStrategy holds every task until Close, which answers them
// executor_failed, as a plugin's supervisor does.
type stuckStrategy struct {
	mu     sync.Mutex
	held   chan taskproto.Done
	closed atomic.Int32
}

func (s *stuckStrategy) Submit(_ context.Context, _ taskproto.Task, done taskproto.Done) {
	s.held <- done
}
func (s *stuckStrategy) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "stuck", Concurrency: 4}
}
func (s *stuckStrategy) Stats(context.Context) (taskproto.Stats, error) {
	return taskproto.Stats{}, nil
}
func (s *stuckStrategy) Ready() bool { return true }
func (s *stuckStrategy) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed.Add(1)
	for {
		select {
		case done := <-s.held:
			done(taskproto.Result{}, taskproto.Errorf(taskproto.CodeExecutorFailed, "stuck strategy closed"))
		default:
			return nil
		}
	}
}

// Many goroutines switch at once while tasks flow: one switch at a time
// succeeds, the others get ErrSwitchInProgress, and every task is
// answered once by the strategy it was handed to.
func TestSwitchStrategyConcurrent(t *testing.T) {
	const tasks = 400
	strategies := map[string]Strategy{}
	for _, n := range []string{"a", "b", "c"} {
		strategies[n] = readyAlwaysNamed{inproc(t), n}
	}
	ts := startServer(t, Options{Strategy: strategies["a"], MaxInflight: tasks, Build: builderOf(strategies, nil),
		Window: limit.New(8, 8, 8, time.Second)})
	ws := dial(t, ts)
	var (
		wg        sync.WaitGroup
		switched  atomic.Int32
		refused   atomic.Int32
		replies   = map[string]int{} // by request id
		by        = map[string]int{} // by the strategy that answered
		repliesMu sync.Mutex
	)
	wg.Go(func() {
		for i := range tasks {
			ws.SetWriteDeadline(time.Now().Add(guard))
			if err := ws.WriteJSON(map[string]any{"id": i, "task": "fib", "n": 20}); err != nil {
				t.Errorf("send: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for range tasks {
			ws.SetReadDeadline(time.Now().Add(guard))
			var r reply
			if err := ws.ReadJSON(&r); err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if !r.OK || r.Result == nil || *r.Result != "6765" || r.Strategy == nil {
				t.Errorf("reply %+v (error %+v)", r, r.Error)
				continue
			}
			repliesMu.Lock()
			replies[idOf(r)]++
			by[*r.Strategy]++
			repliesMu.Unlock()
		}
	})
	for i := range 6 {
		wg.Go(func() {
			for j := range 5 {
				_, err := ts.SwitchStrategy([]string{"a", "b", "c"}[(i+j)%3])
				switch {
				case err == nil:
					switched.Add(1)
				case errors.Is(err, ErrSwitchInProgress):
					refused.Add(1)
				default:
					t.Errorf("switch: %v", err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	if switched.Load() == 0 || switched.Load()+refused.Load() != 30 {
		t.Errorf("%d switches, %d refused, want some and 30 in all", switched.Load(), refused.Load())
	}
	if len(replies) != tasks {
		t.Errorf("%d distinct replies, want %d", len(replies), tasks)
	}
	for id, n := range replies {
		if n != 1 {
			t.Errorf("request %s had %d replies", id, n)
		}
	}
	if len(by) < 2 {
		t.Errorf("replies by strategy %v: the switches under load did not show", by)
	}
	t.Logf("%d switches, %d refused; replies by strategy %v", switched.Load(), refused.Load(), by)
	waitFor(t, "the last switch to end", func() bool { return !ts.switching.Load() })
}

// readyAlwaysNamed is an in-process strategy under another name.
type readyAlwaysNamed struct {
	Strategy
	name string
}

func (r readyAlwaysNamed) Info() taskproto.StrategyInfo {
	info := r.Strategy.Info()
	info.Name = r.name
	return info
}

// grepLines are the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
