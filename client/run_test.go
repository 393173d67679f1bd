package client

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fake is a WebSocket server speaking the host's protocol in-process, with
// knobs to misbehave.
type fake struct {
	fibN       int64
	wrong      map[string]string // task → result to send instead of the right one
	dropNth    int               // never answer a connection's n-th request (1-based)
	closeAfter int               // drop the TCP connection on reading the n-th frame
	silent     bool              // answer nothing
	delay      time.Duration     // json: answer each after a random delay up to this
	duplicate  bool              // json: answer each twice
	token      string            // require this bearer token
}

func (f fake) start(t testing.TB) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			ws.WriteMessage(websocket.TextMessage, b)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		for n := 1; ; n++ {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if f.closeAfter > 0 && n >= f.closeAfter {
				ws.NetConn().Close()
				return
			}
			if f.silent || n == f.dropNth {
				continue
			}
			reply := f.reply(data)
			if f.delay > 0 {
				wg.Go(func() {
					time.Sleep(rand.N(f.delay))
					write(reply)
				})
				continue
			}
			write(reply)
			if f.duplicate {
				write(reply)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func (f fake) result(task string, n int64, hasN bool) string {
	if w, ok := f.wrong[task]; ok {
		return w
	}
	switch task {
	case "fib":
		if !hasN {
			n = f.fibN
		}
		return Fib(n).String()
	case "cpu":
		if !hasN {
			n = 1_000_000
		}
		return SumBelow(n).String()
	case "io":
		if !hasN {
			n = 1_000_000
		}
		return strconv.FormatInt(n, 10)
	case "sleep":
		return "Request done"
	}
	return ""
}

func (f fake) reply(data []byte) []byte {
	if data[0] != '{' {
		word := string(data)
		if _, err := strconv.Atoi(word); err == nil {
			word = "sleep"
		} else if word != "fib" && word != "cpu" && word != "io" {
			return []byte("error: unknown_task: unknown request " + strconv.Quote(word))
		}
		return []byte(f.result(word, 0, false))
	}
	var req struct {
		ID   json.RawMessage `json:"id"`
		Task string          `json:"task"`
		N    *int64          `json:"n"`
	}
	json.Unmarshal(data, &req)
	var n int64
	if req.N != nil {
		n = *req.N
	}
	res := f.result(req.Task, n, req.N != nil)
	b, _ := json.Marshal(map[string]any{"id": req.ID, "task": req.Task, "ok": true, "result": res,
		"strategy": "fake", "worker": "w0", "queue_us": 3, "run_us": 5})
	return b
}

// noLeak fails the test if goroutines started during it outlive it.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func mustRun(t *testing.T, ctx context.Context, o Options) *Summary {
	t.Helper()
	s, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunSequencePlain(t *testing.T) {
	noLeak(t)
	url := fake{fibN: 5000}.start(t)
	var verbose bytes.Buffer
	o := Options{URL: url, Clients: 20, Tasks: []string{"fib", "cpu", "io", "0"}, FibN: 5000, Verbose: &verbose}
	s := mustRun(t, context.Background(), o)
	if s.Sent != 80 || s.OK != 80 || s.Replies != 80 || s.Wrong+s.Missing+s.Unsent+s.ConnFailures != 0 || s.Connections != 20 {
		t.Fatalf("%+v", s)
	}
	if s.Mode != ModeSequence || s.Protocol != "plain" || s.Throughput <= 0 || s.WallSeconds <= 0 {
		t.Errorf("%+v", s)
	}
	for _, k := range []string{"fib", "cpu", "io", "sleep"} {
		if s.Latency[k].Count != 20 {
			t.Errorf("latency %s %+v", k, s.Latency[k])
		}
	}
	if s.Latency["all"].Count != 80 || s.Latency["all"].P50 <= 0 || s.Queue != nil || s.SendLag != nil {
		t.Errorf("latency %+v queue %v", s.Latency["all"], s.Queue)
	}
	if s.ClientSeconds.Count != 20 || s.ClientSeconds.Max <= 0 {
		t.Errorf("client seconds %+v", s.ClientSeconds)
	}
	if n := strings.Count(verbose.String(), " took "); n != 20 {
		t.Errorf("%d verbose lines:\n%s", n, verbose.String())
	}
	if code, reasons := s.Exit(Thresholds{}); code != ExitOK {
		t.Errorf("exit %d %q", code, reasons)
	}
}

func TestRunJSONPipelinedDuration(t *testing.T) {
	noLeak(t)
	url := fake{fibN: 5000, delay: time.Millisecond}.start(t)
	o := Options{URL: url, Clients: 4, Tasks: []string{"noop", "cpu", "fib", "sleep"}, FibN: 5000, Protocol: "json",
		Pipeline: 8, Duration: 300 * time.Millisecond, N: map[string]int64{"fib": 90, "cpu": 1000}}
	s := mustRun(t, context.Background(), o)
	if s.Sent < 100 || s.OK != s.Sent || s.Replies != s.Sent || s.Wrong+s.Missing+s.Unsent+s.ConnFailures != 0 {
		t.Fatalf("%+v", s)
	}
	if s.Mode != ModeDuration || s.WallSeconds < 0.3 || s.WallSeconds > 2 {
		t.Errorf("mode %s wall %v", s.Mode, s.WallSeconds)
	}
	if s.Queue["noop"].Count == 0 || s.Run["all"].Count != s.OK || s.Run["cpu"].P50 != 0.005 || s.Queue["fib"].Max != 0.003 {
		t.Errorf("queue %+v run %+v", s.Queue, s.Run)
	}
}

func TestRunRate(t *testing.T) {
	noLeak(t)
	url := fake{}.start(t)
	o := Options{URL: url, Clients: 3, Tasks: []string{"noop"}, Protocol: "json", Pipeline: 4,
		Rate: 400, Duration: 500 * time.Millisecond}
	s := mustRun(t, context.Background(), o)
	if s.Sent != 200 || s.OK != 200 || s.Unsent+s.Missing+s.Wrong != 0 {
		t.Fatalf("sent %d ok %d, want exactly rate × duration = 200: %+v", s.Sent, s.OK, s)
	}
	if s.Mode != ModeRate || s.SendLag == nil || s.SendLag.Count != 200 || s.Latency["all"].Count != 200 {
		t.Errorf("%+v lag %+v", s, s.SendLag)
	}
	if s.Latency["all"].Min < s.SendLag.Min {
		t.Errorf("latency %+v shorter than its send lag %+v", s.Latency["all"], s.SendLag)
	}
}

// TestRunRateStalled: a server that never answers makes every scheduled
// request count, sent (missing) or not (unsent): coordinated omission is
// not hidden.
func TestRunRateStalled(t *testing.T) {
	noLeak(t)
	url := fake{silent: true}.start(t)
	o := Options{URL: url, Clients: 2, Tasks: []string{"noop"}, Protocol: "json", Pipeline: 2,
		Rate: 100, Duration: 300 * time.Millisecond, ReplyTimeout: 200 * time.Millisecond}
	s := mustRun(t, context.Background(), o)
	if s.Sent != 4 || s.Missing != 4 || s.Unsent != 26 || s.OK != 0 {
		t.Fatalf("sent %d missing %d unsent %d, want 4, 4, 26", s.Sent, s.Missing, s.Unsent)
	}
	if code, _ := s.Exit(Thresholds{}); code != ExitIncorrect {
		t.Errorf("exit %d", code)
	}
}

func TestRunWrongAndMissing(t *testing.T) {
	noLeak(t)
	url := fake{fibN: 10, wrong: map[string]string{"cpu": "42"}, dropNth: 2}.start(t)
	o := Options{URL: url, Clients: 5, Tasks: []string{"cpu", "io", "fib"}, FibN: 10, ReplyTimeout: 200 * time.Millisecond}
	start := time.Now()
	s := mustRun(t, context.Background(), o)
	if s.Wrong != 5 || s.Missing != 5 || s.Unsent != 5 || s.Sent != 10 || s.OK != 0 {
		t.Fatalf("wrong %d missing %d unsent %d sent %d ok %d", s.Wrong, s.Missing, s.Unsent, s.Sent, s.OK)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v with a 200ms reply timeout", time.Since(start))
	}
	if len(s.WrongSamples) == 0 || !strings.Contains(s.WrongSamples[0], `cpu: got "42", want "499999500000"`) {
		t.Errorf("wrong samples %q", s.WrongSamples)
	}
	if len(s.FailureSamples) == 0 || !strings.Contains(s.FailureSamples[0], "(io) within 200ms") {
		t.Errorf("failure samples %q", s.FailureSamples)
	}
	if code, _ := s.Exit(Thresholds{}); code != ExitIncorrect {
		t.Errorf("exit %d", code)
	}
}

func TestRunDuplicateReplies(t *testing.T) {
	noLeak(t)
	url := fake{duplicate: true}.start(t)
	o := Options{URL: url, Clients: 2, Tasks: []string{"noop", "noop"}, Protocol: "json"}
	s := mustRun(t, context.Background(), o)
	if s.OK != 4 || s.Wrong < 2 {
		t.Fatalf("ok %d wrong %d: %+v", s.OK, s.Wrong, s)
	}
	// The duplicate of a connection's last reply comes before the host's
	// close frame: it is read, and it is wrong like the others.
	if s.Wrong != 4 {
		t.Errorf("wrong %d, want every duplicate (4): %q", s.Wrong, s.WrongSamples)
	}
}

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr + "/ws"
}

func TestRunConnectionFailures(t *testing.T) {
	noLeak(t)
	t.Run("closed port", func(t *testing.T) {
		s := mustRun(t, context.Background(), Options{URL: closedPort(t), Clients: 3, Tasks: []string{"cpu", "io"}})
		if s.ConnFailures != 3 || s.Connections != 0 || s.Unsent != 6 || s.Sent != 0 {
			t.Fatalf("%+v", s)
		}
		if !strings.Contains(s.FailureSamples[0], "dial") {
			t.Errorf("%q", s.FailureSamples)
		}
	})
	t.Run("closed port, open loop", func(t *testing.T) {
		s := mustRun(t, context.Background(), Options{URL: closedPort(t), Clients: 2, Tasks: []string{"noop"},
			Protocol: "json", Rate: 100, Duration: 200 * time.Millisecond})
		if s.ConnFailures != 2 || s.Unsent != 20 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("dropped mid-run", func(t *testing.T) {
		url := fake{closeAfter: 2}.start(t)
		s := mustRun(t, context.Background(), Options{URL: url, Clients: 3, Tasks: []string{"cpu", "io", "cpu"}})
		if s.ConnFailures != 3 || s.OK != 3 || s.Missing != 3 || s.Unsent != 3 {
			t.Fatalf("%+v", s)
		}
		if !strings.Contains(s.FailureSamples[0], "connection lost") {
			t.Errorf("%q", s.FailureSamples)
		}
	})
	t.Run("unauthorized", func(t *testing.T) {
		url := fake{token: "s3cret"}.start(t)
		s := mustRun(t, context.Background(), Options{URL: url, Clients: 1, Tasks: []string{"io"}})
		if s.ConnFailures != 1 || !strings.Contains(s.FailureSamples[0], "401") {
			t.Fatalf("%+v", s)
		}
		s = mustRun(t, context.Background(), Options{URL: url, Token: "s3cret", Clients: 1, Tasks: []string{"io"}})
		if s.ConnFailures != 0 || s.OK != 1 {
			t.Fatalf("with the token: %+v", s)
		}
	})
}

func TestRunCancel(t *testing.T) {
	noLeak(t)
	url := fake{silent: true}.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	s := mustRun(t, ctx, Options{URL: url, Clients: 4, Tasks: []string{"noop"}, Protocol: "json", Pipeline: 3,
		Duration: time.Hour})
	if took := time.Since(start); took > cancelGrace+2*time.Second {
		t.Errorf("cancelled run took %v", took)
	}
	if !s.Interrupted || s.Missing != 12 || s.Unsent != 0 {
		t.Errorf("interrupted %v missing %d unsent %d", s.Interrupted, s.Missing, s.Unsent)
	}
	if code, _ := s.Exit(Thresholds{}); code != ExitIncorrect {
		t.Errorf("exit %d", code)
	}
}

func TestRunRampUp(t *testing.T) {
	url := fake{}.start(t)
	start := time.Now()
	s := mustRun(t, context.Background(), Options{URL: url, Clients: 5, Tasks: []string{"io"}, RampUp: 250 * time.Millisecond})
	if took := time.Since(start); took < 200*time.Millisecond || s.OK != 5 {
		t.Errorf("took %v, ok %d", took, s.OK)
	}
}

func TestRunBadOptions(t *testing.T) {
	if s, err := Run(context.Background(), Options{}); err == nil || s != nil {
		t.Fatalf("Run with no options: %v %v", s, err)
	}
}
