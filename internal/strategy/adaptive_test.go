package strategy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

func newAdaptive(t *testing.T, settings map[string]string) *Adaptive {
	t.Helper()
	s, err := taskproto.ApplyKeys(settings, AdaptiveKeys)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAdaptive(taskproto.Config{Settings: s, DataDir: t.TempDir(), LargeFileName: "large_file.txt"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func code(err error) taskproto.Code {
	var te *taskproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return ""
}

// fakeClock is a clock that moves only when the test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	c.t = time.Unix(1_000_000, 0).Add(d)
	c.mu.Unlock()
}

func (a *Adaptive) dropping() bool {
	a.waiting.Lock()
	defer a.waiting.Unlock()
	return a.codel.dropping
}

// held submits a cpu task that holds its slot until its gate opens, and
// waits until it has the slot.
func held(t *testing.T, a *Adaptive) (*gateCtx, <-chan outcome) {
	t.Helper()
	g := newGate(t)
	ch := execAsync(a, g, cpuOne)
	g.waitStarted(t, "the slot holder")
	return g, ch
}

// Through the strategy, on a clock the test moves: one slot, held; tasks
// queue behind it at 0. A queue that has stood above target for less than
// the interval is served whole; once it has stood longer, what waited
// past max_queue_ms is refused with overloaded as its turn comes; sleeps
// are never shed; and once a whole interval passes with nothing to shed,
// shedding stops and a new standing queue is served again for an
// interval.
func TestShedsOnlyAStandingQueue(t *testing.T) {
	a := newAdaptive(t, map[string]string{
		"adaptive.min_concurrency": "1", "adaptive.max_concurrency": "1",
		"adaptive.target_ms": "5", "adaptive.interval_ms": "100", "adaptive.interval_rtts": "0",
	})
	clock := newFakeClock()
	a.now = clock.Now

	// 30 ms into a stand that began at 20 ms: all served.
	g0, first := held(t, a)
	g1 := newGate(t)
	second := execAsync(a, g1, cpuOne) // will hold the slot in turn
	var burst []<-chan outcome
	for range 20 {
		burst = append(burst, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}))
	}
	clock.set(20 * time.Millisecond)
	g0.open() // second leaves the queue, 20 ms late: the queue stands from now
	g1.waitStarted(t, "the second slot holder")
	clock.set(50 * time.Millisecond)
	g1.open() // the burst leaves, 50 ms late, 30 ms into the stand
	for i, ch := range append([]<-chan outcome{first, second}, burst...) {
		if o := await(t, ch, "burst task"); o.err != nil {
			t.Fatalf("task %d of a queue that stood 30 ms (interval 100 ms): %v", i, o.err)
		}
	}
	if a.dropping() {
		t.Fatal("shedding after a stand shorter than the interval")
	}

	// A stand of 110 ms: the queue is shed, a sleep is not.
	g0, first = held(t, a)
	g1 = newGate(t)
	clock.set(1000 * time.Millisecond)
	second = execAsync(a, g1, cpuOne)
	var late []<-chan outcome
	for range 10 {
		late = append(late, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}))
	}
	clock.set(1020 * time.Millisecond)
	g0.open()
	g1.waitStarted(t, "the second slot holder")
	clock.set(1130 * time.Millisecond)
	fresh := execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}) // waits 0 ms
	g1.open()
	for i, ch := range late {
		o := await(t, ch, "late task")
		if code(o.err) != taskproto.CodeOverloaded || o.res.Queue != 130*time.Millisecond {
			t.Errorf("task %d, 130 ms late after a stand of 110 ms: %+v, %v; want overloaded after 130 ms", i, o.res, o.err)
		}
	}
	if o := await(t, fresh, "fresh task"); o.err != nil || o.res.Value != "55" {
		t.Errorf("a task that had not waited, behind the shed ones: %+v, %v; want it served", o.res, o.err)
	}
	for _, ch := range []<-chan outcome{first, second} {
		if o := await(t, ch, "slot holder"); o.err != nil {
			t.Errorf("slot holder: %v", o.err)
		}
	}
	if !a.dropping() {
		t.Fatal("not shedding after a stand of 110 ms")
	}
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindSleep, N: 1}), "sleep"); o.err != nil {
		t.Errorf("a sleep while shedding: %v; sleeps take no slot and are not shed", o.err)
	}

	// Recovery: a whole interval later, with nothing shed, a task that
	// finds the queue empty ends the shedding; a new stand is served for
	// an interval again.
	clock.set(1240 * time.Millisecond)
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10}), "task after the overload"); o.err != nil {
		t.Fatalf("a task after the overload: %v", o.err)
	}
	if a.dropping() {
		t.Fatal("still shedding an interval after the last task shed")
	}
	g0, first = held(t, a)
	queued := execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10})
	clock.set(1300 * time.Millisecond)
	g0.open()
	for _, ch := range []<-chan outcome{first, queued} {
		if o := await(t, ch, "task of a new stand"); o.err != nil {
			t.Errorf("a task 60 ms late after the overload ended: %v", o.err)
		}
	}
	if st := statsOf(t, a); st.Failed != 10 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("stats %+v; want the 10 shed tasks failed, nothing queued or running", st)
	}
}

// The controller alone, on explicit instants: every case of its state.
func TestCodel(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	t0 := time.Unix(1_000_000, 0)
	at := func(n int) time.Time { return t0.Add(ms(n)) }

	t.Run("a stand shorter than the interval sheds nothing", func(t *testing.T) {
		c := newCodel(ms(5), ms(100), 0, 0)
		for n := 0; n < 100; n++ { // every ms for 99 ms, 50 ms waits
			if c.leave(at(n), ms(50), 10) {
				t.Fatalf("shed at %d ms", n)
			}
		}
		if c.dropping {
			t.Fatal("dropping")
		}
	})
	t.Run("a stand of a whole interval sheds what waited over twice target", func(t *testing.T) {
		c := newCodel(ms(5), ms(100), 0, 0)
		if c.shedAfter != ms(10) {
			t.Fatalf("max_queue_ms 0: shedAfter %v, want twice target, 10ms", c.shedAfter)
		}
		for n := 0; n < 100; n++ {
			c.leave(at(n), ms(6), 10)
		}
		if !c.leave(at(100), ms(11), 10) || !c.dropping {
			t.Fatal("a task 11 ms late after a stand of 100 ms was not shed")
		}
		if c.leave(at(101), ms(10), 10) || c.leave(at(102), ms(3), 10) {
			t.Error("a task within 10 ms was shed")
		}
		if !c.leave(at(103), ms(40), 10) || c.spellShed != 2 {
			t.Errorf("a task 40 ms late while shedding was not shed (shed %d)", c.spellShed)
		}
	})
	t.Run("a task under target, or one leaving the queue empty, ends the stand", func(t *testing.T) {
		for name, leave := range map[string]func(c *codel){
			"under target": func(c *codel) { c.leave(at(60), ms(4), 10) },
			"queue empty":  func(c *codel) { c.leave(at(60), ms(50), 0) },
		} {
			c := newCodel(ms(5), ms(100), 0, 0)
			for n := 0; n < 60; n++ {
				c.leave(at(n), ms(50), 10)
			}
			leave(&c)
			for n := 61; n < 160; n++ {
				if c.leave(at(n), ms(50), 10) {
					t.Fatalf("%s: shed at %d ms, %d ms into the new stand", name, n, n-61)
				}
			}
			if !c.leave(at(161), ms(50), 10) {
				t.Errorf("%s: not shed a whole interval into the new stand", name)
			}
		}
	})
	t.Run("the stand must also last rtts of its longest waits, up to ten intervals", func(t *testing.T) {
		c := newCodel(ms(5), ms(100), 4, ms(10))
		c.leave(at(0), ms(20), 100)
		c.leave(at(50), ms(60), 100) // 4 × 60 ms: 240 ms
		if c.leave(at(239), ms(60), 100) {
			t.Fatal("shed 239 ms into a stand whose longest wait is 60 ms (rtts 4)")
		}
		if !c.leave(at(240), ms(60), 100) {
			t.Fatal("not shed 240 ms into it")
		}
		c = newCodel(ms(5), ms(100), 4, ms(10))
		c.leave(at(0), ms(900), 100) // 4 × 900 ms, capped at 1 s
		if c.leave(at(999), ms(900), 100) || !c.leave(at(1000), ms(900), 100) {
			t.Error("a stand of waits of 900 ms is not shed at exactly 1 s (ten intervals)")
		}
	})
	t.Run("shedding stops after an interval with nothing to shed", func(t *testing.T) {
		c := newCodel(ms(5), ms(100), 0, ms(20))
		for n := 0; n <= 100; n++ {
			c.leave(at(n), ms(30), 10)
		}
		if !c.dropping || c.spellShed != 1 {
			t.Fatalf("dropping %v, shed %d after a stand of 100 ms", c.dropping, c.spellShed)
		}
		for n := 101; n < 200; n++ { // the queue keeps within max_queue_ms (20 ms) by itself
			if c.leave(at(n), ms(15), 10) {
				t.Fatalf("shed a task 15 ms late at %d ms (max_queue_ms 20)", n)
			}
		}
		if !c.dropping {
			t.Fatal("stopped less than an interval after the last shed")
		}
		c.leave(at(200), ms(15), 10)
		if c.dropping {
			t.Fatal("still dropping an interval after the last shed")
		}
		// Shedding anew takes a whole interval of standing again.
		for n := 201; n < 301; n++ {
			if c.leave(at(n), ms(30), 10) {
				t.Fatalf("shed at %d ms, before the new stand lasted an interval", n)
			}
		}
		if !c.leave(at(301), ms(30), 10) {
			t.Fatal("a new stand of an interval is not shed")
		}
	})
}

// The limit grows while tasks run at their unloaded speed with every slot
// in use, and shrinks when they slow down past the tolerance.
func TestLimitFollowsSlowdown(t *testing.T) {
	a := newAdaptive(t, map[string]string{"adaptive.max_concurrency": "16"})
	task := taskproto.Task{Kind: taskproto.KindFib, N: 1000}
	for range 200 {
		a.limit.Observe(a.slowdown(task, 10*time.Millisecond), true)
	}
	if got := a.limit.Limit(); got != 16 {
		t.Fatalf("limit %d after fast saturated runs, want the maximum 16", got)
	}
	for range 200 {
		a.limit.Observe(a.slowdown(task, 30*time.Millisecond), true) // 3× its quickest
	}
	if got := a.limit.Limit(); got >= 8 {
		t.Errorf("limit %d after runs three times slower than unloaded, want it well below 16", got)
	}
	if d := a.slowdown(task, 14*time.Millisecond); d != 0 {
		t.Errorf("a run within 150 %% of the quickest is a slowdown of %v, want 0", d)
	}
}

// A waiting task whose context ends is answered at once; Close answers
// the rest with shutting_down.
func TestWaitingTasksEnd(t *testing.T) {
	a := newAdaptive(t, map[string]string{
		"adaptive.min_concurrency": "1", "adaptive.max_concurrency": "1",
	})
	ctx, cancel := context.WithCancel(context.Background())
	running := execAsync(a, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: 1_000_000_000})
	waitCtx, stop := context.WithCancel(context.Background())
	waiting := execAsync(a, waitCtx, taskproto.Task{Kind: taskproto.KindFib, N: 10})
	stop()
	if o := await(t, waiting, "waiting task"); !errors.Is(o.err, context.Canceled) {
		t.Errorf("cancelled waiting task: %v, want context.Canceled", o.err)
	}
	last := execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindFib, N: 10})
	cancel() // stops the running cpu task
	if o := await(t, running, "running task"); o.err == nil {
		t.Error("the cancelled cpu task succeeded")
	}
	if o := await(t, last, "last task"); o.err != nil && code(o.err) != taskproto.CodeShuttingDown {
		t.Errorf("the last task: %v", o.err)
	}
	a.Close()
	if o := await(t, execAsync(a, context.Background(), taskproto.Task{Kind: taskproto.KindNoop}), "adaptive task"); code(o.err) != taskproto.CodeShuttingDown {
		t.Errorf("after Close: %v, want shutting_down", o.err)
	}
}
