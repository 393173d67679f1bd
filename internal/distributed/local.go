package distributed

import (
	"context"
	"os"
	"os/exec"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
)

// localWorkers are the worker processes the plugin starts beside itself,
// each kept running by a supervisor.
type localWorkers struct {
	sups []*supervise.Supervisor
}

func startLocalWorkers(opt Options, log hclog.Logger) (*localWorkers, error) {
	l := &localWorkers{}
	args := []string{WorkerArg, "--nats", opt.Conn.URLs, "--exit-with-parent",
		"--concurrency", strconv.Itoa(max(opt.Concurrency, 1)),
		"--data-dir", opt.DataDir, "--large-file-name", opt.LargeFileName}
	if opt.Conn.User != "" {
		args = append(args, "--user", opt.Conn.User)
	}
	if opt.Conn.Creds != "" {
		args = append(args, "--creds", opt.Conn.Creds)
	}
	if opt.Conn.TLSCA != "" {
		args = append(args, "--tls-ca", opt.Conn.TLSCA)
	}
	// Secrets go through the environment, not the command line.
	env := append(os.Environ(), "WSLAB_NATS_TOKEN="+opt.Conn.Token, "WSLAB_NATS_PASSWORD="+opt.Conn.Password)
	for i := range opt.Workers {
		name := "local worker l" + strconv.Itoa(i)
		sup, err := supervise.Start(context.Background(), supervise.Options{
			Name: name,
			Log:  log,
			Start: func(context.Context) (supervise.Process, error) {
				cmd := exec.Command(opt.Exe, args...)
				cmd.Env = env
				cmd.Stderr = supervise.LogLines(log, name)
				return supervise.Spawn(cmd, false)
			},
		})
		if err != nil {
			l.stop()
			return nil, err
		}
		l.sups = append(l.sups, sup)
	}
	return l, nil
}

func (l *localWorkers) stats() []taskproto.WorkerStats {
	var out []taskproto.WorkerStats
	for i, s := range l.sups {
		st := s.Status()
		state := "running"
		if !st.Up {
			state = "restarting"
		}
		out = append(out, taskproto.WorkerStats{ID: "l" + strconv.Itoa(i), PID: st.PID, State: state, Restarts: st.Restarts})
	}
	return out
}

// stop ends every local worker.
func (l *localWorkers) stop() {
	for _, s := range l.sups {
		s.Stop()
	}
}
