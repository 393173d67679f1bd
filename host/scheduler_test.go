package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/taskproto"
)

// heldExecutor holds every task it is given until the test answers it,
// and records the order tasks reached it.
type heldExecutor struct {
	bounded []string // the kinds its Info says its concurrency bounds
	mu      sync.Mutex
	order   []string // task kinds as "flow/n"
	held    map[string]taskproto.Done
}

func newHeld() *heldExecutor { return &heldExecutor{held: map[string]taskproto.Done{}} }

func (h *heldExecutor) Submit(_ context.Context, t taskproto.Task, done taskproto.Done) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.order = append(h.order, t.Kind)
	h.held[t.Kind] = done
}

func (h *heldExecutor) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "held", BoundedKinds: h.bounded}
}
func (h *heldExecutor) Stats(context.Context) (taskproto.Stats, error) { return taskproto.Stats{}, nil }

// answer answers the held task named, as the strategy would.
func (h *heldExecutor) answer(t *testing.T, name string) {
	t.Helper()
	h.mu.Lock()
	done := h.held[name]
	delete(h.held, name)
	h.mu.Unlock()
	if done == nil {
		t.Fatalf("task %s is not with the strategy", name)
	}
	done(taskproto.Result{Value: name}, nil)
}

func (h *heldExecutor) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.order...)
}

// replies records the scheduler's answers.
type replies struct {
	mu  sync.Mutex
	got map[string][]error
}

func (r *replies) reply(t *task, res taskproto.Result, err error, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]error{}
	}
	r.got[t.task.Kind] = append(r.got[t.task.Kind], err)
}

func (r *replies) of(name string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[name]
}

func newSched(window, maxQueued int) (*Scheduler, *heldExecutor, *replies) {
	h, r := newHeld(), &replies{}
	return NewScheduler(h, limit.New(window, window, window, time.Second), maxQueued, r.reply, nil), h, r
}

// admit admits a task named flowName/i for flow f.
func admit(t *testing.T, s *Scheduler, f *flow, ctx context.Context, name string) *taskproto.Error {
	t.Helper()
	return s.Admit(&task{flow: f, ctx: ctx, task: taskproto.Task{Kind: name}, arrived: time.Now()})
}

func mustAdmit(t *testing.T, s *Scheduler, f *flow, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := admit(t, s, f, context.Background(), n); err != nil {
			t.Fatalf("admit %s: %v", n, err)
		}
	}
}

func wantOrder(t *testing.T, h *heldExecutor, want ...string) {
	t.Helper()
	if got := h.got(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handed over %v, want %v", got, want)
	}
}

// The strategy holds at most window tasks; each answer makes room for one.
func TestSchedulerWindow(t *testing.T) {
	s, h, r := newSched(2, 100)
	var a flow
	mustAdmit(t, s, &a, "a1", "a2", "a3", "a4")
	wantOrder(t, h, "a1", "a2")
	h.answer(t, "a1")
	wantOrder(t, h, "a1", "a2", "a3")
	if q, in, out, _ := s.Counts(); q != 1 || in != 2 || out != 3 {
		t.Errorf("counts %d queued, %d with the strategy, %d outstanding; want 1, 2, 3", q, in, out)
	}
	if errs := r.of("a1"); len(errs) != 1 || errs[0] != nil {
		t.Errorf("a1 answered %v", errs)
	}
}

// Kinds the strategy runs without a slot (inproc's sleeps) reach it at
// once, past a full window, and do not count in it: a window shrunk by
// CPU work must not turn 15 sleeps into waves.
func TestSchedulerUnboundedKinds(t *testing.T) {
	h, r := &heldExecutor{held: map[string]taskproto.Done{}, bounded: []string{"c1", "c2"}}, &replies{}
	s := NewScheduler(h, limit.New(1, 1, 1, time.Second), 100, r.reply, nil)
	var a flow
	mustAdmit(t, s, &a, "c1", "c2", "s1", "s2")
	wantOrder(t, h, "c1", "s1", "s2")
	if q, in, out, _ := s.Counts(); q != 1 || in != 1 || out != 4 {
		t.Errorf("counts %d queued, %d in the window, %d outstanding; want 1, 1, 4", q, in, out)
	}
	h.answer(t, "s1")
	wantOrder(t, h, "c1", "s1", "s2")
	h.answer(t, "c1")
	wantOrder(t, h, "c1", "s1", "s2", "c2")
	h.answer(t, "s2")
	h.answer(t, "c2")
	if q, in, out, _ := s.Counts(); q != 0 || in != 0 || out != 0 {
		t.Errorf("after every answer: %d queued, %d in the window, %d outstanding", q, in, out)
	}
	if len(r.of("s1")) != 1 || len(r.of("c2")) != 1 {
		t.Errorf("replies %v", r.got)
	}
}

// A connection that had nothing waiting is served before the queues of
// others, even those queued earlier; connections with queues take turns.
func TestSchedulerFairOrder(t *testing.T) {
	s, h, _ := newSched(1, 100)
	var a, b, c flow
	mustAdmit(t, s, &a, "a1", "a2", "a3", "a4")
	h.answer(t, "a1")
	wantOrder(t, h, "a1", "a2") // a's queue: a3, a4
	mustAdmit(t, s, &b, "b1", "b2")
	h.answer(t, "a2") // b had nothing waiting: b1 goes before a3
	wantOrder(t, h, "a1", "a2", "b1")
	mustAdmit(t, s, &c, "c1")
	h.answer(t, "b1") // and c1 before both queues
	h.answer(t, "c1")
	h.answer(t, "a3")
	h.answer(t, "b2")
	wantOrder(t, h, "a1", "a2", "b1", "c1", "a3", "b2", "a4")
}

// Past max_queued a connection may still queue its share; the others
// cannot lock it out, and nothing passes twice max_queued.
func TestSchedulerShare(t *testing.T) {
	s, _, _ := newSched(1, 4)
	var a, b flow
	mustAdmit(t, s, &a, "a1", "a2", "a3", "a4")
	if err := admit(t, s, &a, context.Background(), "a5"); err == nil || err.Code != taskproto.CodeOverloaded {
		t.Fatalf("a beyond max_queued: %v, want overloaded", err)
	}
	// b's share with two busy connections is 4/2.
	mustAdmit(t, s, &b, "b1", "b2")
	if err := admit(t, s, &b, context.Background(), "b3"); err == nil || err.Code != taskproto.CodeOverloaded {
		t.Fatalf("b beyond its share: %v, want overloaded", err)
	}
	var flows [8]flow
	admitted := 0
	for i := range flows {
		if admit(t, s, &flows[i], context.Background(), fmt.Sprint("f", i)) == nil {
			admitted++
		}
	}
	if _, _, out, _ := s.Counts(); out > 8 || admitted != 2 {
		t.Errorf("%d outstanding, %d of 8 new connections admitted; want at most 8 outstanding (twice max_queued), 2 admitted", out, admitted)
	}
}

// A queued task whose context ends is answered at once and never reaches
// the strategy.
func TestSchedulerExpireQueued(t *testing.T) {
	s, h, r := newSched(1, 100)
	var a flow
	mustAdmit(t, s, &a, "a1")
	ctx, cancel := context.WithCancel(context.Background())
	if err := admit(t, s, &a, ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	mustAdmit(t, s, &a, "a3")
	cancel()
	waitFor(t, "a2 to be answered", func() bool { return len(r.of("a2")) == 1 })
	if err := r.of("a2")[0]; !errors.Is(err, context.Canceled) {
		t.Errorf("a2 answered %v, want context.Canceled", err)
	}
	h.answer(t, "a1")
	wantOrder(t, h, "a1", "a3")
}

// A running task whose context ends and that the strategy does not answer
// is answered by the scheduler after answerGrace; the strategy's late
// answer is not a second one, and the slot is free only after it.
func TestSchedulerOverdue(t *testing.T) {
	s, h, r := newSched(1, 100)
	var a flow
	ctx, cancel := context.WithCancel(context.Background())
	if err := admit(t, s, &a, ctx, "stuck"); err != nil {
		t.Fatal(err)
	}
	mustAdmit(t, s, &a, "next")
	cancel()
	time.Sleep(answerGrace / 2)
	if n := len(r.of("stuck")); n != 0 {
		t.Fatalf("answered %d times before the grace was over", n)
	}
	waitFor(t, "the scheduler to answer the stuck task", func() bool { return len(r.of("stuck")) == 1 })
	wantOrder(t, h, "stuck") // its slot is still taken
	h.answer(t, "stuck")
	if n := len(r.of("stuck")); n != 1 {
		t.Errorf("stuck answered %d times", n)
	}
	wantOrder(t, h, "stuck", "next")
}

// A flow dropped with its connection loses its queued tasks unanswered.
func TestSchedulerDrop(t *testing.T) {
	s, h, r := newSched(1, 100)
	var a, b flow
	mustAdmit(t, s, &a, "a1", "a2", "a3")
	mustAdmit(t, s, &b, "b1")
	s.Drop(&a)
	h.answer(t, "a1")
	wantOrder(t, h, "a1", "b1")
	if len(r.of("a2")) != 0 || len(r.of("a3")) != 0 {
		t.Errorf("dropped tasks answered: %v %v", r.of("a2"), r.of("a3"))
	}
	if _, _, out, _ := s.Counts(); out != 1 {
		t.Errorf("%d outstanding, want 1 (b1)", out)
	}
}

// Close refuses new tasks and says when the last accepted one is answered.
func TestSchedulerClose(t *testing.T) {
	s, h, _ := newSched(4, 100)
	var a flow
	mustAdmit(t, s, &a, "a1")
	idle := s.Close()
	if err := admit(t, s, &a, context.Background(), "late"); err == nil || err.Code != taskproto.CodeShuttingDown {
		t.Errorf("admit after Close: %v, want shutting_down", err)
	}
	select {
	case <-idle:
		t.Fatal("idle with a task outstanding")
	default:
	}
	h.answer(t, "a1")
	select {
	case <-idle:
	case <-time.After(guard):
		t.Fatal("not idle after the last answer")
	}
}

// The window grows while the strategy's tasks wait little and the window is
// full, and shrinks when they wait long: it keeps a busy strategy fed
// without building a queue inside it.
func TestSchedulerWindowAdapts(t *testing.T) {
	h, r := newHeld(), &replies{}
	s := NewScheduler(h, NewWindow(2, 2, 64, time.Millisecond), 1000, r.reply, nil)
	var a flow
	for i := range 200 {
		mustAdmit(t, s, &a, fmt.Sprint("a", i))
	}
	answered := 0
	answerAll := func(wait time.Duration) {
		got := h.got()
		for _, name := range got[answered:] {
			h.mu.Lock()
			done := h.held[name]
			delete(h.held, name)
			h.mu.Unlock()
			if done != nil {
				done(taskproto.Result{Queue: wait}, nil)
			}
		}
		answered = len(got)
	}
	for range 5 {
		answerAll(0)
	}
	if _, _, _, w := s.Counts(); w <= 4 {
		t.Fatalf("window %d after quick answers, want grown beyond 4", w)
	}
	_, _, _, grown := s.Counts()
	for i := range 200 {
		mustAdmit(t, s, &a, fmt.Sprint("b", i))
	}
	for range 30 {
		answerAll(10 * time.Millisecond)
	}
	if _, _, _, w := s.Counts(); w >= grown {
		t.Errorf("window %d after slow answers, want below %d", w, grown)
	}
}
