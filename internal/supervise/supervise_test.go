package supervise

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeProc ends when killed or when the test ends it.
type fakeProc struct {
	pid  int
	end  chan error
	once sync.Once
}

func (p *fakeProc) Wait() error { return <-p.end }
func (p *fakeProc) Kill()       { p.exit(errors.New("killed")) }
func (p *fakeProc) PID() int    { return p.pid }
func (p *fakeProc) exit(err error) {
	p.once.Do(func() { p.end <- err; close(p.end) })
}

var fast = Policy{MinBackoff: time.Millisecond, MaxBackoff: 8 * time.Millisecond, StableAfter: time.Hour}

func TestPolicy(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, StableAfter: 10 * time.Second}
	b := time.Duration(0)
	var got []time.Duration
	for range 6 {
		b = p.next(b, time.Second)
		got = append(got, b)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v, want %v ms", got, want)
		}
	}
	if b = p.next(b, 11*time.Second); b != 100*time.Millisecond {
		t.Errorf("after a stable run: %v, want MinBackoff", b)
	}
}

// A process that ends is started again, each restart counted, and the
// callbacks see every run.
func TestRestarts(t *testing.T) {
	var (
		mu    sync.Mutex
		procs []*fakeProc
		ups   atomic.Int64
		downs atomic.Int64
	)
	start := func(context.Context) (Process, error) {
		mu.Lock()
		defer mu.Unlock()
		p := &fakeProc{pid: 100 + len(procs), end: make(chan error, 1)}
		procs = append(procs, p)
		return p, nil
	}
	s, err := Start(context.Background(), Options{Name: "test", Start: start, Policy: fast,
		Up: func(Process) { ups.Add(1) }, Down: func(Process, error) { downs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mu.Lock()
		p := procs[i]
		mu.Unlock()
		p.exit(errors.New("crashed"))
		waitUntil(t, func() bool { return s.Status().Restarts == int64(i+1) && s.Status().Up })
	}
	st := s.Status()
	if st.PID != 103 || st.LastError != "crashed" {
		t.Errorf("status %+v", st)
	}
	s.Stop()
	if ups.Load() != 4 || downs.Load() != 4 {
		t.Errorf("%d ups, %d downs; want 4 each", ups.Load(), downs.Load())
	}
	if s.Status().Up {
		t.Error("up after Stop")
	}
}

// A failing start is retried with backoff; the first start's failure is
// Start's error.
func TestStartFailures(t *testing.T) {
	if _, err := Start(context.Background(), Options{Name: "never", Policy: fast,
		Start: func(context.Context) (Process, error) { return nil, errors.New("no binary") }}); err == nil {
		t.Fatal("Start succeeded with a start that fails")
	}
	var calls atomic.Int64
	first := &fakeProc{pid: 1, end: make(chan error, 1)}
	s, err := Start(context.Background(), Options{Name: "flaky", Policy: fast, Start: func(context.Context) (Process, error) {
		switch calls.Add(1) {
		case 1:
			return first, nil
		case 2, 3:
			return nil, errors.New("not yet")
		}
		return &fakeProc{pid: 2, end: make(chan error, 1)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	first.exit(nil)
	waitUntil(t, func() bool { return s.Status().Up && s.Status().PID == 2 })
	if st := s.Status(); st.Restarts != 1 || calls.Load() != 4 {
		t.Errorf("status %+v after %d starts: want 1 restart (failed starts are retried, not counted)", st, calls.Load())
	}
	s.Stop()
}

// Stop is safe from several goroutines at once and kills a process that
// was starting as it was called.
func TestStopConcurrent(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	var second *fakeProc
	s, err := Start(context.Background(), Options{Name: "slow", Policy: fast, Start: func(context.Context) (Process, error) {
		if calls.Add(1) == 2 {
			<-release // the restart is under way when Stop comes
			second = &fakeProc{pid: 2, end: make(chan error, 1)}
			return second, nil
		}
		return &fakeProc{pid: 1, end: make(chan error, 1)}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Current().(*fakeProc).exit(errors.New("crashed"))
	waitUntil(t, func() bool { return calls.Load() == 2 })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(s.Stop)
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	select {
	case <-second.end:
	default:
		t.Error("the process started during Stop was not killed")
	}
}

// Spawn starts a real child in a process group of its own, and Kill ends
// the group.
func TestSpawnGroup(t *testing.T) {
	c, err := Spawn(exec.Command("sh", "-c", "sleep 60 & wait"), true)
	if err != nil {
		t.Skipf("no sh here: %v", err)
	}
	c.Kill()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("killed child did not end")
	}
}

// Children lists a live child, then none once it has ended; WaitGone
// sees both the child and its parent go.
func TestChildrenAndWaitGone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Children reads /proc")
	}
	c, err := Spawn(exec.Command("sh", "-c", "sleep 60 & wait"), true)
	if err != nil {
		t.Skipf("no sh here: %v", err)
	}
	var kids []int
	waitUntil(t, func() bool { kids = Children(c.PID()); return len(kids) == 1 })
	if got := GroupMembers(c.PID()); !slices.Contains(got, kids[0]) || !slices.Contains(got, c.PID()) {
		t.Errorf("group %d has %v; want the shell and its child %d", c.PID(), got, kids[0])
	}
	if WaitGone(kids[0], 50*time.Millisecond) {
		t.Fatalf("child %d gone before it was killed", kids[0])
	}
	c.Kill()
	if !WaitGone(kids[0], 5*time.Second) || !WaitGone(c.PID(), 5*time.Second) {
		t.Fatal("killed processes still live")
	}
	if left := Children(c.PID()); len(left) > 0 {
		t.Errorf("children %v of a killed process", left)
	}
	c.Wait()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
