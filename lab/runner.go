package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/taskproto"
)

// Options configure a lab run.
type Options struct {
	Config *config.Config
	// BinDir holds host and plugins/, as `make build` lays them out.
	BinDir string
	// LogDir receives each host's log, one file per strategy and round.
	LogDir string
	// Progress receives a line per strategy and round as the lab goes;
	// nil for none.
	Progress io.Writer
	// OnHost, when set, is told of each host the lab starts, once it is
	// ready (not of outside contenders): --live prints its live page.
	OnHost func(strategy string, round int, h *hostproc.Host)
}

// The scenarios' names, as [lab] scenarios lists them.
const (
	scenarioMixed    = "mixed"
	scenarioCPU      = "cpu"
	scenarioSleep    = "sleep"
	scenarioNoop     = "noop"
	scenarioRTT      = "rtt"
	scenarioCapacity = "capacity"
)

// Scenarios builds the scenarios named in cfg's [lab] section.
func Scenarios(cfg *config.Config) []Scenario {
	base := client.OptionsFromConfig(cfg)
	l := cfg.Lab
	var out []Scenario
	for _, name := range l.Scenarios {
		opt := base
		var sc Scenario
		switch name {
		case scenarioMixed:
			sc = Scenario{Name: name, Description: "the Python lab's run: each client sends its task sequence in plain text and waits for each reply"}
		case scenarioCPU:
			opt.Protocol, opt.Pipeline, opt.Duration = "json", int(l.CPUPipeline), l.Duration
			opt.Clients, opt.Tasks = int(l.CPUClients), []string{taskproto.KindCPU}
			opt.N = map[string]int64{taskproto.KindCPU: l.CPUN}
			sc = Scenario{Name: name, Description: "CPU-bound throughput: pipelined cpu tasks for a fixed time"}
		case scenarioSleep:
			opt.Clients = int(l.SleepClients)
			if l.SleepMS%1000 == 0 {
				// Whole seconds go as the Python lab sent them, so that its
				// servers can run this scenario too.
				opt.Tasks = []string{strconv.FormatInt(l.SleepMS/1000, 10)}
			} else {
				opt.Protocol, opt.Tasks = "json", []string{taskproto.KindSleep}
				opt.N = map[string]int64{taskproto.KindSleep: l.SleepMS}
			}
			sc = Scenario{Name: name, Description: "the semaphore test: one sleep per client, all at once; a bounded strategy runs them in waves"}
		case scenarioNoop:
			opt.Protocol, opt.Pipeline, opt.Duration = "json", int(l.NoopPipeline), l.Duration
			opt.Clients, opt.Tasks = int(l.NoopClients), []string{taskproto.KindNoop}
			sc = Scenario{Name: name, Description: "the hop to where tasks run, pipelined: noop tasks for a fixed time"}
		case scenarioRTT:
			opt.Protocol, opt.Clients, opt.Timing = "json", 1, true
			opt.Tasks = slices.Repeat([]string{taskproto.KindNoop}, int(l.RTTCount))
			sc = Scenario{Name: name, Description: "the cost of isolation: one noop at a time on one connection, each asking for its timeline; the round trip minus inproc's is what the strategy's isolation costs per task, and the timeline says where it goes"}
		case scenarioLadder:
			sc = ladderScenario(opt, l.LadderCount)
			opt = sc.Client
		case scenarioCapacity:
			opt.Protocol, opt.Clients, opt.Pipeline = "json", int(l.CapacityClients), capacityPipeline
			opt.Tasks = slices.Clone(l.CapacityTasks)
			opt.N = map[string]int64{taskproto.KindCPU: l.CPUN}
			opt.Duration = time.Duration(l.CapacityStepMS) * time.Millisecond
			// A reply this late fails the rate anyway; waiting longer for
			// it would only stretch the run.
			opt.ReplyTimeout = max(2*time.Second, 20*time.Duration(l.SLOP99MS)*time.Millisecond)
			sc = Scenario{Name: name, Description: fmt.Sprintf(
				"open loop: the mix at a constant rate, each rate for %s, latency from the intended send time; a strategy sustains a rate while p99 stays within %d ms with no error "+
					"(a rate up to %s× what a strategy can serve still passes: its backlog needs longer than one step to delay replies past the SLO; a longer capacity_step_ms narrows this)",
				opt.Duration, l.SLOP99MS, num(1+float64(l.SLOP99MS)/float64(l.CapacityStepMS)))}
		}
		sc.Client = opt
		sc.Load = describeLoad(sc)
		if name == scenarioCapacity {
			sc.Load += ", at " + joinRates(l.CapacityRates) + " tasks/s"
		}
		out = append(out, sc)
	}
	return out
}

// capacityPipeline lets a capacity connection hold this many requests, so
// that the rate, not the client, decides what the host receives.
const capacityPipeline = 256

func describeLoad(sc Scenario) string {
	o := sc.Client
	tasks := strings.Join(o.Tasks, ", ")
	switch sc.Name {
	case scenarioRTT:
		tasks = fmt.Sprintf("%d noop", len(o.Tasks))
	case scenarioLadder:
		tasks = fmt.Sprintf("%d × (noop, fib, io)", len(o.Tasks)/3)
	}
	s := fmt.Sprintf("%d clients × %s, %s", o.Clients, tasks, o.Protocol)
	if o.Pipeline > 1 && sc.Name != scenarioCapacity {
		s += fmt.Sprintf(", %d in flight each", o.Pipeline)
	}
	switch {
	case sc.Name == scenarioCapacity:
	case o.Duration > 0:
		s += fmt.Sprintf(", for %s", o.Duration)
	default:
		s += ", sequence once"
	}
	return s
}

func joinRates(rates []float64) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = num(r)
	}
	return strings.Join(parts, ", ")
}

// Strategies lists what the lab compares: inproc first, then every plugin in
// binDir/plugins, each followed by its variants this machine can run
// (multiproc-strict), or the strategies cfg names; then cfg's outside
// contenders.
func Strategies(cfg *config.Config, binDir string) ([]string, error) {
	names := slices.Clone(cfg.Lab.Strategies)
	var err error
	if len(names) == 0 {
		names, err = pluginNames(binDir)
		names = withVariants(names)
	}
	for _, e := range cfg.Lab.External {
		if !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
	}
	return names, err
}

// pluginNames is inproc followed by every plugin in binDir/plugins.
func pluginNames(binDir string) ([]string, error) {
	names := []string{"inproc"}
	entries, err := os.ReadDir(filepath.Join(binDir, "plugins"))
	if err != nil {
		return names, fmt.Errorf("find plugins: %w", err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Run runs every scenario against every strategy in [lab] rounds rounds.
// Each round starts a fresh host per strategy, warms it up, and runs the
// scenarios on it; the strategies' order rotates from round to round so
// that the machine's drift falls on each alike.
func Run(ctx context.Context, opt Options, strategies []string, scenarios []Scenario) *Report {
	l := opt.Config.Lab
	r := &Report{
		Started:       time.Now(),
		Machine:       machine(),
		ConfigPath:    opt.Config.Path,
		Rounds:        int(l.Rounds),
		SLOP99MS:      float64(l.SLOP99MS),
		Strategies:    strategies,
		CapacityTasks: l.CapacityTasks,
		Scenarios:     scenarios,
	}
	if slices.ContainsFunc(scenarios, func(sc Scenario) bool { return sc.Name == scenarioLadder }) {
		r.Ladder = &Ladder{Skipped: ladderSkips(strategies, opt.BinDir)}
		r.Ladder.readAttacks(opt.BinDir)
		for _, s := range r.Ladder.Skipped {
			progress(opt.Progress, "ladder: %s left out: %s", s.Rung, s.Why)
		}
	}
	run := &labRun{opt: opt, report: r}
	for _, e := range l.External {
		if slices.Contains(strategies, e.Name) {
			r.Contenders = append(r.Contenders, Contender{Name: e.Name, Command: e.Command})
		}
	}
	// Every result and curve exists before the first round, so that the
	// rounds can record into them through the report's lookups.
	for _, st := range strategies {
		for _, sc := range scenarios {
			if sc.Name == scenarioCapacity {
				c := Capacity{Strategy: st}
				for _, rate := range l.CapacityRates {
					c.Points = append(c.Points, CapacityPoint{Rate: rate})
				}
				r.Capacity = append(r.Capacity, c)
				continue
			}
			if sc.Name == scenarioLadder && (!isRung(st) || r.isContender(st)) {
				continue
			}
			r.Results = append(r.Results, Result{Strategy: st, Scenario: sc.Name})
		}
	}

	for round := 1; round <= r.Rounds; round++ {
		for i, st := range rotate(strategies, round-1) {
			if ctx.Err() != nil {
				run.failSession(st, round, "lab interrupted")
				continue
			}
			progress(opt.Progress, "[round %d/%d, %d/%d] %s", round, r.Rounds, i+1, len(strategies), st)
			run.session(ctx, st, round)
		}
	}
	r.aggregate()
	r.Seconds = time.Since(r.Started).Seconds()
	return r
}

// rotate is names shifted left by k places.
func rotate(names []string, k int) []string {
	if len(names) == 0 {
		return nil
	}
	k %= len(names)
	return append(slices.Clone(names[k:]), names[:k]...)
}

// labRun is the state of one Run.
type labRun struct {
	opt    Options
	report *Report
}

// failSession records why a strategy's round measured nothing.
func (l *labRun) failSession(strategy string, round int, why string) {
	for _, sc := range l.report.Scenarios {
		if sc.Name == scenarioCapacity {
			if c := l.report.capacityOf(strategy); c != nil && len(c.Points) > 0 {
				c.Points[0].Trials = append(c.Points[0].Trials, CapacityTrial{Round: round, Failed: why})
			}
			continue
		}
		if res := l.report.result(strategy, sc.Name); res != nil {
			res.Trials = append(res.Trials, Trial{Round: round, Failed: why})
		}
	}
}

// session is one strategy's round: a fresh host, a warm-up, then every
// scenario on it.
func (l *labRun) session(ctx context.Context, strategy string, round int) {
	h, logPath, err := l.startHost(ctx, strategy, round)
	if err != nil {
		l.failSession(strategy, round, err.Error())
		progress(l.opt.Progress, "        failed: %s", firstLine(err.Error(), 200))
		return
	}
	defer h.Stop(hostStopGrace)
	l.warmUp(ctx, h)
	metricsURL := "" // a contender serves no metrics
	if !l.isContender(strategy) {
		metricsURL = h.MetricsURL()
	}
	// A worker's memory at rest, after the warm-up and before the loads,
	// whatever the scenarios' order.
	ladder := l.report.result(strategy, scenarioLadder)
	var rest *LadderTrial
	if ladder != nil {
		rest = ladderMemory(h)
	}

	var said []string
	var trials []*Trial
	for _, sc := range l.report.Scenarios {
		if sc.Name == scenarioCapacity {
			sustained := l.capacityRamp(ctx, h, sc, l.report.capacityOf(strategy), round)
			said = append(said, fmt.Sprintf("capacity %s/s", num(sustained)))
			continue
		}
		res := l.report.result(strategy, sc.Name)
		if res == nil { // the ladder's, on a strategy that is no rung
			continue
		}
		copt := sc.Client
		copt.MetricsURL = metricsURL
		res.Trials = append(res.Trials, measure(ctx, h, copt, round))
		t := &res.Trials[len(res.Trials)-1]
		trials = append(trials, t)
		said = append(said, sc.Name+" "+trialFigure(sc.Name, t))
	}
	// Last, as it disrupts the host: the kill of its workers, timed until
	// a replacement answers.
	if ladder != nil && len(ladder.Trials) > 0 && ladder.Trials[len(ladder.Trials)-1].Round == round && ctx.Err() == nil {
		lt := rest
		if lt == nil {
			lt = &LadderTrial{}
		}
		l.ladderStartupFor(ctx, h, lt)
		ladder.Trials[len(ladder.Trials)-1].Ladder = lt
		switch {
		case lt.StartupFailed != "":
			said = append(said, "start-up failed: "+firstLine(lt.StartupFailed, 120))
		case lt.Replaced != "":
			said = append(said, fmt.Sprintf("start-up %s ms (%s)", num(lt.StartupMS), lt.Replaced))
		}
	}
	progress(l.opt.Progress, "        %s", strings.Join(said, " · "))
	code := h.Stop(hostStopGrace)
	if code != 0 && !l.isContender(strategy) {
		// The figures stand, but a host that cannot stop cleanly is a
		// defect the report must show.
		for _, t := range trials {
			if t.Failed == "" {
				t.Failed = fmt.Sprintf("host exited with status %d on SIGTERM; see %s", code, logPath)
			}
		}
	}
}

// trialFigure is a trial's headline for the progress lines.
func trialFigure(scenario string, t *Trial) string {
	switch {
	case t.Failed != "":
		return "failed"
	case scenario == scenarioRTT:
		if p, ok := allKinds(t.Summary.Latency); ok {
			return num(p.P50*1000) + " µs"
		}
		return dash
	}
	s := num(t.Summary.Throughput) + "/s"
	if n := errorCount(t.Summary); n > 0 {
		s += fmt.Sprintf(" (%d errors)", n)
	}
	return s
}

func (l *labRun) isContender(name string) bool { return l.report.isContender(name) }

// warmUp runs [client] tasks in plain text (which every contender speaks)
// for [lab] warmup_ms and forgets the figures: the first requests a fresh
// host serves pay for starting workers, filling pools and growing heaps.
func (l *labRun) warmUp(ctx context.Context, h *hostproc.Host) {
	ms := l.opt.Config.Lab.WarmupMS
	if ms <= 0 {
		return
	}
	opt := client.OptionsFromConfig(l.opt.Config)
	opt.URL = h.URL
	opt.Clients = int(l.opt.Config.Lab.CPUClients)
	opt.Duration = time.Duration(ms) * time.Millisecond
	client.Run(ctx, opt)
}

// capacityRamp offers the scenario's rates in rising order until one is
// not sustained, and returns the highest sustained one (0 for none). The
// steps go unmetered: a CapacityTrial holds no resources.
func (l *labRun) capacityRamp(ctx context.Context, h *hostproc.Host, sc Scenario, c *Capacity, round int) float64 {
	slo := l.report.SLOP99MS
	sustained := 0.0
	for i := range c.Points {
		pt := &c.Points[i]
		opt := sc.Client
		opt.Rate = pt.Rate
		t := runLoad(ctx, h, opt, round)
		ct := CapacityTrial{Round: round, Failed: t.Failed}
		if t.Failed == "" {
			s := t.Summary
			ct.Throughput = s.Throughput
			ct.Errors = errorCount(s) + s.Unsent
			ct.Offered = s.Sent + s.Unsent
			if p, ok := allKinds(s.Latency); ok {
				ct.P50, ct.P99 = p.P50, p.P99
				ct.Sustained = ct.Errors == 0 && p.P99 <= slo
			}
		}
		pt.Trials = append(pt.Trials, ct)
		if !ct.Sustained {
			break
		}
		sustained = pt.Rate
	}
	return sustained
}

// measure applies one load to the host while metering its process tree:
// from the first connection to the end of the last, so that the host's
// work for the client's scrapes of its metrics, before and after, is left
// out.
func measure(ctx context.Context, h *hostproc.Host, copt client.Options, round int) Trial {
	meter := newTreeMeter(h.PID(), 50*time.Millisecond)
	var (
		cpu   float64
		rss   int64
		procs int
	)
	copt.OnLoad = func() func() {
		meter.Start()
		return func() { cpu, rss, procs = meter.Stop() }
	}
	t := runLoad(ctx, h, copt, round)
	if t.Summary != nil {
		t.CPUSeconds, t.PeakRSSMB, t.Processes = cpu, float64(rss)/(1<<20), procs
	}
	return t
}

// runLoad applies one load to the host.
func runLoad(ctx context.Context, h *hostproc.Host, copt client.Options, round int) Trial {
	t := Trial{Round: round}
	copt.URL = h.URL
	sum, err := client.Run(ctx, copt)
	if err != nil {
		t.Failed = fmt.Sprintf("client: %v", err)
		return t
	}
	if sum.Interrupted {
		t.Failed = "lab interrupted"
	}
	t.Summary = sum
	return t
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	return m
}

// hostStopGrace is how long a host has to exit after SIGTERM.
const hostStopGrace = 15 * time.Second

// startHost starts a host with the strategy (or the contender's command)
// for one round, logging to a file of its own.
func (l *labRun) startHost(ctx context.Context, strategy string, round int) (*hostproc.Host, string, error) {
	cfg := l.opt.Config
	if err := os.MkdirAll(l.opt.LogDir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create log directory: %w", err)
	}
	logPath := filepath.Join(l.opt.LogDir, fmt.Sprintf("host-%s-r%d.log", strategy, round))
	log, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("create host log: %w", err)
	}
	hopt := hostproc.Options{Log: log}
	if i := slices.IndexFunc(l.report.Contenders, func(c Contender) bool { return c.Name == strategy }); i >= 0 {
		hopt.Shell = l.report.Contenders[i].Command
	} else {
		hopt.Command = []string{filepath.Join(l.opt.BinDir, "host"), "--plugin", pluginOf(strategy), "--host", "127.0.0.1"}
		conf := cfg.Path
		if _, ok := variants[strategy]; ok {
			// A variant: the configuration with its settings after it.
			var base []byte
			if cfg.Path != "" {
				if base, err = os.ReadFile(cfg.Path); err != nil {
					log.Close()
					return nil, logPath, fmt.Errorf("read the configuration for %s: %w", strategy, err)
				}
			}
			conf = filepath.Join(l.opt.LogDir, "config-"+strategy+".ini")
			if err := os.WriteFile(conf, []byte(variantConfig(strategy, base)), 0o600); err != nil {
				log.Close()
				return nil, logPath, err
			}
		}
		if conf != "" {
			hopt.Command = append(hopt.Command, "--config", conf)
		}
		if ca := cfg.Client.TLSCA; ca != "" {
			if hopt.TLS, err = client.TLSConfig(ca); err != nil {
				log.Close()
				return nil, logPath, fmt.Errorf("[client] tls_ca: %w", err)
			}
		}
	}
	h, err := hostproc.Start(ctx, hopt)
	if err != nil {
		log.Close()
		return nil, logPath, err
	}
	go func() { <-h.Exited(); log.Close() }()
	if l.opt.OnHost != nil && hopt.Shell == "" {
		l.opt.OnHost(strategy, round, h)
	}
	return h, logPath, nil
}
