// Package host is the wslab WebSocket server: it accepts the protocol of
// SPEC section 3 on / and /ws, runs every task through one strategy (the
// built-in inproc baseline or a plugin under a PluginSupervisor), and
// answers every accepted request exactly once.
package host

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
)

// Strategy is what the server runs tasks through.
type Strategy interface {
	taskproto.Executor
	// Ready reports whether tasks can run now (a plugin is up).
	Ready() bool
}

// Options configure a Server.
type Options struct {
	Strategy       Strategy
	Logger         hclog.Logger
	Defaults       wsproto.Defaults
	Limits         taskproto.Limits
	TaskTimeout    time.Duration // timeout_sec: task deadline and idle timeout
	MaxFrameBytes  int64
	MaxInflight    int   // per connection
	MaxQueued      int64 // accepted and unanswered, across connections
	MaxConnections int
	AllowedOrigins []string
	AuthToken      string
}

// Server serves WebSocket tasks. Create it with NewServer, run it with
// Serve, stop it with Shutdown.
type Server struct {
	opt      Options
	log      hclog.Logger
	strategy string
	upgrader websocket.Upgrader
	http     *http.Server

	draining atomic.Bool
	queued   atomic.Int64
	tasks    taskTracker

	// taskCtx is every task's ancestor; it is cancelled, with cause
	// shutting_down, when the shutdown grace period runs out.
	taskCtx     context.Context
	cancelTasks context.CancelCauseFunc

	mu        sync.Mutex
	conns     map[*wsConn]struct{}
	upgrading int // connections between the limit check and the upgrade
}

// NewServer builds a server around opt.Strategy.
func NewServer(opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	s := &Server{
		opt:      opt,
		log:      opt.Logger,
		strategy: opt.Strategy.Info().Name,
		conns:    make(map[*wsConn]struct{}),
	}
	s.taskCtx, s.cancelTasks = context.WithCancelCause(context.Background())
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// Buffers go back to a pool between writes: idle connections hold none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveWS)
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /stats", s.serveStats)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: opt.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	return s
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case !s.opt.Strategy.Ready():
		http.Error(w, "strategy not ready", http.StatusServiceUnavailable)
	default:
		w.Write([]byte("ok\n"))
	}
}

// HostStats is what GET /stats answers.
type HostStats struct {
	Strategy    string          `json:"strategy"`
	Description string          `json:"description"`
	PluginPID   int             `json:"plugin_pid,omitempty"`
	Restarts    int64           `json:"restarts"`
	Connections int             `json:"connections"`
	Queued      int64           `json:"queued"`
	Draining    bool            `json:"draining"`
	Executor    taskproto.Stats `json:"executor"`
	Error       string          `json:"error,omitempty"`
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	info := s.opt.Strategy.Info()
	st := HostStats{Strategy: info.Name, Description: info.Description, Queued: s.queued.Load(), Draining: s.draining.Load()}
	if sup, ok := s.opt.Strategy.(*PluginSupervisor); ok {
		st.PluginPID, st.Restarts = sup.PID(), sup.Restarts()
	}
	st.Connections = s.connections()
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var err error
	if st.Executor, err = s.opt.Strategy.Stats(ctx); err != nil {
		st.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// checkOrigin lets through clients that send no Origin (not browsers),
// same-origin pages, and the configured allow-list; never everyone.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.opt.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// authorized checks the bearer token, or the token query parameter that
// browsers, which cannot set headers on a WebSocket, must use.
func (s *Server) authorized(r *http.Request) bool {
	if s.opt.AuthToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opt.AuthToken)) == 1
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized: send Authorization: Bearer <auth_token>", http.StatusUnauthorized)
		return
	}
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	// The slot is taken before the upgrade so that concurrent upgrades
	// cannot overshoot the limit together.
	s.mu.Lock()
	full := len(s.conns)+s.upgrading >= s.opt.MaxConnections
	if !full {
		s.upgrading++
	}
	s.mu.Unlock()
	if full {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	s.mu.Lock()
	s.upgrading--
	var c *wsConn
	if err == nil {
		c = newWSConn(s, ws)
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		return // the upgrader has answered the client
	}
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve()
}

// Shutdown refuses new connections and tasks (and /healthz answers 503),
// lets accepted tasks finish for up to grace, fails the rest with
// shutting_down, closes every WebSocket with 1001 (going away) once its
// replies are written, and closes the listener.
func (s *Server) Shutdown(grace time.Duration) {
	s.draining.Store(true)

	idle := s.tasks.close()
	select {
	case <-idle:
	case <-time.After(grace):
		s.log.Warn("shutdown grace period over, failing tasks still running", "grace", grace)
		s.cancelTasks(taskproto.Errorf(taskproto.CodeShuttingDown, "host is shutting down"))
		select {
		case <-idle:
		case <-time.After(5 * time.Second):
			s.log.Error("tasks did not stop after cancellation")
		}
	}

	s.mu.Lock()
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	// A client that reads answers the close at once, or its reader's
	// deadline (a second) ends it; the rest are not reading at all.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for s.connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.ws.Close() // whatever did not close in time: a client that does not read
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.http.Shutdown(ctx) // closes the listener; upgraded connections were ours
}

func (s *Server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// taskTracker counts running tasks and lets Shutdown wait for them; unlike
// a WaitGroup it refuses new tasks once closed, so no Add races the Wait.
type taskTracker struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

func (t *taskTracker) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

func (t *taskTracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// close refuses new tasks and returns a channel closed once none run.
func (t *taskTracker) close() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	ch := make(chan struct{})
	if t.n == 0 {
		close(ch)
	} else {
		t.idle = ch
	}
	return ch
}
