package host

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/taskproto"
)

// buildPool builds the pool plugin for the tests that need a real one.
func buildPool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pool")
	cmd := exec.Command("go", "build", "-o", bin, "./plugins/pool")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the pool plugin here: %v\n%s", err, out)
	}
	return bin
}

// Close is safe from several goroutines at once, answers the tasks
// waiting for a restart, and stops the plugin.
func TestPluginSupervisorCloseConcurrent(t *testing.T) {
	bin := buildPool(t)
	cfg := taskproto.Config{Strategy: "pool", DataDir: t.TempDir(), LargeFileName: "large_file.txt", TaskTimeout: time.Minute}
	s, err := StartPlugin(context.Background(), PluginOptions{
		LaunchOptions: launch.LaunchOptions{Name: "pool", Path: bin, Logger: hclog.NewNullLogger()}, Config: cfg,
		Settings: func(keys []taskproto.Key) (map[string]string, error) {
			return taskproto.ApplyKeys(map[string]string{"pool.queue_size": "16"}, keys)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := taskproto.Run(context.Background(), s, taskproto.Task{Kind: taskproto.KindFib, N: 10})
	if err != nil || res.Value != "55" {
		t.Fatalf("fib 10 through the plugin: %+v, %v", res, err)
	}
	pid := s.Status().PID
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { s.Close() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("concurrent Close calls did not return")
	}
	if s.Ready() {
		t.Error("ready after Close")
	}
	if err := exec.Command("kill", "-0", itoa(pid)).Run(); err == nil {
		time.Sleep(time.Second)
		if exec.Command("kill", "-0", itoa(pid)).Run() == nil {
			t.Errorf("plugin %d still running after Close", pid)
		}
	}
	_, err = taskproto.Run(context.Background(), s, taskproto.Task{Kind: taskproto.KindNoop})
	if te, ok := err.(*taskproto.Error); !ok || te.Code != taskproto.CodeShuttingDown {
		t.Errorf("task after Close: %v, want shutting_down", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
