package host

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// The live page: GET /live is one HTML document, its script and style
// inlined from liveassets/ (embedded: nothing is fetched from elsewhere),
// and GET /live/events the Server-Sent Events stream it reads, an event
// each second. Both are behind auth_token; the page passes the ?token= it
// was opened with on to the stream (EventSource cannot set headers).

const (
	// maxLiveStreams bounds the live streams open at once: each holds a
	// window of snapshots and asks the strategy for its stats every
	// second. One more is refused with 503.
	maxLiveStreams = 8
	// liveInterval is how often a live stream sends an event.
	liveInterval = time.Second
	// liveWriteWait bounds the write of one event: a page that does not
	// read loses its stream instead of holding a goroutine.
	liveWriteWait = 5 * time.Second
	// liveStreamLifetime bounds a stream's life; the page's EventSource
	// reconnects (after liveRetry) and carries on.
	liveStreamLifetime = time.Hour
	// liveRetry is how long the page's EventSource waits to reconnect.
	liveRetry = 2 * time.Second
)

//go:embed liveassets
var liveAssets embed.FS

// livePage is the page as served, and its Content-Security-Policy, which
// allows its own inline script and style (by hash), connections to this
// host, and nothing else.
var livePage, livePolicy = buildLivePage()

func buildLivePage() ([]byte, string) {
	read := func(name string) string {
		b, err := liveAssets.ReadFile("liveassets/" + name)
		if err != nil {
			panic(fmt.Sprintf("host: embedded live page asset %s: %v", name, err)) // the build embeds them
		}
		return string(b)
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	css, js := read("live.css"), read("live.js")
	page := strings.NewReplacer(
		"<!--style-->", "<style>"+css+"</style>",
		"<!--script-->", "<script>"+js+"</script>",
	).Replace(read("live.html"))
	policy := "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(page), policy
}

func (s *Server) serveLivePage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized: open /live?token=<auth_token>", http.StatusUnauthorized)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", livePolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL may carry the token
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(livePage)
}

// LivePlugin is the plugin process's state in a live event.
type LivePlugin struct {
	Up       bool  `json:"up"`
	PID      int   `json:"pid,omitempty"`
	Restarts int64 `json:"restarts"`
}

// LiveEvent is the data of one event of the live stream.
type LiveEvent struct {
	Time          time.Time `json:"time"`
	UptimeSeconds float64   `json:"uptime_s"`
	Strategy      string    `json:"strategy"`
	Description   string    `json:"description"`
	Ready         bool      `json:"ready"`
	Draining      bool      `json:"draining"`
	Connections   int       `json:"connections"`
	// Queued, InStrategy, Outstanding and Window are the scheduler's, as
	// in /stats.
	Queued      int `json:"queued"`
	InStrategy  int `json:"in_strategy"`
	Outstanding int `json:"outstanding"`
	Window      int `json:"window"`
	// Plugin is nil for a strategy built into the host.
	Plugin *LivePlugin `json:"plugin,omitempty"`
	// Executor is the strategy's view of its work, workers included;
	// ExecutorError says why it is missing.
	Executor      taskproto.Stats `json:"executor"`
	ExecutorError string          `json:"executor_error,omitempty"`
	LiveRates
}

// liveEvent builds the event for now from the server's state and the
// stream's window.
func (s *Server) liveEvent(ctx context.Context, win *liveWindow, now time.Time) LiveEvent {
	strat := s.Strategy()
	info := strat.Info()
	ev := LiveEvent{
		Time: now, UptimeSeconds: now.Sub(s.started).Seconds(),
		Strategy: info.Name, Description: info.Description,
		Ready: strat.Ready(), Draining: s.draining.Load(),
		Connections: s.connections(),
		LiveRates:   win.rates(),
	}
	ev.Queued, ev.InStrategy, ev.Outstanding, ev.Window = s.sched.Counts()
	if sup, ok := strat.(*PluginSupervisor); ok {
		st := sup.Status()
		ev.Plugin = &LivePlugin{Up: st.Up, Restarts: st.Restarts}
		if st.Up {
			ev.Plugin.PID = st.PID
		}
	}
	ctx, cancel := context.WithTimeout(ctx, statsWait)
	defer cancel()
	var err error
	if ev.Executor, err = strat.Stats(ctx); err != nil {
		ev.ExecutorError = err.Error()
	}
	return ev
}

// openLiveStream counts a new live stream in, unless maxLiveStreams are
// open or the server is stopping them.
func (s *Server) openLiveStream() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.liveClosed || s.live.watchers.Load() >= maxLiveStreams {
		return false
	}
	s.live.watchers.Add(1)
	s.liveStreams.Add(1)
	return true
}

func (s *Server) closeLiveStream() {
	s.mu.Lock()
	s.live.watchers.Add(-1)
	s.mu.Unlock()
	s.liveStreams.Done()
}

// serveLiveEvents is the live stream: an event at once, then one every
// liveInterval, until the client goes, a write fails, liveStreamLifetime
// passes, or Shutdown stops the streams.
func (s *Server) serveLiveEvents(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !s.openLiveStream() {
		http.Error(w, fmt.Sprintf("too many live streams (at most %d) or shutting down", maxLiveStreams), http.StatusServiceUnavailable)
		return
	}
	defer s.closeLiveStream()
	ctx, cancel := context.WithTimeout(r.Context(), liveStreamLifetime)
	defer cancel()
	defer context.AfterFunc(s.liveCtx, cancel)()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	win := &liveWindow{}
	var buf []byte
	send := func(now time.Time) error {
		win.take(s.live, now)
		data, err := json.Marshal(s.liveEvent(ctx, win, now))
		if err != nil {
			return fmt.Errorf("encode live event: %w", err)
		}
		buf = append(buf[:0], "event: stats\ndata: "...)
		buf = append(buf, data...)
		buf = append(buf, "\n\n"...)
		if win.n == 1 {
			buf = fmt.Appendf(buf, "retry: %d\n\n", liveRetry.Milliseconds())
		}
		rc.SetWriteDeadline(time.Now().Add(liveWriteWait))
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write live event: %w", err)
		}
		return rc.Flush()
	}
	if err := send(time.Now()); err != nil {
		s.log.Debug("live stream ended", "error", err)
		return
	}
	tick := time.NewTicker(liveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if err := send(now); err != nil {
				s.log.Debug("live stream ended", "error", err)
				return
			}
		}
	}
}

// stopLiveStreams ends every live stream and refuses new ones, and waits
// for their handlers to return: at most a write (liveWriteWait) or a
// strategy's stats (statsWait, cut short) away.
func (s *Server) stopLiveStreams() {
	s.mu.Lock()
	s.liveClosed = true
	s.mu.Unlock()
	s.stopLive()
	s.liveStreams.Wait()
}
