package distributed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
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

	seq               atomic.Uint64
	completed, failed atomic.Int64
	mu                sync.Mutex
	pending           map[uint64]chan *pb.ExecuteResponse
	lost              chan struct{} // closed when the connection stayed down past LostAfter
	lostTimer         *time.Timer
	closed            bool
}

// New starts the embedded server when no URL is given, connects, makes sure
// the stream and consumer exist, subscribes for results and starts the
// local workers.
func New(ctx context.Context, opt Options, log hclog.Logger) (*Dispatcher, error) {
	d := &Dispatcher{opt: opt, log: log, id: randomToken()[:16], pending: map[uint64]chan *pb.ExecuteResponse{}, lost: make(chan struct{})}
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
	if d.js, err = jetstream.New(nc); err != nil {
		return nil, wrap("JetStream", err)
	}
	if err := ensureStream(ctx, d.js, opt.Replicas, opt.TaskTimeout); err != nil {
		return nil, err
	}
	if d.embed != nil {
		// The embedded server serves this plugin alone: what its store
		// holds was sent by a dispatcher that died with its plugin.
		if err := purge(ctx, d.js); err != nil {
			return nil, err
		}
	}
	if d.sub, err = nc.Subscribe(d.replySubject(), d.onResult); err != nil {
		return nil, wrap("subscribe to results", err)
	}
	if err := nc.Flush(); err != nil {
		return nil, wrap("subscribe to results", err)
	}
	if opt.Workers > 0 {
		d.local = startLocalWorkers(d.opt, log)
	}
	ok = true
	return d, nil
}

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
func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int, taskTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{TaskSubject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
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

func purge(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, StreamName)
	if err == nil {
		err = s.Purge(ctx)
	}
	return wrap("purge stream "+StreamName, err)
}

func (d *Dispatcher) replySubject() string { return "wslab.results." + d.id }

func (d *Dispatcher) onResult(m *nats.Msg) {
	var resp pb.ExecuteResponse
	if err := proto.Unmarshal(m.Data, &resp); err != nil {
		d.log.Warn("undecodable result", "error", err)
		return
	}
	m.Respond(nil) // the worker may now acknowledge the task
	d.mu.Lock()
	ch := d.pending[resp.GetSeq()]
	delete(d.pending, resp.GetSeq()) // a redelivered task's second result finds nothing
	d.mu.Unlock()
	if ch != nil {
		ch <- &resp
	}
}

func (d *Dispatcher) disconnected(err error) {
	d.log.Warn("NATS connection lost", "error", err, "fail_after", d.opt.LostAfter)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lostTimer == nil && !d.closed {
		lost := d.lost
		d.lostTimer = time.AfterFunc(d.opt.LostAfter, func() { close(lost) })
	}
}

func (d *Dispatcher) reconnected(url string) {
	d.log.Info("NATS connection back", "url", url)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lostTimer != nil && d.lostTimer.Stop() {
		d.lostTimer = nil // back in time: nothing failed
		return
	}
	if d.lostTimer != nil { // the tasks of the outage have failed
		d.lostTimer = nil
		d.lost = make(chan struct{})
	}
}

// Execute runs t on some worker.
func (d *Dispatcher) Execute(ctx context.Context, t taskproto.Task) (taskproto.Result, error) {
	return d.Submit(ctx, t)()
}

// Submit publishes t at once, so tasks enter the stream in call order.
func (d *Dispatcher) Submit(ctx context.Context, t taskproto.Task) func() (taskproto.Result, error) {
	start := time.Now()
	fail := func(err error) func() (taskproto.Result, error) {
		d.failed.Add(1)
		return func() (taskproto.Result, error) { return taskproto.Result{}, err }
	}
	if !d.nc.IsConnected() {
		return fail(taskproto.Errorf(taskproto.CodeExecutorFailed, "NATS is unreachable (%s); retry when it is back", d.nc.Status()))
	}
	seq := d.seq.Add(1)
	ch := make(chan *pb.ExecuteResponse, 1)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fail(taskproto.Errorf(taskproto.CodeShuttingDown, "distributed strategy is stopping"))
	}
	if len(d.pending) >= d.opt.MaxOutstanding {
		d.mu.Unlock()
		return fail(taskproto.Errorf(taskproto.CodeOverloaded, "%d tasks outstanding (max_outstanding); retry later", d.opt.MaxOutstanding))
	}
	d.pending[seq] = ch
	lost := d.lost
	d.mu.Unlock()

	task := &pb.Task{Seq: seq, Kind: t.Kind, N: t.N}
	if dl, ok := ctx.Deadline(); ok {
		task.TimeoutMs = max(time.Until(dl).Milliseconds(), 1)
	}
	data, _ := proto.Marshal(task)
	msg := &nats.Msg{Subject: TaskSubject, Data: data, Header: nats.Header{}}
	msg.Header.Set(replyHeader, d.replySubject())
	// Asynchronous: tasks leave in call order without a round trip each;
	// the stream's acknowledgement, or its failure, arrives on ack.
	ack, err := d.js.PublishMsgAsync(msg, jetstream.WithMsgID(d.id+"-"+strconv.FormatUint(seq, 10)))
	if err != nil {
		d.forget(seq)
		return fail(taskproto.Errorf(taskproto.CodeExecutorFailed, "publish task to JetStream: %v", err))
	}
	return func() (taskproto.Result, error) {
		select {
		case err := <-ack.Err():
			d.forget(seq)
			d.failed.Add(1)
			return taskproto.Result{}, taskproto.Errorf(taskproto.CodeExecutorFailed, "JetStream did not take the task: %v", err)
		case resp := <-ch:
			res := taskproto.Result{
				Value:  resp.GetResult(),
				Worker: resp.GetWorker(),
				Run:    time.Duration(resp.GetRunUs()) * time.Microsecond,
			}
			res.Queue = max(time.Since(start)-res.Run, 0)
			if resp.GetErrorCode() != "" {
				d.failed.Add(1)
				return res, &taskproto.Error{Code: taskproto.Code(resp.GetErrorCode()), Message: resp.GetErrorMessage()}
			}
			d.completed.Add(1)
			return res, nil
		case <-ctx.Done():
			d.forget(seq)
			d.failed.Add(1)
			return taskproto.Result{}, ctx.Err()
		case <-lost:
			d.forget(seq)
			d.failed.Add(1)
			return taskproto.Result{}, taskproto.Errorf(taskproto.CodeExecutorFailed,
				"NATS connection lost for more than %s with the task outstanding", d.opt.LostAfter)
		}
	}
}

func (d *Dispatcher) forget(seq uint64) {
	d.mu.Lock()
	delete(d.pending, seq)
	d.mu.Unlock()
}

// Info describes the strategy.
func (d *Dispatcher) Info() taskproto.StrategyInfo {
	where := "an embedded NATS server"
	if d.embed == nil {
		where = "NATS at " + d.opt.Conn.URLs
	}
	return taskproto.StrategyInfo{
		Name:        "distributed",
		Description: fmt.Sprintf("JetStream work queue on %s, %d local workers", where, d.opt.Workers),
		PID:         os.Getpid(),
	}
}

// Stats counts tasks and describes the local workers.
func (d *Dispatcher) Stats(context.Context) (taskproto.Stats, error) {
	d.mu.Lock()
	outstanding := int64(len(d.pending))
	d.mu.Unlock()
	st := taskproto.Stats{
		Running:   outstanding,
		Completed: d.completed.Load(),
		Failed:    d.failed.Load(),
		Capacity:  int64(d.opt.MaxOutstanding),
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
