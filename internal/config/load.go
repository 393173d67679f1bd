package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Error is a configuration problem. Its message is one line:
// "<file>: [<section>] <key>: <problem>", or "<file>: <problem>" for
// problems with the file as a whole.
type Error struct {
	File    string // the config file, "" when checking values not read from a file
	Section string
	Key     string
	Problem string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Section != "" {
		b.WriteString("[" + e.Section + "] ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Problem)
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(b.String())) // one line
}

// LabScenarios are the scenarios [lab] scenarios accepts, in their default order.
var LabScenarios = []string{"mixed", "cpu", "sleep", "noop", "rtt", "capacity", "ladder"}

// LogLevels are the values [server] log_level accepts.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// LogFormats are the values [server] log_format accepts.
var LogFormats = []string{"text", "json"}

// Default returns the configuration used for every key the file leaves out.
func Default() *Config {
	return &Config{
		Server: Server{
			Host:          "localhost",
			Port:          8765,
			Timeout:       100 * time.Second,
			ShutdownGrace: 10 * time.Second,
			LogLevel:      "info",
			LogFormat:     "text",
		},
		Client:      Client{NumClient: 200, Tasks: []string{"fib", "cpu", "io"}},
		TaskSetting: TaskSetting{FibonacciLimit: 5000, LargeFileName: "large_file.txt"},
		Limits: Limits{
			MaxFrameBytes:        65536,
			MaxInflightPerConn:   256,
			MaxQueued:            10000,
			MaxConnections:       10000,
			MaxPendingReplyBytes: 1 << 20,
			MinReplyReadRate:     64 << 10,
			MaxRunning:           256,
			StrategyPrefetch:     16,
			StrategyQueueMS:      2,
			MaxFibN:              tasks.DefaultMaxFibN,
			MaxCPUN:              tasks.DefaultMaxCPUN,
			MaxIOBytes:           tasks.DefaultMaxIOBytes,
		},
		Lab: Lab{
			Scenarios:       LabScenarios,
			Rounds:          6,
			WarmupMS:        200,
			Duration:        400 * time.Millisecond,
			CPUClients:      4,
			CPUN:            2_000_000,
			SleepClients:    15,
			SleepMS:         100,
			NoopClients:     8,
			CPUPipeline:     4,
			NoopPipeline:    16,
			RTTCount:        300,
			LadderCount:     40,
			CapacityTasks:   []string{taskproto.KindFib, taskproto.KindCPU, taskproto.KindIO},
			CapacityRates:   []float64{250, 500, 1000, 2000, 3000, 4000, 5000},
			CapacityStepMS:  250,
			CapacityClients: 16,
			SLOP99MS:        50,
			Out:             "lab-report",
		},
		Raw: map[string]string{},
	}
}

// millis is a time.Duration field whose key counts milliseconds.
type millis struct{ d *time.Duration }

// intKey binds an integer key to its field. Upper bounds keep channels,
// processes and buffers sized from the file within reason. ptr is *int,
// *int64, *time.Duration (counted in whole seconds) or millis.
type intKey struct {
	ptr any
	taskproto.Key
}

func intField(ptr any, section, name string, lo, hi int64) intKey {
	return intKey{ptr, taskproto.Key{Section: section, Name: name, Type: taskproto.KeyInt, Min: lo, Max: hi}}
}

func (c *Config) intKeys() []intKey {
	l := &c.Limits
	return []intKey{
		intField(&c.Server.Port, "server", "port", 0, 65535),
		intField(&c.Server.Timeout, "server", "timeout_sec", 1, math.MaxInt64),
		intField(&c.Server.ShutdownGrace, "server", "shutdown_grace_sec", 0, math.MaxInt64),
		intField(&c.Client.NumClient, "client", "num_client", 1, 1_000_000),
		intField(&c.TaskSetting.FibonacciLimit, "task_setting", "fibonacci_limit", 0, math.MaxInt64),
		intField(&l.MaxFrameBytes, "limits", "max_frame_bytes", 1, 64<<20),
		intField(&l.MaxInflightPerConn, "limits", "max_inflight_per_conn", 1, 65536),
		intField(&l.MaxQueued, "limits", "max_queued", 1, 100_000_000),
		intField(&l.MaxConnections, "limits", "max_connections", 1, 10_000_000),
		intField(&l.MaxPendingReplyBytes, "limits", "max_pending_reply_bytes", 1024, 1<<30),
		intField(&l.MinReplyReadRate, "limits", "min_reply_read_rate", 1, 1<<40),
		intField(&l.MaxRunning, "limits", "max_running", 1, 1_000_000),
		intField(&l.StrategyPrefetch, "limits", "strategy_prefetch", 0, 65536),
		intField(&l.StrategyQueueMS, "limits", "strategy_queue_ms", 0, 60000),
		intField(&l.MaxFibN, "limits", "max_fib_n", 1, math.MaxInt64),
		intField(&l.MaxCPUN, "limits", "max_cpu_n", 1, tasks.MaxCPUN),
		intField(&l.MaxIOBytes, "limits", "max_io_bytes", 1, math.MaxInt64),
		intField(&c.Lab.Rounds, "lab", "rounds", 1, 1000),
		intField(&c.Lab.WarmupMS, "lab", "warmup_ms", 0, 60_000),
		intField(millis{&c.Lab.Duration}, "lab", "duration_ms", 100, 3_600_000),
		intField(&c.Lab.CPUClients, "lab", "cpu_clients", 1, 100_000),
		intField(&c.Lab.CPUN, "lab", "cpu_n", 0, tasks.MaxCPUN),
		intField(&c.Lab.SleepClients, "lab", "sleep_clients", 1, 100_000),
		intField(&c.Lab.SleepMS, "lab", "sleep_ms", 0, 3_600_000),
		intField(&c.Lab.NoopClients, "lab", "noop_clients", 1, 100_000),
		intField(&c.Lab.CPUPipeline, "lab", "cpu_pipeline", 1, 65536),
		intField(&c.Lab.NoopPipeline, "lab", "noop_pipeline", 1, 65536),
		intField(&c.Lab.RTTCount, "lab", "rtt_count", 1, 10_000_000),
		intField(&c.Lab.LadderCount, "lab", "ladder_count", 1, 1_000_000),
		intField(&c.Lab.CapacityStepMS, "lab", "capacity_step_ms", 100, 3_600_000),
		intField(&c.Lab.CapacityClients, "lab", "capacity_clients", 1, 100_000),
		intField(&c.Lab.SLOP99MS, "lab", "slo_p99_ms", 1, 3_600_000),
	}
}

func (k intKey) get() int64 {
	switch p := k.ptr.(type) {
	case *int:
		return int64(*p)
	case *int64:
		return *p
	case *time.Duration:
		return int64(*p / time.Second)
	case millis:
		return int64(*p.d / time.Millisecond)
	}
	panic("config: unsupported field type")
}

// maxSeconds is the longest duration, in whole seconds, time.Duration holds.
const maxSeconds = int64(math.MaxInt64 / time.Second)

// set sets the field to v, a value within the key's bounds; a key in
// seconds has one more, what a time.Duration holds (no bound worth
// naming among the key's own).
func (k intKey) set(v int64) error {
	switch p := k.ptr.(type) {
	case *int:
		*p = int(v)
	case *int64:
		*p = v
	case *time.Duration:
		if v > maxSeconds {
			return fmt.Errorf("must be at most %d seconds (292 years), got %d", maxSeconds, v)
		}
		*p = time.Duration(v) * time.Second
	case millis:
		*p.d = time.Duration(v) * time.Millisecond
	}
	return nil
}

// Load reads the ini file at path on top of Default and checks every value.
// Every error it returns is an *Error.
func Load(path string) (*Config, error) {
	c := Default()
	c.Path = path
	fail := func(section, key, problem string) (*Config, error) {
		return nil, &Error{File: path, Section: section, Key: key, Problem: problem}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail("", "", "cannot read file: "+err.Error())
	}
	f, err := ini.LoadSources(ini.LoadOptions{
		InsensitiveKeys:          true, // as Python's configparser
		SpaceBeforeInlineComment: true, // "a#b" is a value, "a ; note" has a comment
		PreserveSurroundedQuote:  true, // unquoted below, one pair only
		AllowShadows:             true, // [lab] external may repeat; elsewhere the last value counts
	}, data)
	if err != nil {
		return fail("", "", "cannot parse file: "+err.Error())
	}
	for _, s := range f.Sections() {
		if s.Name() == ini.DefaultSection && len(s.Keys()) == 0 {
			continue
		}
		c.sections = append(c.sections, s.Name())
		for _, k := range s.Keys() {
			c.keys = append(c.keys, fileKey{s.Name(), k.Name()})
			values := k.ValueWithShadows()
			if len(values) == 0 { // an empty value has no shadows
				values = []string{k.Value()}
			}
			c.Raw[s.Name()+"."+k.Name()] = unquote(values[len(values)-1])
			if s.Name() == "lab" && k.Name() == "external" {
				for _, v := range values {
					e, problem := parseExternal(unquote(v))
					if problem != "" {
						return fail("lab", "external", problem)
					}
					c.Lab.External = append(c.Lab.External, e)
				}
			}
		}
	}
	for _, k := range c.intKeys() {
		if v, ok := c.lookup(k.Section, k.Name); ok {
			n, err := k.ParseInt(v)
			if err == nil {
				err = k.set(n)
			}
			if err != nil {
				return fail(k.Section, k.Name, err.Error())
			}
		}
	}
	for _, k := range c.textKeys() {
		if v, ok := c.lookup(k.section, k.key); ok {
			k.set(v)
		}
	}
	if v, ok := c.lookup("server", "verify_plugins"); ok {
		b, err := verifyPluginsKey.Parse(v)
		if err != nil {
			return fail("server", "verify_plugins", err.Error())
		}
		c.Server.VerifyPlugins = b == "true"
	}
	if v, ok := c.lookup("server", "watch_plugin"); ok {
		b, err := watchPluginKey.Parse(v)
		if err != nil {
			return fail("server", "watch_plugin", err.Error())
		}
		c.Server.WatchPlugin = b == "true"
	}
	if v, ok := c.lookup("server", "timing_sample"); ok {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return fail("server", "timing_sample", fmt.Sprintf("%q must be a share of requests from 0 to 1", v))
		}
		c.Server.TimingSample = r
	}
	if v, ok := c.lookup("lab", "capacity_rates"); ok {
		c.Lab.CapacityRates = nil
		for _, item := range SplitList(v) {
			r, err := strconv.ParseFloat(item, 64)
			if err != nil {
				return fail("lab", "capacity_rates", fmt.Sprintf("%q is not a number of tasks per second", item))
			}
			c.Lab.CapacityRates = append(c.Lab.CapacityRates, r)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// textKey binds a key whose value is text (or a list) to its field.
type textKey struct {
	section, key string
	set          func(string)
}

// textKeys are the keys Load sets as text, beside intKeys and the few it
// parses on its own (otherKeys).
func (c *Config) textKeys() []textKey {
	str := func(p *string) func(string) { return func(v string) { *p = v } }
	list := func(p *[]string) func(string) { return func(v string) { *p = SplitList(v) } }
	return []textKey{
		{"server", "host", str(&c.Server.Host)},
		{"server", "plugin_dir", str(&c.Server.PluginDir)},
		{"server", "data_dir", str(&c.Server.DataDir)},
		{"server", "auth_token", str(&c.Server.AuthToken)},
		{"server", "log_level", func(v string) { c.Server.LogLevel = strings.ToLower(strings.TrimSpace(v)) }},
		{"server", "log_format", func(v string) { c.Server.LogFormat = strings.ToLower(strings.TrimSpace(v)) }},
		{"server", "metrics_listen", str(&c.Server.MetricsListen)},
		{"server", "tls_cert", str(&c.Server.TLSCert)},
		{"server", "tls_key", str(&c.Server.TLSKey)},
		{"server", "allowed_origins", list(&c.Server.AllowedOrigins)},
		{"server", "allowed_hosts", list(&c.Server.AllowedHosts)},
		{"client", "tls_ca", str(&c.Client.TLSCA)},
		{"client", "tasks", list(&c.Client.Tasks)},
		{"task_setting", "large_file_name", str(&c.TaskSetting.LargeFileName)},
		{"lab", "out", str(&c.Lab.Out)},
		{"lab", "strategies", list(&c.Lab.Strategies)},
		{"lab", "scenarios", list(&c.Lab.Scenarios)},
		{"lab", "capacity_tasks", list(&c.Lab.CapacityTasks)},
	}
}

// Settings returns every key as "section.key" → value: the file's keys,
// with each key this package knows set to its effective value (defaults
// included), so that a strategy plugin reading its section needs no
// defaults of its own.
func (c *Config) Settings() map[string]string {
	out := make(map[string]string, len(c.Raw))
	for k, v := range c.Raw {
		out[k] = v
	}
	for _, k := range c.intKeys() {
		out[k.ID()] = strconv.FormatInt(k.get(), 10)
	}
	return out
}

var (
	verifyPluginsKey = taskproto.Key{Section: "server", Name: "verify_plugins", Type: taskproto.KeyBool}
	watchPluginKey   = taskproto.Key{Section: "server", Name: "watch_plugin", Type: taskproto.KeyBool}
)

// StrategySettings is Settings with the keys a strategy declares checked
// and set to their effective values: the file's (or [DEFAULT]'s), else the
// key's default. A key of the file that neither the host nor the strategy
// reads is refused first (CheckKeys). Its error is an *Error naming the
// file, section and key.
func (c *Config) StrategySettings(keys []taskproto.Key) (map[string]string, error) {
	if err := c.CheckKeys(keys); err != nil {
		return nil, err
	}
	settings := c.Settings()
	for _, k := range keys {
		if v, ok := c.lookup(k.Section, k.Name); ok {
			settings[k.ID()] = v
		}
	}
	out, err := taskproto.ApplyKeys(settings, keys)
	var ke *taskproto.KeyError
	if errors.As(err, &ke) {
		return nil, &Error{File: c.Path, Section: ke.Key.Section, Key: ke.Key.Name, Problem: ke.Problem}
	}
	return out, err
}

// lookup finds the file's section.key, falling back to [DEFAULT] as
// configparser does.
func (c *Config) lookup(section, key string) (string, bool) {
	if v, ok := c.Raw[section+"."+key]; ok {
		return v, true
	}
	v, ok := c.Raw[ini.DefaultSection+"."+key]
	return v, ok
}

// LoadOrDefault is Load, except that when the user did not name the file
// (explicit is false) and it does not exist, the defaults apply.
func LoadOrDefault(path string, explicit bool) (*Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return Default(), nil
		}
	}
	return Load(path)
}

// Validate checks every value against the bounds Load applies, for use after
// flags have overridden values read from the file. Its errors are *Error.
func (c *Config) Validate() error {
	fail := func(section, key, problem string) error {
		return &Error{File: c.Path, Section: section, Key: key, Problem: problem}
	}
	for _, k := range c.intKeys() {
		if err := k.CheckInt(k.get()); err != nil {
			return fail(k.Section, k.Name, err.Error())
		}
	}
	if c.TaskSetting.FibonacciLimit > c.Limits.MaxFibN {
		return fail("task_setting", "fibonacci_limit", fmt.Sprintf(
			"must be ≤ [limits] max_fib_n (%d), got %d", c.Limits.MaxFibN, c.TaskSetting.FibonacciLimit))
	}
	if !slices.Contains(LogLevels, c.Server.LogLevel) {
		return fail("server", "log_level", fmt.Sprintf(
			"%q is not a log level, must be one of %s", c.Server.LogLevel, strings.Join(LogLevels, ", ")))
	}
	if !slices.Contains(LogFormats, c.Server.LogFormat) {
		return fail("server", "log_format", fmt.Sprintf(
			"%q is not a log format, must be one of %s", c.Server.LogFormat, strings.Join(LogFormats, ", ")))
	}
	if a := c.Server.MetricsListen; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fail("server", "metrics_listen", fmt.Sprintf("%q is not a host:port address to listen on", a))
		}
	}
	if n := c.TaskSetting.LargeFileName; n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) {
		return fail("task_setting", "large_file_name", fmt.Sprintf(
			"%q must be a plain file name (it is created inside the data directory)", n))
	}
	if len(c.Client.Tasks) == 0 {
		return fail("client", "tasks", "is empty, must list at least one task (comma separated)")
	}
	for _, t := range c.Client.Tasks {
		if !taskproto.IsKind(t) && !isWholeNumber(t) {
			return fail("client", "tasks", fmt.Sprintf(
				"unknown task %q, must be one of %s or a whole number N ≥ 0 (sleep N seconds)",
				t, strings.Join(taskproto.Kinds, ", ")))
		}
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		key := "tls_key"
		if c.Server.TLSCert == "" {
			key = "tls_cert"
		}
		return fail("server", key, "is empty: tls_cert and tls_key are set together (a PEM certificate and its key)")
	}
	for _, f := range []struct{ section, key, path string }{
		{"server", "tls_cert", c.Server.TLSCert},
		{"server", "tls_key", c.Server.TLSKey},
		{"client", "tls_ca", c.Client.TLSCA},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fail(f.section, f.key, fmt.Sprintf("cannot read %q: %v", f.path, err))
		}
	}
	for _, sc := range c.Lab.Scenarios {
		if !slices.Contains(LabScenarios, sc) {
			return fail("lab", "scenarios", fmt.Sprintf("unknown scenario %q, must be among %s", sc, strings.Join(LabScenarios, ", ")))
		}
	}
	if len(c.Lab.Scenarios) == 0 {
		return fail("lab", "scenarios", "is empty, must list at least one of "+strings.Join(LabScenarios, ", "))
	}
	if len(c.Lab.CapacityTasks) == 0 {
		return fail("lab", "capacity_tasks", "is empty, must list at least one of "+strings.Join(taskproto.Kinds, ", "))
	}
	for _, t := range c.Lab.CapacityTasks {
		if !taskproto.IsKind(t) {
			return fail("lab", "capacity_tasks", fmt.Sprintf("unknown task %q, must be among %s", t, strings.Join(taskproto.Kinds, ", ")))
		}
	}
	if len(c.Lab.CapacityRates) == 0 {
		return fail("lab", "capacity_rates", "is empty, must list the offered rates in tasks per second")
	}
	for i, r := range c.Lab.CapacityRates {
		if !(r > 0 && r <= maxCapacityRate) {
			return fail("lab", "capacity_rates", fmt.Sprintf("%v must be a rate above 0 and at most %d tasks per second", r, maxCapacityRate))
		}
		if i > 0 && r <= c.Lab.CapacityRates[i-1] {
			return fail("lab", "capacity_rates", fmt.Sprintf("must rise: %v comes after %v", r, c.Lab.CapacityRates[i-1]))
		}
	}
	seen := map[string]bool{"inproc": true}
	for _, e := range c.Lab.External {
		if seen[e.Name] {
			return fail("lab", "external", fmt.Sprintf("%q is named twice (inproc is taken)", e.Name))
		}
		seen[e.Name] = true
	}
	return nil
}

// maxCapacityRate is what the client can offer (its --rate bound).
const maxCapacityRate = 10_000_000

// parseExternal reads "NAME: COMMAND", a [lab] external value.
func parseExternal(v string) (External, string) {
	name, command, ok := strings.Cut(v, ":")
	name, command = strings.TrimSpace(name), strings.TrimSpace(command)
	switch {
	case !ok || name == "" || command == "":
		return External{}, fmt.Sprintf("%q must be NAME: COMMAND, the command holding {port}", v)
	case strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "":
		return External{}, fmt.Sprintf("name %q may hold only letters, digits, '.', '_' and '-'", name)
	case !strings.Contains(command, "{port}"):
		return External{}, fmt.Sprintf("the command of %s has no {port}: the lab chooses the port it listens on", name)
	}
	return External{Name: name, Command: command}, ""
}

// SplitList splits a comma-separated value, trimming items and dropping
// empty ones.
func SplitList(v string) []string {
	var items []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// unquote strips one pair of matching surrounding quotes, ' or ".
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// isWholeNumber reports whether s is digits only, with a value that fits int64.
func isWholeNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 63)
	return err == nil
}
