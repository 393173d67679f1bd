package client

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/wslab/wslab/taskproto"
)

// maxReplyBytes bounds one reply frame (F(10^7) has 2.1 million digits).
const maxReplyBytes = 64 << 20

// Run runs the load described by opt and returns what it measured. It
// returns an error only when the run could not happen at all (bad options);
// connection failures, wrong and missing replies are in the Summary.
//
// Cancelling ctx stops sending, waits briefly for outstanding replies,
// closes every connection with status 1000 and returns the partial Summary
// (Interrupted set).
func Run(ctx context.Context, opt Options) (*Summary, error) {
	p, err := newPlan(opt)
	if err != nil {
		return nil, err
	}
	return newRun(p).exec(ctx), nil
}

// run is one execution of a plan.
type run struct {
	p      *plan
	base   time.Time // time zero of the run; times are ns since it
	mono   int64     // base on CLOCK_MONOTONIC, as timelines count
	shards []*shard
	conns  []*conn
	tick   time.Duration // how often connections look for expired replies
	dialer *websocket.Dialer
	header http.Header

	endAt int64 // closed loop with a duration: when sending stops

	// Open loop: request g of the schedule is due at schedStart + g/Rate
	// and belongs to connection g mod Clients. The schedule starts once
	// every connection has been dialled.
	undialed   atomic.Int64  // connections not yet through their dial
	started    chan struct{} // closed when the schedule starts
	schedStart atomic.Int64  // -1 before the start
	interval   float64       // ns between requests
	schedN     int64         // how many requests the schedule holds; written before started is closed
	drainAt    int64         // when waiting for queued requests ends; likewise

	interrupted atomic.Bool
	verboseMu   sync.Mutex
}

func newRun(p *plan) *run {
	o := &p.opt
	r := &run{
		p:     p,
		tick:  min(max(o.ReplyTimeout/10, 10*time.Millisecond), time.Second),
		endAt: int64(o.Duration),
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: o.DialTimeout,
			TLSClientConfig:  p.tls,
		},
		header: http.Header{},
	}
	if o.Token != "" {
		r.header.Set("Authorization", "Bearer "+o.Token)
	}
	n := min(o.Clients, max(1, runtime.GOMAXPROCS(0)/2), 16)
	for range n {
		r.shards = append(r.shards, &shard{})
	}
	r.conns = make([]*conn, o.Clients)
	for i := range r.conns {
		r.conns[i] = newConn(r, i, r.shards[i%n])
	}
	r.schedStart.Store(-1)
	if p.mode == ModeRate {
		r.undialed.Store(int64(o.Clients))
		r.started = make(chan struct{})
		r.interval = float64(time.Second) / o.Rate
	}
	return r
}

func (r *run) now() int64 { return int64(time.Since(r.base)) }

func (r *run) rampDelay(id int) time.Duration {
	if r.p.opt.RampUp <= 0 {
		return 0
	}
	return time.Duration(float64(r.p.opt.RampUp) * float64(id) / float64(r.p.opt.Clients))
}

func (r *run) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.opt.DialTimeout)
	defer cancel()
	ws, resp, err := r.dialer.DialContext(ctx, r.p.opt.URL, r.header)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	ws.SetReadLimit(maxReplyBytes)
	return ws, nil
}

// dialDone tells the open-loop schedule that one more connection has been
// dialled (or will not be); the last one starts the schedule.
func (r *run) dialDone() {
	if r.p.mode != ModeRate || r.undialed.Add(-1) != 0 {
		return
	}
	start := r.now()
	d := int64(r.p.opt.Duration)
	n := int64(math.Ceil(float64(d) / r.interval))
	for n > 0 && r.offset(n-1) >= d {
		n--
	}
	for r.offset(n) < d {
		n++
	}
	r.schedN = n
	r.drainAt = start + d + int64(r.p.opt.ReplyTimeout)
	r.schedStart.Store(start)
	close(r.started)
}

// offset is when request g of the schedule is due, from its start.
func (r *run) offset(g int64) int64 { return int64(math.Round(float64(g) * r.interval)) }

// due is when request g of the schedule is due; only after started.
func (r *run) due(g int64) int64 { return r.schedStart.Load() + r.offset(g) }

// scheduled counts the schedule's requests for connection id from g on.
func (r *run) scheduled(g int64) int64 {
	if g >= r.schedN {
		return 0
	}
	return (r.schedN-1-g)/int64(r.p.opt.Clients) + 1
}

func (r *run) verbosef(format string, args ...any) {
	if r.p.opt.Verbose == nil {
		return
	}
	r.verboseMu.Lock()
	defer r.verboseMu.Unlock()
	fmt.Fprintf(r.p.opt.Verbose, format, args...)
}

func (r *run) exec(ctx context.Context) *Summary {
	var (
		scraper   *metricsScraper
		before    families
		beforeErr error
	)
	if r.p.opt.MetricsURL != "" {
		scraper = newMetricsScraper(r.p)
		before, beforeErr = scraper.baseline(ctx)
	}
	ended := func() {}
	if r.p.opt.OnLoad != nil {
		ended = r.p.opt.OnLoad()
	}
	r.base = time.Now()
	r.mono = taskproto.MonotonicAt(r.base)
	stopProgress := r.startProgress()
	var wg sync.WaitGroup
	for _, c := range r.conns {
		wg.Go(func() { c.run(ctx) })
	}
	wg.Wait()
	wall := time.Since(r.base)
	stopProgress()
	ended()
	s := r.summary(wall)
	if scraper != nil {
		s.Host = scraper.view(ctx, before, beforeErr)
	}
	return s
}

// startProgress shows a progress bar on Options.Progress when it is a
// terminal: over requests in sequence mode, over seconds otherwise. The
// returned function removes it.
func (r *run) startProgress() (stop func()) {
	f, ok := r.p.opt.Progress.(*os.File)
	if !ok || f == nil || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	o := &r.p.opt
	var total int64
	desc := "requests"
	if r.p.mode == ModeSequence {
		total = int64(o.Clients) * int64(len(r.p.tokens))
	} else {
		total = int64(math.Ceil(o.Duration.Seconds()))
		desc = "seconds"
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Finish()
				return
			case <-t.C:
				if r.p.mode == ModeSequence {
					var n int64
					for _, c := range r.conns {
						n += c.replies.Load()
					}
					bar.Set64(n)
				} else {
					from := int64(0)
					if r.p.mode == ModeRate {
						if from = r.schedStart.Load(); from < 0 {
							continue
						}
					}
					bar.Set64(min(int64(time.Duration(r.now()-from).Seconds()), total))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// summary adds up what the connections measured, once every goroutine has
// stopped.
func (r *run) summary(wall time.Duration) *Summary {
	o := &r.p.opt
	s := &Summary{
		URL:             o.URL,
		Protocol:        o.Protocol,
		Mode:            r.p.mode,
		Clients:         o.Clients,
		Pipeline:        o.Pipeline,
		Rate:            o.Rate,
		Tasks:           slices.Clone(o.Tasks),
		DurationSeconds: o.Duration.Seconds(),
		WallSeconds:     wall.Seconds(),
		Interrupted:     r.interrupted.Load(),
		Errors:          map[string]int64{},
	}
	r.addCounts(s)
	if s.WallSeconds > 0 {
		s.Throughput = float64(s.OK) / s.WallSeconds
	}
	r.addTimes(s)
	s.Timing = stageSpans(r.conns)
	return s
}

// addCounts adds up the connections' counts, samples and completion times.
func (r *run) addCounts(s *Summary) {
	const maxSamples = 10
	sample := func(to *[]string, msg string) {
		if len(*to) < maxSamples {
			*to = append(*to, msg)
		}
	}
	var clientMS []float64
	for _, c := range r.conns {
		s.Sent += c.sent
		s.Replies += c.replies.Load()
		s.OK += c.ok
		s.Wrong += c.wrong
		s.Missing += c.missing
		s.Unsent += c.unsent
		for code, n := range c.errors {
			s.Errors[code] += n
		}
		if c.ws != nil {
			s.Connections++
		}
		if c.failed.Load() {
			s.ConnFailures++
			sample(&s.FailureSamples, c.failure)
		}
		if c.note != "" {
			sample(&s.FailureSamples, c.note)
		}
		for _, w := range c.wrongSamples {
			sample(&s.WrongSamples, w)
		}
		if c.completed {
			clientMS = append(clientMS, float64(c.took)/float64(time.Millisecond))
		}
	}
	s.ClientSeconds = exactPercentiles(clientMS)
}

// addTimes merges the shards' histograms into the summary's percentiles.
func (r *run) addTimes(s *Summary) {
	var want []int // every kind of the sequence, listed even without values
	for _, t := range r.p.tokens {
		if !slices.Contains(want, t.kind) {
			want = append(want, t.kind)
		}
	}
	s.Latency = summarise(mergeKinds(r.shards, func(sh *shard) *[numKinds]*hdrHist { return &sh.lat }), want)
	// Only JSON replies carry the host's queue and run times.
	if q := mergeKinds(r.shards, func(sh *shard) *[numKinds]*hdrHist { return &sh.queue }); anyHist(q) {
		s.Queue = summarise(q, want)
	}
	if run := mergeKinds(r.shards, func(sh *shard) *[numKinds]*hdrHist { return &sh.run }); anyHist(run) {
		s.Run = summarise(run, want)
	}
	if r.p.mode == ModeRate {
		lag := newHist()
		for _, sh := range r.shards {
			if sh.lag != nil {
				lag.Merge(sh.lag)
			}
		}
		p := percentilesOf(lag)
		s.SendLag = &p
	}
}
