package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/hostproc"
)

// Options configure a lab run.
type Options struct {
	Config *config.Config
	// BinDir holds host and plugins/, as `make build` lays them out.
	BinDir string
	// LogDir receives each host's log, one file per strategy and scenario.
	LogDir string
	// Progress receives a line per run as the lab goes; nil for none.
	Progress io.Writer
}

// Scenarios builds the scenarios named in cfg's [lab] section.
func Scenarios(cfg *config.Config) []Scenario {
	base := client.OptionsFromConfig(cfg)
	l := cfg.Lab
	var out []Scenario
	for _, name := range l.Scenarios {
		opt := base
		var sc Scenario
		switch name {
		case "mixed":
			sc = Scenario{Name: name, Description: "the Python lab's run: each client sends its task sequence in plain text and waits for each reply"}
		case "cpu":
			opt.Protocol, opt.Pipeline, opt.Duration = "json", int(l.Pipeline), l.Duration
			opt.Clients, opt.Tasks = int(l.CPUClients), []string{"cpu"}
			opt.N = map[string]int64{"cpu": l.CPUN}
			sc = Scenario{Name: name, Description: "CPU-bound throughput: pipelined cpu tasks for a fixed time"}
		case "sleep":
			opt.Clients, opt.Tasks = int(l.SleepClients), []string{strconv.FormatInt(l.SleepSec, 10)}
			sc = Scenario{Name: name, Description: "the semaphore test: one sleep per client, all at once; a bounded strategy runs them in waves"}
		case "noop":
			opt.Protocol, opt.Pipeline, opt.Duration = "json", int(l.Pipeline), l.Duration
			opt.Clients, opt.Tasks = int(l.NoopClients), []string{"noop"}
			sc = Scenario{Name: name, Description: "the cost of isolation: pipelined noop tasks, nothing but the hop to where tasks run"}
		}
		sc.Client = opt
		sc.Load = describeLoad(opt)
		out = append(out, sc)
	}
	return out
}

func describeLoad(o client.Options) string {
	s := fmt.Sprintf("%d clients × %s, %s", o.Clients, strings.Join(o.Tasks, ", "), o.Protocol)
	if o.Pipeline > 1 {
		s += fmt.Sprintf(", %d in flight each", o.Pipeline)
	}
	if o.Duration > 0 {
		s += fmt.Sprintf(", for %s", o.Duration)
	} else {
		s += ", sequence once"
	}
	return s
}

// Strategies lists what the lab compares: inproc first, then every plugin in
// binDir/plugins, or those cfg names.
func Strategies(cfg *config.Config, binDir string) ([]string, error) {
	if len(cfg.Lab.Strategies) > 0 {
		return cfg.Lab.Strategies, nil
	}
	return pluginNames(binDir)
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

// Run runs every scenario against every strategy, each on a fresh host.
func Run(ctx context.Context, opt Options, strategies []string, scenarios []Scenario) *Report {
	r := &Report{
		Started:    time.Now(),
		Machine:    machine(),
		ConfigPath: opt.Config.Path,
		Strategies: strategies,
		Scenarios:  scenarios,
	}
	total, i := len(strategies)*len(scenarios), 0
	for _, st := range strategies {
		for _, sc := range scenarios {
			i++
			if ctx.Err() != nil {
				r.Results = append(r.Results, Result{Strategy: st, Scenario: sc.Name, Failed: "lab interrupted"})
				continue
			}
			progress(opt.Progress, "[%d/%d] %s × %s (%s) ...", i, total, st, sc.Name, sc.Load)
			res := runOne(ctx, opt, st, sc)
			r.Results = append(r.Results, res)
			if res.Failed != "" {
				progress(opt.Progress, "        failed: %s", res.Failed)
			} else {
				s := res.Summary
				progress(opt.Progress, "        %.0f tasks/s, p50 %.2f ms, p99 %.2f ms, %d errors, %.2f CPU s, %.0f MB peak",
					s.Throughput, s.Latency["all"].P50, s.Latency["all"].P99, errorCount(s), res.CPUSeconds, res.PeakRSSMB)
			}
		}
	}
	r.relate()
	r.Seconds = time.Since(r.Started).Seconds()
	return r
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// relate fills in each result's figures relative to inproc's.
func (r *Report) relate() {
	base := map[string]*client.Summary{}
	for _, res := range r.Results {
		if res.Strategy == "inproc" && res.Summary != nil {
			base[res.Scenario] = res.Summary
		}
	}
	for i := range r.Results {
		res := &r.Results[i]
		b := base[res.Scenario]
		if b == nil || res.Summary == nil {
			continue
		}
		if b.Throughput > 0 {
			res.RelThroughput = res.Summary.Throughput / b.Throughput
		}
		if p := b.Latency["all"].P50; p > 0 {
			res.RelP50 = res.Summary.Latency["all"].P50 / p
		}
	}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// runOne starts a host with the strategy, applies the scenario's load while
// metering the host's process tree, and stops the host.
func runOne(ctx context.Context, opt Options, strategy string, sc Scenario) Result {
	res := Result{Strategy: strategy, Scenario: sc.Name}
	h, logPath, err := startHost(ctx, opt, strategy, sc.Name)
	if err != nil {
		res.Failed = err.Error()
		return res
	}
	defer h.Stop(hostStopGrace)

	meter := newTreeMeter(h.PID(), 50*time.Millisecond)
	meter.Start()
	copt := sc.Client
	copt.URL = h.URL
	sum, err := client.Run(ctx, copt)
	cpu, rss, procs := meter.Stop()
	if err != nil {
		res.Failed = fmt.Sprintf("client: %v", err)
		return res
	}
	res.Summary = sum
	res.CPUSeconds, res.PeakRSSMB, res.Processes = cpu, float64(rss)/(1<<20), procs
	if code := h.Stop(hostStopGrace); code != 0 {
		res.Failed = fmt.Sprintf("host exited with status %d on SIGTERM; see %s", code, logPath)
	}
	return res
}

// hostStopGrace is how long a host has to exit after SIGTERM.
const hostStopGrace = 15 * time.Second

// startHost starts a host for one run, logging to a file of its own.
func startHost(ctx context.Context, opt Options, strategy, scenario string) (*hostproc.Host, string, error) {
	if err := os.MkdirAll(opt.LogDir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create log directory: %w", err)
	}
	logPath := filepath.Join(opt.LogDir, fmt.Sprintf("host-%s-%s.log", strategy, scenario))
	log, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("create host log: %w", err)
	}
	cmd := []string{filepath.Join(opt.BinDir, "host"), "--plugin", strategy, "--host", "127.0.0.1"}
	if opt.Config.Path != "" {
		cmd = append(cmd, "--config", opt.Config.Path)
	}
	hopt := hostproc.Options{Command: cmd, Log: log}
	if ca := opt.Config.Client.TLSCA; ca != "" {
		if hopt.TLS, err = client.TLSConfig(ca); err != nil {
			log.Close()
			return nil, logPath, fmt.Errorf("[client] tls_ca: %w", err)
		}
	}
	h, err := hostproc.Start(ctx, hopt)
	if err != nil {
		log.Close()
		return nil, logPath, err
	}
	go func() { <-h.Exited(); log.Close() }()
	return h, logPath, nil
}
