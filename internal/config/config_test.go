package config

import (
	"github.com/wslab/wslab/taskproto"

	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// write puts content in a config.ini under a fresh temp dir and returns its path.
func write(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.ini")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, content string) *Config {
	t.Helper()
	c, err := Load(write(t, content))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// specSample is the Python lab's own configuration file, which every
// wslab command reads as it is.
var specSample = func() string {
	b, err := os.ReadFile("testdata/python-lab.ini")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func TestDefaultsWhenKeysAbsent(t *testing.T) {
	for _, content := range []string{"", "[server]\n", "[unrelated]\nx = 1\n"} {
		c := mustLoad(t, content)
		want := Default()
		want.Path, want.Raw, want.sections, want.keys = c.Path, c.Raw, c.sections, c.keys
		if !reflect.DeepEqual(c, want) {
			t.Errorf("Load(%q) = %+v, want defaults %+v", content, c, want)
		}
	}
	d := Default()
	if d.Server.Host != "localhost" || d.Server.Port != 8765 || d.Server.Timeout != 100*time.Second ||
		d.Server.ShutdownGrace != 10*time.Second || d.Server.LogLevel != "info" ||
		d.Client.NumClient != 200 || !reflect.DeepEqual(d.Client.Tasks, []string{"fib", "cpu", "io"}) ||
		d.TaskSetting.FibonacciLimit != 5000 || d.TaskSetting.LargeFileName != "large_file.txt" ||
		d.Limits != (Limits{MaxFrameBytes: 65536, MaxInflightPerConn: 256, MaxQueued: 10000, MaxConnections: 10000,
			MaxPendingReplyBytes: 1 << 20, MinReplyReadRate: 64 << 10, MaxRunning: 256, StrategyPrefetch: 16, StrategyQueueMS: 2,
			MaxFibN: 100000, MaxCPUN: 1000000000, MaxIOBytes: 100000000}) ||
		d.Raw == nil || len(d.Raw) != 0 {
		t.Errorf("Default() = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestSpecSample(t *testing.T) {
	c := mustLoad(t, specSample)
	want := Default()
	want.Path, want.sections, want.keys = c.Path, c.sections, c.keys
	want.Raw = map[string]string{
		"server.host": "localhost", "server.port": "8765", "server.timeout_sec": "100",
		"client.num_client": "200", "client.tasks": "fib, cpu, io",
		"task_setting.fibonacci_limit": "5000", "task_setting.large_file_name": "large_file.txt",
		"other.asyn_semaphore": "5", "other.multiprocessing_processes": "4",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestRepoConfigIni(t *testing.T) {
	c, err := Load("../../config.ini")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Path, want.Raw, want.sections, want.keys = c.Path, c.Raw, c.sections, c.keys
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config.ini differs from the defaults: %+v", c)
	}
	for _, k := range []string{"server.host", "client.tasks", "other.asyn_semaphore"} {
		if _, ok := c.Raw[k]; !ok {
			t.Errorf("Raw lacks %s", k)
		}
	}
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		check         func(*Config) bool
	}{
		{"single quotes", "[server]\nhost = 'localhost'\n", func(c *Config) bool { return c.Server.Host == "localhost" }},
		{"double quotes", "[server]\nhost = \"localhost\"\n", func(c *Config) bool { return c.Server.Host == "localhost" }},
		{"quoted number", "[server]\nport = '9000'\n", func(c *Config) bool { return c.Server.Port == 9000 }},
		{"one pair only", "[server]\nauth_token = \"'x'\"\n", func(c *Config) bool { return c.Server.AuthToken == "'x'" }},
		{"unmatched quote kept", "[server]\nauth_token = 'x\n", func(c *Config) bool { return c.Server.AuthToken == "'x" }},
		{"hash inside value", "[server]\nauth_token = a#b;c\n", func(c *Config) bool { return c.Server.AuthToken == "a#b;c" }},
		{"inline comment", "[server]\nport = 9000 ; note\n", func(c *Config) bool { return c.Server.Port == 9000 }},
		{"port 0", "[server]\nport = 0\n", func(c *Config) bool { return c.Server.Port == 0 }},
		{"keys case-insensitive", "[server]\nPORT = 9001\n", func(c *Config) bool { return c.Server.Port == 9001 }},
		{"DEFAULT fallback", "timeout_sec = 7\n[server]\n", func(c *Config) bool {
			return c.Server.Timeout == 7*time.Second && c.Raw["DEFAULT.timeout_sec"] == "7"
		}},
		{"durations", "[server]\ntimeout_sec = 3\nshutdown_grace_sec = 0\n", func(c *Config) bool {
			return c.Server.Timeout == 3*time.Second && c.Server.ShutdownGrace == 0
		}},
		{"tasks", "[client]\ntasks = fib , 3,sleep,noop, io ,0\n", func(c *Config) bool {
			return reflect.DeepEqual(c.Client.Tasks, []string{"fib", "3", "sleep", "noop", "io", "0"})
		}},
		{"origins", "[server]\nallowed_origins = https://a.example, ,http://b ,\n", func(c *Config) bool {
			return reflect.DeepEqual(c.Server.AllowedOrigins, []string{"https://a.example", "http://b"})
		}},
		{"log level case", "[server]\nlog_level = DEBUG\n", func(c *Config) bool { return c.Server.LogLevel == "debug" }},
		{"timing sample", "[server]\ntiming_sample = 0.25\n", func(c *Config) bool { return c.Server.TimingSample == 0.25 }},
		{"log format", "[server]\nlog_format = JSON\n", func(c *Config) bool { return c.Server.LogFormat == "json" }},
		{"metrics listen", "[server]\nmetrics_listen = 127.0.0.1:9464\n", func(c *Config) bool { return c.Server.MetricsListen == "127.0.0.1:9464" }},
		{"fib at max", "[task_setting]\nfibonacci_limit = 200\n[limits]\nmax_fib_n = 200\n", func(c *Config) bool {
			return c.TaskSetting.FibonacciLimit == 200 && c.Limits.MaxFibN == 200
		}},
		{"limits", "[limits]\nmax_cpu_n = 4000000000\nmax_io_bytes = 1\n", func(c *Config) bool {
			return c.Limits.MaxCPUN == 4000000000 && c.Limits.MaxIOBytes == 1
		}},
		{"verify plugins", "[server]\nverify_plugins = Yes\n", func(c *Config) bool { return c.Server.VerifyPlugins }},
		{"watch plugin", "[server]\nwatch_plugin = true\n", func(c *Config) bool { return c.Server.WatchPlugin }},
		{"custom sections in Raw", "[distributed]\nnats_url = nats://x\n[server]\nextra = 'q'\n", func(c *Config) bool {
			return c.Raw["distributed.nats_url"] == "nats://x" && c.Raw["server.extra"] == "q" && len(c.Raw) == 2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := mustLoad(t, tc.content); !tc.check(c) {
				t.Errorf("unexpected config for %q: %+v", tc.content, c)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, section, key, value string
		want                      string // part of the problem
	}{
		{"fraction", "client", "num_client", "2.5", "is not a whole number"},
		{"empty number", "server", "port", "", `"" is not a whole number`},
		{"negative count", "client", "num_client", "-3", "must be a whole number between 1 and 1000000, got -3"},
		{"negative fib", "task_setting", "fibonacci_limit", "-1", "got -1"},
		{"negative grace", "server", "shutdown_grace_sec", "-1", "got -1"},
		{"zero clients", "client", "num_client", "0", "between 1 and 1000000, got 0"},
		{"zero timeout", "server", "timeout_sec", "0", "≥ 1, got 0"},
		{"huge timeout", "server", "timeout_sec", "10000000000", "got 10000000000"},
		{"zero frame", "limits", "max_frame_bytes", "0", "between 1 and 67108864, got 0"},
		{"zero inflight", "limits", "max_inflight_per_conn", "0", "between 1 and 65536, got 0"},
		{"zero queued", "limits", "max_queued", "0", "between 1 and 100000000, got 0"},
		{"zero conns", "limits", "max_connections", "0", "between 1 and 10000000, got 0"},
		{"zero fib n", "limits", "max_fib_n", "0", "≥ 1, got 0"},
		{"zero cpu n", "limits", "max_cpu_n", "0", "got 0"},
		{"zero io", "limits", "max_io_bytes", "0", "≥ 1, got 0"},
		{"cpu n overflow", "limits", "max_cpu_n", "4000000001", "between 1 and 4000000000, got 4000000001"},
		{"port negative", "server", "port", "-1", "between 0 and 65535, got -1"},
		{"port too big", "server", "port", "65536", "between 0 and 65535, got 65536"},
		{"port word", "server", "port", "http", `"http" is not a whole number`},
		{"fib above max", "task_setting", "fibonacci_limit", "100001", "must be ≤ [limits] max_fib_n (100000), got 100001"},
		{"unknown task", "client", "tasks", "fib, fob", `unknown task "fob", must be one of fib, cpu, io, sleep, noop`},
		{"negative sleep", "client", "tasks", "-1", `unknown task "-1"`},
		{"empty tasks", "client", "tasks", " ", "must list at least one task"},
		{"bad log level", "server", "log_level", "verbose", `"verbose" is not a log level, must be one of trace, debug, info, warn, error`},
		{"file path", "task_setting", "large_file_name", "../etc/passwd", "must be a plain file name"},
		{"too large", "client", "num_client", "99999999999999999999", "is out of range"},
		{"not a bool", "server", "verify_plugins", "maybe", `"maybe" is not true or false`},
		{"watch not a bool", "server", "watch_plugin", "often", `"often" is not true or false`},
		{"timing share above 1", "server", "timing_sample", "1.5", `"1.5" must be a share of requests from 0 to 1`},
		{"timing share not a number", "server", "timing_sample", "NaN", `must be a share of requests from 0 to 1`},
		{"bad log format", "server", "log_format", "xml", `"xml" is not a log format, must be one of text, json`},
		{"metrics listen without port", "server", "metrics_listen", "localhost", `"localhost" is not a host:port address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, "["+tc.section+"]\n"+tc.key+" = "+tc.value+"\n")
			c, err := Load(path)
			if c != nil {
				t.Errorf("Load returned a config along with error %v", err)
			}
			checkError(t, err, path, tc.section, tc.key, tc.want)
		})
	}
}

// The keys a strategy declares are checked as the host's own are: the
// file's value, else [DEFAULT]'s, else the declared default, and a bad one
// is an *Error naming the file, section and key.
func TestStrategySettings(t *testing.T) {
	keys := []taskproto.Key{
		{Section: "other", Name: "asyn_semaphore", Type: taskproto.KeyInt, Default: "5", Min: 1, Max: 1_000_000, Help: "h"},
		{Section: "pool", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000, Help: "h"},
		{Section: "pool", Name: "mode", Type: taskproto.KeyString, Default: "fifo", Choices: []string{"fifo", "lifo"}, Help: "h"},
		{Section: "pool", Name: "pin", Type: taskproto.KeyBool, Default: "false", Help: "h"},
	}
	c := mustLoad(t, "[DEFAULT]\nqueue_size = 7\n[other]\nasyn_semaphore = ' 3'\n[pool]\npin = on\n")
	got, err := c.StrategySettings(keys)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"other.asyn_semaphore": "3", "pool.queue_size": "7", "pool.mode": "fifo", "pool.pin": "true", "server.port": "8765",
	} {
		if got[key] != want {
			t.Errorf("StrategySettings()[%q] = %q, want %q", key, got[key], want)
		}
	}
	for _, tc := range []struct{ section, key, value, want string }{
		{"other", "asyn_semaphore", "abc", `"abc" is not a whole number, must be a whole number between 1 and 1000000`},
		{"other", "asyn_semaphore", "0", "must be a whole number between 1 and 1000000, got 0"},
		{"pool", "queue_size", "99999999999999999999", "is out of range"},
		{"pool", "mode", "random", `"random" is not one of fifo, lifo`},
		{"pool", "pin", "2", `"2" is not true or false`},
	} {
		path := write(t, "["+tc.section+"]\n"+tc.key+" = "+tc.value+"\n")
		c, err := Load(path)
		if err != nil {
			t.Fatalf("Load: %v (the host does not know a strategy's keys)", err)
		}
		_, err = c.StrategySettings(keys)
		checkError(t, err, path, tc.section, tc.key, tc.want)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope.ini"), "cannot read file: no such file or directory"},
		{"directory", dir, "cannot read file:"},
		{"unparsable", write(t, "[server\nport = 1\n"), "cannot parse file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path)
			checkError(t, err, tc.path, "", "", tc.want)
			if !strings.HasPrefix(err.Error(), tc.path+": ") {
				t.Errorf("error %q does not start with the path", err)
			}
		})
	}
	if os.Geteuid() != 0 { // root reads anything
		path := write(t, specSample)
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		checkError(t, err, path, "", "", "cannot read file: permission denied")
	}
}

func TestValidateAfterOverrides(t *testing.T) {
	c := mustLoad(t, specSample)
	for _, tc := range []struct {
		name, section, key, want string
		mutate                   func(*Config)
	}{
		{"port", "server", "port", "between 0 and 65535, got 70000", func(c *Config) { c.Server.Port = 70000 }},
		{"timeout", "server", "timeout_sec", "got 0", func(c *Config) { c.Server.Timeout = 0 }},
		{"fib", "task_setting", "fibonacci_limit", "max_fib_n (10)", func(c *Config) { c.Limits.MaxFibN = 10 }},
		{"tasks", "client", "tasks", `unknown task "x"`, func(c *Config) { c.Client.Tasks = []string{"x"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			tc.mutate(&cc)
			checkError(t, cc.Validate(), c.Path, tc.section, tc.key, tc.want)
		})
	}
	c.Server.Host, c.Server.Port, c.Server.PluginDir, c.Server.DataDir = "0.0.0.0", 0, "/p", "/d"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after valid overrides: %v", err)
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{"config.ini", "other", "asyn_semaphore", `"abc" is not a whole number`}, `config.ini: [other] asyn_semaphore: "abc" is not a whole number`},
		{Error{"c.ini", "", "", "cannot parse file: unclosed section: [server\n"}, "c.ini: cannot parse file: unclosed section: [server"},
		{Error{"", "server", "port", "must be a whole number between 0 and 65535, got -1"}, "[server] port: must be a whole number between 0 and 65535, got -1"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// checkError asserts err is a one-line *Error naming path, [section] and key.
func checkError(t *testing.T, err error, path, section, key, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not *Error", err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if e.File != path || e.Section != section || e.Key != key {
		t.Errorf("error names %q [%s] %s, want %q [%s] %s", e.File, e.Section, e.Key, path, section, key)
	}
	prefix := path + ": "
	if section != "" {
		prefix += "[" + section + "] " + key + ": "
	}
	if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, want) {
		t.Errorf("error %q: want prefix %q and %q", msg, prefix, want)
	}
}

func TestListsDropEmptyItems(t *testing.T) {
	c := mustLoad(t, "[client]\ntasks = fib,, io ,\n[lab]\nscenarios = cpu, noop\nstrategies = inproc,pool\n")
	if !slices.Equal(c.Client.Tasks, []string{"fib", "io"}) {
		t.Errorf("tasks %q", c.Client.Tasks)
	}
	if !slices.Equal(c.Lab.Scenarios, []string{"cpu", "noop"}) || !slices.Equal(c.Lab.Strategies, []string{"inproc", "pool"}) {
		t.Errorf("lab %+v", c.Lab)
	}
}

func TestLabSection(t *testing.T) {
	c := mustLoad(t, "[client]\nnum_client = 3\n")
	if c.Lab.Duration != 400*time.Millisecond || c.Lab.SleepClients != 15 || c.Lab.Out != "lab-report" || len(c.Lab.Scenarios) != 7 ||
		c.Lab.Rounds != 6 || c.Lab.SLOP99MS != 50 || len(c.Lab.CapacityRates) != 7 || len(c.Lab.External) != 0 {
		t.Errorf("lab defaults %+v", c.Lab)
	}
	c = mustLoad(t, "[lab]\nexternal = py-asyncio: python3 server.py --port {port}\nexternal = other:  ./srv {port} \ncapacity_rates = 10, 20.5\n")
	if want := []External{{"py-asyncio", "python3 server.py --port {port}"}, {"other", "./srv {port}"}}; !slices.Equal(c.Lab.External, want) {
		t.Errorf("external %+v, want %+v", c.Lab.External, want)
	}
	if !slices.Equal(c.Lab.CapacityRates, []float64{10, 20.5}) {
		t.Errorf("capacity_rates %v", c.Lab.CapacityRates)
	}
	for _, tc := range []struct{ ini, key, problem string }{
		{"external = nameonly", "external", "must be NAME: COMMAND"},
		{"external = a b: cmd {port}", "external", "may hold only"},
		{"external = x: cmd 8080", "external", "has no {port}"},
		{"external = inproc: cmd {port}", "external", "named twice"},
		{"external = x: a {port}\nexternal = x: b {port}", "external", "named twice"},
		{"capacity_rates = 10, ten", "capacity_rates", `"ten" is not a number`},
		{"capacity_rates = 20, 10", "capacity_rates", "must rise"},
		{"capacity_rates = 0, 10", "capacity_rates", "above 0"},
		{"capacity_tasks = fib, warp", "capacity_tasks", `unknown task "warp"`},
		{"rounds = 0", "rounds", "got 0"},
	} {
		path := write(t, "[lab]\n"+tc.ini+"\n")
		_, err := Load(path)
		checkError(t, err, path, "lab", tc.key, tc.problem)
	}
	path := write(t, "[lab]\nscenarios = mixed, warp\n")
	_, err := Load(path)
	checkError(t, err, path, "lab", "scenarios", `unknown scenario "warp"`)
	path = write(t, "[lab]\nduration_ms = 0\n")
	_, err = Load(path)
	checkError(t, err, path, "lab", "duration_ms", "got 0")
	if c := mustLoad(t, "[lab]\nduration_ms = 1500\n"); c.Lab.Duration != 1500*time.Millisecond {
		t.Errorf("duration_ms = 1500: %v", c.Lab.Duration)
	}
}

func TestSettingsCarryEffectiveValues(t *testing.T) {
	c := mustLoad(t, "[multiproc]\nworker_inflight = 3\n[distributed]\nnats_url = nats://x\n")
	s := c.Settings()
	for k, want := range map[string]string{
		"multiproc.worker_inflight": "3",
		"limits.max_running":        "256", // a default
		"distributed.nats_url":      "nats://x",
	} {
		if s[k] != want {
			t.Errorf("Settings()[%q] = %q, want %q", k, s[k], want)
		}
	}
}
