package client

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

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
	configPath := fset.String("config", "config.ini", "configuration `file`; defaults apply when the default file is absent")
	wsURL := fset.String("url", "", "host `URL` (default ws://[server] host:[server] port/ws)")
	clients := fset.Int("clients", 0, "concurrent connections (default [client] num_client)")
	taskList := fset.String("tasks", "", "comma-separated task `sequence`: fib, cpu, io, sleep, noop or N (sleep N s) (default [client] tasks)")
	protocol := fset.String("protocol", "plain", "plain (the Python lab's) or json (ids, pipelining, queue/run times)")
	pipeline := fset.Int("pipeline", 1, "requests in flight per connection (json only)")
	duration := fset.Duration("duration", 0, "repeat the sequence for this `long` (0: send it once)")
	rate := fset.Float64("rate", 0, "open loop: requests per second across all connections (json, needs --duration)")
	rampUp := fset.Duration("ramp-up", 0, "open the connections evenly over this `time`")
	token := fset.String("token", "", "bearer `token` for the host's auth_token (default [server] auth_token)")
	nArgs := nFlag{}
	fset.Var(nArgs, "n", "task argument in JSON requests, `kind=value`, repeatable (e.g. --n cpu=100000)")
	replyTimeout := fset.Duration("reply-timeout", 0, "wait this long for a reply before counting it missing (default [server] timeout_sec + 5s)")
	dialTimeout := fset.Duration("dial-timeout", DefaultDialTimeout, "bound on each connection's dial and upgrade")
	jsonPath := fset.String("json", "", "write the summary as JSON to this `file` (- for stdout; the report then goes to stderr)")
	verbose := fset.Bool("verbose", false, "print a line per client as it finishes (\"client 7 took 1.234 s\")")
	quiet := fset.Bool("quiet", false, "no progress bar")
	maxP99 := fset.Duration("max-p99", 0, "exit 99 when p99 latency over all tasks is above this `duration`")
	minRate := fset.Float64("min-rate", 0, "exit 99 when throughput (right results per second) is below this `rate`")
	maxErrors := fset.Int64("max-errors", 0, "error replies allowed before exiting 1")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "client: "+format+"\n", args...)
		return ExitUsage
	}
	if fset.NArg() > 0 {
		return usage("unexpected argument %q; every setting is a flag (see --help)", fset.Arg(0))
	}
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *maxP99 < 0:
		return usage("--max-p99 must not be negative, got %v", *maxP99)
	case *minRate < 0 || *minRate != *minRate:
		return usage("--min-rate must not be negative, got %v", *minRate)
	case *maxErrors < 0:
		return usage("--max-errors must not be negative, got %d", *maxErrors)
	case set["clients"] && *clients < 1:
		return usage("--clients must be at least 1, got %d", *clients)
	case set["reply-timeout"] && *replyTimeout <= 0:
		return usage("--reply-timeout must be positive, got %v", *replyTimeout)
	case *dialTimeout <= 0:
		return usage("--dial-timeout must be positive, got %v", *dialTimeout)
	}

	cfg, err := loadConfig(*configPath, set["config"])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	opt := OptionsFromConfig(cfg)
	if set["url"] {
		opt.URL = *wsURL
	} else if cfg.Server.Port == 0 {
		return usage("%s: [server] port is 0 (any free port): give the host's address with --url", cfg.Path)
	}
	if set["clients"] {
		opt.Clients = *clients
	}
	if set["tasks"] {
		opt.Tasks = nil
		for _, t := range strings.Split(*taskList, ",") {
			opt.Tasks = append(opt.Tasks, strings.TrimSpace(t))
		}
	}
	if set["token"] {
		opt.Token = *token
	}
	if set["reply-timeout"] {
		opt.ReplyTimeout = *replyTimeout
	}
	opt.Protocol = *protocol
	opt.Pipeline = *pipeline
	opt.Duration = *duration
	opt.Rate = *rate
	opt.RampUp = *rampUp
	opt.DialTimeout = *dialTimeout
	if len(nArgs) > 0 {
		opt.N = nArgs
	}
	if !*quiet {
		opt.Progress = stderr
	}
	report := stdout
	if *jsonPath == "-" {
		report = stderr
	}
	if *verbose {
		opt.Verbose = report
	}
	if err := Validate(opt); err != nil {
		return usage("%v", err)
	}

	// Open the JSON file first: a bad path is a usage error, found before
	// the run rather than after it.
	var jsonFile *os.File
	if *jsonPath != "" && *jsonPath != "-" {
		if jsonFile, err = os.Create(*jsonPath); err != nil {
			return usage("--json: %v", err)
		}
		defer jsonFile.Close()
	}

	sum, err := Run(ctx, opt)
	if err != nil {
		return usage("%v", err)
	}
	sum.WriteReport(report)
	if *jsonPath != "" {
		data, _ := json.MarshalIndent(sum, "", "  ")
		data = append(data, '\n')
		if jsonFile == nil {
			_, err = stdout.Write(data)
		} else if _, err = jsonFile.Write(data); err == nil {
			err = jsonFile.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "client: --json: %v\n", err)
			return ExitIncorrect
		}
	}
	code, reasons := sum.Exit(Thresholds{MaxP99: *maxP99, MinRate: *minRate, MaxErrors: *maxErrors})
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

// loadConfig reads path; the default path may be absent (defaults apply),
// a path given with --config may not.
func loadConfig(path string, explicit bool) (*config.Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return config.Default(), nil
		}
	}
	return config.Load(path)
}
