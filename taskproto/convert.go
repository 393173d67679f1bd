package taskproto

import (
	"context"
	"time"

	"github.com/wslab/wslab/taskproto/pb"
)

func configToPB(c Config) *pb.Config {
	return &pb.Config{
		Strategy:       c.Strategy,
		FibonacciLimit: c.FibonacciLimit,
		DataDir:        c.DataDir,
		LargeFileName:  c.LargeFileName,
		TaskTimeoutMs:  c.TaskTimeout.Milliseconds(),
		Semaphore:      c.Semaphore,
		Processes:      c.Processes,
		Workers:        c.Workers,
		QueueSize:      c.QueueSize,
		Limits: &pb.Limits{
			MaxFibN:    c.Limits.MaxFibN,
			MaxCpuN:    c.Limits.MaxCPUN,
			MaxIoBytes: c.Limits.MaxIOBytes,
			MaxSleepMs: c.Limits.MaxSleep.Milliseconds(),
		},
		Settings: c.Settings,
	}
}

func configFromPB(c *pb.Config) Config {
	l := c.GetLimits()
	return Config{
		Strategy:       c.GetStrategy(),
		FibonacciLimit: c.GetFibonacciLimit(),
		DataDir:        c.GetDataDir(),
		LargeFileName:  c.GetLargeFileName(),
		TaskTimeout:    time.Duration(c.GetTaskTimeoutMs()) * time.Millisecond,
		Semaphore:      c.GetSemaphore(),
		Processes:      c.GetProcesses(),
		Workers:        c.GetWorkers(),
		QueueSize:      c.GetQueueSize(),
		Limits: Limits{
			MaxFibN:    l.GetMaxFibN(),
			MaxCPUN:    l.GetMaxCpuN(),
			MaxIOBytes: l.GetMaxIoBytes(),
			MaxSleep:   time.Duration(l.GetMaxSleepMs()) * time.Millisecond,
		},
		Settings: c.GetSettings(),
	}
}

func infoToPB(i StrategyInfo) *pb.StrategyInfo {
	return &pb.StrategyInfo{Name: i.Name, Description: i.Description, Concurrency: int64(i.Concurrency), Pid: int64(i.PID)}
}

func infoFromPB(i *pb.StrategyInfo) StrategyInfo {
	return StrategyInfo{Name: i.GetName(), Description: i.GetDescription(), Concurrency: int(i.GetConcurrency()), PID: int(i.GetPid())}
}

func statsToPB(s Stats) *pb.StatsResponse {
	out := &pb.StatsResponse{
		Running: s.Running, Queued: s.Queued, Completed: s.Completed,
		Failed: s.Failed, Capacity: s.Capacity, Restarts: s.Restarts,
	}
	for _, w := range s.Workers {
		out.Workers = append(out.Workers, &pb.WorkerStats{Id: w.ID, Pid: int64(w.PID), State: w.State, Tasks: w.Tasks, Restarts: w.Restarts})
	}
	return out
}

func statsFromPB(s *pb.StatsResponse) Stats {
	out := Stats{
		Running: s.GetRunning(), Queued: s.GetQueued(), Completed: s.GetCompleted(),
		Failed: s.GetFailed(), Capacity: s.GetCapacity(), Restarts: s.GetRestarts(),
	}
	for _, w := range s.GetWorkers() {
		out.Workers = append(out.Workers, WorkerStats{ID: w.GetId(), PID: int(w.GetPid()), State: w.GetState(), Tasks: w.GetTasks(), Restarts: w.GetRestarts()})
	}
	return out
}

// Response encodes the outcome of task seq for the wire; ctx is the task's,
// to name the code of an error it caused (see AsError). Plugins and their
// workers answer with it.
func Response(ctx context.Context, seq uint64, r Result, err error) *pb.ExecuteResponse {
	resp := &pb.ExecuteResponse{Seq: seq, Worker: r.Worker, QueueUs: r.Queue.Microseconds(), RunUs: r.Run.Microseconds()}
	if err != nil {
		e := AsError(ctx, err)
		resp.ErrorCode, resp.ErrorMessage = string(e.Code), e.Message
	} else {
		resp.Result = r.Value
	}
	return resp
}

func resultFromPB(r *pb.ExecuteResponse) (Result, error) {
	res := Result{
		Value:  r.GetResult(),
		Worker: r.GetWorker(),
		Queue:  time.Duration(r.GetQueueUs()) * time.Microsecond,
		Run:    time.Duration(r.GetRunUs()) * time.Microsecond,
	}
	if r.GetErrorCode() != "" {
		return res, &Error{Code: Code(r.GetErrorCode()), Message: r.GetErrorMessage()}
	}
	return res, nil
}
