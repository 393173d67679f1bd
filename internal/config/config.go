// Package config reads wslab's config.ini: the Python lab's sections and keys
// ([server], [client], [task_setting], [other]) plus wslab's own ([limits],
// [lab], ...). It knows the keys of the host, the client and the lab; a
// strategy declares its own (taskproto.Key) and StrategySettings checks them.
// Every value is checked before anything serves; a bad one is reported as
// one line naming the file, section and key.
package config

import (
	"time"
)

// Config is the whole configuration file, with defaults filled in.
type Config struct {
	Path string // the file it was read from, "" for defaults only

	Server      Server
	Client      Client
	TaskSetting TaskSetting
	Limits      Limits
	Lab         Lab

	// Raw holds every key of the file as "section.key" → value (unquoted):
	// the keys a strategy declares are checked against it when the
	// strategy is known (StrategySettings).
	Raw map[string]string

	sections []string  // the file's sections, in its order ([DEFAULT] when it has keys)
	keys     []fileKey // the file's keys, in its order (CheckKeys)
}

// Server is the [server] section.
type Server struct {
	Host           string        // host = localhost
	Port           int           // port = 8765 (0: any free port)
	Timeout        time.Duration // timeout_sec = 100
	PluginDir      string        // plugin_dir: default bin/plugins beside the host binary
	DataDir        string        // data_dir: default a fresh directory under the system temp dir
	AllowedOrigins []string      // allowed_origins: comma separated, besides the host's own origin
	AllowedHosts   []string      // allowed_hosts: Host header names accepted besides the listen address, IPs and localhost
	AuthToken      string        // auth_token
	TLSCert        string        // tls_cert: PEM certificate (chain); with tls_key, the host serves wss://
	TLSKey         string        // tls_key
	ShutdownGrace  time.Duration // shutdown_grace_sec = 10
	// VerifyPlugins: check a plugin binary's SHA-256 against the SHA256SUMS
	// manifest of the plugin directory before starting it (verify_plugins = false).
	VerifyPlugins bool
	// WatchPlugin: when the running plugin's binary changes, start the new
	// one and switch to it, no reply lost (watch_plugin = false; --watch).
	WatchPlugin bool
	LogLevel    string // log_level = info
	LogFormat   string // log_format = text (or json: hclog's JSON lines)
	// MetricsListen is a second address that serves /metrics alone
	// (metrics_listen, e.g. 127.0.0.1:9464); empty: only the host's port.
	MetricsListen string
	// TimingSample is the share of JSON requests, 0 to 1, whose timeline
	// the host records and sends in their reply unasked (timing_sample = 0).
	TimingSample float64
}

// Client is the [client] section.
type Client struct {
	NumClient int      // num_client = 200
	Tasks     []string // tasks = fib, cpu, io (a whole number N is a sleep of N seconds)
	TLSCA     string   // tls_ca: PEM CA file to trust for wss:// besides the system's
}

// TaskSetting is the [task_setting] section.
type TaskSetting struct {
	FibonacciLimit int64  // fibonacci_limit = 5000
	LargeFileName  string // large_file_name = large_file.txt
}

// Limits is the [limits] section: the bounds on what clients can make the host hold.
type Limits struct {
	MaxFrameBytes      int64 // max_frame_bytes = 65536
	MaxInflightPerConn int64 // max_inflight_per_conn = 256
	MaxQueued          int64 // max_queued = 10000
	MaxConnections     int64 // max_connections = 10000
	// MaxPendingReplyBytes bounds the bytes a connection's replies, and the
	// ids of its requests in flight, hold while waiting to be written
	// (max_pending_reply_bytes = 1048576). Past it the connection's new
	// requests get overloaded; past twice it the connection is closed.
	MaxPendingReplyBytes int64
	// MinReplyReadRate is the slowest a client may read its replies, in
	// bytes per second (min_reply_read_rate = 65536): a write that goes
	// slower closes the connection.
	MinReplyReadRate int64
	// MaxRunning bounds the tasks handed at once to a strategy that sets no
	// bound of its own (max_running = 256); the rest wait in the host's fair
	// queue.
	MaxRunning int64
	// StrategyPrefetch is how many tasks beyond its own concurrency a
	// bounded strategy is handed, so that it never idles for a round trip
	// (strategy_prefetch = 16).
	StrategyPrefetch int64
	// StrategyQueueMS is the wait inside a strategy the window aims for:
	// it grows while tasks wait less, shrinks when they wait more
	// (strategy_queue_ms = 2).
	StrategyQueueMS int64
	MaxFibN         int64 // max_fib_n = 100000
	MaxCPUN         int64 // max_cpu_n = 1000000000
	MaxIOBytes      int64 // max_io_bytes = 100000000
}

// Lab is the [lab] section: what `lab` runs.
type Lab struct {
	Strategies []string // strategies = (empty: inproc and every plugin found)
	// External are outside servers run as contenders beside the
	// strategies: one `external = NAME: COMMAND` line each.
	External []External
	// Scenarios = mixed, cpu, sleep, noop, rtt, capacity, ladder.
	Scenarios []string
	// Rounds = 6: every strategy runs every scenario once per round, the
	// strategies in an order rotated from round to round.
	Rounds       int64
	WarmupMS     int64         // warmup_ms = 200: load run and discarded on each fresh host
	Duration     time.Duration // duration_ms = 400: length of the timed scenarios (cpu, noop)
	CPUClients   int64         // cpu_clients = 4
	CPUPipeline  int64         // cpu_pipeline = 4: in-flight requests per cpu connection
	CPUN         int64         // cpu_n = 2000000: integers summed per cpu task
	SleepClients int64         // sleep_clients = 15
	SleepMS      int64         // sleep_ms = 100
	NoopClients  int64         // noop_clients = 8
	NoopPipeline int64         // noop_pipeline = 16: in-flight requests per noop connection
	RTTCount     int64         // rtt_count = 300: noop round trips of the rtt scenario, one at a time
	// LadderCount = 40: the ladder's rounds of noop, fib and io, one task
	// at a time on one connection, on each rung of the isolation ladder.
	LadderCount int64
	// CapacityTasks = fib, cpu, io: the mix the capacity scenario offers
	// (cpu tasks sum cpu_n integers).
	CapacityTasks []string
	// CapacityRates = 250, 500, 1000, 2000, 3000, 4000, 5000: the offered
	// rates, tasks per second, in rising order.
	CapacityRates   []float64
	CapacityStepMS  int64 // capacity_step_ms = 250: how long each rate is offered
	CapacityClients int64 // capacity_clients = 16: connections the rate is spread over
	// SLOP99MS = 50: the p99 latency a rate must keep to be sustained.
	SLOP99MS int64
	Out      string // out = lab-report
}

// External is an outside WebSocket server that speaks the task protocol,
// run by the lab as a contender: Command, with {port} replaced by a free
// port, is run by the shell and serves ws://127.0.0.1:PORT/ws.
type External struct {
	Name    string
	Command string
}
