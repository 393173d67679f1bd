// Package host is the wslab WebSocket server: it accepts the protocol of
// the Python lab and its pipelined JSON successor on / and /ws, runs every
// task through one strategy (the built-in inproc baseline or a plugin under
// a PluginSupervisor), hands tasks to the strategy fairly across
// connections (Scheduler), bounds what any client can make it hold, and
// answers every accepted request exactly once.
package host

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
)

// Strategy is what the server runs tasks through.
type Strategy interface {
	taskproto.Executor
	// Ready reports whether tasks can run now (a plugin is up).
	Ready() bool
}

// Options configure a Server.
type Options struct {
	Strategy      Strategy
	Logger        hclog.Logger
	Defaults      wsproto.Defaults
	Limits        taskproto.Limits
	TaskTimeout   time.Duration // timeout_sec: task deadline and idle timeout
	MaxFrameBytes int64
	MaxInflight   int   // per connection, until the reply is written
	MaxQueued     int64 // accepted and unanswered, across connections
	// MaxPendingReplyBytes bounds what a connection's unwritten replies and
	// the ids of its requests in flight hold; MinReplyReadRate is the
	// slowest, in bytes per second, a client may read them.
	MaxPendingReplyBytes int64
	MinReplyReadRate     int64
	// Window bounds how many tasks the strategy is handed at once
	// (NewWindow); nil: WindowFor the strategy's concurrency.
	Window *limit.AIMD
	// WindowFor sizes the window of a strategy of the given concurrency,
	// the one switched to included (SwitchStrategy); nil: NewWindow with
	// a prefetch of 16, up to 256.
	WindowFor func(concurrency int) *limit.AIMD
	// Build builds and configures a strategy by name for SwitchStrategy
	// (POST /admin/strategy, the plugin watch); nil: the strategy cannot
	// be switched.
	Build          StrategyBuilder
	MaxConnections int
	AllowedOrigins []string
	// ListenHost and AllowedHosts are the names the Host header may carry,
	// besides IP addresses and localhost names.
	ListenHost   string
	AllowedHosts []string
	AuthToken    string
	// TLS, when set, makes Serve serve wss:// and https://.
	TLS *tls.Config
	// TimingSample is the share of JSON requests, 0 to 1, whose timeline
	// is recorded and sent in their reply though they did not ask for it
	// ([server] timing_sample).
	TimingSample float64
	// Metrics is the registry /metrics serves, the host's own metrics
	// added to it; nil: a new one with the Go runtime's and the process's.
	Metrics *prometheus.Registry

	// batches are shared with the plugin's supervisor (PluginOptions), so
	// that replies a batch of plugin answers causes are written at its end.
	batches *replyBatches
}

// Server serves WebSocket tasks. Create it with NewServer, run it with
// Serve, stop it with Shutdown.
type Server struct {
	opt      Options
	log      hclog.Logger
	upgrader websocket.Upgrader
	http     *http.Server
	sched    *Scheduler

	draining atomic.Bool
	timedOut *taskproto.Error // the cause of every task's deadline

	// taskCtx is every task's ancestor; it is cancelled, with cause
	// shutting_down, when the shutdown grace period runs out.
	taskCtx     context.Context
	cancelTasks context.CancelCauseFunc

	registry *prometheus.Registry
	// strategyMetrics are the host's metrics of each strategy served,
	// labelled with its name; guarded by mu. A strategy switched back to
	// counts on in its own.
	strategyMetrics map[string]*telemetry.HostMetrics

	// switching is held from the start of a strategy switch until the
	// replaced strategy has stopped (switch.go); retiring counts the
	// goroutines that stop replaced strategies, which Shutdown waits for
	// once stopRetiring has cut their wait short.
	switching        atomic.Bool
	retiringNow      atomic.Pointer[retiring]
	retiring         sync.WaitGroup
	stopRetiring     chan struct{}
	stopRetiringOnce sync.Once
	// buildCtx is the context strategies are built in; Shutdown ends it.
	buildCtx  context.Context
	stopBuild context.CancelFunc

	connIDs atomic.Uint64 // the last connection's id

	// started is when the server was built, the live page's uptime.
	started time.Time
	// live counts replies for the live page's streams (live.go), which
	// end when liveCtx does; liveStreams are their handlers, which
	// Shutdown waits for.
	live        *liveRecorder
	liveCtx     context.Context
	stopLive    context.CancelFunc
	liveStreams sync.WaitGroup

	mu         sync.Mutex
	conns      map[*wsConn]struct{}
	upgrading  int  // connections between the limit check and the upgrade
	liveClosed bool // Shutdown has stopped the live streams: no new one
	stopping   bool // Shutdown has begun: the strategy is not switched any more
}

// readBufferSize is each connection's read buffer: small, because an idle
// connection keeps it (larger frames are read straight into a pooled
// buffer), and large enough for a burst of small pipelined requests.
const readBufferSize = 512

// NewServer builds a server around opt.Strategy.
func NewServer(opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.WindowFor == nil {
		opt.WindowFor = func(concurrency int) *limit.AIMD { return NewWindow(concurrency, 16, 256, 2*time.Millisecond) }
	}
	if opt.Window == nil {
		opt.Window = opt.WindowFor(opt.Strategy.Info().Concurrency)
	}
	if opt.batches == nil {
		opt.batches = &replyBatches{}
	}
	s := &Server{
		opt:             opt,
		log:             opt.Logger,
		conns:           make(map[*wsConn]struct{}),
		strategyMetrics: map[string]*telemetry.HostMetrics{},
		stopRetiring:    make(chan struct{}),
		started:         time.Now(),
		live:            newLiveRecorder(),
		sched: NewScheduler(opt.Strategy, opt.Window, int(opt.MaxQueued),
			func(t *task, res taskproto.Result, err error, inline bool) { t.conn.answer(t, res, err, inline) }, opt.Logger),
	}
	s.registry = opt.Metrics
	if s.registry == nil {
		s.registry = telemetry.NewRegistry(plugin.ProtocolVersion)
	}
	s.sched.currentServed().metrics = s.metricsFor(opt.Strategy.Info().Name) // before anything is served
	s.buildCtx, s.stopBuild = context.WithCancel(context.Background())
	s.taskCtx, s.cancelTasks = context.WithCancelCause(context.Background())
	s.liveCtx, s.stopLive = context.WithCancel(context.Background())
	s.timedOut = taskproto.Errorf(taskproto.CodeTimeout, "task ran past timeout_sec (%s), and its deadline stopped it", opt.TaskTimeout)
	s.upgrader = websocket.Upgrader{
		// 0: gorilla reads through the hijacked reader, which is the
		// host's own (hijacker).
		// The host writes its own frames (see frame.go); gorilla writes
		// only the odd close frame, from a pooled buffer.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveWS)
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.Handle("GET /metrics", s.MetricsHandler())
	mux.HandleFunc("GET /live", s.serveLivePage)
	mux.HandleFunc("GET /live/events", s.serveLiveEvents)
	mux.HandleFunc("POST /admin/strategy", s.serveSwitchStrategy)
	s.http = &http.Server{
		Handler:           s.checkHost(mux),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         opt.TLS,
		ErrorLog:          opt.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var err error
	if s.opt.TLS != nil {
		err = s.http.ServeTLS(ln, "", "")
	} else {
		err = s.http.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case !s.Strategy().Ready():
		http.Error(w, "strategy not ready", http.StatusServiceUnavailable)
	default:
		w.Write([]byte("ok\n"))
	}
}

// HostMemory is what the host's runtime holds, in MiB.
type HostMemory struct {
	Heap   float64 `json:"heap_mb"`   // live and unswept heap spans
	Stacks float64 `json:"stacks_mb"` // goroutine stacks
	Sys    float64 `json:"sys_mb"`    // everything the runtime has from the system
}

func hostMemory() HostMemory {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	const mib = 1 << 20
	return HostMemory{Heap: float64(m.HeapInuse) / mib, Stacks: float64(m.StackInuse) / mib, Sys: float64(m.Sys) / mib}
}

// HostStats is what GET /stats answers.
type HostStats struct {
	Strategy    string `json:"strategy"`
	Description string `json:"description"`
	PluginPID   int    `json:"plugin_pid,omitempty"`
	// PluginRestarts counts the plugin's restarts; the executor's own
	// restarts (of its workers) are in Executor.
	PluginRestarts int64 `json:"plugin_restarts"`
	Connections    int   `json:"connections"`
	// Queued tasks wait in the host's fair queue, InStrategy are with the
	// strategy, Outstanding are accepted and not yet answered.
	Queued      int `json:"queued"`
	InStrategy  int `json:"in_strategy"`
	Outstanding int `json:"outstanding"`
	Window      int `json:"window"`
	Goroutines  int `json:"goroutines"`
	// Memory is the host process's own, from the Go runtime, in MiB.
	Memory   HostMemory `json:"memory"`
	Draining bool       `json:"draining"`
	// Retiring is the strategy a switch replaced, while it finishes the
	// tasks it holds; nil when none is.
	Retiring *RetiringStats  `json:"retiring,omitempty"`
	Executor taskproto.Stats `json:"executor"`
	Error    string          `json:"error,omitempty"`
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	strat := s.Strategy()
	info := strat.Info()
	st := HostStats{Strategy: info.Name, Description: info.Description, Draining: s.draining.Load(),
		Goroutines: runtime.NumGoroutine(), Memory: hostMemory(), Retiring: s.retiringStats()}
	st.Queued, st.InStrategy, st.Outstanding, st.Window = s.sched.Counts()
	if sup, ok := strat.(*PluginSupervisor); ok {
		status := sup.Status()
		if status.Up {
			st.PluginPID = status.PID
		}
		st.PluginRestarts = status.Restarts
	}
	st.Connections = s.connections()
	ctx, cancel := context.WithTimeout(r.Context(), statsWait)
	defer cancel()
	var err error
	if st.Executor, err = strat.Stats(ctx); err != nil {
		st.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized: send Authorization: Bearer <auth_token>", http.StatusUnauthorized)
		return
	}
	if s.draining.Load() {
		s.hostMetrics().Refused(telemetry.RefusedDraining)
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
		s.hostMetrics().Refused(telemetry.RefusedFull)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	s.mu.Lock()
	s.upgrading--
	var c *wsConn
	if err == nil {
		c = newWSConn(s, ws, hj.conn, hj.br)
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		return // the upgrader has answered the client
	}
	s.hostMetrics().Opened()
	// The handler returns: net/http's goroutine and buffers for the
	// connection go, and the connection's own reader is all that is left.
	go c.serve()
}

func (s *Server) removeConn(c *wsConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown refuses new connections and tasks (and /healthz answers 503),
// lets accepted tasks finish for up to grace, fails the rest with
// shutting_down, stops a strategy a switch replaced, closes every WebSocket with 1001 (going away) once its
// replies are written, ends the live streams, and closes the listener.
func (s *Server) Shutdown(grace time.Duration) {
	s.draining.Store(true)
	s.stopBuild() // a strategy being built for a switch is not wanted any more

	idle := s.sched.Close()
	select {
	case <-idle:
	case <-time.After(grace):
		s.log.Warn("shutdown grace period over, failing tasks still running", "grace", grace)
		s.cancelTasks(taskproto.Errorf(taskproto.CodeShuttingDown, "host is shutting down"))
		select {
		case <-idle:
		case <-time.After(answerGrace + 4*time.Second):
			s.log.Error("tasks did not stop after cancellation")
		}
	}
	// Every task is answered: a strategy a switch replaced is stopped now.
	s.stopSwitching()

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
		c.raw.Close() // whatever did not close in time: a client that does not read
	}

	// The live streams run to the end, showing the drain; a stream never
	// goes idle, so http.Server.Shutdown would not end it.
	s.stopLiveStreams()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.http.Shutdown(ctx) // closes the listener; upgraded connections were ours
}

func (s *Server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
