package wire_test

import (
	"context"
	"fmt"
	"net"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/wire"
	"github.com/wslab/wslab/tasks"
)

// runner is an executor that runs each task as it comes, in the caller's
// goroutine.
type runner struct{ tasks.Runner }

func (r runner) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	v, err := r.Run(ctx, t)
	done(taskproto.Result{Value: v, Worker: "w0"}, err)
}
func (runner) Info() taskproto.StrategyInfo                   { return taskproto.StrategyInfo{Name: "runner"} }
func (runner) Stats(context.Context) (taskproto.Stats, error) { return taskproto.Stats{}, nil }

// A strategy that hands tasks to a process of its own speaks the data
// channel on both ends: the worker serves it with ServeTasks, the strategy
// sends TaskMessages and reads the replies with ResultOf. Here both ends
// are in one process, joined by a pipe instead of a socketpair (NewChannel).
func ExampleServeTasks() {
	strategyEnd, workerEnd := net.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- wire.ServeTasks(context.Background(), workerEnd, runner{}, nil, wire.WorkerHop)
	}()

	out, in := wire.NewFrameWriter(strategyEnd), wire.NewFrameReader(strategyEnd)
	task := taskproto.Task{Kind: taskproto.KindFib, N: 10}
	if err := out.Write(wire.TaskRequest(wire.TaskMessage(context.Background(), 1, task))); err != nil {
		fmt.Println("send:", err)
		return
	}
	var reply pb.ExecuteResponse
	if err := in.Read(&reply); err != nil {
		fmt.Println("read:", err)
		return
	}
	res, err := wire.ResultOf(&reply)
	fmt.Printf("task %d: fib(10) = %s on %s, error %v\n", reply.GetSeq(), res.Value, res.Worker, err)

	strategyEnd.Close() // the worker's ServeTasks returns once the channel ends
	fmt.Println("served:", <-served)
	// Output:
	// task 1: fib(10) = 55 on w0, error <nil>
	// served: <nil>
}
