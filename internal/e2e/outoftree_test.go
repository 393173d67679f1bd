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

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/hostproc"
)

// A strategy in a module of its own (examples/fifo, which imports only the
// public SDK and reaches this checkout through a replace) builds with its
// own go.mod, passes the conformance kit through bin/host --conformance,
// and serves the Python lab's load from a plugin directory whose manifest
// was written as docs/writing-a-strategy.md says (sha256sum), with
// verify_plugins on.
func TestOutOfTreeStrategy(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "fifo"), ".")
	build.Dir = "../../examples/fifo"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/fifo in its own module: %v\n%s", err, out)
	}
	sums := exec.CommandContext(ctx, "sh", "-c", "sha256sum fifo > SHA256SUMS")
	sums.Dir = dir
	if out, err := sums.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum: %v\n%s", err, out)
	}
	cfg := writeConfig(t, "verify_plugins = true\nplugin_dir = "+dir+"\n[fifo]\nworkers = 3\n")

	conf := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--config", cfg, "--conformance", "fifo")
	out, err := conf.CombinedOutput()
	if err != nil {
		t.Fatalf("bin/host --conformance fifo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok") || strings.Contains(string(out), "FAIL") {
		t.Errorf("conformance output:\n%s", out)
	}

	h := startHostWith(t, hostproc.Options{
		Command: []string{filepath.Join(binDir, "host"), "--config", cfg, "--plugin=fifo"},
	})
	r := clRun(t, "--config", clConfig(t, h.addr, "[client]\nnum_client = 50\ntasks = fib, cpu, io\n"))
	if r.code != client.ExitOK {
		t.Fatalf("client exit %d\n%s", r.code, r.stderr)
	}
	if ok := num(t, r.summary, "ok"); ok != 150 {
		t.Errorf("%v of 150 replies right", ok)
	}
	if st := h.stats(t); st.Strategy != "fifo" || st.Description != "3 workers, a queue of 256" {
		t.Errorf("strategy %q (%q), want fifo with 3 workers", st.Strategy, st.Description)
	}

	// A binary the manifest does not name is refused.
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	refused := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--config", cfg, "--conformance", "fifo")
	if out, err := refused.CombinedOutput(); err == nil || !strings.Contains(string(out), "fifo") {
		t.Errorf("a plugin missing from SHA256SUMS ran: %v\n%s", err, out)
	}
}
