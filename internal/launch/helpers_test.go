package launch

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/executortest"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/wire"
)

// Shorthands for the scripted executor and its waits.
const hangGuard = executortest.HangGuard

type (
	fakeExecutor = executortest.Executor
	outcome      = executortest.Outcome
)

var (
	blocking = executortest.Blocking
	submit   = executortest.Submit
	await    = executortest.Await
	wantCode = executortest.WantCode
)

// served is wire.ServeTasks' return: done is closed when it has returned.
type served struct {
	done chan struct{}
	err  error
}

// pair joins a Remote and wire.ServeTasks(exec) over a real socketpair. It
// returns the Remote, the far end's socket (for tests that break it), and
// wire.ServeTasks' return.
func pair(t *testing.T, exec taskproto.Executor) (*Remote, net.Conn, *served) {
	t.Helper()
	ours, theirs, err := wire.NewChannel("test")
	if err != nil {
		t.Fatal(err)
	}
	far, err := net.FileConn(theirs)
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	sv := &served{done: make(chan struct{})}
	go func() {
		sv.err = wire.ServeTasks(context.Background(), far, exec, nil, wire.PluginHop)
		close(sv.done)
	}()
	r := NewRemote(ours, taskproto.StrategyInfo{Name: "fake"}, "plugin fake", BatchHooks{})
	t.Cleanup(func() {
		r.Close()
		far.Close()
		select {
		case <-sv.done:
		case <-time.After(hangGuard):
			t.Error("wire.ServeTasks did not return after the channel closed")
		}
	})
	return r, far, sv
}
