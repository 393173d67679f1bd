// Package supervise keeps processes running: the one restart policy of
// wslab, used by the host for its plugin, by the multiproc strategy for its
// workers and by the distributed strategy for its local workers. It also
// owns their process hygiene: a child started here gets a signal when its
// parent dies (where the system has one), can be put in a process group of
// its own, and is killed with its whole group.
//
// The policy: a process that ends is started again after a backoff that
// starts at MinBackoff and doubles with each failure up to MaxBackoff; a
// process that stayed up StableAfter or longer is restarted after
// MinBackoff again. A start that fails counts as a failure. Every restart is
// logged at warn level and counted.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Policy says how soon a process that ended is started again.
type Policy struct {
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	StableAfter time.Duration
}

// DefaultPolicy is the policy wslab uses for its plugins and workers.
var DefaultPolicy = Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, StableAfter: 10 * time.Second}

// next is the backoff after a process that ran for ran, given the previous
// backoff.
func (p Policy) next(prev, ran time.Duration) time.Duration {
	if ran >= p.StableAfter || prev == 0 {
		return p.MinBackoff
	}
	return min(prev*2, p.MaxBackoff)
}

// Process is one run of a supervised process.
type Process interface {
	// Wait blocks until the process has ended and says why.
	Wait() error
	// Kill ends it (and what it started); Wait then returns.
	Kill()
	// PID identifies it, 0 when it has none.
	PID() int
}

// StartFunc starts a process; ctx ends when the supervisor stops.
type StartFunc func(ctx context.Context) (Process, error)

// Status is what a supervisor knows of its process.
type Status struct {
	Up        bool
	PID       int       // of the current process, or of the last one while down
	Restarts  int64     // successful starts after the first
	LastError string    // why the process last ended or failed to start
	LastStart time.Time // when the current (or last) process started
}

// Supervisor keeps one process running until Stop.
type Supervisor struct {
	name   string
	start  StartFunc
	policy Policy
	log    hclog.Logger
	// up is called with each process once it has started, down once it has
	// ended (before a restart), both from the supervisor's goroutine.
	up   func(Process)
	down func(Process, error)

	mu     sync.Mutex
	cur    Process
	status Status

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Options configure a Supervisor.
type Options struct {
	Name   string // in log lines: "plugin pool", "worker w2"
	Start  StartFunc
	Policy Policy // zero: DefaultPolicy
	Log    hclog.Logger
	Up     func(Process)
	Down   func(Process, error)
}

// Start starts the first process and returns once it has started, or with
// the error of that first start: nothing is supervised then. After that
// the supervisor restarts the process whenever it ends, until Stop.
func Start(ctx context.Context, opt Options) (*Supervisor, error) {
	if opt.Policy == (Policy{}) {
		opt.Policy = DefaultPolicy
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	s := &Supervisor{
		name: opt.Name, start: opt.Start, policy: opt.Policy, log: opt.Log,
		up: opt.Up, down: opt.Down, done: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p, err := s.start(ctx)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	s.started(p)
	go s.loop(p)
	return s, nil
}

// started records p as the running process, or kills it when Stop came
// while it was starting (false).
func (s *Supervisor) started(p Process) bool {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		p.Kill()
		p.Wait()
		return false
	}
	s.cur = p
	s.status.Up, s.status.PID, s.status.LastStart = true, p.PID(), time.Now()
	s.mu.Unlock()
	if s.up != nil {
		s.up(p)
	}
	return true
}

func (s *Supervisor) loop(p Process) {
	defer close(s.done)
	var backoff time.Duration
	for {
		err := p.Wait()
		s.mu.Lock()
		ran := time.Since(s.status.LastStart)
		s.cur = nil
		s.status.Up = false
		if err == nil {
			err = errors.New("exited")
		}
		s.status.LastError = err.Error()
		s.mu.Unlock()
		if s.down != nil {
			s.down(p, err)
		}
		if s.ctx.Err() != nil {
			return
		}
		backoff = s.policy.next(backoff, ran)
		s.log.Error("process ended, restarting", "process", s.name, "pid", p.PID(), "reason", err, "retry_in", backoff)
		if p = s.restart(&backoff); p == nil {
			return
		}
	}
}

// restart starts the process again after backoff, and again after each
// failed start, until it starts (or the supervisor stops: nil).
func (s *Supervisor) restart(backoff *time.Duration) Process {
	for {
		t := time.NewTimer(*backoff)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		p, err := s.start(s.ctx)
		s.mu.Lock()
		if err == nil {
			s.status.Restarts++
		} else {
			s.status.LastError = err.Error()
		}
		n := s.status.Restarts
		s.mu.Unlock()
		if err == nil {
			if !s.started(p) {
				return nil
			}
			s.log.Warn("process restarted", "process", s.name, "pid", p.PID(), "restarts", n)
			return p
		}
		*backoff = s.policy.next(*backoff, 0)
		s.log.Error("restart failed", "process", s.name, "error", err, "retry_in", *backoff)
	}
}

// Current is the running process, nil while it is down.
func (s *Supervisor) Current() Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Status says what the supervisor knows.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Stop ends supervision and kills the process; it returns once the process
// has ended. It is safe to call more than once, from several goroutines.
func (s *Supervisor) Stop() {
	s.cancel() // before the look at cur: see started
	if p := s.Current(); p != nil {
		p.Kill()
	}
	<-s.done
}
