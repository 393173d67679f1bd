package lab

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/lab/stats"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/wire"
	"github.com/wslab/wslab/tasks"
)

// BenchOptions configure a bench run.
type BenchOptions struct {
	BinDir     string
	Strategies []string // inproc first
	Trials     int
	// Window is how long each throughput figure is measured per trial.
	Window time.Duration
	// IdleConns is how many idle connections the memory figure holds.
	IdleConns int
	Progress  io.Writer
}

// Bench is what `lab bench` measures: the machine's floors and each
// strategy beside them, every figure a median over interleaved trials.
type Bench struct {
	Machine    Machine              `json:"machine"`
	Trials     int                  `json:"trials"`
	Floors     BenchFloors          `json:"floors"`
	Strategies []BenchStrategy      `json:"strategies"`
	Memory     BenchMemory          `json:"memory"`
	Targets    []BenchTarget        `json:"targets"`
	Samples    map[string][]float64 `json:"samples"` // every trial's value of every figure
	// Skipped are the rungs of the isolation ladder the run left out, and why.
	Skipped []LadderSkip `json:"skipped,omitempty"`

	spans map[string][]Span // each strategy's spans, in path order, as first seen
}

// noteSpans records which spans a strategy's noops pass, in path order.
func (b *Bench) noteSpans(strategy string, spans []Span) {
	if b.spans == nil {
		b.spans = map[string][]Span{}
	}
	known := b.spans[strategy]
	for _, sp := range spans {
		seen := false
		for _, k := range known {
			seen = seen || (k.From == sp.From && k.To == sp.To)
		}
		if !seen {
			known = append(known, sp)
		}
	}
	sortSpans(known)
	b.spans[strategy] = known
}

// BenchFloors are the physical references, measured in the same run.
type BenchFloors struct {
	UnixRTTMicros      float64 `json:"unix_rtt_us"`      // one byte to another process and back, over a socketpair
	GoroutineRTTMicros float64 `json:"goroutine_rtt_us"` // one value to another goroutine and back
	BareRTTMicros      float64 `json:"bare_rtt_us"`      // noop round trip through a bare gorilla server
	BareRTTP99Micros   float64 `json:"bare_rtt_p99_us"`
	BarePipelined      float64 `json:"bare_pipelined_per_s"` // pipelined noop throughput of the bare server
	CPULimit           float64 `json:"cpu_limit_per_s"`      // cpu tasks per second with every core running them, in process
	NATSRTTMicros      float64 `json:"nats_rtt_us"`          // bare NATS request/reply, embedded server, responder in another process
	SingleTaskMicros   float64 `json:"python_lab_task_us"`   // fib(5000) + cpu(10^6) + io(10^6), once each, one core
}

// BenchStrategy is one strategy's figures.
type BenchStrategy struct {
	Name             string  `json:"name"`
	RTTMicros        float64 `json:"rtt_p50_us"`
	RTTP99Micros     float64 `json:"rtt_p99_us"`
	HopMicros        float64 `json:"hop_us"`        // its round trip minus inproc's
	HopOverUnix      float64 `json:"hop_over_unix"` // that, in Unix floors
	Pipelined        float64 `json:"pipelined_per_s"`
	PipelinedVsIn    float64 `json:"pipelined_vs_inproc"`
	PipelinedVsBare  float64 `json:"pipelined_vs_bare"`
	CPU              float64 `json:"cpu_per_s"`
	CPUVsLimit       float64 `json:"cpu_vs_limit"`
	CPUMicrosPerNoop float64 `json:"cpu_us_per_noop"` // host + plugin + workers
	CPUPerNoopVsIn   float64 `json:"cpu_per_noop_vs_inproc"`
	CPUVsIn          float64 `json:"cpu_vs_inproc"` // cpu throughput against inproc's, same trial
	// HopOverNATS is distributed's hop in bare NATS request/reply floors.
	HopOverNATS float64 `json:"hop_over_nats,omitempty"`
	// Spans are where a noop's round trip goes (medians over the trials).
	Spans            []Span  `json:"spans,omitempty"`
	PythonLabSeconds float64 `json:"python_lab_s"` // 200 clients × fib, cpu, io, plain text
	PythonLabLimit   float64 `json:"python_lab_limit_s"`
	Failed           string  `json:"failed,omitempty"`
}

// BenchMemory is the host's memory per idle connection.
type BenchMemory struct {
	Connections int     `json:"connections"`
	KiBPerConn  float64 `json:"kib_per_conn"`
	BaseMB      float64 `json:"base_mb"`
	HeldMB      float64 `json:"held_mb"`
	Failed      string  `json:"failed,omitempty"`
}

// BenchTarget is one of the targets and where the run stands.
type BenchTarget struct {
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

// benchHostConfig is what every bench host runs on: the defaults, on
// loopback, with room for the idle connections.
const benchHostConfig = "[server]\nhost = 127.0.0.1\n[limits]\nmax_connections = 100000\n"

// RunBench measures the floors and every strategy, interleaving trials
// with the strategy order rotated from one trial to the next.
func RunBench(ctx context.Context, opt BenchOptions) (*Bench, error) {
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "wslab-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(conf, []byte(benchHostConfig), 0o600); err != nil {
		return nil, err
	}
	b := &Bench{Machine: machine(), Trials: opt.Trials, Samples: map[string][]float64{}}
	add := func(name string, v float64) {
		if !math.IsNaN(v) {
			b.Samples[name] = append(b.Samples[name], v)
		}
	}
	single := singleTaskMicros()
	add("floor.python_lab_task_us", single)
	failed := map[string]string{}
	for trial := range opt.Trials {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		progress(opt.Progress, "trial %d/%d: floors", trial+1, opt.Trials)
		if err := measureFloors(ctx, opt, add); err != nil {
			return nil, fmt.Errorf("floors: %w", err)
		}
		n := len(opt.Strategies)
		for i := range n {
			s := opt.Strategies[(i+trial)%n]
			progress(opt.Progress, "trial %d/%d: %s", trial+1, opt.Trials, s)
			addSpans := func(spans []Span) { b.noteSpans(s, spans) }
			if err := measureStrategy(ctx, opt, conf, s, add, addSpans); err != nil {
				failed[s] = err.Error()
				progress(opt.Progress, "  %s failed: %v", s, err)
			}
		}
	}
	progress(opt.Progress, "memory: %d idle connections", opt.IdleConns)
	b.Memory = measureMemory(ctx, opt, conf)
	b.summarise(opt.Strategies, failed)
	return b, nil
}

func med(b *Bench, name string) float64 { return stats.Median(b.Samples[name]) }

// pairedRatio is the median of a/b trial by trial, or the ratio of their
// medians when a trial is missing from one.
func pairedRatio(a, b []float64) float64 {
	if len(a) != len(b) {
		return stats.Median(a) / stats.Median(b)
	}
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return stats.Median(r)
}

// pairedDiff is the median of the differences of a and b trial by trial
// (noise that moves both in one trial cancels out), or the difference of
// their medians when a trial is missing from one.
func pairedDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return stats.Median(a) - stats.Median(b)
	}
	return stats.Median(pairedDiffs(a, b))
}

func pairedDiffs(a, b []float64) []float64 {
	d := make([]float64, min(len(a), len(b)))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return d
}

// summarise turns the samples into medians and ratios, and the ratios into
// the targets' verdicts.
func (b *Bench) summarise(names []string, failed map[string]string) {
	b.Floors = BenchFloors{
		UnixRTTMicros: med(b, "floor.unix_rtt_us"), GoroutineRTTMicros: med(b, "floor.goroutine_rtt_us"),
		BareRTTMicros: med(b, "floor.bare_rtt_us"), BareRTTP99Micros: med(b, "floor.bare_rtt_p99_us"),
		BarePipelined: med(b, "floor.bare_pipelined_per_s"), CPULimit: med(b, "floor.cpu_limit_per_s"),
		SingleTaskMicros: med(b, "floor.python_lab_task_us"), NATSRTTMicros: med(b, "floor.nats_rtt_us"),
	}
	f := b.Floors
	for _, n := range names {
		s := BenchStrategy{
			Name: n, RTTMicros: med(b, n+".rtt_p50_us"), RTTP99Micros: med(b, n+".rtt_p99_us"),
			Pipelined: med(b, n+".pipelined_per_s"), CPU: med(b, n+".cpu_per_s"),
			CPUMicrosPerNoop: med(b, n+".cpu_us_per_noop"), PythonLabSeconds: med(b, n+".python_lab_s"),
			Failed: failed[n],
		}
		s.HopMicros = pairedDiff(b.Samples[n+".rtt_p50_us"], b.Samples["inproc.rtt_p50_us"])
		s.HopOverUnix = pairedRatio(pairedDiffs(b.Samples[n+".rtt_p50_us"], b.Samples["inproc.rtt_p50_us"]), b.Samples["floor.unix_rtt_us"])
		s.PipelinedVsIn = pairedRatio(b.Samples[n+".pipelined_per_s"], b.Samples["inproc.pipelined_per_s"])
		s.PipelinedVsBare = pairedRatio(b.Samples[n+".pipelined_per_s"], b.Samples["floor.bare_pipelined_per_s"])
		// The limit is measured right before each strategy's cpu run: on
		// this kind of machine it moves by half in a minute.
		s.CPUVsLimit = pairedRatio(b.Samples[n+".cpu_per_s"], b.Samples[n+".cpu_limit_per_s"])
		s.CPUVsIn = pairedRatio(b.Samples[n+".cpu_per_s"], b.Samples["inproc.cpu_per_s"])
		s.CPUPerNoopVsIn = pairedRatio(b.Samples[n+".cpu_us_per_noop"], b.Samples["inproc.cpu_us_per_noop"])
		if n == "distributed" {
			// Its hop in bare NATS request/reply floors.
			s.HopOverNATS = pairedRatio(pairedDiffs(b.Samples[n+".rtt_p50_us"], b.Samples["inproc.rtt_p50_us"]), b.Samples["floor.nats_rtt_us"])
		}
		for _, sp := range b.spans[n] {
			sp.Micros = med(b, spanKey(n, sp))
			s.Spans = append(s.Spans, sp)
		}
		s.PythonLabLimit = 200 * f.SingleTaskMicros / 1e6 / float64(runtime.NumCPU())
		b.Strategies = append(b.Strategies, s)
	}
	b.Targets = benchTargets(b.Strategies, b.Memory)
}

// benchTargets holds the figures against issue 18's targets. A figure the
// run could not measure is listed with no value, not met.
func benchTargets(ss []BenchStrategy, m BenchMemory) []BenchTarget {
	var out []BenchTarget
	bound := func(figure string, v float64, op string, limit float64) {
		met := !math.IsNaN(v) && !math.IsInf(v, 0) && ((op == "≤" && v <= limit) || (op == "≥" && v >= limit))
		if math.IsInf(v, 0) {
			v = math.NaN()
		}
		out = append(out, BenchTarget{figure, v, op + " " + strconv.FormatFloat(limit, 'g', -1, 64), met})
	}
	for _, s := range ss {
		switch s.Name {
		case "inproc":
			bound("inproc pipelined noop / bare gorilla server", s.PipelinedVsBare, "≥", 0.85)
			bound("inproc cpu throughput / in-process limit", s.CPUVsLimit, "≥", 0.85)
		case "pool", "semaphore", "adaptive":
			bound(s.Name+" hop / Unix floor", s.HopOverUnix, "≤", 3)
			bound(s.Name+" pipelined noop / inproc", s.PipelinedVsIn, "≥", 0.8)
			bound(s.Name+" cpu throughput / inproc", s.CPUVsIn, "≥", 0.95)
			if s.Name != "adaptive" {
				bound(s.Name+" CPU per noop / inproc", s.CPUPerNoopVsIn, "≤", 1.5)
			}
		case "multiproc":
			bound("multiproc hop / Unix floor", s.HopOverUnix, "≤", 4)
			bound("multiproc pipelined noop / inproc", s.PipelinedVsIn, "≥", 0.6)
			bound("multiproc cpu throughput / inproc", s.CPUVsIn, "≥", 0.95)
			bound("multiproc CPU per noop / inproc", s.CPUPerNoopVsIn, "≤", 2)
		case "distributed":
			bound("distributed hop / bare NATS request-reply", s.HopOverNATS, "≤", 2)
			bound("distributed pipelined noop / inproc", s.PipelinedVsIn, "≥", 0.3)
			bound("distributed CPU per noop / inproc", s.CPUPerNoopVsIn, "≤", 4)
		}
	}
	kib := m.KiBPerConn
	if m.Failed != "" || m.Connections <= 0 {
		kib = math.NaN()
	}
	bound(fmt.Sprintf("memory per idle connection at %d connections (KiB)", m.Connections), kib, "≤", 8)
	return out
}

// measureFloors adds one trial of every floor.
func measureFloors(ctx context.Context, opt BenchOptions, add func(string, float64)) error {
	rtt, err := unixPingPong(20000)
	if err != nil {
		return err
	}
	add("floor.unix_rtt_us", rtt)
	add("floor.goroutine_rtt_us", goroutinePingPong(100000))
	url, stop, err := startBareServer(opt.BinDir)
	if err != nil {
		return err
	}
	defer stop()
	p50, p99, err := noopRoundTrip(ctx, url, opt.Window/2)
	if err != nil {
		return err
	}
	add("floor.bare_rtt_us", p50)
	add("floor.bare_rtt_p99_us", p99)
	sum, err := client.Run(ctx, pipelinedNoop(url, opt.Window))
	if err != nil {
		return err
	}
	add("floor.bare_pipelined_per_s", sum.Throughput)
	add("floor.cpu_limit_per_s", cpuLimit(opt.Window))
	nats, err := natsPingPong(ctx, 5000)
	if err != nil {
		return err
	}
	add("floor.nats_rtt_us", nats)
	return nil
}

// measureStrategy adds one trial of every figure of strategy s; a
// variant (multiproc-strict) runs its plugin on conf with its settings
// after it.
func measureStrategy(ctx context.Context, opt BenchOptions, conf, s string, add func(string, float64), addSpans func([]Span)) error {
	if _, ok := variants[s]; ok {
		base, err := os.ReadFile(conf)
		if err != nil {
			return err
		}
		conf = filepath.Join(filepath.Dir(conf), "config-"+s+".ini")
		if err := os.WriteFile(conf, []byte(variantConfig(s, base)), 0o600); err != nil {
			return err
		}
	}
	h, err := hostproc.Start(ctx, hostproc.Options{Command: []string{filepath.Join(opt.BinDir, "host"), "--config", conf, "--plugin", pluginOf(s)}})
	if err != nil {
		return err
	}
	defer h.Stop(15 * time.Second)
	p50, p99, err := noopRoundTrip(ctx, h.URL, opt.Window/2)
	if err != nil {
		return err
	}
	add(s+".rtt_p50_us", p50)
	add(s+".rtt_p99_us", p99)
	// Timed noops, apart from the round trips above and before the meter
	// starts: asking for the timeline costs a little, which the other
	// figures do not pay. They say where the time goes and are no figure
	// of their own: when they fail, the figures go on.
	if spans, err := timedNoops(ctx, h.URL, opt.Window/4); err != nil {
		progress(opt.Progress, "  %s: %v", s, err)
	} else {
		for _, sp := range spans {
			add(spanKey(s, sp), sp.Micros)
		}
		addSpans(spans)
	}
	meter := newTreeMeter(h.PID(), 100*time.Millisecond)
	meter.Start()
	sum, err := client.Run(ctx, pipelinedNoop(h.URL, opt.Window))
	cpuSec, _, _ := meter.Stop()
	if err != nil {
		return err
	}
	if err := complete(sum); err != nil {
		return fmt.Errorf("pipelined noop: %w", err)
	}
	add(s+".pipelined_per_s", sum.Throughput)
	if sum.OK > 0 {
		add(s+".cpu_us_per_noop", cpuSec*1e6/float64(sum.OK))
	}
	add(s+".cpu_limit_per_s", cpuLimit(opt.Window))
	cpu := client.Options{URL: h.URL, Clients: 2 * runtime.NumCPU(), Tasks: []string{"cpu"}, Protocol: "json",
		Pipeline: 8, Duration: opt.Window, N: map[string]int64{"cpu": tasks.DefaultCPUN}, FibN: 5000}
	if sum, err = client.Run(ctx, cpu); err != nil {
		return err
	}
	if err := complete(sum); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	add(s+".cpu_per_s", sum.Throughput)
	py := client.Options{URL: h.URL, Clients: 200, Tasks: []string{"fib", "cpu", "io"}, Protocol: "plain", FibN: 5000}
	if sum, err = client.Run(ctx, py); err != nil {
		return err
	}
	if err := complete(sum); err != nil {
		return fmt.Errorf("Python lab run: %w", err)
	}
	add(s+".python_lab_s", sum.WallSeconds)
	return nil
}

// complete says what went wrong in a run that should have no error.
func complete(s *client.Summary) error {
	if s.Wrong+s.Missing+s.Unsent+s.ConnFailures > 0 || len(s.Errors) > 0 {
		return fmt.Errorf("%d wrong, %d missing, %d unsent, %d connection failures, errors %v", s.Wrong, s.Missing, s.Unsent, s.ConnFailures, s.Errors)
	}
	return nil
}

func pipelinedNoop(url string, d time.Duration) client.Options {
	return client.Options{URL: url, Clients: 16, Pipeline: 16, Tasks: []string{"noop"}, Protocol: "json", Duration: d, FibN: 5000}
}

// noopRoundTrip is the p50 and p99, in µs, of one noop at a time on one
// connection for d.
func noopRoundTrip(ctx context.Context, url string, d time.Duration) (p50, p99 float64, err error) {
	sum, err := client.Run(ctx, client.Options{URL: url, Clients: 1, Pipeline: 1, Tasks: []string{"noop"}, Protocol: "json", Duration: d, FibN: 5000})
	if err != nil {
		return 0, 0, err
	}
	if err := complete(sum); err != nil {
		return 0, 0, err
	}
	l := sum.Latency["noop"]
	return l.P50 * 1000, l.P99 * 1000, nil
}

// unixPingPong is the median round trip, in µs, of one byte to another
// process over a socketpair.
func unixPingPong(n int) (float64, error) {
	conn, theirs, err := wire.NewChannel("echo")
	if err != nil {
		return 0, err
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), benchChildEnv+"=echo")
	cmd.ExtraFiles = []*os.File{theirs}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		conn.Close()
		return 0, err
	}
	defer func() { conn.Close(); cmd.Wait() }()
	buf := []byte{'x'}
	rtts := make([]float64, 0, n)
	for range n {
		start := time.Now()
		if _, err := conn.Write(buf); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			return 0, err
		}
		rtts = append(rtts, float64(time.Since(start).Nanoseconds())/1000)
	}
	return stats.Median(rtts), nil
}

// goroutinePingPong is the mean round trip, in µs, of a value to another
// goroutine and back.
func goroutinePingPong(n int) float64 {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	defer close(ping)
	start := time.Now()
	for i := range n {
		ping <- i
		<-pong
	}
	return float64(time.Since(start).Nanoseconds()) / 1000 / float64(n)
}

// startBareServer starts the bare gorilla server in a process of its own.
func startBareServer(binDir string) (url string, stop func(), err error) {
	cmd := exec.Command(filepath.Join(binDir, "lab"))
	cmd.Env = append(os.Environ(), benchChildEnv+"=ws")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { stdin.Close(); cmd.Wait() }
	line := make([]byte, 64)
	n, err := stdout.Read(line)
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("bare server: %w", err)
	}
	return "ws://" + strings.TrimSpace(string(line[:n])) + "/ws", stop, nil
}

// cpuLimit is how many cpu tasks (n = 10^6) per second this process runs
// with a goroutine per core running them at once, for d.
func cpuLimit(d time.Duration) float64 {
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := 0
	deadline := time.Now().Add(d)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Go(func() {
			n := 0
			for time.Now().Before(deadline) {
				tasks.CPU(context.Background(), tasks.DefaultCPUN)
				n++
			}
			mu.Lock()
			count += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(count) / time.Since(start).Seconds()
}

// singleTaskMicros is the median time, on one core, of the Python lab's
// three tasks run once each: fib(5000), cpu(10^6) and io(10^6).
func singleTaskMicros() float64 {
	dir, _ := os.MkdirTemp("", "wslab-bench-io-")
	defer os.RemoveAll(dir)
	r := tasks.Runner{DataDir: dir, LargeFileName: "large_file.txt"}
	var runs []float64
	for range 21 {
		start := time.Now()
		for _, t := range []struct {
			kind string
			n    int64
		}{{"fib", 5000}, {"cpu", tasks.DefaultCPUN}, {"io", tasks.DefaultIOBytes}} {
			r.Run(context.Background(), taskproto.Task{Kind: t.kind, N: t.n})
		}
		runs = append(runs, float64(time.Since(start).Nanoseconds())/1000)
	}
	return stats.Median(runs)
}

// measureMemory holds IdleConns idle connections to an inproc host from a
// process of their own and reports the host's memory per connection.
func measureMemory(ctx context.Context, opt BenchOptions, conf string) BenchMemory {
	m := BenchMemory{Connections: opt.IdleConns}
	h, err := hostproc.Start(ctx, hostproc.Options{Command: []string{filepath.Join(opt.BinDir, "host"), "--config", conf, "--plugin", "inproc"}})
	if err != nil {
		m.Failed = err.Error()
		return m
	}
	defer h.Stop(15 * time.Second)
	time.Sleep(500 * time.Millisecond)
	base := treeRSS(h.PID())
	cmd := exec.Command(filepath.Join(opt.BinDir, "lab"), strconv.Itoa(opt.IdleConns), h.URL)
	cmd.Env = append(os.Environ(), benchChildEnv+"=hold")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		m.Failed = err.Error()
		return m
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	buf := make([]byte, 32)
	if _, err := stdout.Read(buf); err != nil {
		m.Failed = "holder: " + err.Error()
		return m
	}
	time.Sleep(2 * time.Second) // let the host's garbage collector settle
	held := treeRSS(h.PID())
	m.BaseMB, m.HeldMB = float64(base)/(1<<20), float64(held)/(1<<20)
	m.KiBPerConn = float64(held-base) / 1024 / float64(opt.IdleConns)
	return m
}

// treeRSS is the resident memory of pid and its descendants, in bytes.
func treeRSS(pid int) int64 {
	var rss int64
	for _, p := range processTree(pid) {
		rss += p.rssBytes
	}
	return rss
}

// WriteTable prints the bench's table.
func (b *Bench) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	f := b.Floors
	fmt.Fprintf(w, "wslab bench: medians of %d interleaved trials on %d CPUs (%s)\n\n", b.Trials, b.Machine.CPUs, b.Machine.OS)
	fmt.Fprintln(tw, "floor\tvalue\t")
	fmt.Fprintf(tw, "Unix-socket ping-pong, two processes\t%.1f µs\t\n", f.UnixRTTMicros)
	fmt.Fprintf(tw, "goroutine ping-pong\t%.2f µs\t\n", f.GoroutineRTTMicros)
	fmt.Fprintf(tw, "bare gorilla server, noop round trip p50 / p99\t%.1f / %.1f µs\t\n", f.BareRTTMicros, f.BareRTTP99Micros)
	fmt.Fprintf(tw, "bare gorilla server, pipelined noop\t%.0f /s\t\n", f.BarePipelined)
	fmt.Fprintf(tw, "in-process cpu limit, every core\t%.0f /s\t\n", f.CPULimit)
	fmt.Fprintf(tw, "bare NATS request/reply, responder in another process\t%.1f µs\t\n", f.NATSRTTMicros)
	fmt.Fprintf(tw, "Python lab's tasks once (fib, cpu, io), one core\t%.0f µs\t\n", f.SingleTaskMicros)
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tRTT p50 µs\tp99 µs\thop µs\thop/Unix\thop/NATS\tpipelined /s\t/inproc\t/bare\tcpu /s\t/limit\t/inproc\tCPU µs/noop\t/inproc\tPython lab s\tlimit s\t")
	for _, s := range b.Strategies {
		if s.Failed != "" && math.IsNaN(s.RTTMicros) {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\n", s.Name, s.Failed)
			continue
		}
		overNATS := "-"
		if s.Name == "distributed" {
			overNATS = fmt.Sprintf("%.2f", s.HopOverNATS)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.2f\t%s\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.1f\t%.2f\t%.3f\t%.3f\t\n",
			s.Name, s.RTTMicros, s.RTTP99Micros, s.HopMicros, s.HopOverUnix, overNATS, s.Pipelined, s.PipelinedVsIn, s.PipelinedVsBare,
			s.CPU, s.CPUVsLimit, s.CPUVsIn, s.CPUMicrosPerNoop, s.CPUPerNoopVsIn, s.PythonLabSeconds, s.PythonLabLimit)
	}
	tw.Flush()
	for _, sk := range b.Skipped {
		fmt.Fprintf(w, "%s: left out: %s\n", sk.Rung, sk.Why)
	}
	fmt.Fprintln(w)
	writeSpans(w, b.Strategies)
	if b.Memory.Failed != "" {
		fmt.Fprintf(w, "memory: failed: %s\n\n", b.Memory.Failed)
	} else {
		fmt.Fprintf(w, "memory: %.1f KiB per idle connection (%d connections held by another process: host %.1f MB → %.1f MB)\n\n",
			b.Memory.KiBPerConn, b.Memory.Connections, b.Memory.BaseMB, b.Memory.HeldMB)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tvalue\twant\t")
	for _, t := range b.Targets {
		value, mark := fmt.Sprintf("%.2f", t.Value), "met"
		switch {
		case math.IsNaN(t.Value):
			value, mark = "-", "NOT MEASURED"
		case !t.Met:
			mark = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Figure, value, t.Target, mark)
	}
	tw.Flush()
}

// BenchMain is `lab bench`: it measures, prints the table and writes the
// JSON.
func BenchMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("lab bench", flag.ContinueOnError)
	fset.SetOutput(stderr)
	binDir := fset.String("bin-dir", "", "directory holding host, lab and plugins/ (default: beside the lab binary)")
	out := fset.String("out", "bench.json", "where the figures go, as JSON")
	trials := fset.Int("trials", 5, "interleaved trials (medians are taken over them)")
	window := fset.Duration("window", 2*time.Second, "how long each throughput figure is measured per trial")
	conns := fset.Int("idle-conns", 10000, "idle connections for the memory figure")
	strats := fset.String("strategies", "", "comma-separated strategies (default: inproc, every plugin and the variants this machine runs, multiproc-strict)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if *trials < 1 || *window <= 0 || *conns < 1 {
		fmt.Fprintln(stderr, "lab bench: --trials, --window and --idle-conns must be positive")
		return ExitUsage
	}
	dir, err := resolveBinDir(*binDir)
	if err != nil {
		fmt.Fprintf(stderr, "lab bench: %v\n", err)
		return ExitUsage
	}
	names, err := pluginNames(dir)
	if err != nil {
		fmt.Fprintf(stderr, "lab bench: %v\n", err)
	}
	names = withVariants(names)
	if *strats != "" {
		names = config.SplitList(*strats)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The rungs of the ladder this machine or build cannot run.
	var skipped []LadderSkip
	for _, sk := range ladderSkips(names, dir) {
		if sk.Why != notGiven {
			skipped = append(skipped, sk)
			fmt.Fprintf(stderr, "lab bench: %s left out: %s\n", sk.Rung, sk.Why)
		}
	}
	b, err := RunBench(ctx, BenchOptions{BinDir: dir, Strategies: names, Trials: *trials, Window: *window, IdleConns: *conns, Progress: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "lab bench: %v\n", err)
		return ExitFailed
	}
	b.Skipped = skipped
	b.WriteTable(stdout)
	data, err := json.MarshalIndent(jsonSafe(reflect.ValueOf(b)), "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "lab bench: encode the figures: %v\n", err)
		return ExitFailed
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "lab bench: write %s: %v\n", *out, err)
		return ExitFailed
	}
	fmt.Fprintf(stderr, "lab bench: figures in %s\n", *out)
	return ExitOK
}
