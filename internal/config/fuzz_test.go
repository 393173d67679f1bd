package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: whatever the file holds, Load returns a config or one *Error of
// one line, and never panics.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"[server]\nhost = 'localhost'\nport = 8765\ntimeout_sec = 100\n",
		"[client]\nnum_client = 200\ntasks = fib, cpu, io\n",
		"[task_setting]\nfibonacci_limit = 5000\nlarge_file_name = large_file.txt\n",
		"[other]\nasyn_semaphore = abc\n",
		"[limits]\nmax_cpu_n = 99999999999999999999\n",
		"[lab]\nscenarios = mixed,,warp\n",
		"[server\nport = 1\n",
		"DEFAULT_KEY = 1\n[x]\ny = \"z\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.ini")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err == nil {
			if c == nil {
				t.Fatal("no config and no error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("loaded config does not validate: %v", err)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %T is not *Error: %v", err, err)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, path+": ") {
			t.Fatalf("error is not one line starting with the path: %q", msg)
		}
	})
}
