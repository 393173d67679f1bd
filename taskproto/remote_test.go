package taskproto

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/wslab/wslab/taskproto/pb"
)

// hangGuard bounds every wait in these tests: far longer than anything
// should take, short enough that a hang fails the test instead of the run.
const hangGuard = 5 * time.Second

// fakeExecutor is a scripted Executor: each test supplies the behaviour.
type fakeExecutor struct {
	info    StrategyInfo
	execute func(ctx context.Context, t Task) (Result, error)
	stats   func(ctx context.Context) (Stats, error)
}

func (f *fakeExecutor) Execute(ctx context.Context, t Task) (Result, error) {
	if f.execute == nil {
		return Result{Value: strconv.FormatInt(t.N, 10)}, nil
	}
	return f.execute(ctx, t)
}

func (f *fakeExecutor) Info() StrategyInfo { return f.info }

func (f *fakeExecutor) Stats(ctx context.Context) (Stats, error) {
	if f.stats == nil {
		return Stats{}, nil
	}
	return f.stats(ctx)
}

// harness is a grpcServer and a client connection joined in-process by a
// bufconn listener.
type harness struct {
	srv    *grpc.Server
	conn   *grpc.ClientConn
	plugin *PluginClient
}

func newHarness(t *testing.T, factory Factory) *harness {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterExecutorServer(srv, newGRPCServer(factory, hclog.NewNullLogger()))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	return &harness{srv: srv, conn: conn, plugin: &PluginClient{client: pb.NewExecutorClient(conn)}}
}

// start configures a plugin serving exec and opens its task stream.
func startRemote(t *testing.T, exec Executor) (*harness, *RemoteExecutor) {
	t.Helper()
	h := newHarness(t, func(Config, hclog.Logger) (Executor, error) { return exec, nil })
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	r, err := h.plugin.Start(ctx, Config{Strategy: "fake"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return h, r
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code Code) *Error {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not an *Error, want code %s", err, err, code)
	}
	if te.Code != code {
		t.Fatalf("error code %q (%v), want %q", te.Code, te, code)
	}
	return te
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("%s: not closed after %v", what, hangGuard)
	}
}

func TestStartPassesConfigAndInfo(t *testing.T) {
	want := Config{
		Strategy:       "pool",
		FibonacciLimit: 92,
		DataDir:        "/var/lib/wslab/data",
		LargeFileName:  "large.bin",
		TaskTimeout:    7500 * time.Millisecond,
		Semaphore:      17,
		Processes:      3,
		Workers:        5,
		QueueSize:      128,
		Limits: Limits{
			MaxFibN:    90,
			MaxCPUN:    10_000_000,
			MaxIOBytes: 64 << 20,
			MaxSleep:   30 * time.Second,
		},
		Settings: map[string]string{
			"server.port":     "8080",
			"pool.workers":    "5",
			"other.semaphore": "17",
			"empty.value":     "",
		},
	}
	info := StrategyInfo{Name: "pool", Description: "a pool of workers", Concurrency: 5, PID: 4242}

	var (
		mu    sync.Mutex
		got   []Config
		gotLg hclog.Logger
	)
	h := newHarness(t, func(cfg Config, log hclog.Logger) (Executor, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, cfg)
		gotLg = log
		return &fakeExecutor{info: info}, nil
	})
	ctx := testCtx(t)
	r, err := h.plugin.Start(ctx, want)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.Close()

	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("factory called %d times, want 1", len(got))
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("factory got config\n%+v\nwant\n%+v", got[0], want)
	}
	if gotLg == nil {
		t.Errorf("factory got a nil logger")
	}
	mu.Unlock()

	if r.Info() != info {
		t.Errorf("Info() = %+v, want %+v", r.Info(), info)
	}

	// The plugin is configured once; a second Configure is refused and does
	// not call the factory again.
	if _, err := h.plugin.Start(ctx, want); err == nil {
		t.Fatalf("second Start succeeded, want an error")
	} else if c := status.Code(errors.Unwrap(err)); c != codes.FailedPrecondition {
		t.Errorf("second Start: %v (code %v), want FailedPrecondition", err, c)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Errorf("factory called %d times after a second Configure, want 1", len(got))
	}
	mu.Unlock()

	// The first executor still works.
	res, err := r.Execute(ctx, Task{Kind: KindNoop, N: 9})
	if err != nil || res.Value != "9" {
		t.Errorf("Execute after refused reconfigure = %+v, %v", res, err)
	}
}

func TestStartEmptyConfig(t *testing.T) {
	// Zero values (nil Settings, zero Limits) survive the trip too.
	var got Config
	h := newHarness(t, func(cfg Config, _ hclog.Logger) (Executor, error) {
		got = cfg
		return &fakeExecutor{}, nil
	})
	r, err := h.plugin.Start(testCtx(t), Config{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.Close()
	if len(got.Settings) != 0 || got.Limits != (Limits{}) || got.Strategy != "" {
		t.Errorf("empty config arrived as %+v", got)
	}
}

func TestStartFactoryError(t *testing.T) {
	calls := 0
	h := newHarness(t, func(Config, hclog.Logger) (Executor, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("bad workers value")
		}
		return &fakeExecutor{info: StrategyInfo{Name: "second"}}, nil
	})
	ctx := testCtx(t)
	r, err := h.plugin.Start(ctx, Config{Strategy: "pool"})
	if err == nil {
		r.Close()
		t.Fatalf("Start succeeded, want the factory's error")
	}
	if r != nil {
		t.Errorf("Start returned a non-nil executor with an error")
	}
	if c := status.Code(errors.Unwrap(err)); c != codes.InvalidArgument {
		t.Errorf("Start error %v has code %v, want InvalidArgument", err, c)
	}
	if got := status.Convert(errors.Unwrap(err)).Message(); got != "build executor: bad workers value" {
		t.Errorf("Start error message %q", got)
	}

	// A failed Configure leaves the plugin unconfigured: it may be retried.
	r, err = h.plugin.Start(ctx, Config{Strategy: "pool"})
	if err != nil {
		t.Fatalf("retried Start: %v", err)
	}
	defer r.Close()
	if r.Info().Name != "second" {
		t.Errorf("Info after retry = %+v", r.Info())
	}
}

func TestStartWithoutFactory(t *testing.T) {
	h := newHarness(t, nil)
	_, err := h.plugin.Start(testCtx(t), Config{})
	if c := status.Code(errors.Unwrap(err)); c != codes.Unimplemented {
		t.Fatalf("Start with a nil factory: %v (code %v), want Unimplemented", err, c)
	}
}

func TestServerRefusesBeforeConfigure(t *testing.T) {
	h := newHarness(t, func(Config, hclog.Logger) (Executor, error) { return &fakeExecutor{}, nil })
	ctx := testCtx(t)
	client := pb.NewExecutorClient(h.conn)

	if _, err := client.Stats(ctx, &pb.StatsRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Stats before Configure: %v, want FailedPrecondition", err)
	}
	stream, err := client.Execute(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Execute before Configure: %v, want FailedPrecondition", err)
	}
}

func TestExecuteResultRoundTrip(t *testing.T) {
	var got []Task
	var mu sync.Mutex
	_, r := startRemote(t, &fakeExecutor{execute: func(_ context.Context, task Task) (Result, error) {
		mu.Lock()
		got = append(got, task)
		mu.Unlock()
		return Result{
			Value:  "12586269025",
			Worker: "worker-3",
			Queue:  1234567 * time.Nanosecond, // 1234.567µs
			Run:    2*time.Second + 999*time.Nanosecond,
		}, nil
	}})
	res, err := r.Execute(testCtx(t), Task{Kind: KindFib, N: 50})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	want := Result{Value: "12586269025", Worker: "worker-3", Queue: 1234 * time.Microsecond, Run: 2 * time.Second}
	if res != want {
		t.Errorf("Execute = %+v, want %+v", res, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != (Task{Kind: KindFib, N: 50}) {
		t.Errorf("executor got tasks %+v", got)
	}
}

func TestExecuteErrors(t *testing.T) {
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		switch task.N {
		case 1:
			return Result{Worker: "w1"}, Errorf(CodeOutOfRange, "n=%d is above the limit %d", 100, 90)
		case 2:
			return Result{}, errors.New("disk on fire")
		case 3:
			return Result{}, fmt.Errorf("wrapped: %w", &Error{Code: CodeOverloaded, Message: "queue full"})
		case 4:
			return Result{}, context.DeadlineExceeded
		}
		return Result{Value: "ok"}, nil
	}})
	ctx := testCtx(t)

	res, err := r.Execute(ctx, Task{Kind: KindFib, N: 1})
	te := wantCode(t, err, CodeOutOfRange)
	if te.Message != "n=100 is above the limit 90" {
		t.Errorf("out_of_range message %q", te.Message)
	}
	if res.Value != "" || res.Worker != "w1" {
		t.Errorf("result with an error = %+v", res)
	}

	_, err = r.Execute(ctx, Task{Kind: KindCPU, N: 2})
	te = wantCode(t, err, CodeInternal)
	if te.Message != "disk on fire" {
		t.Errorf("internal message %q", te.Message)
	}

	_, err = r.Execute(ctx, Task{Kind: KindIO, N: 3})
	if te := wantCode(t, err, CodeOverloaded); te.Message != "queue full" {
		t.Errorf("wrapped *Error message %q", te.Message)
	}

	_, err = r.Execute(ctx, Task{Kind: KindSleep, N: 4})
	wantCode(t, err, CodeTimeout)

	// The stream survives task errors.
	if res, err := r.Execute(ctx, Task{Kind: KindNoop, N: 5}); err != nil || res.Value != "ok" {
		t.Errorf("Execute after errors = %+v, %v", res, err)
	}
}

func TestExecuteMultiplexing(t *testing.T) {
	const n = 200
	arrived := make(chan int64, n)
	release := make([]chan struct{}, n)
	for i := range release {
		release[i] = make(chan struct{})
	}
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		arrived <- task.N
		select {
		case <-release[task.N]:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		// A little jitter on top of the reverse release order.
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		return Result{Value: strconv.FormatInt(task.N, 10), Worker: "w" + strconv.FormatInt(task.N, 10)}, nil
	}})
	ctx := testCtx(t)

	// Every task is in the executor at once, then they are answered in
	// reverse order of arrival.
	go func() {
		seen := make([]int64, 0, n)
		for range n {
			select {
			case m := <-arrived:
				seen = append(seen, m)
			case <-ctx.Done():
				return
			}
		}
		for i := len(seen) - 1; i >= 0; i-- {
			close(release[seen[i]])
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range int64(n) {
		wg.Go(func() {
			res, err := r.Execute(ctx, Task{Kind: KindNoop, N: i})
			switch {
			case err != nil:
				errs <- fmt.Errorf("task %d: %w", i, err)
			case res.Value != strconv.FormatInt(i, 10) || res.Worker != "w"+strconv.FormatInt(i, 10):
				errs <- fmt.Errorf("task %d got result %+v", i, res)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExecuteMultiplexingRandomDelays(t *testing.T) {
	const n = 200
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		select {
		case <-time.After(time.Duration(rand.IntN(20)) * time.Millisecond):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		if task.N%7 == 0 {
			return Result{}, Errorf(CodeOutOfRange, "%d", task.N)
		}
		return Result{Value: strconv.FormatInt(task.N, 10)}, nil
	}})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range int64(n) {
		wg.Go(func() {
			res, err := r.Execute(ctx, Task{Kind: KindSleep, N: i})
			if i%7 == 0 {
				var te *Error
				if !errors.As(err, &te) || te.Code != CodeOutOfRange || te.Message != strconv.FormatInt(i, 10) {
					errs <- fmt.Errorf("task %d: got %v, want out_of_range %d", i, err, i)
				}
				return
			}
			if err != nil || res.Value != strconv.FormatInt(i, 10) {
				errs <- fmt.Errorf("task %d: got %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExecuteDeadlinePropagation(t *testing.T) {
	type seen struct {
		deadline time.Time
		ok       bool
	}
	got := make(chan seen, 1)
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		dl, ok := ctx.Deadline()
		got <- seen{dl, ok}
		return Result{Value: "ok"}, nil
	}})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Execute(ctx, Task{Kind: KindNoop}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	s := <-got
	if !s.ok {
		t.Fatalf("executor's context has no deadline")
	}
	if left := s.deadline.Sub(start); left <= 0 || left > 300*time.Millisecond+50*time.Millisecond {
		t.Errorf("executor's deadline is %v after the call, want within (0, ~300ms]", left)
	}

	// Without a deadline the executor gets none either.
	if _, err := r.Execute(testCtxNoDeadline(t), Task{Kind: KindNoop}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if s := <-got; s.ok {
		t.Errorf("executor's context has a deadline %v; the caller set none", time.Until(s.deadline))
	}
}

func testCtxNoDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func TestExecuteDeadlineExceeded(t *testing.T) {
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Execute(ctx, Task{Kind: KindSleep, N: 10_000})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Execute took %v past a 50ms deadline", took)
	}
	// Either the caller's context fires first, or the plugin's timeout reply
	// wins the race: both say the task timed out.
	if !errors.Is(err, context.DeadlineExceeded) {
		wantCode(t, err, CodeTimeout)
	}
}

func TestExecuteCancel(t *testing.T) {
	started := make(chan context.Context, 1)
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		if task.Kind == KindNoop {
			return Result{Value: "still alive"}, nil
		}
		started <- ctx
		<-ctx.Done() // hang-guarded by the test waiting on ctx below
		return Result{}, ctx.Err()
	}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.Execute(ctx, Task{Kind: KindSleep, N: 60_000})
		done <- outcome{res, err}
	}()

	var execCtx context.Context
	select {
	case execCtx = <-started:
	case <-time.After(hangGuard):
		t.Fatal("the task never reached the executor")
	}
	cancel()
	cancelled := time.Now()
	select {
	case o := <-done:
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("Execute after cancel = %+v, %v; want context.Canceled", o.res, o.err)
		}
		if took := time.Since(cancelled); took > time.Second {
			t.Errorf("Execute returned %v after cancel", took)
		}
	case <-time.After(hangGuard):
		t.Fatal("Execute did not return after its context was cancelled")
	}
	// The Cancel message reaches the plugin and stops the task there.
	waitClosed(t, execCtx.Done(), "executor's context after the caller cancelled")
	if !errors.Is(execCtx.Err(), context.Canceled) {
		t.Errorf("executor's ctx.Err() = %v, want Canceled", execCtx.Err())
	}

	// Cancelling one task leaves the stream usable.
	res, err := r.Execute(testCtx(t), Task{Kind: KindNoop})
	if err != nil || res.Value != "still alive" {
		t.Errorf("Execute after a cancel = %+v, %v", res, err)
	}
	select {
	case <-r.Done():
		t.Errorf("stream ended after a cancel: %v", r.Err())
	default:
	}
}

func TestExecuteAlreadyCancelled(t *testing.T) {
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Execute(ctx, Task{Kind: KindSleep}); !errors.Is(err, context.Canceled) {
		t.Errorf("Execute with a cancelled context = %v, want context.Canceled", err)
	}
}

// blockingExecutor holds every task until its context is done and reports
// each arrival.
func blockingExecutor(arrived chan<- context.Context) *fakeExecutor {
	return &fakeExecutor{info: StrategyInfo{Name: "blocker"}, execute: func(ctx context.Context, task Task) (Result, error) {
		arrived <- ctx
		<-ctx.Done()
		return Result{}, ctx.Err()
	}}
}

// startBlocked starts n Executes that block in the executor and returns
// their outcomes' channel once all n have reached it.
func startBlocked(t *testing.T, r *RemoteExecutor, arrived <-chan context.Context, n int) (<-chan error, []context.Context) {
	t.Helper()
	errs := make(chan error, n)
	ctx := testCtx(t)
	for i := range n {
		go func() {
			_, err := r.Execute(ctx, Task{Kind: KindSleep, N: int64(i)})
			errs <- err
		}()
	}
	ctxs := make([]context.Context, 0, n)
	for range n {
		select {
		case c := <-arrived:
			ctxs = append(ctxs, c)
		case <-time.After(hangGuard):
			t.Fatalf("only %d of %d tasks reached the executor", len(ctxs), n)
		}
	}
	return errs, ctxs
}

func collect(t *testing.T, errs <-chan error, n int) []error {
	t.Helper()
	out := make([]error, 0, n)
	for range n {
		select {
		case err := <-errs:
			out = append(out, err)
		case <-time.After(hangGuard):
			t.Fatalf("only %d of %d pending Executes returned", len(out), n)
		}
	}
	return out
}

func TestStreamBreak(t *testing.T) {
	const n = 5
	arrived := make(chan context.Context, n)
	h, r := startRemote(t, blockingExecutor(arrived))
	errs, ctxs := startBlocked(t, r, arrived, n)

	h.srv.Stop() // the plugin dies under the tasks

	for _, err := range collect(t, errs, n) {
		te := wantCode(t, err, CodeExecutorFailed)
		if te.Message == "" {
			t.Errorf("executor_failed without a message")
		}
	}
	waitClosed(t, r.Done(), "Done after the server stopped")
	if r.Err() == nil {
		t.Errorf("Err() is nil after the stream broke")
	}
	// The plugin side stops its tasks too.
	for i, c := range ctxs {
		waitClosed(t, c.Done(), fmt.Sprintf("executor context %d after the server stopped", i))
	}

	start := time.Now()
	_, err := r.Execute(testCtx(t), Task{Kind: KindNoop})
	wantCode(t, err, CodeExecutorFailed)
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Execute on a broken stream took %v, want immediate", took)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after the stream broke: %v", err)
	}
}

func TestStreamBreakConnClosed(t *testing.T) {
	const n = 5
	arrived := make(chan context.Context, n)
	h, r := startRemote(t, blockingExecutor(arrived))
	errs, _ := startBlocked(t, r, arrived, n)

	_ = h.conn.Close()

	for _, err := range collect(t, errs, n) {
		wantCode(t, err, CodeExecutorFailed)
	}
	waitClosed(t, r.Done(), "Done after the connection closed")
	if r.Err() == nil {
		t.Errorf("Err() is nil after the connection closed")
	}
	_, err := r.Execute(testCtx(t), Task{Kind: KindNoop})
	wantCode(t, err, CodeExecutorFailed)
}

func TestClose(t *testing.T) {
	const n = 5
	arrived := make(chan context.Context, n)
	_, r := startRemote(t, blockingExecutor(arrived))
	errs, ctxs := startBlocked(t, r, arrived, n)

	closed := make(chan struct{})
	go func() {
		_ = r.Close()
		close(closed)
	}()
	waitClosed(t, closed, "Close")

	for _, err := range collect(t, errs, n) {
		wantCode(t, err, CodeExecutorFailed)
	}
	waitClosed(t, r.Done(), "Done after Close")
	if r.Err() == nil {
		t.Errorf("Err() is nil after Close")
	}
	for i, c := range ctxs {
		waitClosed(t, c.Done(), fmt.Sprintf("executor context %d after Close", i))
	}
	_, err := r.Execute(testCtx(t), Task{Kind: KindNoop})
	wantCode(t, err, CodeExecutorFailed)

	// Close is idempotent.
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseIdle(t *testing.T) {
	_, r := startRemote(t, &fakeExecutor{})
	if _, err := r.Execute(testCtx(t), Task{Kind: KindNoop, N: 1}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, r.Done(), "Done after Close")
	_, err := r.Execute(testCtx(t), Task{Kind: KindNoop})
	wantCode(t, err, CodeExecutorFailed)
}

func TestConcurrentExecuteAndClose(t *testing.T) {
	// Executes racing Close each either succeed or fail with executor_failed
	// (or see their own context); none hang and the race detector is quiet.
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		select {
		case <-time.After(time.Duration(rand.IntN(2000)) * time.Microsecond):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		return Result{Value: strconv.FormatInt(task.N, 10)}, nil
	}})
	ctx := testCtx(t)
	const n = 100
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	errs := make(chan error, n)
	for i := range int64(n) {
		wg.Go(func() {
			res, err := r.Execute(ctx, Task{Kind: KindNoop, N: i})
			if err == nil {
				if res.Value != strconv.FormatInt(i, 10) {
					errs <- fmt.Errorf("task %d got %+v", i, res)
				}
				ok.Add(1)
				return
			}
			var te *Error
			if !errors.As(err, &te) || te.Code != CodeExecutorFailed {
				errs <- fmt.Errorf("task %d: %v", i, err)
			}
			failed.Add(1)
		})
	}
	time.Sleep(time.Millisecond)
	_ = r.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ok.Load()+failed.Load() != n {
		t.Errorf("%d ok + %d failed != %d", ok.Load(), failed.Load(), n)
	}
}

func TestStatsRoundTrip(t *testing.T) {
	want := Stats{
		Running: 3, Queued: 7, Completed: 1_000_000, Failed: 12, Capacity: 8, Restarts: 2,
		Workers: []WorkerStats{
			{ID: "w0", PID: 1001, State: "busy", Tasks: 500, Restarts: 0},
			{ID: "w1", PID: 1002, State: "idle", Tasks: 499, Restarts: 2},
		},
	}
	fail := atomic.Bool{}
	_, r := startRemote(t, &fakeExecutor{stats: func(ctx context.Context) (Stats, error) {
		if fail.Load() {
			return Stats{}, errors.New("worker table locked")
		}
		return want, nil
	}})
	ctx := testCtx(t)
	got, err := r.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}

	fail.Store(true)
	if _, err := r.Stats(ctx); err == nil {
		t.Errorf("Stats succeeded, want the executor's error")
	} else if c := status.Code(errors.Unwrap(err)); c != codes.Internal {
		t.Errorf("Stats error %v has code %v, want Internal", err, c)
	}

	// No workers stays no workers.
	fail.Store(false)
	want = Stats{Running: 1}
	if got, err := r.Stats(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Stats without workers = %+v, %v", got, err)
	}
}

func TestAsError(t *testing.T) {
	shutdown := &Error{Code: CodeShuttingDown, Message: "host is stopping"}
	causeCtx, causeCancel := context.WithCancelCause(context.Background())
	causeCancel(shutdown)

	timeoutCause := Errorf(CodeTimeout, "task_timeout of 1s")
	tcCtx, tcCancel := context.WithTimeoutCause(context.Background(), time.Nanosecond, timeoutCause)
	defer tcCancel()
	<-tcCtx.Done()

	dlCtx, dlCancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dlCancel()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	plainCause, plainCancel := context.WithCancelCause(context.Background())
	plainCancel(errors.New("host restart"))

	own := &Error{Code: CodeOutOfRange, Message: "too big"}

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		code Code
		same *Error // when set, AsError must return this very value
	}{
		{"*Error passes through", context.Background(), own, CodeOutOfRange, own},
		{"*Error wins over ctx", causeCtx, own, CodeOutOfRange, own},
		{"wrapped *Error", nil, fmt.Errorf("run: %w", own), CodeOutOfRange, own},
		{"ctx cause *Error", causeCtx, context.Canceled, CodeShuttingDown, shutdown},
		{"ctx timeout cause *Error", tcCtx, context.DeadlineExceeded, CodeTimeout, timeoutCause},
		{"deadline exceeded", dlCtx, context.DeadlineExceeded, CodeTimeout, nil},
		{"deadline exceeded, plain error", dlCtx, errors.New("io aborted"), CodeTimeout, nil},
		{"cancelled without cause", cancelled, context.Canceled, CodeShuttingDown, nil},
		{"cancelled with a plain cause", plainCause, context.Canceled, CodeShuttingDown, nil},
		{"plain error, nil ctx", nil, errors.New("boom"), CodeInternal, nil},
		{"plain error, live ctx", context.Background(), errors.New("boom"), CodeInternal, nil},
		{"deadline error, nil ctx", nil, fmt.Errorf("wait: %w", context.DeadlineExceeded), CodeTimeout, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AsError(tt.ctx, tt.err)
			if got == nil {
				t.Fatalf("AsError returned nil")
			}
			if got.Code != tt.code {
				t.Errorf("code %q (%v), want %q", got.Code, got, tt.code)
			}
			if tt.same != nil && got != tt.same {
				t.Errorf("got %p %v, want the same *Error %p", got, got, tt.same)
			}
		})
	}
	if got := AsError(nil, errors.New("boom")); got.Message != "boom" {
		t.Errorf("internal message %q, want %q", got.Message, "boom")
	}
	if got := AsError(plainCause, context.Canceled); got.Message != "task cancelled: host restart" {
		t.Errorf("shutting_down message %q", got.Message)
	}
}

// cancelChildren counts the contexts registered for cancellation on ctx's
// parent: the stream context every task context of grpcServer.Execute
// derives from. It reads context internals, so it reports ok=false when they
// are not what it expects.
func cancelChildren(ctx context.Context) (n int, ok bool) {
	v := reflect.ValueOf(ctx)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	cc := v.Elem().FieldByName("cancelCtx") // ctx is a *timerCtx
	if !cc.IsValid() {
		return 0, false
	}
	parent := cc.FieldByName("Context")
	if !parent.IsValid() || parent.Kind() != reflect.Interface || parent.Elem().Kind() != reflect.Pointer {
		return 0, false
	}
	p := parent.Elem().Elem()
	mu, children := p.FieldByName("mu"), p.FieldByName("children")
	if !mu.IsValid() || mu.Type() != reflect.TypeFor[sync.Mutex]() || !children.IsValid() || children.Kind() != reflect.Map {
		return 0, false
	}
	m := (*sync.Mutex)(unsafe.Pointer(mu.UnsafeAddr()))
	m.Lock()
	defer m.Unlock()
	return children.Len(), true
}

// TestExecuteDeadlineContextsReleased checks that a finished task with a
// deadline leaves nothing registered on the stream's context. Every host task
// carries a deadline (task_timeout), and the stream lives as long as the
// plugin, so anything left behind per task is an unbounded leak.

func TestExecuteDeadlineContextsReleased(t *testing.T) {
	type probe struct {
		n  int
		ok bool
	}
	probes := make(chan probe, 1)
	_, r := startRemote(t, &fakeExecutor{execute: func(ctx context.Context, task Task) (Result, error) {
		if task.Kind == "probe" {
			n, ok := cancelChildren(ctx)
			probes <- probe{n, ok}
		}
		return Result{}, nil
	}})
	// Each task's contexts are released before its reply is sent, so once
	// the reply is back nothing of it may remain.
	const tasks = 50
	for _, kind := range append(slices.Repeat([]string{KindNoop}, tasks), "probe") {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		_, err := r.Execute(ctx, Task{Kind: kind})
		cancel()
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
	}
	p := <-probes
	if !p.ok {
		t.Skip("context internals changed; cannot count registered children")
	}
	// Only the running probe's own context should be registered.
	if p.n != 1 {
		t.Errorf("stream context holds %d child contexts after %d finished tasks with a deadline, want 1 (the running probe)", p.n, tasks)
	}
}

// TestCloseSaysStopped checks the message of a task failed by Close: after
// Close the stream's error is a gRPC status with code Canceled, which must
// read as a stop, not as a failure under the task.
func TestCloseSaysStopped(t *testing.T) {
	arrived := make(chan context.Context, 1)
	_, r := startRemote(t, blockingExecutor(arrived))
	errs, _ := startBlocked(t, r, arrived, 1)
	_ = r.Close()
	for _, err := range append(collect(t, errs, 1), func() error { _, err := r.Execute(testCtx(t), Task{}); return err }()) {
		if te := wantCode(t, err, CodeExecutorFailed); te.Message != "plugin blocker is stopped" {
			t.Errorf("message after Close %q, want %q", te.Message, "plugin blocker is stopped")
		}
	}
}
