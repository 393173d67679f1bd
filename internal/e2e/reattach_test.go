//go:build linux

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/wire"
)

// A plugin started by hand in debug mode (as under a debugger) prints what
// the host needs; a host given it with --reattach serves it under load
// instead of starting one, and once the host stops the plugin ends by
// itself. WSLAB_REATTACH does the same as the flag; a line that is not
// what a plugin prints is a usage error.
func TestReattach(t *testing.T) {
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, "plugins", "pool"))
			cmd.Env = append(os.Environ(), plugin.DebugEnv+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{}) // closed once the plugin has been reaped
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			lines := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if v, ok := strings.CutPrefix(sc.Text(), wire.ReattachEnv+"="); ok {
						lines <- strings.Trim(v, "'")
					}
				}
				cmd.Wait()
				close(exited)
			}()
			var line string
			select {
			case line = <-lines:
			case <-time.After(10 * time.Second):
				t.Fatal("the plugin printed no " + wire.ReattachEnv + " line")
			}
			args := []string{filepath.Join(binDir, "host"), "--config", writeConfig(t, ""), "--log-level", "debug"}
			var env []string
			if how == "flag" {
				args = append(args, "--reattach", line)
			} else {
				env = []string{wire.ReattachEnv + "=" + line}
			}
			h := startHostWith(t, hostproc.Options{Command: args, Env: env})
			r := clRun(t, "--config", clConfig(t, h.addr, "[client]\nnum_client = 20\ntasks = fib, cpu, io\n"))
			if r.code != client.ExitOK || num(t, r.summary, "ok") != 60 {
				t.Fatalf("client exit %d, %v of 60 right\n%s", r.code, r.summary["ok"], r.stderr)
			}
			if st := h.stats(t); st.Strategy != "pool" || st.PluginPID != cmd.Process.Pid {
				t.Errorf("host serves %s, plugin pid %d; want pool, the plugin started by hand (%d)", st.Strategy, st.PluginPID, cmd.Process.Pid)
			}
			h.Stop(15 * time.Second)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Error("the plugin started by hand did not end once its host stopped")
			}
			if supervise.Alive(cmd.Process.Pid) {
				t.Error("plugin still alive")
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--reattach", `{"strategy":"pool"}`)
	out, err := bad.CombinedOutput()
	if code := bad.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "gives no control address") {
		t.Errorf("a bad --reattach: exit %d (%v)\n%s", code, err, out)
	}
}
