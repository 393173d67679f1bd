package host

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/limit"
	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
)

// Exit statuses of the host command.
const (
	ExitOK     = config.ExitOK
	ExitFailed = 1 // could not serve: port taken, plugin would not start
	ExitUsage  = config.ExitUsage
)

// Inproc is the name of the built-in strategy.
const Inproc = "inproc"

// spareProcs are the Ps the host adds to its runtime when tasks run in its
// own process (inproc). Those tasks keep at most one P per core busy
// (strategy.Inproc); with every P busy, the host's own readers and writers
// would wait for the Go scheduler (measured: p99 of a noop beside a CPU
// flood 126-500 ms with GOMAXPROCS = cores, 11 ms with spare Ps), while
// with spare Ps they run at once and the kernel shares the cores.
const spareProcs = 2

// Main is the host command: `host --config FILE --plugin NAME`.
func Main(args []string, stdout, stderr io.Writer) int { return MainWrapped(args, stdout, stderr, nil) }

// MainWrapped is Main with the built-in inproc strategy's executor wrapped
// in wrap, whenever it is made (at start-up or on a switch back to it):
// for a test binary that runs a task set of its own inside the host's
// process (internal/e2e/faultyhost, which runs internal/attacks on the
// inproc rung). cmd/host calls Main, never this.
func MainWrapped(args []string, stdout, stderr io.Writer, wrap func(taskproto.Executor) taskproto.Executor) int {
	fset := flag.NewFlagSet("host", flag.ContinueOnError)
	fset.SetOutput(stderr)
	flags := config.NewFlags(fset)
	pluginName := fset.String("plugin", Inproc, "strategy to serve: inproc or a plugin in the plugin directory")
	list := fset.Bool("list-plugins", false, "list the strategies that can be loaded, and why any cannot run here, and exit")
	conform := fset.String("conformance", "", "check the plugin `NAME` against the host-plugin contract (the conformance kit) and exit")
	reattachTo := fset.String("reattach", "", "serve the plugin started by hand in debug mode (plugin.DebugEnv) that printed `JSON`; "+
		wire.ReattachEnv+" gives it too")
	describe := fset.Bool("describe", false, "print the configuration keys the strategy reads, as config.ini lines, and exit")
	flags.String("host", "server", "host", "address to listen on", func(c *config.Config) *string { return &c.Server.Host })
	flags.Int("port", "server", "port", "port to listen on, 0 for any free port", func(c *config.Config) *int { return &c.Server.Port })
	flags.String("plugin-dir", "server", "plugin_dir", "directory of plugin binaries", func(c *config.Config) *string { return &c.Server.PluginDir })
	flags.String("data-dir", "server", "data_dir", "directory io tasks write in", func(c *config.Config) *string { return &c.Server.DataDir })
	flags.String("log-level", "server", "log_level", "trace, debug, info, warn or error", func(c *config.Config) *string { return &c.Server.LogLevel })
	flags.Bool("watch", "server", "watch_plugin", "when the running plugin's binary changes, start the new one and switch to it with no reply lost",
		func(c *config.Config) *bool { return &c.Server.WatchPlugin })
	cfg, err := flags.Parse(args)
	if err != nil {
		return config.UsageStatus(stderr, "host", err)
	}
	if cfg.Server.PluginDir == "" {
		cfg.Server.PluginDir = defaultPluginDir()
	}

	names, err := ListPlugins(cfg.Server.PluginDir)
	if err != nil && *list {
		fmt.Fprintf(stderr, "list plugins in %s: %v\n", cfg.Server.PluginDir, err)
	}
	if *list {
		// One line a strategy: its name, where it is, and, for one that
		// cannot run here, a third field that says why.
		fmt.Fprintf(stdout, "%s\t(built in)\n", Inproc)
		for i, why := range cannotRunAll(cfg.Server.PluginDir, names) {
			fmt.Fprintf(stdout, "%s\t%s", names[i], filepath.Join(cfg.Server.PluginDir, names[i]))
			if why != "" {
				fmt.Fprintf(stdout, "\tcannot run here: %s", why)
			}
			fmt.Fprintln(stdout)
		}
		return ExitOK
	}
	reattach, err := reattachOf(*reattachTo, pluginName)
	if err != nil {
		fmt.Fprintln(stderr, "host:", err)
		return ExitUsage
	}
	if reattach == nil && *pluginName != Inproc && !slices.Contains(names, *pluginName) {
		fmt.Fprintf(stderr, "host: unknown plugin %q: not found in %s; available: %v\n",
			*pluginName, cfg.Server.PluginDir, append([]string{Inproc}, names...))
		return ExitUsage
	}

	log := hclog.New(&hclog.LoggerOptions{
		Name:       "host",
		Output:     stderr,
		Level:      hclog.LevelFromString(cfg.Server.LogLevel),
		JSONFormat: cfg.Server.LogFormat == "json",
	})
	if *describe {
		return describeStrategy(cfg, *pluginName, log, stdout, stderr)
	}
	if *conform != "" {
		return checkConformance(cfg, *conform, log, stdout, stderr)
	}
	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	defer plugin.StartProfile("host")()
	defer tracing.Begin("wslab-host", log)()
	if err := serve(cfg, *pluginName, reattach, wrap, tlsConfig, log, stdout); err != nil {
		return failed(err, log, stderr)
	}
	return ExitOK
}

// failed reports why the host could not serve: a configuration value a
// plugin's declared key refuses is a usage error, one line on stderr.
func failed(err error, log hclog.Logger, stderr io.Writer) int {
	var cerr *config.Error
	if errors.As(err, &cerr) {
		fmt.Fprintln(stderr, cerr)
		return ExitUsage
	}
	var serr *launch.StartError
	if errors.As(err, &serr) { // its lines read better as they are
		fmt.Fprintln(stderr, "host:", err)
		return ExitFailed
	}
	log.Error("host failed", "error", err)
	return ExitFailed
}

// loadTLS reads [server] tls_cert and tls_key; nil when they are not set.
func loadTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Server.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey)
	if err != nil {
		return nil, &config.Error{File: cfg.Path, Section: "server", Key: "tls_cert", Problem: "cannot load the certificate and key: " + err.Error()}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// defaultPluginDir is bin/plugins beside the host binary.
func defaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "plugins"
	}
	return filepath.Join(filepath.Dir(exe), "plugins")
}

// ListPlugins returns the names of the executable files in dir, sorted.
func ListPlugins(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// StrategyConfig is what a strategy is told of cfg; a plugin's Settings
// are added once it has declared its keys (config.StrategySettings).
func StrategyConfig(cfg *config.Config, name string) taskproto.Config {
	return taskproto.Config{
		Strategy:       name,
		FibonacciLimit: cfg.TaskSetting.FibonacciLimit,
		DataDir:        cfg.Server.DataDir,
		LargeFileName:  cfg.TaskSetting.LargeFileName,
		TaskTimeout:    cfg.Server.Timeout,
		Limits:         limits(cfg),
	}
}

func limits(cfg *config.Config) taskproto.Limits {
	return taskproto.Limits{
		MaxFibN:    cfg.Limits.MaxFibN,
		MaxCPUN:    cfg.Limits.MaxCPUN,
		MaxIOBytes: cfg.Limits.MaxIOBytes,
		MaxSleep:   cfg.Server.Timeout,
	}
}

// serve runs the host until a signal stops it. Once it listens it prints
// "listening URL" on stdout (and "metrics URL" for metrics_listen): with
// port 0 that is how a script (or internal/hostproc) learns the port it got.
// reattachOf is the plugin started by hand that flag (or else the
// environment) names, nil for none; it names the strategy served, which
// --plugin may repeat but not contradict.
func reattachOf(flag string, pluginName *string) (*wire.Reattach, error) {
	if flag == "" {
		flag = os.Getenv(wire.ReattachEnv)
	}
	if flag == "" {
		return nil, nil
	}
	r, err := wire.ParseReattach(flag)
	if err != nil {
		return nil, err
	}
	if *pluginName != Inproc && *pluginName != r.Strategy {
		return nil, fmt.Errorf("--plugin %s and --reattach to a %s plugin: give one", *pluginName, r.Strategy)
	}
	*pluginName = r.Strategy
	return &r, nil
}

func serve(cfg *config.Config, name string, reattach *wire.Reattach, wrapInproc func(taskproto.Executor) taskproto.Executor,
	tlsConfig *tls.Config, log hclog.Logger, stdout io.Writer) error {
	if cfg.Server.DataDir == "" {
		dir, err := os.MkdirTemp("", "wslab-data-")
		if err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.Server.DataDir = dir
	} else if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	batches := &replyBatches{}
	defer goplugin.CleanupClients() // whichever plugins were started, the first or switched to
	builder := &strategyBuilder{cfg: cfg, batches: batches, log: log, wrapInproc: wrapInproc}
	var (
		strat    Strategy
		declared []taskproto.Key
		err      error
	)
	if reattach != nil {
		strat, declared, err = builder.reattach(ctx, name, reattach)
	} else {
		strat, declared, err = builder.build(ctx, name)
	}
	if err != nil {
		return err
	}
	warnUnownedSections(ctx, cfg, name, declared, log)

	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		closeStrategy(strat)
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := NewServer(Options{
		Strategy:             strat,
		Logger:               log,
		Defaults:             wsproto.Defaults{FibN: cfg.TaskSetting.FibonacciLimit},
		Limits:               limits(cfg),
		TaskTimeout:          cfg.Server.Timeout,
		MaxFrameBytes:        cfg.Limits.MaxFrameBytes,
		MaxInflight:          int(cfg.Limits.MaxInflightPerConn),
		MaxQueued:            cfg.Limits.MaxQueued,
		MaxPendingReplyBytes: cfg.Limits.MaxPendingReplyBytes,
		MinReplyReadRate:     cfg.Limits.MinReplyReadRate,
		WindowFor: func(concurrency int) *limit.AIMD {
			return NewWindow(concurrency, int(cfg.Limits.StrategyPrefetch), int(cfg.Limits.MaxRunning),
				time.Duration(cfg.Limits.StrategyQueueMS)*time.Millisecond)
		},
		Build: func(ctx context.Context, name string) (Strategy, error) {
			strat, _, err := builder.build(ctx, name)
			return strat, err
		},
		MaxConnections: int(cfg.Limits.MaxConnections),
		AllowedOrigins: cfg.Server.AllowedOrigins,
		ListenHost:     cfg.Server.Host,
		AllowedHosts:   cfg.Server.AllowedHosts,
		AuthToken:      cfg.Server.AuthToken,
		TLS:            tlsConfig,
		TimingSample:   cfg.Server.TimingSample,
		batches:        batches,
	})
	// The strategy serving at the end, the first or one switched to.
	defer func() { closeStrategy(srv.Strategy()) }()
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if cfg.Server.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.Server.MetricsListen, srv, tlsConfig, stdout, served)
		if err != nil {
			srv.Shutdown(0)
			return err
		}
		defer stopMetrics()
	}
	scheme, web := "ws", "http"
	if tlsConfig != nil {
		scheme, web = "wss", "https"
	}
	url := scheme + "://" + ln.Addr().String() + "/ws"
	live := web + "://" + ln.Addr().String() + "/live"
	log.Info("serving", "url", url, "live", live, "strategy", name, "window", srv.opt.Window.Limit(), "data_dir", cfg.Server.DataDir)
	fmt.Fprintf(stdout, "listening %s\n", url)
	if cfg.Server.WatchPlugin {
		manifest := ""
		if cfg.Server.VerifyPlugins {
			manifest = filepath.Join(cfg.Server.PluginDir, launch.ChecksumsFile)
		}
		w := newPluginWatch(srv, log, manifest)
		watchCtx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			w.run(watchCtx)
		}()
		defer func() { stopWatch(); <-watched }()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		stop() // a second signal kills the host at once
	}
	log.Info("shutting down", "grace", cfg.Server.ShutdownGrace)
	start := time.Now()
	srv.Shutdown(cfg.Server.ShutdownGrace)
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// strategyBuilder builds the strategies the host serves, at start-up and
// for a switch (SwitchStrategy): inproc, or a plugin of the plugin
// directory started under a PluginSupervisor, the configuration's values
// of the keys it declares checked as at start-up, and SHA256SUMS re-read
// when verify_plugins is on.
type strategyBuilder struct {
	// wrapInproc, when set, wraps the inproc executor (MainWrapped).
	wrapInproc func(taskproto.Executor) taskproto.Executor
	cfg        *config.Config
	batches    *replyBatches
	log        hclog.Logger
}

// build returns the strategy named and the keys it declares. A value of a
// declared key that the plugin refuses is a *config.Error; a name neither
// built in nor installed, an *UnknownStrategyError.
func (b *strategyBuilder) build(ctx context.Context, name string) (Strategy, []taskproto.Key, error) {
	cfg := b.cfg
	scfg := StrategyConfig(cfg, name)
	if name == Inproc {
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.GOMAXPROCS(runtime.NumCPU() + spareProcs)
		}
		if err := cfg.CheckKeys(nil); err != nil { // inproc reads no keys of its own
			return nil, nil, err
		}
		var e taskproto.Executor = strategy.NewInproc(scfg)
		if b.wrapInproc != nil {
			e = b.wrapInproc(e)
		}
		return readyAlways{e}, nil, nil
	}
	if names, _ := ListPlugins(cfg.Server.PluginDir); !slices.Contains(names, name) {
		return nil, nil, &UnknownStrategyError{Name: name, Available: append([]string{Inproc}, names...)}
	}
	opt, err := pluginLaunch(cfg, name, b.log)
	if err != nil {
		return nil, nil, err
	}
	return b.startPlugin(ctx, name, opt)
}

// reattach is build for the plugin started by hand that r describes
// (--reattach): not found in the plugin directory, nor checked against its
// manifest. A switch away from it stops it; a switch back to its name
// starts the plugin directory's binary.
func (b *strategyBuilder) reattach(ctx context.Context, name string, r *wire.Reattach) (Strategy, []taskproto.Key, error) {
	opt := launch.LaunchOptions{Name: name, Path: fmt.Sprintf("(started by hand, pid %d)", r.PID), Logger: b.log, Reattach: r}
	if b.cfg.Server.VerifyPlugins {
		b.log.Warn("[server] verify_plugins does not apply to a plugin started by hand", "pid", r.PID)
	}
	return b.startPlugin(ctx, name, opt)
}

// startPlugin starts the plugin opt says under a PluginSupervisor.
func (b *strategyBuilder) startPlugin(ctx context.Context, name string, opt launch.LaunchOptions) (Strategy, []taskproto.Key, error) {
	cfg := b.cfg
	scfg := StrategyConfig(cfg, name)
	// The keys the plugin declares, which StrategySettings checks the
	// file's keys against, say which sections it reads.
	var (
		mu       sync.Mutex
		declared []taskproto.Key
	)
	settings := func(keys []taskproto.Key) (map[string]string, error) {
		mu.Lock()
		declared = keys
		mu.Unlock()
		return cfg.StrategySettings(keys)
	}
	sup, err := StartPlugin(ctx, PluginOptions{LaunchOptions: opt, Config: scfg, Settings: settings, batches: b.batches})
	var ke *taskproto.KeyError
	if errors.As(err, &ke) { // a value the plugin refuses here: a usage error
		return nil, nil, &config.Error{File: cfg.Path, Section: ke.Key.Section, Key: ke.Key.Name, Problem: ke.Problem}
	}
	if err != nil {
		return nil, nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return sup, declared, nil
}

// serveMetrics serves srv's /metrics alone on addr ([server]
// metrics_listen) until the returned func is called; an error serving it
// goes to served.
func serveMetrics(addr string, srv *Server, tlsConfig *tls.Config, stdout io.Writer, served chan<- error) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.MetricsHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConfig, ErrorLog: srv.http.ErrorLog}
	go func() {
		var err error
		if tlsConfig != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("metrics_listen: %w", err)
		}
	}()
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	url := scheme + "://" + ln.Addr().String() + "/metrics"
	srv.log.Info("serving metrics", "url", url)
	fmt.Fprintf(stdout, "metrics %s\n", url)
	return func() { hs.Close() }, nil
}

// readyAlways adapts an in-process strategy, which is ready from the start.
type readyAlways struct{ taskproto.Executor }

func (readyAlways) Ready() bool { return true }
