package lab

// The isolation ladder: one row per rung (inproc, wasm, pool, multiproc,
// multiproc strict, distributed) with what the rung costs, measured by the
// ladder scenario in the lab's own interleaved rounds, and which attacks it
// stops, from the attack tests' records (internal/attackrecord).

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/lab/stats"
	"github.com/wslab/wslab/taskproto"
)

const scenarioLadder = "ladder"

// ladderRungs are the rungs of the isolation ladder, least isolated first.
var ladderRungs = []string{"inproc", "wasm", "pool", "multiproc", strictRung, "distributed"}

// strictRung is multiproc with its workers sandboxed.
const strictRung = "multiproc-strict"

// isRung says whether the strategy is a rung of the ladder.
func isRung(name string) bool { return slices.Contains(ladderRungs, name) }

// variant is a plugin run with settings of its own, measured as a strategy
// of its own: the lab and the bench append Config to the host's
// configuration and serve Plugin.
type variant struct {
	Plugin string
	Config string
	About  string
	// Check says what the machine lacks to run it (nil: nothing).
	Check func() []string
}

// variants are the strategies that are a plugin with other settings.
var variants = map[string]variant{
	strictRung: {
		Plugin: "multiproc", Config: "[multiproc]\nsandbox = " + sandbox.Strict + "\n",
		About: "multiproc with [multiproc] sandbox = strict", Check: sandbox.Check,
	},
}

// pluginOf is the plugin a strategy serves: its variant's, or its own name.
func pluginOf(name string) string {
	if v, ok := variants[name]; ok {
		return v.Plugin
	}
	return name
}

// variantConfig is base (a configuration file's content, or none) with
// the strategy's variant settings after it: ini sections that repeat merge,
// the last value of a key counting. "" for a strategy that is no variant.
func variantConfig(name string, base []byte) string {
	v, ok := variants[name]
	if !ok {
		return ""
	}
	s := string(base)
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s + "; " + name + ": " + v.About + " (added by the lab)\n" + v.Config
}

// withVariants adds, after its plugin, every variant whose plugin is among
// names and that this machine can run.
func withVariants(names []string) []string {
	out := slices.Clone(names)
	for _, name := range slices.Sorted(maps.Keys(variants)) {
		v := variants[name]
		i := slices.Index(out, v.Plugin)
		if i < 0 || slices.Contains(out, name) || len(v.Check()) > 0 {
			continue
		}
		out = slices.Insert(out, i+1, name)
	}
	return out
}

// LadderSkip is a rung the run left out, and why.
type LadderSkip struct {
	Rung string `json:"rung"`
	Why  string `json:"why"`
}

// notGiven is why a rung the machine could run is left out.
const notGiven = "not among the strategies this run was given ([lab] strategies, --strategies)"

// ladderSkips says why each rung missing from strategies is missing.
func ladderSkips(strategies []string, binDir string) []LadderSkip {
	var out []LadderSkip
	for _, rung := range ladderRungs {
		if slices.Contains(strategies, rung) {
			continue
		}
		plugin := pluginOf(rung)
		why := notGiven
		if plugin != "inproc" {
			if _, err := os.Stat(filepath.Join(binDir, "plugins", plugin)); err != nil {
				why = fmt.Sprintf("its plugin is not installed (no %s; make build installs every plugin)", filepath.Join(binDir, "plugins", plugin))
			} else if v, ok := variants[rung]; ok {
				if missing := v.Check(); len(missing) > 0 {
					why = "this kernel lacks what it needs: " + strings.Join(missing, "; ")
				}
			}
		}
		out = append(out, LadderSkip{rung, why})
	}
	return out
}

// Ladder is the isolation ladder of a run.
type Ladder struct {
	Rows    []LadderRow  `json:"rows"`
	Skipped []LadderSkip `json:"skipped,omitempty"`
	// Attacks are the attack tests' records, by rung, read from
	// AttacksDir when the lab ran; AttacksError says why they could not be.
	Attacks      map[string]attackrecord.Record `json:"attacks,omitempty"`
	AttacksDir   string                         `json:"attacks_dir,omitempty"`
	AttacksError string                         `json:"attacks_error,omitempty"`
}

// LadderRow is one rung, over the rounds.
type LadderRow struct {
	Rung   string `json:"rung"`
	About  string `json:"about,omitempty"`
	Failed string `json:"failed,omitempty"`
	// Noop, fib and io round trips, one task at a time on one connection
	// (their p50 in each round): noop in µs, fib and io in ms.
	NoopUS stats.Estimate `json:"noop_us"`
	FibMS  stats.Estimate `json:"fib_ms"`
	IOMS   stats.Estimate `json:"io_ms"`
	// NoopOverInprocUS is the noop round trip minus inproc's in the same
	// round; nil for inproc.
	NoopOverInprocUS *stats.Estimate `json:"noop_over_inproc_us,omitempty"`
	// NoopOverBaseUS is, for a variant, its noop round trip minus its
	// plugin's plain one in the same round (strict's over multiproc's).
	NoopOverBaseUS *stats.Estimate `json:"noop_over_base_us,omitempty"`
	// StartupOverBaseMS is, for a variant, its start-up minus its plugin's
	// plain one in the same round.
	StartupOverBaseMS *stats.Estimate `json:"startup_over_base_ms,omitempty"`
	// CPUVsInproc is the cpu scenario's throughput over inproc's in the
	// same round; nil without that scenario (and for inproc).
	CPUVsInproc *stats.Estimate `json:"cpu_vs_inproc,omitempty"`
	// MemoryMB is the resident memory of one worker at rest after the
	// warm-up: the median worker process, or the plugin process or host
	// process where tasks run in-process; MemoryOf says which.
	MemoryMB stats.Estimate `json:"memory_mb"`
	MemoryOf string         `json:"memory_of,omitempty"`
	// Sandbox is what the workers' confinement was, as /stats said it
	// (the last round's); "" for none.
	Sandbox string `json:"sandbox,omitempty"`
	// StartupMS is how long from a SIGKILL of the processes that run tasks
	// until a replacement answered a task; Replaced says what was killed
	// ("" with no figure for inproc: nothing to kill but the host).
	StartupMS     stats.Estimate `json:"startup_ms"`
	Replaced      string         `json:"replaced,omitempty"`
	StartupFailed string         `json:"startup_failed,omitempty"`
}

// LadderTrial is what a round measured of a rung besides its client run.
type LadderTrial struct {
	// MemoryMB of one worker (see LadderRow), Workers of them seen.
	MemoryMB float64 `json:"memory_mb"`
	MemoryOf string  `json:"memory_of"`
	Workers  int     `json:"workers"`
	// Sandbox is the confinement the host's /stats says its first worker
	// runs under; "" where it says none.
	Sandbox string `json:"sandbox,omitempty"`
	// StartupMS from the kill of Replaced to a replacement's first reply.
	StartupMS     float64 `json:"startup_ms,omitempty"`
	Replaced      string  `json:"replaced,omitempty"`
	StartupFailed string  `json:"startup_failed,omitempty"`
}

// ladderScenario is the ladder's client load: noop, fib and io in turn,
// one at a time on one connection, each n its default.
func ladderScenario(base client.Options, count int64) Scenario {
	opt := base
	opt.Protocol, opt.Clients, opt.Pipeline, opt.Duration = "json", 1, 1, 0
	opt.Tasks = slices.Repeat([]string{taskproto.KindNoop, taskproto.KindFib, taskproto.KindIO}, int(count))
	return Scenario{Name: scenarioLadder, Client: opt, Description: "the isolation ladder: on each rung (inproc, wasm, pool, multiproc, multiproc with its workers sandboxed, distributed), " +
		"noop, fib and io in turn, one at a time on one connection, for their round trips; the memory of one worker at rest after the warm-up; " +
		"and, after the round's other scenarios, a SIGKILL of the processes that run tasks, timed until a replacement answers. " +
		"Which attacks each rung stops comes from the attack tests' records"}
}

// workerTree is, of the host's process tree, the processes that run
// tasks: the plugin's children (workers) where it has any, else the
// plugin, else the host itself; and what they are.
func workerTree(hostPID int) (procs []procSample, what string) {
	tree := processTree(hostPID)
	if len(tree) == 0 {
		return nil, ""
	}
	var plugins, workers []procSample
	for _, p := range tree[1:] {
		if p.ppid == hostPID {
			plugins = append(plugins, p)
		}
	}
	for _, p := range tree[1:] {
		if slices.ContainsFunc(plugins, func(pl procSample) bool { return pl.pid == p.ppid }) {
			workers = append(workers, p)
		}
	}
	switch {
	case len(workers) > 0:
		return workers, "worker process"
	case len(plugins) > 0:
		return plugins, "plugin process"
	}
	return tree[:1], "host process"
}

// ladderMemory measures one worker's resident memory at rest, and reads
// from /stats the sandbox its workers run under.
func ladderMemory(h *hostproc.Host) *LadderTrial {
	procs, what := workerTree(h.PID())
	if len(procs) == 0 {
		return nil
	}
	rss := make([]float64, len(procs))
	for i, p := range procs {
		rss[i] = float64(p.rssBytes) / (1 << 20)
	}
	lt := &LadderTrial{MemoryMB: stats.Median(rss), MemoryOf: what, Workers: len(procs)}
	var st struct {
		Executor taskproto.Stats `json:"executor"`
	}
	if err := h.Stats(&st); err == nil {
		for _, w := range st.Executor.Workers {
			if w.Sandbox != "" {
				lt.Sandbox = w.Sandbox
				break
			}
		}
	}
	return lt
}

// startupLimit bounds the wait for a replacement.
const startupLimit = 30 * time.Second

// ladderStartup kills, with SIGKILL, every process that runs the host's
// tasks (its workers, or its plugin) and times how long until a task is
// answered again, which only a replacement can do: from the kill to the
// first right reply of noops sent every probeEvery on a connection opened
// before. It says what it killed; inproc has nothing to kill.
func ladderStartup(ctx context.Context, h *hostproc.Host, token string, tlsConf *tls.Config) (ms float64, replaced string, err error) {
	procs, what := workerTree(h.PID())
	if what == "host process" || len(procs) == 0 {
		return 0, "", nil
	}
	replaced = what
	if len(procs) > 1 {
		replaced = fmt.Sprintf("%d %ses", len(procs), what)
	}
	p, err := newProber(ctx, h.URL, token, tlsConf)
	if err != nil {
		return 0, replaced, err
	}
	defer p.close()
	if _, err := p.firstOK(time.Now(), startupLimit); err != nil {
		return 0, replaced, fmt.Errorf("before the kill: %w", err)
	}
	start := time.Now()
	for _, pr := range procs {
		if err := kill(pr.pid); err != nil {
			return 0, replaced, fmt.Errorf("kill %d: %w", pr.pid, err)
		}
	}
	at, err := p.firstOK(start, startupLimit)
	if err != nil {
		return 0, replaced, fmt.Errorf("after the kill of %s: %w", replaced, err)
	}
	return float64(at.Sub(start).Microseconds()) / 1000, replaced, nil
}

// kill ends the process pid at once (SIGKILL where there are signals);
// one already gone is no error.
func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err == nil {
		err = p.Kill()
	}
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// probeEvery is how often the start-up probe sends a noop while no
// reply is right: the figure's resolution.
const probeEvery = 2 * time.Millisecond

// prober sends JSON noops on one connection and notes when one is
// answered right.
type prober struct {
	conn *websocket.Conn
	ok   chan time.Time
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newProber(ctx context.Context, url, token string, tlsConf *tls.Config) (*prober, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: tlsConf}
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	conn, _, err := d.DialContext(ctx, url, hdr)
	if err != nil {
		return nil, err
	}
	p := &prober{conn: conn, ok: make(chan time.Time, 1024), done: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *prober) read() {
	defer close(p.done)
	for {
		_, msg, err := p.conn.ReadMessage()
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		at := time.Now()
		var r struct {
			OK bool `json:"ok"`
		}
		if json.Unmarshal(msg, &r) == nil && r.OK {
			select {
			case p.ok <- at:
			default:
			}
		}
	}
}

// firstOK sends noops every probeEvery (at most maxProbeInflight
// unanswered) until one is answered right after since, and returns when
// that reply arrived.
func (p *prober) firstOK(since time.Time, limit time.Duration) (time.Time, error) {
	for {
		select {
		case at := <-p.ok:
			if !at.Before(since) {
				return at, nil
			}
			continue
		default:
		}
		break
	}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	deadline := time.After(limit)
	sent := 0
	for {
		if sent < maxProbeRequests {
			sent++
			if err := p.conn.WriteMessage(websocket.TextMessage, []byte(`{"id":`+strconv.Itoa(sent)+`,"task":"noop"}`)); err != nil {
				return time.Time{}, err
			}
		}
		select {
		case at := <-p.ok:
			if !at.Before(since) {
				return at, nil
			}
		case <-p.done:
			p.mu.Lock()
			defer p.mu.Unlock()
			return time.Time{}, fmt.Errorf("connection ended: %w", p.err)
		case <-deadline:
			return time.Time{}, fmt.Errorf("no right reply within %s", limit)
		case <-tick.C:
		}
	}
}

// maxProbeRequests bounds what one wait sends: below the host's default
// in-flight bound per connection, so that the probe is never refused for
// its own sake.
const maxProbeRequests = 200

func (p *prober) close() {
	p.conn.Close()
	<-p.done
}

// ladderStartupFor runs ladderStartup with the lab's credentials and
// records it in the round's trial.
func (l *labRun) ladderStartupFor(ctx context.Context, h *hostproc.Host, lt *LadderTrial) {
	var tlsConf *tls.Config
	if ca := l.opt.Config.Client.TLSCA; ca != "" {
		var err error
		if tlsConf, err = client.TLSConfig(ca); err != nil {
			lt.StartupFailed = err.Error()
			return
		}
	}
	ms, replaced, err := ladderStartup(ctx, h, l.opt.Config.Server.AuthToken, tlsConf)
	lt.Replaced = replaced
	if err != nil {
		lt.StartupFailed = err.Error()
		return
	}
	lt.StartupMS = ms
}

// readAttacks fills in the attack tests' records.
func (lad *Ladder) readAttacks(binDir string) {
	lad.AttacksDir = attackrecord.Dir(binDir)
	recs, err := attackrecord.ReadDir(lad.AttacksDir)
	if err != nil {
		lad.AttacksError = err.Error()
	}
	lad.Attacks = recs
}

// buildLadder makes the ladder's rows from the results, keeping what Run
// set of it (skips and attack records).
func (r *Report) buildLadder() {
	if !slices.ContainsFunc(r.Scenarios, func(sc Scenario) bool { return sc.Name == scenarioLadder }) {
		return
	}
	if r.Ladder == nil {
		r.Ladder = &Ladder{}
	}
	r.Ladder.Rows = nil
	base := r.result("inproc", scenarioLadder)
	for _, rung := range ladderRungs {
		res := r.result(rung, scenarioLadder)
		if res == nil {
			continue
		}
		row := LadderRow{Rung: rung, Failed: res.Failed}
		if v, ok := variants[rung]; ok {
			row.About = v.About
		}
		noop, fib, io := kindP50s(res.Trials, taskproto.KindNoop), kindP50s(res.Trials, taskproto.KindFib), kindP50s(res.Trials, taskproto.KindIO)
		row.NoopUS = stats.Estimated(scaled(values(noop), 1000))
		row.FibMS, row.IOMS = stats.Estimated(values(fib)), stats.Estimated(values(io))
		if rung != "inproc" && base != nil {
			row.NoopOverInprocUS = pairedByRound(noop, kindP50s(base.Trials, taskproto.KindNoop), func(a, b float64) float64 { return (a - b) * 1000 })
		}
		if v, ok := variants[rung]; ok {
			if plain := r.result(v.Plugin, scenarioLadder); plain != nil {
				row.NoopOverBaseUS = pairedByRound(noop, kindP50s(plain.Trials, taskproto.KindNoop), func(a, b float64) float64 { return (a - b) * 1000 })
				row.StartupOverBaseMS = pairedByRound(startups(res.Trials), startups(plain.Trials), func(a, b float64) float64 { return a - b })
			}
		}
		if cpu, cpuBase := r.result(rung, scenarioCPU), r.result("inproc", scenarioCPU); rung != "inproc" && cpu != nil && cpuBase != nil {
			row.CPUVsInproc = pairedByRound(throughputs(cpu.Trials), throughputs(cpuBase.Trials), func(a, b float64) float64 { return a / b })
		}
		var mem, start []float64
		for _, t := range res.Trials {
			lt := t.Ladder
			if lt == nil {
				continue
			}
			if lt.MemoryOf != "" {
				mem = append(mem, lt.MemoryMB)
				row.MemoryOf = lt.MemoryOf
			}
			if lt.Sandbox != "" {
				row.Sandbox = lt.Sandbox
			}
			if lt.Replaced != "" {
				row.Replaced = lt.Replaced
			}
			switch {
			case lt.StartupFailed != "":
				if row.StartupFailed == "" {
					row.StartupFailed = fmt.Sprintf("round %d: %s", t.Round, lt.StartupFailed)
				}
			case lt.Replaced != "":
				start = append(start, lt.StartupMS)
			}
		}
		row.MemoryMB, row.StartupMS = stats.Estimated(mem), stats.Estimated(start)
		r.Ladder.Rows = append(r.Ladder.Rows, row)
	}
}

// kindP50s is, by round, the p50 of the kind in each trial that measured
// it with no error, in ms.
func kindP50s(trials []Trial, kind string) map[int]float64 {
	out := map[int]float64{}
	for _, t := range trials {
		if t.Failed != "" || t.Summary == nil || errorCount(t.Summary) > 0 {
			continue
		}
		if p, ok := t.Summary.Latency[kind]; ok && p.Count > 0 {
			out[t.Round] = p.P50
		}
	}
	return out
}

// startups is, by round, each start-up the ladder measured.
func startups(trials []Trial) map[int]float64 {
	out := map[int]float64{}
	for _, t := range trials {
		if lt := t.Ladder; lt != nil && lt.Replaced != "" && lt.StartupFailed == "" {
			out[t.Round] = lt.StartupMS
		}
	}
	return out
}

// throughputs is, by round, each complete trial's throughput.
func throughputs(trials []Trial) map[int]float64 {
	out := map[int]float64{}
	for _, t := range trials {
		if t.Failed == "" && t.Summary != nil && errorCount(t.Summary) == 0 && t.Summary.Throughput > 0 {
			out[t.Round] = t.Summary.Throughput
		}
	}
	return out
}

// values is m's values in round order.
func values(m map[int]float64) []float64 {
	var out []float64
	for _, r := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[r])
	}
	return out
}

func scaled(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * k
	}
	return out
}

// pairedByRound is the estimate of f(a, b) over the rounds both measured:
// the two ran in the same round, close in time, so the machine's drift
// between rounds falls out of the figure. nil when no round has both.
func pairedByRound(a, b map[int]float64, f func(a, b float64) float64) *stats.Estimate {
	var xs []float64
	for _, r := range slices.Sorted(maps.Keys(a)) {
		if bv, ok := b[r]; ok {
			xs = append(xs, f(a[r], bv))
		}
	}
	if len(xs) == 0 {
		return nil
	}
	e := stats.Estimated(xs)
	return &e
}

// restartBackoff is the supervisor's wait before it restarts a process
// that died for the first time: part of every start-up figure.
var restartBackoff = supervise.DefaultPolicy.MinBackoff
