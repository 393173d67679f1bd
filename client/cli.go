package client

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wslab/wslab/internal/config"
)

// nFlag is --n kind=value, repeated or comma separated.
type nFlag map[string]int64

func (n nFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, k+"="+strconv.FormatInt(n[k], 10))
	}
	return strings.Join(parts, ",")
}

func (n nFlag) Set(s string) error {
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%q is not kind=value (e.g. cpu=100000)", item)
		}
		k = strings.TrimSpace(k)
		if kindIndex(k) < 0 {
			return fmt.Errorf("unknown task %q, must be one of %s", k, strings.Join(kindNames[:], ", "))
		}
		x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || x < 0 {
			return fmt.Errorf("%s=%s: the value must be a whole number ≥ 0", k, v)
		}
		n[k] = x
	}
	return nil
}

// Main is the client command: `client --config FILE [flags]`. It returns
// the exit status: ExitOK, ExitIncorrect, ExitUsage or ExitThreshold.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, stdout, stderr)
}

// MainContext is Main with the run bound to ctx instead of to signals.
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset, f, flags := newFlagSet(stderr)
	cfg, err := flags.Parse(args)
	if err != nil {
		return config.UsageStatus(stderr, "client", err)
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "client: "+format+"\n", args...)
		return ExitUsage
	}
	if fset.NArg() > 0 {
		return usage("unexpected argument %q; every setting is a flag (see --help)", fset.Arg(0))
	}
	f.set = map[string]bool{}
	fset.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := f.check(); err != nil {
		return usage("%v", err)
	}
	if !f.set["url"] && cfg.Server.Port == 0 {
		return usage("%s: [server] port is 0 (any free port): give the host's address with --url", cfg.Path)
	}
	opt := f.options(cfg)
	report := stdout
	if f.json == "-" {
		report = stderr
	}
	if !f.quiet {
		opt.Progress = stderr
	}
	if f.verbose {
		opt.Verbose = report
	}
	// The plan, made once, both validates opt and runs: it computes every
	// expected reply, which for a large fibonacci_limit takes a while.
	p, err := newPlan(opt)
	if err != nil {
		return usage("%v", err)
	}

	// Open the JSON file first: a bad path is a usage error, found before
	// the run rather than after it.
	var jsonFile *os.File
	if f.json != "" && f.json != "-" {
		if jsonFile, err = os.Create(f.json); err != nil {
			return usage("--json: %v", err)
		}
		defer jsonFile.Close()
	}

	sum := newRun(p).exec(ctx)
	sum.WriteReport(report)
	if f.json != "" {
		if err := writeJSON(sum, jsonFile, stdout); err != nil {
			fmt.Fprintf(stderr, "client: --json: %v\n", err)
			return ExitIncorrect
		}
	}
	return judge(sum, f.thresholds(), report, stderr)
}

// cliFlags are the command's flags.
type cliFlags struct {
	set map[string]bool // the flags given on the command line

	url, protocol, json, metrics                string
	pipeline                                    int
	timing                                      bool
	duration, rampUp, replyTimeout, dialTimeout time.Duration
	rate                                        float64
	n                                           nFlag
	verbose, quiet                              bool

	// Thresholds.
	maxP99    time.Duration
	minRate   float64
	maxErrors int64
}

func newFlagSet(stderr io.Writer) (*flag.FlagSet, *cliFlags, *config.Flags) {
	fset := flag.NewFlagSet("client", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: client [flags]\n\n"+
			"Opens --clients WebSocket connections to the host; each sends the --tasks\n"+
			"sequence (once, for --duration, or at --rate requests/s across all) and\n"+
			"checks every reply. Flags override config.ini's [client] and [server].\n\n"+
			"Exit status: 0 every reply right; 1 a reply wrong or missing, a connection\n"+
			"failed or error replies above --max-errors; 99 a --max-p99/--min-rate\n"+
			"threshold crossed; 2 bad flags or configuration.\n\nFlags:\n")
		fset.PrintDefaults()
	}
	f := &cliFlags{n: nFlag{}}
	flags := config.NewFlags(fset)
	fset.StringVar(&f.url, "url", "", "host `URL` (default ws://[server] host:[server] port/ws)")
	flags.Int("clients", "client", "num_client", "concurrent connections", func(c *config.Config) *int { return &c.Client.NumClient })
	flags.List("tasks", "client", "tasks", "comma-separated task `sequence`: fib, cpu, io, sleep, noop or N (sleep N s)", func(c *config.Config) *[]string { return &c.Client.Tasks })
	fset.StringVar(&f.protocol, "protocol", "plain", "plain (the Python lab's) or json (ids, pipelining, queue/run times)")
	fset.IntVar(&f.pipeline, "pipeline", 1, "requests in flight per connection (json only)")
	fset.BoolVar(&f.timing, "timing", false, "ask for each request's timeline and show where its time went, per stage (json only)")
	fset.DurationVar(&f.duration, "duration", 0, "repeat the sequence for this `long` (0: send it once)")
	fset.Float64Var(&f.rate, "rate", 0, "open loop: requests per second across all connections (json, needs --duration)")
	fset.DurationVar(&f.rampUp, "ramp-up", 0, "open the connections evenly over this `time`")
	flags.String("token", "server", "auth_token", "bearer `token` for the host", func(c *config.Config) *string { return &c.Server.AuthToken })
	flags.String("tls-ca", "client", "tls_ca", "PEM `file` of CAs to trust for wss:// besides the system's", func(c *config.Config) *string { return &c.Client.TLSCA })
	fset.Var(f.n, "n", "task argument in JSON requests, `kind=value`, repeatable (e.g. --n cpu=100000)")
	fset.DurationVar(&f.replyTimeout, "reply-timeout", 0, "wait this long for a reply before counting it missing (default [server] timeout_sec + 5s)")
	fset.DurationVar(&f.dialTimeout, "dial-timeout", DefaultDialTimeout, "bound on each connection's dial and upgrade")
	fset.StringVar(&f.metrics, "metrics", "", "the host's Prometheus `URL` (http://HOST:PORT/metrics), read before and after the run: the summary adds what the host counted")
	fset.StringVar(&f.json, "json", "", "write the summary as JSON to this `file` (- for stdout; the report then goes to stderr)")
	fset.BoolVar(&f.verbose, "verbose", false, "print a line per client as it finishes (\"client 7 took 1.234 s\")")
	fset.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fset.DurationVar(&f.maxP99, "max-p99", 0, "exit 99 when p99 latency over all tasks is above this `duration`")
	fset.Float64Var(&f.minRate, "min-rate", 0, "exit 99 when throughput (right results per second) is below this `rate`")
	fset.Int64Var(&f.maxErrors, "max-errors", 0, "error replies allowed before exiting 1")
	return fset, f, flags
}

// check catches the flag values that options would otherwise mistake for
// "not given" or that no later check sees.
func (f *cliFlags) check() error {
	switch {
	case f.maxP99 < 0:
		return fmt.Errorf("--max-p99 must not be negative, got %v", f.maxP99)
	case f.minRate < 0 || math.IsNaN(f.minRate):
		return fmt.Errorf("--min-rate must not be negative, got %v", f.minRate)
	case f.maxErrors < 0:
		return fmt.Errorf("--max-errors must not be negative, got %d", f.maxErrors)
	case f.set["reply-timeout"] && f.replyTimeout <= 0:
		return fmt.Errorf("--reply-timeout must be positive, got %v", f.replyTimeout)
	case f.dialTimeout <= 0:
		return fmt.Errorf("--dial-timeout must be positive, got %v", f.dialTimeout)
	}
	return nil
}

// options is the load cfg describes, with the flags given overriding it.
func (f *cliFlags) options(cfg *config.Config) Options {
	opt := OptionsFromConfig(cfg)
	if f.set["url"] {
		opt.URL = f.url
	}
	if f.set["reply-timeout"] {
		opt.ReplyTimeout = f.replyTimeout
	}
	opt.Protocol = f.protocol
	opt.Pipeline = f.pipeline
	opt.Timing = f.timing
	opt.Duration = f.duration
	opt.Rate = f.rate
	opt.RampUp = f.rampUp
	opt.DialTimeout = f.dialTimeout
	opt.MetricsURL = f.metrics
	if len(f.n) > 0 {
		opt.N = f.n
	}
	return opt
}

func (f *cliFlags) thresholds() Thresholds {
	return Thresholds{MaxP99: f.maxP99, MinRate: f.minRate, MaxErrors: f.maxErrors}
}

// writeJSON writes sum to file, or to stdout when file is nil.
func writeJSON(sum *Summary, file *os.File, stdout io.Writer) error {
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if file == nil {
		_, err = stdout.Write(data)
		return err
	}
	if _, err = file.Write(data); err != nil {
		return err
	}
	return file.Close()
}

// judge says why the run failed, if it did, and returns its exit status.
func judge(sum *Summary, th Thresholds, report, stderr io.Writer) int {
	code, reasons := sum.Exit(th)
	for _, r := range reasons {
		fmt.Fprintf(stderr, "client: FAIL: %s\n", r)
	}
	switch code {
	case ExitOK:
		fmt.Fprintf(report, "\nPASS: every reply arrived and was right\n")
	case ExitThreshold:
		fmt.Fprintf(stderr, "client: exit %d: a threshold was crossed\n", code)
	default:
		fmt.Fprintf(stderr, "client: exit %d: not every reply arrived and was right\n", code)
	}
	return code
}
