package distributed

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/tasks"
)

// WorkerArg is the first argument that makes the distributed plugin binary
// a worker: `distributed worker --nats nats://node1:4222,nats://node2:4222 --token T`.
const WorkerArg = "worker"

// WorkerMain runs a worker until SIGINT/SIGTERM (or, for a local worker,
// until its plugin is gone).
func WorkerMain(args []string) int {
	fset := flag.NewFlagSet("distributed worker", flag.ContinueOnError)
	var c Conn
	fset.StringVar(&c.URLs, "nats", "nats://127.0.0.1:4222", "NATS server URLs, comma separated")
	fset.StringVar(&c.Token, "token", os.Getenv("WSLAB_NATS_TOKEN"), "NATS token (default $WSLAB_NATS_TOKEN)")
	fset.StringVar(&c.User, "user", "", "NATS user")
	fset.StringVar(&c.Password, "password", os.Getenv("WSLAB_NATS_PASSWORD"), "NATS password (default $WSLAB_NATS_PASSWORD)")
	fset.StringVar(&c.Creds, "creds", "", "NATS credentials file")
	fset.StringVar(&c.TLSCA, "tls-ca", "", "CA file to verify the NATS servers' TLS certificates")
	concurrency := fset.Int("concurrency", 1, "tasks run at once")
	dataDir := fset.String("data-dir", os.TempDir(), "directory io tasks write in")
	fileName := fset.String("large-file-name", "large_file.txt", "io file name pattern")
	withParent := fset.Bool("exit-with-parent", false, "exit when the parent process goes (local workers)")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s:%d", host, os.Getpid())
	log := hclog.New(&hclog.LoggerOptions{
		Name: "worker", Output: os.Stderr, JSONFormat: true,
		Level: hclog.LevelFromString(os.Getenv("WSLAB_LOG_LEVEL")),
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *withParent {
		go taskproto.ExitWithParent(ctx, log, 250*time.Millisecond)
	}
	w := &natsWorker{id: id, log: log, runner: tasks.Runner{DataDir: *dataDir, LargeFileName: *fileName}, concurrency: max(*concurrency, 1)}
	if err := w.run(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("worker stopped", "error", err)
		return 1
	}
	return 0
}

type natsWorker struct {
	id     string
	log    hclog.Logger
	runner tasks.Runner
	nc     *nats.Conn
	wg     sync.WaitGroup
	// concurrency is how many tasks run at once, each pulled when its
	// runner is free.
	concurrency int
}

func (w *natsWorker) run(ctx context.Context, c Conn) error {
	nc, err := nats.Connect(c.URLs, append(c.options("wslab-worker-"+w.id),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { w.log.Warn("NATS connection lost", "error", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { w.log.Info("NATS connection back", "url", c.ConnectedUrl()) }),
	)...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", c.URLs, err)
	}
	defer nc.Close()
	w.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return wrap("JetStream", err)
	}
	// The dispatcher creates the consumer; a worker may start first.
	var cons jetstream.Consumer
	for {
		if cons, err = js.Consumer(ctx, StreamName, ConsumerName); err == nil {
			break
		}
		w.log.Debug("waiting for the task consumer", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Each runner pulls one task when it is free, never ahead: a task does
	// not wait behind a long one here while another worker is idle.
	w.log.Info("worker ready", "id", w.id, "nats", nc.ConnectedUrl(), "concurrency", w.concurrency)
	for range w.concurrency {
		w.wg.Add(1)
		go w.pull(ctx, cons)
	}
	w.wg.Wait()
	return ctx.Err()
}

func (w *natsWorker) pull(ctx context.Context, cons jetstream.Consumer) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			w.log.Debug("fetch task", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		for m := range batch.Messages() {
			w.execute(m)
		}
	}
}

func (w *natsWorker) execute(m jetstream.Msg) {
	var t pb.Task
	if err := proto.Unmarshal(m.Data(), &t); err != nil {
		w.log.Error("undecodable task, dropping it", "error", err)
		m.Term()
		return
	}
	reply := m.Headers().Get(replyHeader)
	// The deadline counts from publication: a task left over from a
	// dispatcher that died, or redelivered too late, is not run.
	deadline := time.Now().Add(24 * time.Hour)
	if t.GetTimeoutMs() > 0 {
		deadline = time.Now().Add(time.Duration(t.GetTimeoutMs()) * time.Millisecond)
		if meta, err := m.Metadata(); err == nil {
			deadline = meta.Timestamp.Add(time.Duration(t.GetTimeoutMs()) * time.Millisecond)
		}
	}
	if time.Now().After(deadline) {
		m.Ack()
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	// Tell JetStream the task is alive, so only a dead worker's task is
	// redelivered.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				m.InProgress()
			}
		}
	}()

	start := time.Now()
	res := taskproto.Result{Worker: w.id}
	var err error
	res.Value, err = w.runner.Run(ctx, taskproto.Task{Kind: t.GetKind(), N: t.GetN()})
	res.Run = time.Since(start)
	resp := taskproto.Response(ctx, t.GetSeq(), res, err)
	// A request, not a publish: the dispatcher confirms it has the result
	// (a plain publish is lost if the dispatcher is reconnecting just then).
	// Unconfirmed, the task goes back to the stream and runs again; the
	// dispatcher keeps the first result only.
	data, _ := proto.Marshal(resp)
	if _, err := w.nc.Request(reply, data, 5*time.Second); err != nil {
		w.log.Warn("result not confirmed; the task will be redelivered", "error", err)
		m.Nak()
		return
	}
	m.Ack()
}

// localWorkers are the worker processes the plugin starts beside itself,
// restarted with backoff when they die.
type localWorkers struct {
	log  hclog.Logger
	mu   sync.Mutex
	w    []*localWorker
	quit chan struct{}
	wg   sync.WaitGroup
}

type localWorker struct {
	id       string
	pid      int
	restarts int64
	cmd      *exec.Cmd
}

func startLocalWorkers(opt Options, log hclog.Logger) *localWorkers {
	l := &localWorkers{log: log, quit: make(chan struct{})}
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
		lw := &localWorker{id: "l" + strconv.Itoa(i)}
		l.w = append(l.w, lw)
		l.wg.Add(1)
		go l.supervise(lw, opt.Exe, args, env)
	}
	return l
}

func (l *localWorkers) supervise(lw *localWorker, exe string, args, env []string) {
	defer l.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		started := time.Now()
		err := cmd.Start()
		if err == nil {
			l.mu.Lock()
			lw.pid, lw.cmd = cmd.Process.Pid, cmd
			l.mu.Unlock()
			err = cmd.Wait()
		}
		select {
		case <-l.quit:
			return
		default:
		}
		if time.Since(started) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		l.log.Error("local worker died, restarting", "worker", lw.id, "error", err, "retry_in", backoff)
		select {
		case <-l.quit:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		l.mu.Lock()
		lw.restarts++
		l.mu.Unlock()
	}
}

func (l *localWorkers) stats() []taskproto.WorkerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []taskproto.WorkerStats
	for _, w := range l.w {
		out = append(out, taskproto.WorkerStats{ID: w.id, PID: w.pid, State: "running", Restarts: w.restarts})
	}
	return out
}

// stop ends every local worker: SIGTERM, then SIGKILL after 2 s.
func (l *localWorkers) stop() {
	close(l.quit)
	l.mu.Lock()
	for _, w := range l.w {
		if w.cmd != nil && w.cmd.Process != nil {
			w.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		l.mu.Lock()
		for _, w := range l.w {
			if w.cmd != nil && w.cmd.Process != nil {
				w.cmd.Process.Kill()
			}
		}
		l.mu.Unlock()
		<-done
	}
}
