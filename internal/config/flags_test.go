package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestFlags() (*flag.FlagSet, *Flags) {
	fset := flag.NewFlagSet("test", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	f := NewFlags(fset)
	f.String("host", "server", "host", "address", func(c *Config) *string { return &c.Server.Host })
	f.Int("port", "server", "port", "port", func(c *Config) *int { return &c.Server.Port })
	f.List("scenarios", "lab", "scenarios", "scenarios", func(c *Config) *[]string { return &c.Lab.Scenarios })
	f.Duration("duration", "lab", "duration_ms", "length", func(c *Config) *time.Duration { return &c.Lab.Duration })
	return fset, f
}

// Flags given override the file; flags not given leave it.
func TestFlagsOverrideFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ini")
	os.WriteFile(path, []byte("[server]\nhost = 10.0.0.1\nport = 9000\n[lab]\nscenarios = noop\n"), 0o600)
	fset, f := newTestFlags()
	if err := fset.Parse([]string{"--config", path, "--port", "0", "--duration", "7s"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Host != "10.0.0.1" || c.Server.Port != 0 || c.Lab.Duration != 7*time.Second || strings.Join(c.Lab.Scenarios, ",") != "noop" {
		t.Errorf("host %q port %d duration %v scenarios %v", c.Server.Host, c.Server.Port, c.Lab.Duration, c.Lab.Scenarios)
	}
}

// A bad value from a flag is the flag's error; from the file, the file's.
func TestFlagsNameTheirErrors(t *testing.T) {
	fset, f := newTestFlags()
	fset.Parse([]string{"--port", "70000"})
	if _, err := f.Load(); err == nil || !strings.HasPrefix(err.Error(), "--port: ") {
		t.Errorf("bad --port: %v, want an error naming --port", err)
	}
	fset, f = newTestFlags()
	fset.Parse([]string{"--scenarios", "mixed,nope"})
	if _, err := f.Load(); err == nil || !strings.HasPrefix(err.Error(), "--scenarios: ") {
		t.Errorf("bad --scenarios: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.ini")
	os.WriteFile(path, []byte("[server]\nport = 70000\n"), 0o600)
	fset, f = newTestFlags()
	fset.Parse([]string{"--config", path})
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "[server] port") {
		t.Errorf("bad port in the file: %v", err)
	}
	fset, f = newTestFlags()
	fset.Parse([]string{"--config", filepath.Join(t.TempDir(), "absent.ini")})
	if _, err := f.Load(); err == nil {
		t.Error("a --config file that does not exist loaded")
	}
}

// Each failure is reported once: the FlagSet explains a bad flag itself,
// UsageStatus explains a bad value, and -h is not a failure.
func TestUsageStatusReportsOnce(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		said   string // what UsageStatus itself prints
	}{
		{[]string{"-h"}, ExitOK, ""},
		{[]string{"--nope"}, ExitUsage, ""},
		{[]string{"--port", "70000"}, ExitUsage, "cmd: --port: "},
	} {
		_, f := newTestFlags()
		_, err := f.Parse(tc.args)
		if err == nil {
			t.Fatalf("%v parsed", tc.args)
		}
		var out strings.Builder
		if got := UsageStatus(&out, "cmd", err); got != tc.status {
			t.Errorf("%v: status %d, want %d", tc.args, got, tc.status)
		}
		if s := out.String(); (tc.said == "") != (s == "") || !strings.HasPrefix(s, tc.said) || strings.Count(s, "\n") > 1 {
			t.Errorf("%v: printed %q, want one line starting %q", tc.args, s, tc.said)
		}
	}
}
