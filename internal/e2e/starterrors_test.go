//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/hostproc"
)

// A plugin that dies before its handshake makes the host say so in one
// line, with the plugin's last words and no go-plugin guesswork, and
// bin/host --conformance reports the same text.
func TestPluginDiesBeforeHandshake(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { panic(\"no strategy today\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "panicker"), src).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "pymissing"), []byte("#!/usr/bin/python3 -IS\nimport grpc\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "plugin_dir = "+dir+"\n")
	for _, c := range []struct {
		plugin string
		want   []string
	}{
		{"panicker", []string{dir + "/panicker exited before its handshake (exit status 2); the last lines of its stderr:", "panic: no strategy today"}},
		{"pymissing", []string{dir + "/pymissing exited before its handshake (exit status 1)", "No module named 'grpc'",
			"hint: the Python plugins need grpcio and protobuf (and cryptography): run make python-deps"}},
	} {
		for _, args := range [][]string{{"--plugin", c.plugin, "--port", "0"}, {"--conformance", c.plugin}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "host"), append([]string{"--config", cfg}, args...)...)
			out, err := cmd.CombinedOutput()
			cancel()
			if err == nil {
				t.Errorf("host %v exited 0", args)
			}
			text := string(out)
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("host %v: output lacks %q:\n%s", args, w, text)
				}
			}
			for _, bad := range []string{"Unrecognized remote plugin message", "failed to exit gracefully", "start plugin " + c.plugin + ": start plugin"} {
				if strings.Contains(text, bad) {
					t.Errorf("host %v: output has %q:\n%s", args, bad, text)
				}
			}
		}
	}
}

// A binary named unlike the strategy it declares (a renamed copy of pool)
// is served with a warning that says what the replies will name, and the
// conformance kit fails it.
func TestMisnamedPlugin(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(binDir, "plugins", "pool"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pool2"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "plugin_dir = "+dir+"\n")
	h := startHostWith(t, hostproc.Options{Command: []string{filepath.Join(binDir, "host"), "--config", cfg, "--plugin=pool2"}})
	// The host serves once the plugin is configured, which is when it warns.
	want := `the plugin binary \"pool2\" declares the strategy \"pool\": replies, /stats and /metrics name \"pool\"`
	if !strings.Contains(h.stderr.String(), want) && !strings.Contains(h.stderr.String(), strings.ReplaceAll(want, `\"`, `"`)) {
		t.Errorf("no warning %q:\n%s", want, h.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--config", cfg, "--conformance", "pool2").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `Describe names the strategy "pool", but its binary is "pool2"`) {
		t.Errorf("conformance of a misnamed binary: %v\n%s", err, out)
	}
}
