package distributed

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
)

// Dispatcher is the strategy's Executor: it publishes tasks to the stream
// and matches results to them.
type Dispatcher struct {
	opt   Options
	log   hclog.Logger
	id    string // unique per dispatcher: its reply subject and message ids
	embed *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	sub   *nats.Subscription
	local *localWorkers

	mu                sync.Mutex
	seq               uint64
	pending           map[uint64]*dcall
	completed, failed int64
	// duplicates, redeliveries and disconnects are counted for /metrics
	// (metrics.go).
	duplicates, redeliveries, disconnects int64
	lostTimer                             *time.Timer // running while NATS is away
	closed                                bool
	// cancels are the tasks abandoned that may still be in the stream,
	// with until when (their deadline): sent again to a worker that says
	// it is ready, for it may have missed them.
	cancels map[uint64]time.Time
	// announced receives the ids of workers that say they are ready.
	announced chan string
}

// dcall is one task from Submit to its single answer.
type dcall struct {
	ctx   context.Context
	done  taskproto.Done
	start time.Time
	stop  func() bool // unregisters the abandon on ctx's end
}

// New starts the embedded server when no URL is given, connects, makes sure
// the stream and consumer exist, subscribes for results and starts the
// local workers.
func New(ctx context.Context, opt Options, log hclog.Logger) (*Dispatcher, error) {
	d := &Dispatcher{
		opt: opt, log: log, id: randomToken()[:16],
		pending: map[uint64]*dcall{}, cancels: map[uint64]time.Time{},
		announced: make(chan string, max(opt.Workers, 1)),
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if opt.Conn.URLs == "" {
		if err := d.startEmbedded(); err != nil {
			return nil, err
		}
	}
	nc, err := nats.Connect(d.opt.Conn.URLs, append(d.opt.Conn.options("wslab-dispatcher"),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { d.disconnected(err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { d.reconnected(c.ConnectedUrl()) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", d.opt.Conn.URLs, err)
	}
	d.nc = nc
	d.js, err = jetstream.New(nc,
		// Never block a Submit: the host bounds what is outstanding.
		jetstream.WithPublishAsyncMaxPending(d.opt.MaxOutstanding+1),
		jetstream.WithPublishAsyncTimeout(publishTimeout),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { d.notPublished(m, err) }),
	)
	if err != nil {
		return nil, wrap("JetStream", err)
	}
	if err := ensureStream(ctx, d.js, opt.Replicas, d.storage(), opt.TaskTimeout); err != nil {
		return nil, err
	}
	if d.embed != nil {
		// The embedded server serves this plugin alone: what its store
		// holds was sent by a dispatcher that died with its plugin.
		if err := purge(ctx, d.js); err != nil {
			return nil, err
		}
	}
	if d.sub, err = nc.Subscribe(resultSubject(d.id), d.onResult); err != nil {
		return nil, wrap("subscribe to results", err)
	}
	if _, err := nc.Subscribe(readySubject, d.onWorkerReady); err != nil {
		return nil, wrap("subscribe to workers' announcements", err)
	}
	if err := nc.Flush(); err != nil {
		return nil, wrap("subscribe to results", err)
	}
	if opt.Workers > 0 {
		if d.local, err = startLocalWorkers(d.opt, log); err != nil {
			return nil, err
		}
		d.awaitLocalWorkers(ctx)
	}
	ok = true
	return d, nil
}

// localWorkersWait bounds how long New waits for its local workers to say
// they are ready.
const localWorkersWait = 10 * time.Second

// awaitLocalWorkers waits until as many workers as are started here have
// said they are ready (or localWorkersWait has passed), so that the
// strategy's first tasks do not wait for processes to start, and every
// cancel reaches a worker that listens.
func (d *Dispatcher) awaitLocalWorkers(ctx context.Context) {
	ready := map[string]bool{}
	timeout := time.NewTimer(localWorkersWait)
	defer timeout.Stop()
	for len(ready) < d.opt.Workers {
		select {
		case id := <-d.announced:
			ready[id] = true
		case <-timeout.C:
			d.log.Warn("local workers slow to start; going on without them", "ready", len(ready), "workers", d.opt.Workers, "waited", localWorkersWait.String())
			return
		case <-ctx.Done():
			return
		}
	}
}

// onWorkerReady sends a worker that has just started the cancels it may
// have missed, and counts it for awaitLocalWorkers.
func (d *Dispatcher) onWorkerReady(m *nats.Msg) {
	select {
	case d.announced <- string(m.Data):
	default: // nobody waits, or it has heard enough
	}
	now := time.Now()
	d.mu.Lock()
	pruneExpired(d.cancels, now)
	batch := make([]byte, 0, min(len(d.cancels), cancelsPerMessage)*cancelSize)
	var batches [][]byte
	for seq, until := range d.cancels {
		batch = appendCancel(batch, seq, until.Sub(now))
		if len(batch) == cancelsPerMessage*cancelSize {
			batches, batch = append(batches, batch), make([]byte, 0, cancelsPerMessage*cancelSize)
		}
	}
	d.mu.Unlock()
	if len(batch) > 0 {
		batches = append(batches, batch)
	}
	for _, b := range batches {
		if err := d.nc.Publish(cancelSubject(d.id), b); err != nil {
			d.log.Debug("publish cancels again", "error", err)
			return
		}
	}
}

// publishTimeout bounds the wait for the stream to take a task.
const publishTimeout = 10 * time.Second

func (d *Dispatcher) startEmbedded() error {
	host, portText, err := net.SplitHostPort(d.opt.Listen)
	if err != nil {
		return fmt.Errorf("[distributed] listen %q: %w", d.opt.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("[distributed] listen %q: bad port", d.opt.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	token := d.opt.Conn.Token
	if token == "" {
		token = randomToken()
	}
	ns, err := server.NewServer(&server.Options{
		ServerName:    "wslab-embedded",
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      filepath.Join(d.opt.DataDir, "nats"),
		Authorization: token,
		NoSigs:        true, // the plugin owns the signals
		NoLog:         true,
	})
	if err != nil {
		return wrap("embedded NATS server", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("embedded NATS server not ready in 10 s")
	}
	d.embed = ns
	d.opt.Conn = Conn{URLs: ns.ClientURL(), Token: token}
	d.log.Info("embedded NATS server", "url", ns.ClientURL(), "store", filepath.Join(d.opt.DataDir, "nats"))
	return nil
}

// ensureStream creates or updates the work-queue stream and its consumer.
func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int, storage jetstream.StorageType, taskTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{TaskSubject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    storage,
		Replicas:   max(replicas, 1),
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return wrap("create stream "+StreamName, err)
	}
	_, err = js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait(taskTimeout),
		MaxDeliver:    5,
		MaxAckPending: 100000,
	})
	return wrap("create consumer "+ConsumerName, err)
}

// storage is the task stream's storage (see Options.Storage).
func (d *Dispatcher) storage() jetstream.StorageType {
	switch {
	case d.opt.Storage == "file", d.opt.Storage == "" && d.embed == nil:
		return jetstream.FileStorage
	}
	return jetstream.MemoryStorage
}

func purge(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, StreamName)
	if err == nil {
		err = s.Purge(ctx)
	}
	return wrap("purge stream "+StreamName, err)
}

func (d *Dispatcher) onResult(m *nats.Msg) {
	var resp pb.ExecuteResponse
	if err := proto.Unmarshal(m.Data, &resp); err != nil {
		d.log.Warn("undecodable result", "error", err)
		return
	}
	// The task is acknowledged now that its result is here, at the
	// subject the worker names (an empty message there is an
	// acknowledgement). A result lost on the way leaves the task
	// unacknowledged, and JetStream redelivers it.
	if ack := m.Header.Get(ackHeader); strings.HasPrefix(ack, "$JS.ACK.") {
		d.nc.Publish(ack, nil)
	}
	d.mu.Lock()
	c := d.pending[resp.GetSeq()]
	delete(d.pending, resp.GetSeq()) // a redelivered task's second result finds nothing
	delete(d.cancels, resp.GetSeq()) // abandoned, and run all the same: out of the stream now
	if c != nil {
		if resp.GetErrorCode() != "" {
			d.failed++
		} else {
			d.completed++
		}
		d.redeliveries += redeliveriesIn(m.Header.Get(deliveredHeader))
	} else {
		d.duplicates++
	}
	d.mu.Unlock()
	if c == nil {
		return
	}
	c.stop()
	taskproto.Stamp(c.ctx, taskproto.StageNATSResult)
	wire.MergeTiming(c.ctx, &resp)
	res, err := wire.ResultOf(&resp)
	res.Queue = max(time.Since(c.start)-res.Run, 0)
	c.done(res, err)
}

// notPublished fails a task the stream did not take.
func (d *Dispatcher) notPublished(m *nats.Msg, err error) {
	id := m.Header.Get(nats.MsgIdHdr)
	seq, perr := strconv.ParseUint(strings.TrimPrefix(id, d.id+"-"), 10, 64)
	if perr != nil {
		return
	}
	d.fail(seq, taskproto.Errorf(taskproto.CodeExecutorFailed, "JetStream did not take the task: %v", err))
}

// takeFailed removes task seq from what is outstanding, counting it
// failed; nil when it was not outstanding (answered already).
func (d *Dispatcher) takeFailed(seq uint64) *dcall {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.pending[seq]
	if c != nil {
		delete(d.pending, seq)
		d.failed++
	}
	return c
}

// fail answers task seq with err, if it is still outstanding.
func (d *Dispatcher) fail(seq uint64, err error) {
	if c := d.takeFailed(seq); c != nil {
		c.stop()
		c.done(taskproto.Result{Queue: time.Since(c.start)}, err)
	}
}

func (d *Dispatcher) disconnected(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.disconnects++
	d.log.Warn("NATS connection lost", "error", err, "fail_after", d.opt.LostAfter.String())
	if d.lostTimer == nil {
		d.lostTimer = time.AfterFunc(d.opt.LostAfter, d.lostTooLong)
	}
}

// lostTooLong fails every task outstanding when NATS has stayed away for
// LostAfter: their results may never come.
func (d *Dispatcher) lostTooLong() {
	d.mu.Lock()
	calls := d.pending
	d.pending = map[uint64]*dcall{}
	d.failed += int64(len(calls))
	d.mu.Unlock()
	err := taskproto.Errorf(taskproto.CodeExecutorFailed, "NATS connection lost for more than %s with the task outstanding", d.opt.LostAfter)
	for _, c := range calls {
		c.stop()
		c.done(taskproto.Result{Queue: time.Since(c.start)}, err)
	}
}

func (d *Dispatcher) reconnected(url string) {
	d.log.Info("NATS connection back", "url", url)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lostTimer != nil {
		d.lostTimer.Stop() // back in time, or the outage's tasks have failed
		d.lostTimer = nil
	}
}

// Submit publishes t at once, so tasks enter the stream in call order.
func (d *Dispatcher) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	refuse := func(err error) {
		d.mu.Lock()
		d.failed++
		d.mu.Unlock()
		done(taskproto.Result{}, err)
	}
	if !d.nc.IsConnected() {
		refuse(taskproto.Errorf(taskproto.CodeExecutorFailed, "NATS is unreachable (%s); retry when it is back", d.nc.Status()))
		return
	}
	c := &dcall{ctx: ctx, done: done, start: time.Now()}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		refuse(taskproto.Errorf(taskproto.CodeShuttingDown, "distributed strategy is stopping"))
		return
	}
	if len(d.pending) >= d.opt.MaxOutstanding {
		d.mu.Unlock()
		refuse(taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks outstanding (max_outstanding); retry later", d.opt.MaxOutstanding))
		return
	}
	d.seq++
	seq := d.seq
	d.pending[seq] = c
	c.stop = context.AfterFunc(ctx, func() { d.abandon(seq) })
	d.mu.Unlock()

	taskproto.Stamp(ctx, taskproto.StageNATSPublish)
	var span trace.Span
	if tracing.Enabled() {
		ctx, span = tracing.Start(ctx, "", tracing.SpanNATSPublish, trace.SpanKindProducer,
			trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", TaskSubject)))
		defer span.End()
	}
	data, _ := proto.Marshal(wire.TaskMessage(ctx, seq, t))
	msg := &nats.Msg{Subject: TaskSubject, Data: data, Header: nats.Header{}}
	msg.Header.Set(replyHeader, resultSubject(d.id))
	if span != nil {
		tracing.Inject(ctx, msg.Header)
	}
	// Asynchronous: tasks leave in call order without a round trip each;
	// a failure to take one arrives on notPublished.
	if _, err := d.js.PublishMsgAsync(msg, jetstream.WithMsgID(d.id+"-"+strconv.FormatUint(seq, 10))); err != nil {
		d.fail(seq, taskproto.Errorf(taskproto.CodeExecutorFailed, "publish task to JetStream: %v", err))
	}
}

// abandon answers a task whose context ended and tells the workers, so
// that whichever holds it stops it, and none starts it later.
func (d *Dispatcher) abandon(seq uint64) {
	c := d.takeFailed(seq)
	if c == nil {
		return
	}
	ttl := d.opt.TaskTimeout
	if dl, ok := c.ctx.Deadline(); ok {
		ttl = time.Until(dl)
	}
	now := time.Now()
	d.mu.Lock()
	if len(d.cancels) >= maxCancelled {
		pruneExpired(d.cancels, now)
	}
	if len(d.cancels) < maxCancelled {
		d.cancels[seq] = now.Add(ttl)
	}
	d.mu.Unlock()
	if err := d.nc.Publish(cancelSubject(d.id), appendCancel(nil, seq, ttl)); err != nil {
		d.log.Debug("publish cancel", "seq", seq, "error", err)
	}
	c.done(taskproto.Result{Queue: time.Since(c.start)}, c.ctx.Err())
}

// A cancel message holds one or more cancels of cancelSize bytes each:
// the task's sequence number and how long, in milliseconds, a worker must
// remember it (until the task's deadline, past which no worker starts it
// anyway). cancelsPerMessage bounds those sent again in one message.
const (
	cancelSize        = 16
	cancelsPerMessage = 4096
)

func appendCancel(b []byte, seq uint64, ttl time.Duration) []byte {
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(max(ttl.Milliseconds(), 1)))
}

// decodeCancels yields the cancels in b; nothing if b is malformed.
func decodeCancels(b []byte) iter.Seq2[uint64, time.Duration] {
	return func(yield func(uint64, time.Duration) bool) {
		if len(b)%cancelSize != 0 {
			return
		}
		for ; len(b) > 0; b = b[cancelSize:] {
			ttl := time.Duration(binary.BigEndian.Uint64(b[8:])) * time.Millisecond
			if !yield(binary.BigEndian.Uint64(b), ttl) {
				return
			}
		}
	}
}

// Info describes the strategy. With an embedded server only the local
// workers can reach it, so it says how many tasks they run at once.
func (d *Dispatcher) Info() taskproto.StrategyInfo {
	where := "NATS at " + d.opt.Conn.URLs
	if d.embed != nil {
		where = "an embedded NATS server"
	}
	return taskproto.StrategyInfo{
		Name:        "distributed",
		Description: fmt.Sprintf("JetStream work queue on %s, %d local workers", where, d.opt.Workers),
		Concurrency: d.concurrency(),
		PID:         os.Getpid(),
	}
}

// concurrency is what the local workers run at once with an embedded
// server; 0 on a cluster, whose workers may be anywhere.
func (d *Dispatcher) concurrency() int {
	if d.embed == nil {
		return 0
	}
	return d.opt.Workers * d.opt.Concurrency
}

// Stats counts tasks and describes the local workers. The dispatcher sees
// tasks out and unanswered, not which of them a worker has taken: with the
// local workers' concurrency known, at most that many run and the rest are
// counted queued; on a cluster of unknown size all of them count running.
func (d *Dispatcher) Stats(context.Context) (taskproto.Stats, error) {
	capacity := int64(d.concurrency())
	d.mu.Lock()
	out := int64(len(d.pending))
	st := taskproto.Stats{
		Running:   out,
		Completed: d.completed,
		Failed:    d.failed,
		Capacity:  capacity,
	}
	d.mu.Unlock()
	if capacity > 0 {
		st.Running, st.Queued = min(out, capacity), max(out-capacity, 0)
	}
	if d.local != nil {
		st.Workers = d.local.stats()
		for _, w := range st.Workers {
			st.Restarts += w.Restarts
		}
	}
	return st, nil
}

// Close stops the local workers, the connection and the embedded server.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	d.closed = true
	if d.lostTimer != nil {
		d.lostTimer.Stop()
	}
	d.mu.Unlock()
	if d.local != nil {
		d.local.stop()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	if d.embed != nil {
		d.embed.Shutdown()
		d.embed.WaitForShutdown()
	}
	return nil
}

// Main is the distributed plugin binary's main: a worker when started as
// `distributed worker ...`, the plugin otherwise. wrapWorker, when not
// nil, wraps the tasks of the workers this binary runs (its local
// workers, or itself started as a worker), as multiproc.Main's does: for
// test plugins that run a task set of their own in the workers the work
// queue feeds (internal/e2e/faultydistributed).
func Main(wrapWorker func(taskproto.Executor) taskproto.Executor) {
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		os.Exit(WorkerMain(os.Args[2:], wrapWorker))
	}
	plugin.Serve(plugin.Strategy{
		Name:        "distributed",
		Description: "tasks travel through NATS JetStream to worker processes, here or on other machines",
		Keys:        Keys,
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("find own binary: %w", err)
			}
			d, err := New(context.Background(), OptionsFrom(cfg, exe), log)
			if err != nil {
				return nil, err
			}
			if err := plugin.Metrics().Register(d); err != nil {
				log.Warn("register the dispatcher's metrics", "error", err)
			}
			return d, nil
		},
	})
}
