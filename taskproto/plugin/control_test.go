package plugin_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/wslab/wslab/internal/executortest"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/wire"
)

// controlPair serves the plugin's control service with factory over an in-process gRPC
// connection and returns the host's Client and the plugin's data channel
// end (the host's end is returned as a Remote once configured).
func controlPair(t *testing.T, factory plugin.Factory) (*launch.Client, net.Conn) {
	return strategyPair(t, plugin.Strategy{Name: "test", New: factory})
}

// strategyPair is controlPair for a whole Strategy.
func strategyPair(t *testing.T, strategy plugin.Strategy) (*launch.Client, net.Conn) {
	t.Helper()
	ours, theirs, err := wire.NewChannel("test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := net.FileConn(theirs)
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pb.RegisterExecutorServer(srv, plugin.NewControlServer(strategy, data))
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		ours.Close()
		data.Close()
	})
	return launch.NewClient(conn), ours
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), executortest.HangGuard)
	t.Cleanup(cancel)
	return ctx
}

func TestConfigurePassesConfigAndInfo(t *testing.T) {
	want := taskproto.Config{
		Strategy:       "pool",
		FibonacciLimit: 92,
		DataDir:        "/var/lib/wslab/data",
		LargeFileName:  "large.bin",
		TaskTimeout:    7500 * time.Millisecond,
		Limits:         taskproto.Limits{MaxFibN: 90, MaxCPUN: 10_000_000, MaxIOBytes: 64 << 20, MaxSleep: 30 * time.Second},
		Settings:       map[string]string{"server.port": "8080", "pool.workers": "5", "empty.value": ""},
	}
	info := taskproto.StrategyInfo{Name: "pool", Description: "a pool of workers", Concurrency: 5, BoundedKinds: []string{"fib", "cpu"}, PID: 4242}
	var (
		mu  sync.Mutex
		got []taskproto.Config
	)
	c, data := controlPair(t, func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, cfg)
		if log == nil {
			t.Error("factory got a nil logger")
		}
		return &executortest.Executor{Information: info}, nil
	})
	ctx := testCtx(t)
	gotInfo, err := c.Configure(ctx, want)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if !reflect.DeepEqual(gotInfo, info) {
		t.Errorf("info %+v, want %+v", gotInfo, info)
	}
	mu.Lock()
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("factory got %+v\nwant %+v", got, want)
	}
	mu.Unlock()

	// Configured once: a second Configure is refused without a second build.
	if _, err := c.Configure(ctx, want); status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Errorf("second Configure: %v, want FailedPrecondition", err)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Errorf("factory called %d times", len(got))
	}
	mu.Unlock()

	// Configure started the data channel.
	r := launch.NewRemote(data, gotInfo, "plugin pool", launch.BatchHooks{})
	defer r.Close()
	if o := executortest.Await(t, executortest.Submit(t, r, ctx, taskproto.Task{Kind: taskproto.KindNoop, N: 9}), "noop"); o.Err != nil || o.Res.Value != "9" {
		t.Errorf("task after Configure: %+v, %v", o.Res, o.Err)
	}
}

// A failed build leaves the plugin unconfigured, so the host may retry.
func TestConfigureFactoryError(t *testing.T) {
	calls := 0
	c, _ := controlPair(t, func(taskproto.Config, hclog.Logger) (taskproto.Executor, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("bad workers value")
		}
		return &executortest.Executor{Information: taskproto.StrategyInfo{Name: "second"}}, nil
	})
	ctx := testCtx(t)
	_, err := c.Configure(ctx, taskproto.Config{})
	if s := status.Convert(errors.Unwrap(err)); s.Code() != codes.InvalidArgument || s.Message() != "build executor: bad workers value" {
		t.Fatalf("Configure: %v, want InvalidArgument naming the factory's error", err)
	}
	info, err := c.Configure(ctx, taskproto.Config{})
	if err != nil || info.Name != "second" {
		t.Errorf("retried Configure: %+v, %v", info, err)
	}
}

func TestConfigureWithoutFactory(t *testing.T) {
	c, _ := controlPair(t, nil)
	if _, err := c.Configure(testCtx(t), taskproto.Config{}); status.Code(errors.Unwrap(err)) != codes.Unimplemented {
		t.Fatalf("Configure with no factory: %v, want Unimplemented", err)
	}
}

func TestStatsRoundTrip(t *testing.T) {
	want := taskproto.Stats{Running: 2, Queued: 3, Completed: 40, Failed: 5, Capacity: 8, Restarts: 1,
		Workers: []taskproto.WorkerStats{{ID: "w0", PID: 11, State: "busy", Tasks: 20, Restarts: 1}, {ID: "w1", PID: 12, State: "idle", Tasks: 20}}}
	c, _ := controlPair(t, func(taskproto.Config, hclog.Logger) (taskproto.Executor, error) {
		return &executortest.Executor{OnStats: func(context.Context) (taskproto.Stats, error) { return want, nil }}, nil
	})
	ctx := testCtx(t)
	if _, err := c.Stats(ctx); status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Errorf("Stats before Configure: %v, want FailedPrecondition", err)
	}
	if _, err := c.Configure(ctx, taskproto.Config{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Stats(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Stats = %+v, %v; want %+v", got, err, want)
	}
}

// Describe says what the strategy declares, before Configure; Configure
// checks the declared keys, fills in their defaults and refuses a bad value
// naming the key, leaving the plugin unconfigured.
func TestDescribeAndDeclaredKeys(t *testing.T) {
	keys := []taskproto.Key{
		{Section: "pool", Name: "workers", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 64, Help: "goroutines"},
		{Section: "pool", Name: "mode", Type: taskproto.KeyString, Default: "", Choices: []string{"", "fifo"}, Help: "order"},
		{Section: "pool", Name: "pin", Type: taskproto.KeyBool, Default: "false", Help: "pin threads"},
	}
	var got taskproto.Config
	c, _ := strategyPair(t, plugin.Strategy{Name: "pool", Description: "a pool", Keys: keys,
		New: func(cfg taskproto.Config, _ hclog.Logger) (taskproto.Executor, error) {
			got = cfg
			return &executortest.Executor{}, nil
		}})
	ctx := testCtx(t)
	d, err := c.Describe(ctx)
	if want := (wire.Description{Name: "pool", Description: "a pool", Keys: keys}); err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("Describe = %+v, %v; want %+v", d, err, want)
	}
	_, err = c.Configure(ctx, taskproto.Config{Settings: map[string]string{"pool.workers": "65"}})
	// A value the strategy refuses comes back as the key's error, which
	// the host reports as a configuration error.
	var ke *taskproto.KeyError
	if !errors.As(err, &ke) || ke.Key.Section != "pool" || ke.Key.Name != "workers" ||
		ke.Problem != "must be a whole number between 0 and 64, got 65" {
		t.Fatalf("Configure with a bad value: %v, want the KeyError of [pool] workers", err)
	}
	if _, err := c.Configure(ctx, taskproto.Config{Settings: map[string]string{"pool.pin": "yes", "x.y": "z"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pool.workers": "0", "pool.mode": "", "pool.pin": "true", "x.y": "z"}
	if !reflect.DeepEqual(got.Settings, want) {
		t.Errorf("the strategy got settings %v, want %v", got.Settings, want)
	}
}
