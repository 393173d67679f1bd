package distributed

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/internal/tick"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
	"github.com/wslab/wslab/tasks"
)

// WorkerArg is the first argument that makes the distributed plugin binary
// a worker: `distributed worker --nats nats://node1:4222,nats://node2:4222 --token T`.
const WorkerArg = "worker"

// OverrunGrace is how long past its deadline a task may keep running before
// its worker exits, to be replaced by whatever supervises it: a task that
// cannot be interrupted costs at most its deadline plus this.
const OverrunGrace = 2 * time.Second

// maxCancelled bounds the cancels a worker, and a dispatcher, remembers.
// Past it a cancelled task that has not reached a worker yet may still
// run; its result is dropped by its dispatcher as any late result is.
const maxCancelled = 100_000

// WorkerMain runs a worker until SIGINT/SIGTERM (or, for a local worker,
// until its plugin is gone), with its tasks run by wrap(an executor of the
// task set) when wrap is not nil.
func WorkerMain(args []string, wrap func(taskproto.Executor) taskproto.Executor) int {
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
		go plugin.ExitWithParent(ctx, log, 250*time.Millisecond)
	}
	defer plugin.StartProfile("worker")()
	defer tracing.Begin("wslab-worker-distributed", log)()
	w := &natsWorker{
		id: id, log: log, runner: tasks.Runner{DataDir: *dataDir, LargeFileName: *fileName},
		concurrency: max(*concurrency, 1),
		running:     map[taskKey]context.CancelFunc{},
		cancelled:   map[taskKey]time.Time{},
		held:        map[jetstream.Msg]int64{},
	}
	if wrap != nil {
		w.exec = wrap(runnerExecutor{w.runner})
	}
	if err := w.run(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("worker stopped", "error", err)
		return 1
	}
	return 0
}

// taskKey names a task across dispatchers.
type taskKey struct {
	dispatcher string
	seq        uint64
}

type natsWorker struct {
	id     string
	log    hclog.Logger
	runner tasks.Runner
	// exec, when set (WorkerMain), runs the tasks in runner's place.
	exec taskproto.Executor
	nc   *nats.Conn
	wg   sync.WaitGroup
	// concurrency is how many tasks run at once, each pulled when its
	// runner is free.
	concurrency int

	mu        sync.Mutex
	running   map[taskKey]context.CancelFunc
	cancelled map[taskKey]time.Time // until when to remember the cancel
	// held are the tasks delivered and not yet answered, with when they
	// came (CLOCK_MONOTONIC, for a timed task's nats_deliver).
	held map[jetstream.Msg]int64
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
	if _, err := nc.Subscribe(cancelPrefix+"*", w.onCancel); err != nil {
		return wrap("subscribe to cancels", err)
	}
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
	// The consumer keeps a pull of as many tasks as there are runners
	// outstanding, so a task is on its way before a runner is free; the
	// runners take them in order.
	jobs := make(chan *delivery)
	for range w.concurrency {
		w.wg.Go(func() {
			for d := range jobs {
				w.execute(d)
			}
		})
	}
	w.wg.Go(func() { w.heartbeat(ctx) })
	cc, err := cons.Consume(func(m jetstream.Msg) {
		d := w.accept(m)
		if d == nil {
			return
		}
		select {
		case jobs <- d:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(w.concurrency), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		w.log.Debug("consume tasks", "error", err)
	}))
	if err != nil {
		close(jobs)
		w.wg.Wait()
		return wrap("consume tasks", err)
	}
	if err := nc.Publish(readySubject, []byte(w.id)); err != nil {
		w.log.Warn("announce the worker", "error", err)
	}
	w.log.Info("worker ready", "id", w.id, "nats", nc.ConnectedUrl(), "concurrency", w.concurrency)
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	close(jobs)
	w.wg.Wait()
	return ctx.Err()
}

// hold counts m as the worker's until it is answered, so that heartbeat
// keeps it from being redelivered meanwhile.
func (w *natsWorker) hold(m jetstream.Msg) {
	w.mu.Lock()
	w.held[m] = taskproto.Monotonic()
	w.mu.Unlock()
}

// unhold stops counting m as the worker's, and says when it came.
func (w *natsWorker) unhold(m jetstream.Msg) (arrived int64) {
	w.mu.Lock()
	arrived = w.held[m]
	delete(w.held, m)
	w.mu.Unlock()
	return arrived
}

// release acknowledges m (ack), or gives it back to be redelivered.
func (w *natsWorker) release(m jetstream.Msg, ack bool) {
	w.unhold(m)
	if ack {
		m.Ack()
	} else {
		m.Nak()
	}
}

// heartbeat tells JetStream, once a second, that every task the worker
// holds (running or waiting for a runner) is alive: only a dead or cut-off worker's tasks are
// redelivered.
func (w *natsWorker) heartbeat(ctx context.Context) {
	tick.Every(ctx, time.Second, func() {
		w.mu.Lock()
		held := make([]jetstream.Msg, 0, len(w.held))
		for m := range w.held {
			held = append(held, m)
		}
		w.mu.Unlock()
		for _, m := range held {
			m.InProgress()
		}
	})
}

// heldSince is when the held task m came.
func (w *natsWorker) heldSince(m jetstream.Msg) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held[m]
}

// sendResult publishes a task's result to its dispatcher with the task's
// acknowledgement subject (ackHeader): the dispatcher acknowledges the
// task once it has the result, one message where a confirmation to the
// worker and the worker's acknowledgement were two. A result lost on the
// way (the dispatcher reconnecting just then) leaves the task
// unacknowledged: JetStream redelivers it after AckWait, it runs again,
// and the dispatcher keeps the first result it gets.
func (w *natsWorker) sendResult(m jetstream.Msg, reply string, data []byte) {
	w.unhold(m)
	msg := &nats.Msg{Subject: reply, Data: data, Header: nats.Header{ackHeader: []string{m.Reply()}}}
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 1 {
		msg.Header.Set(deliveredHeader, strconv.FormatUint(meta.NumDelivered, 10))
	}
	if err := w.nc.PublishMsg(msg); err != nil {
		w.log.Debug("publish result", "error", err)
		m.Nak()
	}
}

// onCancel stops the tasks a dispatcher cancelled that run here, and
// remembers the others so that they are not started if they come later.
func (w *natsWorker) onCancel(m *nats.Msg) {
	dispatcher := strings.TrimPrefix(m.Subject, cancelPrefix)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for seq, ttl := range decodeCancels(m.Data) {
		key := taskKey{dispatcher, seq}
		if cancel := w.running[key]; cancel != nil {
			cancel()
			continue
		}
		if len(w.cancelled) >= maxCancelled {
			pruneExpired(w.cancelled, now)
		}
		if len(w.cancelled) < maxCancelled {
			w.cancelled[key] = now.Add(ttl)
		}
	}
}

// pruneExpired forgets the cancels whose time is past.
func pruneExpired[K comparable](cancels map[K]time.Time, now time.Time) {
	for k, until := range cancels {
		if until.Before(now) {
			delete(cancels, k)
		}
	}
}

// begin registers a task about to run; false if it was cancelled already.
func (w *natsWorker) begin(key taskKey, cancel context.CancelFunc) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, gone := w.cancelled[key]; gone {
		delete(w.cancelled, key)
		return false
	}
	w.running[key] = cancel
	return true
}

func (w *natsWorker) end(key taskKey) {
	w.mu.Lock()
	delete(w.running, key)
	w.mu.Unlock()
}

// delivery is a task delivered to the worker and worth running.
type delivery struct {
	m           jetstream.Msg
	t           pb.Task
	key         taskKey
	reply       string
	deadline    time.Time
	hasDeadline bool
	arrived     time.Time // when the worker had it
}

// accept decodes a task as it is delivered, and holds it for a runner;
// a task cancelled, past its deadline or undecodable is settled at once
// (nil), so that a stream full of abandoned tasks drains at the speed of
// delivery rather than one runner's turn each.
func (w *natsWorker) accept(m jetstream.Msg) *delivery {
	w.hold(m)
	d := &delivery{m: m, arrived: time.Now()}
	if err := proto.Unmarshal(m.Data(), &d.t); err != nil {
		w.log.Error("undecodable task, dropping it", "error", err)
		w.unhold(m)
		m.Term()
		return nil
	}
	d.reply = m.Headers().Get(replyHeader)
	d.key = taskKey{strings.TrimPrefix(d.reply, resultPrefix), d.t.GetSeq()}
	// The deadline counts from publication: a task left over from a
	// dispatcher that died, or redelivered too late, is not run.
	published := time.Now()
	if meta, err := m.Metadata(); err == nil {
		published = meta.Timestamp
	}
	d.deadline, d.hasDeadline = wire.TaskDeadline(&d.t, published)
	if !d.hasDeadline {
		d.deadline = time.Now().Add(24 * time.Hour)
	}
	if time.Now().After(d.deadline) || w.wasCancelled(d.key) {
		w.release(m, true) // its requester is gone: not run, and no result wanted
		return nil
	}
	return d
}

// wasCancelled says whether the task key was cancelled before it came,
// forgetting the cancel.
func (w *natsWorker) wasCancelled(key taskKey) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, gone := w.cancelled[key]
	delete(w.cancelled, key)
	return gone
}

func (w *natsWorker) execute(d *delivery) {
	m, t, key, dl := d.m, &d.t, d.key, d.deadline
	if time.Now().After(dl) {
		w.release(m, true)
		return
	}
	parent := context.Background()
	if t.GetTiming() {
		tl := &taskproto.Timeline{}
		tl.StampAt(taskproto.StageNATSDeliver, w.heldSince(m))
		tl.Stamp(taskproto.StageWorkerRecv)
		parent = taskproto.WithTimeline(parent, tl)
	}
	parent, span := w.startSpans(parent, d)
	ctx, cancel := context.WithDeadline(parent, dl)
	if d.hasDeadline {
		// A task that outlives its deadline by OverrunGrace has a runner
		// that cannot stop it: the worker goes, and is replaced.
		watchdog := time.AfterFunc(time.Until(dl)+OverrunGrace, func() {
			w.log.Error("task overran its deadline, exiting to be replaced", append(tracing.LogArgs(ctx),
				"task", t.GetKind(), "n", t.GetN(), "grace", OverrunGrace)...)
			os.Exit(4)
		})
		defer watchdog.Stop()
	}
	defer cancel()
	if !w.begin(key, cancel) {
		w.release(m, true) // its requester is gone: not run, and no result wanted
		return
	}
	defer w.end(key)

	start := time.Now()
	res := taskproto.Result{Worker: w.id}
	var err error
	if w.exec != nil {
		// Waits past the deadline for a task deaf to it, as runner.Run
		// would: the watchdog above ends the worker.
		var r taskproto.Result
		r, err = taskproto.Run(ctx, w.exec, wire.TaskOf(t))
		res.Value = r.Value
	} else {
		res.Value, err = w.runner.Run(ctx, wire.TaskOf(t))
	}
	res.Run = time.Since(start)
	resp := wire.ResponseMessage(ctx, t.GetSeq(), res, err, taskproto.StageWorkerSent)
	if span != nil {
		tracing.End(span, resp.GetErrorCode(), resp.GetErrorMessage())
	}
	data, _ := proto.Marshal(resp)
	w.sendResult(m, d.reply, data)
}

// startSpans records, for a traced task, its time in the stream (from its
// publication to its delivery here, a child of the dispatcher's publish
// span that the NATS headers name) and starts the span of its run; with
// tracing off, parent carries the task's trace context on unchanged. span
// is nil when the task is not traced.
func (w *natsWorker) startSpans(parent context.Context, d *delivery) (context.Context, trace.Span) {
	tp := d.t.GetTraceparent() // set whenever the headers carry a context too
	if !tracing.Enabled() {
		if tp == "" {
			return parent, nil
		}
		return tracing.Start(parent, tp, tracing.SpanWorkerTask, trace.SpanKindServer)
	}
	if h := d.m.Headers(); len(h) > 0 {
		if published := tracing.FromContext(tracing.Extract(context.Background(), h)); published != "" {
			tp = published // the publish span's
		}
	}
	var published time.Time
	if meta, err := d.m.Metadata(); err == nil {
		published = meta.Timestamp
	}
	ctx, deliver := tracing.Start(parent, tp, tracing.SpanNATSDeliver, trace.SpanKindConsumer,
		trace.WithTimestamp(published), trace.WithAttributes(attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", TaskSubject)))
	deliver.End(trace.WithTimestamp(d.arrived))
	return tracing.Start(ctx, "", tracing.SpanWorkerTask, trace.SpanKindServer,
		trace.WithAttributes(attribute.String("wslab.task.kind", d.t.GetKind()), attribute.Int64("wslab.task.n", d.t.GetN()),
			attribute.String("wslab.worker", w.id)))
}

// runnerExecutor is the task set as an Executor, for WorkerMain's
// wrap: each task on a goroutine of its own, the worker's concurrency
// bounding how many run.
type runnerExecutor struct{ runner tasks.Runner }

func (r runnerExecutor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	go func() {
		start := time.Now()
		v, err := r.runner.Run(ctx, t)
		done(taskproto.Result{Value: v, Run: time.Since(start)}, err)
	}()
}

func (runnerExecutor) Info() taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: "distributed worker", PID: os.Getpid()}
}

func (runnerExecutor) Stats(context.Context) (taskproto.Stats, error) { return taskproto.Stats{}, nil }
