package host

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/taskproto"
)

// Plain-text replies come back in request order even when later requests
// finish first, and immediate error replies wait their turn too.
func TestPlainRepliesInRequestOrder(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)

	frames := []string{"1", "2", "bogus", "3", "4", "5"}
	for _, fr := range frames {
		sendText(t, ws, fr)
	}
	calls := f.waitStarted(t, 5)
	for n := int64(5); n >= 1; n-- {
		calls[n*1000].finish(t, fmt.Sprintf("done %d", n))
		time.Sleep(2 * time.Millisecond) // let the reply reach the writer before the next
	}
	want := []string{"done 1", "done 2", "error: unknown_task", "done 3", "done 4", "done 5"}
	for i, w := range want {
		got := readText(t, ws)
		if !strings.HasPrefix(got, w) {
			t.Fatalf("reply %d = %q, want %q...", i, got, w)
		}
	}
}

// JSON replies are not held behind each other: each comes as soon as its
// task ends.
func TestJSONRepliesOutOfOrder(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)

	for i := 1; i <= 4; i++ {
		sendText(t, ws, fmt.Sprintf(`{"id":%d,"task":"sleep","n":%d}`, i, i))
	}
	calls := f.waitStarted(t, 4)
	for n := int64(4); n >= 1; n-- {
		calls[n].finish(t, fmt.Sprint("v", n))
		r := readReply(t, ws)
		wantOK(t, r, fmt.Sprint(n), fmt.Sprint("v", n))
		if r.Task != "sleep" || r.Strategy == nil || *r.Strategy != "fake" || r.Worker == nil || *r.Worker != "fake" || r.QueueUS == nil || r.RunUS == nil {
			t.Fatalf("reply %+v lacks task, strategy, worker or timings", r)
		}
	}
}

// On one connection, plain replies keep their order among themselves while
// JSON replies overtake them.
func TestMixedPlainAndJSON(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)

	sendText(t, ws, "1")                               // plain, N=1000
	sendText(t, ws, `{"id":"a","task":"sleep","n":2}`) // JSON, N=2
	sendText(t, ws, "3")                               // plain, N=3000
	sendText(t, ws, `{"id":"b","task":"sleep","n":4}`) // JSON, N=4
	calls := f.waitStarted(t, 4)

	calls[4].finish(t, "B")
	wantOK(t, readReply(t, ws), "b", "B")
	calls[3000].finish(t, "three") // held behind plain 1
	calls[2].finish(t, "A")
	wantOK(t, readReply(t, ws), "a", "A")
	calls[1000].finish(t, "one")
	if got := readText(t, ws); got != "one" {
		t.Fatalf("first plain reply %q, want one", got)
	}
	if got := readText(t, ws); got != "three" {
		t.Fatalf("second plain reply %q, want three", got)
	}
}

// Many connections pipelining at once through the real inproc strategy:
// every id is answered exactly once, on its own connection.
func TestManyConnectionsPipelined(t *testing.T) {
	const conns, perConn = 50, 20
	ts := startServer(t, Options{Strategy: inproc(t), MaxInflight: perConn, MaxQueued: conns * perConn, MaxConnections: conns})

	tasks := []string{`"task":"noop"`, `"task":"noop"`, `"task":"fib","n":30`, `"task":"cpu","n":1000`, `"task":"io","n":100`}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		ws := dial(t, ts)
		wg.Go(func() {
			writeErr := make(chan error, 1)
			go func() {
				for i := range perConn {
					frame := fmt.Sprintf(`{"id":"c%d-%d",%s}`, c, i, tasks[i%len(tasks)])
					if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
						writeErr <- err
						return
					}
				}
				writeErr <- nil
			}()
			seen := make(map[string]int)
			ws.SetReadDeadline(time.Now().Add(guard))
			for range perConn {
				_, data, err := ws.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("conn %d: read after %d replies: %v", c, len(seen), err)
					return
				}
				var r struct {
					ID    string          `json:"id"`
					OK    bool            `json:"ok"`
					Error json.RawMessage `json:"error"`
				}
				if err := json.Unmarshal(data, &r); err != nil || !r.OK {
					errs <- fmt.Errorf("conn %d: bad reply %s", c, data)
					return
				}
				if !strings.HasPrefix(r.ID, fmt.Sprintf("c%d-", c)) {
					errs <- fmt.Errorf("conn %d: got reply for another connection: %s", c, data)
					return
				}
				seen[r.ID]++
			}
			if err := <-writeErr; err != nil {
				errs <- fmt.Errorf("conn %d: write: %v", c, err)
				return
			}
			for i := range perConn {
				if id := fmt.Sprintf("c%d-%d", c, i); seen[id] != 1 {
					errs <- fmt.Errorf("conn %d: id %s answered %d times", c, id, seen[id])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "queue empty after every reply", func() bool { return ts.outstanding() == 0 })
}

func TestInflightLimitPerConnection(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f, MaxInflight: 2})
	ws := dial(t, ts)

	for _, id := range []string{"a", "b", "c"} {
		sendText(t, ws, fmt.Sprintf(`{"id":%q,"task":"sleep","n":%d}`, id, id[0]))
	}
	r := readReply(t, ws)
	wantError(t, r, "c", taskproto.CodeOverloaded)
	if !strings.Contains(r.Error.Message, "max_inflight_per_conn") {
		t.Errorf("overloaded message %q does not name max_inflight_per_conn", r.Error.Message)
	}
	// Another connection has its own slots.
	ws2 := dial(t, ts)
	sendText(t, ws2, `{"id":"other","task":"sleep","n":1}`)
	calls := f.waitStarted(t, 3)
	calls[1].finish(t, "x")
	wantOK(t, readReply(t, ws2), "other", "x")

	calls['a'].finish(t, "A")
	calls['b'].finish(t, "B")
	got := map[string]bool{}
	for range 2 {
		got[idOf(readReply(t, ws))] = true
	}
	if !got["a"] || !got["b"] {
		t.Fatalf("replies %v, want a and b", got)
	}
	// The slots come back once the tasks are released.
	waitFor(t, "slots released", func() bool { return ts.outstanding() == 0 && ts.inflight() == 0 })
	sendText(t, ws, `{"id":"d","task":"noop"}`)
	wantOK(t, readReply(t, ws), "d", "noop")
}

func TestMaxQueuedAcrossConnections(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f, MaxInflight: 10, MaxQueued: 2})
	ws1, ws2 := dial(t, ts), dial(t, ts)

	sendText(t, ws1, `{"id":1,"task":"sleep","n":1}`)
	f.waitStarted(t, 1)[1].finish(t, "one") // a finished task frees its place
	wantOK(t, readReply(t, ws1), "1", "one")
	waitFor(t, "queue empty", func() bool { return ts.outstanding() == 0 })

	sendText(t, ws1, `{"id":2,"task":"sleep","n":2}`)
	sendText(t, ws2, `{"id":3,"task":"sleep","n":3}`)
	calls := f.waitStarted(t, 2)
	sendText(t, ws2, `{"id":4,"task":"noop"}`)
	r := readReply(t, ws2)
	wantError(t, r, "4", taskproto.CodeOverloaded)
	if !strings.Contains(r.Error.Message, "max_queued") {
		t.Errorf("overloaded message %q does not name max_queued", r.Error.Message)
	}
	sendText(t, ws1, "fib") // plain-text requests are refused the same way
	if got := readText(t, ws1); !strings.HasPrefix(got, "error: overloaded") {
		t.Fatalf("plain reply %q, want error: overloaded", got)
	}
	calls[2].finish(t, "two")
	calls[3].finish(t, "three")
	wantOK(t, readReply(t, ws1), "2", "two")
	wantOK(t, readReply(t, ws2), "3", "three")
}

func TestTaskTimeout(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f, TaskTimeout: 200 * time.Millisecond})
	ws := dial(t, ts)

	sendText(t, ws, `{"id":"slow","task":"sleep","n":1}`)
	r := readReply(t, ws)
	wantError(t, r, "slow", taskproto.CodeTimeout)
	if !strings.Contains(r.Error.Message, "timeout_sec") {
		t.Errorf("timeout message %q does not mention timeout_sec", r.Error.Message)
	}
	if f.cancelled.Load() != 1 {
		t.Errorf("strategy saw %d cancellations, want 1", f.cancelled.Load())
	}
	sendText(t, ws, "5") // plain: sleep 5 s, past the 200 ms deadline
	if got := readText(t, ws); !strings.HasPrefix(got, "error: timeout: ") {
		t.Errorf("plain reply %q, want error: timeout", got)
	}
}

func healthCode(s *Server) int {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Host = "localhost"
	s.http.Handler.ServeHTTP(rec, req)
	return rec.Code
}

// Shutdown lets the quick task finish, fails the blocked one with
// shutting_down once the grace period is over, refuses new work, and closes
// the WebSocket with 1001.
func TestShutdownDrains(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)
	if code, _ := get(t, ts.httpURL()+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("/healthz before shutdown: %d", code)
	}

	sendText(t, ws, `{"id":"blocked","task":"sleep","n":1}`)
	sendText(t, ws, `{"id":"quick","task":"sleep","n":2}`)
	calls := f.waitStarted(t, 2)

	type result struct {
		frames []string
		err    error
	}
	read := make(chan result, 1)
	go func() {
		frames, err := readUntilClose(ws)
		read <- result{frames, err}
	}()

	shut := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		ts.Shutdown(300 * time.Millisecond)
		shut <- time.Since(start)
	}()
	waitFor(t, "draining", ts.draining.Load)
	if code := healthCode(ts.Server); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while draining: %d, want 503", code)
	}
	// Wait until the scheduler refuses tasks, so that this request is
	// refused rather than run (either way it must fail with shutting_down).
	waitFor(t, "scheduler closed", func() bool {
		ts.sched.mu.Lock()
		defer ts.sched.mu.Unlock()
		return ts.sched.closed
	})
	ws.SetWriteDeadline(time.Now().Add(guard))
	lateSent := ws.WriteMessage(websocket.TextMessage, []byte(`{"id":"late","task":"noop"}`)) == nil
	calls[2].finish(t, "quick done")

	var took time.Duration
	select {
	case took = <-shut:
	case <-time.After(guard):
		t.Fatal("Shutdown(300ms) did not return")
	}
	if took < 300*time.Millisecond {
		t.Errorf("Shutdown returned after %s, before the 300ms grace for the blocked task", took)
	}
	if code := healthCode(ts.Server); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after shutdown: %d, want 503", code)
	}
	res := <-read
	replies := map[string]string{}
	for _, fr := range res.frames {
		r := decodeReply(t, fr)
		if _, dup := replies[idOf(r)]; dup {
			t.Errorf("id %s answered twice", idOf(r))
		}
		switch {
		case r.OK:
			replies[idOf(r)] = "ok:" + *r.Result
		case r.Error != nil:
			replies[idOf(r)] = string(r.Error.Code)
		}
	}
	if replies["quick"] != "ok:quick done" {
		t.Errorf("quick task reply %q, want ok", replies["quick"])
	}
	if replies["blocked"] != string(taskproto.CodeShuttingDown) {
		t.Errorf("blocked task reply %q, want shutting_down (frames %q, end %v)", replies["blocked"], res.frames, res.err)
	}
	if late, ok := replies["late"]; lateSent && ok && late != string(taskproto.CodeShuttingDown) {
		t.Errorf("request sent while draining got %q, want shutting_down", late)
	}
	if !websocket.IsCloseError(res.err, websocket.CloseGoingAway) {
		t.Errorf("connection ended with %v, want close 1001", res.err)
	}
	// New connections are refused.
	if _, _, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
}

// Shutdown with no tasks blocked does not wait for the grace period, and
// each connection gets 1001 right away.
func TestShutdownIdle(t *testing.T) {
	t.Run("no connections", func(t *testing.T) {
		ts := startServer(t, Options{})
		if took := shutdownWithin(t, ts.Server, time.Minute, guard); took > 3*time.Second {
			t.Errorf("Shutdown with nothing to do took %s", took)
		}
	})
	t.Run("idle connection", func(t *testing.T) {
		ts := startServer(t, Options{Strategy: inproc(t)})
		ws := dial(t, ts)
		sendText(t, ws, "cpu")
		if got := readText(t, ws); got != "499999500000" {
			t.Fatalf("cpu = %q", got)
		}
		read := make(chan error, 1)
		go func() {
			_, err := readUntilClose(ws)
			read <- err
		}()
		if took := shutdownWithin(t, ts.Server, time.Minute, guard); took > 3*time.Second {
			t.Errorf("Shutdown with one idle connection took %s", took)
		}
		if err := <-read; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("connection ended with %v, want close 1001", err)
		}
	})
	t.Run("client that never reads", func(t *testing.T) {
		ts := startServer(t, Options{})
		dial(t, ts) // the close frame is never answered
		if took := shutdownWithin(t, ts.Server, time.Minute, guard); took > 5*time.Second {
			t.Errorf("Shutdown took %s", took)
		}
	})
}

// A client that goes away with tasks in flight cancels them, and nothing is
// left behind.
func TestClientDisconnectCancelsTasks(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		sendText(t, ws, fmt.Sprintf(`{"id":%d,"task":"sleep","n":%d}`, i, i))
	}
	sendText(t, ws, "7") // a plain one too
	calls := f.waitStarted(t, 4)
	ws.Close()
	for _, c := range calls {
		c.wait(t) // returns only through ctx.Done
	}
	if n := f.cancelled.Load(); n != 4 {
		t.Errorf("%d tasks saw their context cancelled, want 4", n)
	}
	waitFor(t, "connection gone", func() bool { return ts.connCount() == 0 })
	// Every task's goroutine drops its reply and frees its place.
	waitFor(t, "queue empty", func() bool { return ts.outstanding() == 0 })
	if took := shutdownWithin(t, ts.Server, time.Second, guard); took > 900*time.Millisecond {
		t.Errorf("Shutdown took %s with no tasks left", took)
	}
	<-ts.served
	ts.served <- nil // for the cleanup
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestBinaryFrameIsBadRequest(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws := dial(t, ts)
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte(`{"id":1,"task":"noop"}`)); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, ws)
	wantError(t, r, "null", taskproto.CodeBadRequest)
	if !strings.Contains(r.Error.Message, "binary") {
		t.Errorf("message %q does not say binary", r.Error.Message)
	}
	sendText(t, ws, `{"id":2,"task":"noop"}`)
	wantOK(t, readReply(t, ws), "2", "")
	sendText(t, ws, "cpu")
	if got := readText(t, ws); got != "499999500000" {
		t.Errorf("cpu after binary frame = %q", got)
	}
}

func TestBadInputKeepsConnection(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws := dial(t, ts)
	cases := []struct {
		frame, id string
		code      taskproto.Code
	}{
		{`{"id":1,`, "null", taskproto.CodeBadRequest},
		{`{"id":[1],"task":"noop"}`, "null", taskproto.CodeBadRequest},
		{`{"id":"x","task":"dance"}`, "x", taskproto.CodeUnknownTask},
		{`{"id":"y","task":"fib","n":100001}`, "y", taskproto.CodeOutOfRange},
		{"{\"id\":\"z\",\"task\":\"noop\",\"n\":\"\xff\"}", "null", taskproto.CodeBadRequest},
	}
	for _, c := range cases {
		sendText(t, ws, c.frame)
		wantError(t, readReply(t, ws), c.id, c.code)
	}
	sendText(t, ws, `{"id":"fine","task":"fib","n":10}`)
	wantOK(t, readReply(t, ws), "fine", "55")
}

func TestFrameTooBigCloses1009(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t), MaxFrameBytes: 1024})
	ws := dial(t, ts)
	sendText(t, ws, strings.Repeat(" ", 2048)+"cpu")
	_, err := readUntilClose(ws)
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("connection ended with %v, want close 1009", err)
	}
	waitFor(t, "connection gone", func() bool { return ts.connCount() == 0 })
}

// A client that answers no ping (gorilla answers only while reading) is
// dropped after timeout_sec.
func TestIdleConnectionClosed(t *testing.T) {
	ts := startServer(t, Options{TaskTimeout: 300 * time.Millisecond})
	ws := dial(t, ts)
	waitFor(t, "connection registered", func() bool { return ts.connCount() == 1 })
	waitFor(t, "idle connection dropped", func() bool { return ts.connCount() == 0 })
	_, err := readUntilClose(ws)
	if err == nil || isTimeout(err) {
		t.Fatalf("read on a dropped connection: %v, want a connection error", err)
	}
}

// A client that keeps reading answers the pings and stays connected beyond
// timeout_sec without sending anything.
func TestPongsKeepConnectionAlive(t *testing.T) {
	const idle = 500 * time.Millisecond
	ts := startServer(t, Options{Strategy: inproc(t), TaskTimeout: idle})
	ws := dial(t, ts)
	frames := make(chan string, 1)
	readErr := make(chan error, 1)
	go func() {
		ws.SetReadDeadline(time.Now().Add(guard))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			frames <- string(data)
		}
	}()
	select {
	case err := <-readErr:
		t.Fatalf("connection ended while idle: %v", err)
	case <-time.After(4 * idle):
	}
	if n := ts.connCount(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	sendText(t, ws, "cpu")
	select {
	case got := <-frames:
		if got != "499999500000" {
			t.Fatalf("cpu = %q", got)
		}
	case err := <-readErr:
		t.Fatalf("connection ended: %v", err)
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, Options{MaxConnections: 2})
	ws1 := dial(t, ts)
	dial(t, ts)
	waitFor(t, "two connections", func() bool { return ts.connCount() == 2 })
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third dial: err %v, resp %v; want HTTP 503", err, resp)
	}
	ws1.Close()
	waitFor(t, "a connection freed", func() bool { return ts.connCount() == 1 })
	dial(t, ts)
}

func TestAuthAndOriginOnUpgrade(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t), AuthToken: "s3cret", AllowedOrigins: []string{"https://lab.example"}})
	status := func(url string, h http.Header) int {
		ws, resp, err := websocket.DefaultDialer.Dial(url, h)
		if err == nil {
			ws.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return resp.StatusCode
	}
	bearer := http.Header{"Authorization": {"Bearer s3cret"}}
	for _, c := range []struct {
		name   string
		url    string
		header http.Header
		want   int
	}{
		{"no token", ts.wsURL(), nil, http.StatusUnauthorized},
		{"wrong token", ts.wsURL(), http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized},
		{"bearer", ts.wsURL(), bearer, http.StatusSwitchingProtocols},
		{"query token", ts.wsURL() + "?token=s3cret", nil, http.StatusSwitchingProtocols},
		{"root path", "ws://" + ts.addr + "/", bearer, http.StatusSwitchingProtocols},
		{"foreign origin", ts.wsURL(), http.Header{"Authorization": {"Bearer s3cret"}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"allowed origin", ts.wsURL(), http.Header{"Authorization": {"Bearer s3cret"}, "Origin": {"https://lab.example"}}, http.StatusSwitchingProtocols},
		{"same origin", ts.wsURL(), http.Header{"Authorization": {"Bearer s3cret"}, "Origin": {"http://" + ts.addr}}, http.StatusSwitchingProtocols},
	} {
		if got := status(c.url, c.header); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}
	if code, _ := get(t, ts.httpURL()+"/stats", nil); code != http.StatusUnauthorized {
		t.Errorf("/stats without token: %d, want 401", code)
	}
	if code, _ := get(t, ts.httpURL()+"/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz needs no token, got %d", code)
	}
}

func TestStatsAndHealth(t *testing.T) {
	f := newFake()
	ts := startServer(t, Options{Strategy: f})
	ws := dial(t, ts)
	sendText(t, ws, `{"id":1,"task":"sleep","n":1}`)
	call := f.waitStarted(t, 1)[1]

	code, body := get(t, ts.httpURL()+"/stats", nil)
	var st HostStats
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/stats: %d %q (%v)", code, body, err)
	}
	if st.Strategy != "fake" || st.Connections != 1 || st.Outstanding != 1 || st.InStrategy != 1 || st.Queued != 0 || st.Draining {
		t.Errorf("/stats = %+v, want strategy fake, 1 connection, 1 task outstanding, with the strategy", st)
	}
	call.finish(t, "x")
	wantOK(t, readReply(t, ws), "1", "x")

	f.notReady.Store(true)
	if code, _ := get(t, ts.httpURL()+"/healthz", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with strategy not ready: %d, want 503", code)
	}
	f.notReady.Store(false)
	if code, _ := get(t, ts.httpURL()+"/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", code)
	}
}
