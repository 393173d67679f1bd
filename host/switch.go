package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/taskproto"
)

// Switching the strategy of a running host: the one mechanism behind
// POST /admin/strategy and the plugin watch (--watch). The new strategy is
// built and configured first (a plugin started, its declared keys checked
// as at start-up); a failure leaves the old one serving. Then, in one step
// under the scheduler's lock, new tasks go to the new one (Scheduler.
// Replace) while the old one keeps every task it holds until it answers
// it; once it holds none, or after retireWait, it is stopped, and what it
// still held is answered by its Close (executor_failed), as when a host
// stops. No connection is touched: the switch is below them.

// retireGrace is what a replaced strategy gets, beyond the task timeout
// and answerGrace, to answer the tasks it holds before it is stopped.
const retireGrace = 5 * time.Second

// retireWait bounds how long a replaced strategy is left to answer what it
// holds: a task handed to it just before the switch has timeout_sec to
// run, then answerGrace to be answered once stopped.
func (s *Server) retireWait() time.Duration { return s.opt.TaskTimeout + answerGrace + retireGrace }

// StrategyBuilder builds the named strategy and configures it, ready for
// tasks: a plugin started from the plugin directory, its declared keys
// checked, or inproc. The strategy is the caller's to close. An unknown
// name is an *UnknownStrategyError.
type StrategyBuilder func(ctx context.Context, name string) (Strategy, error)

// UnknownStrategyError is a StrategyBuilder's refusal of a name that is
// neither built in nor installed.
type UnknownStrategyError struct {
	Name      string
	Available []string
}

func (e *UnknownStrategyError) Error() string {
	return fmt.Sprintf("unknown strategy %q; available: %s", e.Name, strings.Join(e.Available, ", "))
}

// ErrSwitchInProgress refuses a switch while another is under way: from
// its start until the strategy it replaced has stopped.
var ErrSwitchInProgress = errors.New("a strategy switch is in progress")

// errNoSwitch refuses a switch on a server that was given no
// StrategyBuilder, and one asked for while the server stops.
var (
	errNoSwitch       = errors.New("this server cannot switch its strategy")
	errSwitchStopping = errors.New("the host is shutting down")
)

// retiring is a strategy a switch replaced, until it has stopped.
type retiring struct {
	served *servedStrategy
	since  time.Time
}

// RetiringStats describe, in /stats, a replaced strategy that finishes
// what it holds.
type RetiringStats struct {
	Strategy  string `json:"strategy"`
	PluginPID int    `json:"plugin_pid,omitempty"`
	Held      int    `json:"held"` // tasks it holds, not yet answered
	// Seconds is how long it has been retiring.
	Seconds float64 `json:"seconds"`
}

func (s *Server) retiringStats() *RetiringStats {
	r := s.retiringNow.Load()
	if r == nil {
		return nil
	}
	return &RetiringStats{Strategy: r.served.info.Name, PluginPID: pluginPID(r.served.exec), Held: s.sched.Holding(r.served),
		Seconds: time.Since(r.since).Seconds()}
}

// pluginPID is the PID of the plugin process that serves e, 0 for a
// strategy built into the host or a plugin that is down.
func pluginPID(e taskproto.Executor) int {
	if sup, ok := e.(*PluginSupervisor); ok {
		if status := sup.Status(); status.Up {
			return status.PID
		}
	}
	return 0
}

// Strategy is the strategy new tasks go to now.
func (s *Server) Strategy() Strategy { return s.sched.Current().(Strategy) }

// hostMetrics are the metrics of the current strategy.
func (s *Server) hostMetrics() *telemetry.HostMetrics { return s.sched.currentServed().metrics }

// metricsFor returns the host's metrics labelled with strategy name,
// registered at its first use.
func (s *Server) metricsFor(name string) *telemetry.HostMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.strategyMetrics[name]
	if !ok {
		m = telemetry.NewHostMetrics(s.registry, name)
		s.strategyMetrics[name] = m
	}
	return m
}

// SwitchStrategy builds the named strategy (Options.Build) and makes it
// the one new tasks go to, returning what it is; the strategy it replaces
// answers the tasks it holds, then is stopped, in a goroutine that
// Shutdown waits for. Until that strategy has stopped, another switch is
// refused with ErrSwitchInProgress. A strategy that cannot be built leaves
// the current one serving; the error says why.
func (s *Server) SwitchStrategy(name string) (taskproto.StrategyInfo, error) {
	if s.opt.Build == nil {
		return taskproto.StrategyInfo{}, errNoSwitch
	}
	if s.draining.Load() {
		return taskproto.StrategyInfo{}, errSwitchStopping
	}
	if !s.switching.CompareAndSwap(false, true) {
		return taskproto.StrategyInfo{}, ErrSwitchInProgress
	}
	old := s.Strategy().Info().Name
	s.log.Info("switching strategy", "from", old, "to", name)
	next, err := s.opt.Build(s.buildCtx, name)
	if err != nil {
		s.switching.Store(false)
		s.log.Error("strategy switch refused: the current strategy keeps serving", "strategy", old, "to", name, "error", err)
		return taskproto.StrategyInfo{}, err
	}
	info := next.Info()
	if pid := pluginPID(next); pid != 0 {
		info.PID = pid
	}
	served := newServedStrategy(next, s.metricsFor(info.Name))
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		closeStrategy(next)
		s.switching.Store(false)
		return taskproto.StrategyInfo{}, errSwitchStopping
	}
	s.retiring.Add(1) // under mu: Shutdown waits only after it set stopping
	replaced := s.sched.Replace(served, s.opt.WindowFor(info.Concurrency))
	s.mu.Unlock()
	r := &retiring{served: replaced, since: time.Now()}
	s.retiringNow.Store(r)
	s.log.Info("strategy switched: new tasks go to the new one, the old one finishes what it holds",
		"from", replaced.info.Name, "to", info.Name, "description", info.Description, "pid", info.PID,
		"old_holds", s.sched.Holding(replaced))
	go s.retire(r)
	return info, nil
}

// retire waits until the replaced strategy has answered what it holds, for
// at most retireWait (or until Shutdown, which waits for every task, says
// to stop waiting), then closes it and ends the switch.
func (s *Server) retire(r *retiring) {
	defer s.retiring.Done()
	timer := time.NewTimer(s.retireWait())
	defer timer.Stop()
	select {
	case <-r.served.Drained():
	case <-timer.C:
		s.log.Warn("the replaced strategy still holds tasks after the retirement wait: stopping it fails them",
			"strategy", r.served.info.Name, "held", s.sched.Holding(r.served), "wait", s.retireWait())
	case <-s.stopRetiring:
	}
	closeStrategy(r.served.exec)
	s.retiringNow.Store(nil)
	s.switching.Store(false)
	s.log.Info("replaced strategy stopped", "strategy", r.served.info.Name, "retired_for", time.Since(r.since).Round(time.Millisecond))
}

// closeStrategy stops a strategy that holds something to stop: a plugin's
// supervisor, a pool. inproc holds nothing: its tasks end with their
// contexts.
func closeStrategy(e taskproto.Executor) {
	if c, ok := e.(io.Closer); ok {
		c.Close()
	} else if r, ok := e.(readyAlways); ok {
		if c, ok := r.Executor.(io.Closer); ok {
			c.Close()
		}
	}
}

// stopSwitching refuses switches from now on and returns once the
// strategies replaced so far have stopped; Shutdown calls it once every
// task has been answered. It may be called more than once.
func (s *Server) stopSwitching() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.stopBuild()
	s.stopRetiringOnce.Do(func() { close(s.stopRetiring) })
	s.retiring.Wait()
}

// SwitchRequest is the body of POST /admin/strategy.
type SwitchRequest struct {
	Strategy string `json:"strategy"`
}

// SwitchReply is its answer: the strategy now serving, or why not.
type SwitchReply struct {
	Strategy    string `json:"strategy,omitempty"`
	Description string `json:"description,omitempty"`
	PID         int    `json:"pid,omitempty"`
	Error       string `json:"error,omitempty"`
}

// maxSwitchBody bounds what POST /admin/strategy reads of its body.
const maxSwitchBody = 4 << 10

// serveSwitchStrategy is POST /admin/strategy {"strategy": "NAME"}: 200
// with the new strategy, 400 for a bad body or an unknown strategy, 409
// while a switch is in progress, 500 when the new strategy fails to start
// (the old one keeps serving), 503 while the host stops. With an
// auth_token the bearer token is required (401); without one, only a
// client on this machine (a loopback peer) may switch (403), so that a
// host bound to another interface without a token cannot be switched by
// anyone who reaches its port. Either way a browser page of another
// origin is refused (checkOrigin) and the body must be JSON
// (Content-Type: application/json, which a cross-site form cannot send
// without a CORS preflight this host never grants).
func (s *Server) serveSwitchStrategy(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, rep SwitchReply) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(rep)
	}
	switch {
	case s.opt.AuthToken != "" && !s.authorized(r):
		answer(http.StatusUnauthorized, SwitchReply{Error: "unauthorized: send Authorization: Bearer <auth_token>"})
		return
	case s.opt.AuthToken == "" && !loopbackPeer(r):
		answer(http.StatusForbidden, SwitchReply{Error: "no [server] auth_token is set: the strategy can be switched only from this machine"})
		return
	case !s.checkOrigin(r):
		answer(http.StatusForbidden, SwitchReply{Error: "forbidden: cross-origin request"})
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		answer(http.StatusUnsupportedMediaType, SwitchReply{Error: `send Content-Type: application/json and {"strategy": "NAME"}`})
		return
	}
	var req SwitchRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSwitchBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Strategy) == "" {
		why := `want {"strategy": "NAME"}`
		if err != nil {
			why += ": " + err.Error()
		}
		answer(http.StatusBadRequest, SwitchReply{Error: why})
		return
	}
	if s.draining.Load() {
		answer(http.StatusServiceUnavailable, SwitchReply{Error: errSwitchStopping.Error()})
		return
	}
	info, err := s.SwitchStrategy(strings.TrimSpace(req.Strategy))
	var unknown *UnknownStrategyError
	switch {
	case err == nil:
		answer(http.StatusOK, SwitchReply{Strategy: info.Name, Description: info.Description, PID: info.PID})
	case errors.As(err, &unknown):
		answer(http.StatusBadRequest, SwitchReply{Error: err.Error()})
	case errors.Is(err, ErrSwitchInProgress):
		why := err.Error()
		if rs := s.retiringStats(); rs != nil {
			why = fmt.Sprintf("%s: the replaced strategy %s still holds %d tasks", why, rs.Strategy, rs.Held)
		}
		answer(http.StatusConflict, SwitchReply{Error: why})
	case errors.Is(err, errSwitchStopping):
		answer(http.StatusServiceUnavailable, SwitchReply{Error: err.Error()})
	case errors.Is(err, errNoSwitch):
		answer(http.StatusNotImplemented, SwitchReply{Error: err.Error()})
	default:
		cur := s.Strategy().Info()
		answer(http.StatusInternalServerError, SwitchReply{Strategy: cur.Name, Description: cur.Description,
			Error: "the new strategy did not start; " + cur.Name + " keeps serving: " + err.Error()})
	}
}

// loopbackPeer reports whether r comes from this machine's loopback.
func loopbackPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
