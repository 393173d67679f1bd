package wire

import (
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
)

// The control service's messages, both ways: the host sends a Config and
// reads a Description, a StrategyInfo and Stats; a plugin the other way.

// Description is what a plugin says of itself before it is configured
// (Describe).
type Description struct {
	Name        string
	Description string
	Keys        []taskproto.Key
}

// ConfigToPB is c as the host sends it (Configure).
func ConfigToPB(c taskproto.Config) *pb.Config {
	return &pb.Config{
		Strategy:       c.Strategy,
		FibonacciLimit: c.FibonacciLimit,
		DataDir:        c.DataDir,
		LargeFileName:  c.LargeFileName,
		TaskTimeoutMs:  c.TaskTimeout.Milliseconds(),
		Limits: &pb.Limits{
			MaxFibN:    c.Limits.MaxFibN,
			MaxCpuN:    c.Limits.MaxCPUN,
			MaxIoBytes: c.Limits.MaxIOBytes,
			MaxSleepMs: c.Limits.MaxSleep.Milliseconds(),
		},
		Settings: c.Settings,
	}
}

// ConfigFromPB is the Config a plugin received.
func ConfigFromPB(c *pb.Config) taskproto.Config {
	l := c.GetLimits()
	return taskproto.Config{
		Strategy:       c.GetStrategy(),
		FibonacciLimit: c.GetFibonacciLimit(),
		DataDir:        c.GetDataDir(),
		LargeFileName:  c.GetLargeFileName(),
		TaskTimeout:    time.Duration(c.GetTaskTimeoutMs()) * time.Millisecond,
		Limits: taskproto.Limits{
			MaxFibN:    l.GetMaxFibN(),
			MaxCPUN:    l.GetMaxCpuN(),
			MaxIOBytes: l.GetMaxIoBytes(),
			MaxSleep:   time.Duration(l.GetMaxSleepMs()) * time.Millisecond,
		},
		Settings: c.GetSettings(),
	}
}

// InfoToPB is i as a plugin answers Configure.
func InfoToPB(i taskproto.StrategyInfo) *pb.StrategyInfo {
	return &pb.StrategyInfo{Name: i.Name, Description: i.Description, Concurrency: int64(i.Concurrency), Pid: int64(i.PID), BoundedKinds: i.BoundedKinds, DirectWorkers: i.DirectWorkers}
}

// InfoFromPB is the StrategyInfo a plugin answered.
func InfoFromPB(i *pb.StrategyInfo) taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: i.GetName(), Description: i.GetDescription(), Concurrency: int(i.GetConcurrency()), PID: int(i.GetPid()), BoundedKinds: i.GetBoundedKinds(), DirectWorkers: i.GetDirectWorkers()}
}

// StatsToPB is s as a plugin answers Stats.
func StatsToPB(s taskproto.Stats) *pb.StatsResponse {
	out := &pb.StatsResponse{
		Running: s.Running, Queued: s.Queued, Completed: s.Completed,
		Failed: s.Failed, Capacity: s.Capacity, Restarts: s.Restarts, Metrics: s.Metrics,
	}
	for _, w := range s.Workers {
		out.Workers = append(out.Workers, &pb.WorkerStats{Id: w.ID, Pid: int64(w.PID), State: w.State, Tasks: w.Tasks, Restarts: w.Restarts, Sandbox: w.Sandbox})
	}
	return out
}

// StatsFromPB is the Stats a plugin answered.
func StatsFromPB(s *pb.StatsResponse) taskproto.Stats {
	out := taskproto.Stats{
		Running: s.GetRunning(), Queued: s.GetQueued(), Completed: s.GetCompleted(),
		Failed: s.GetFailed(), Capacity: s.GetCapacity(), Restarts: s.GetRestarts(), Metrics: s.GetMetrics(),
	}
	for _, w := range s.GetWorkers() {
		out.Workers = append(out.Workers, taskproto.WorkerStats{ID: w.GetId(), PID: int(w.GetPid()), State: w.GetState(), Tasks: w.GetTasks(), Restarts: w.GetRestarts(), Sandbox: w.GetSandbox()})
	}
	return out
}

// DescribeToPB is d as a plugin answers Describe.
func DescribeToPB(d Description) *pb.DescribeResponse {
	out := &pb.DescribeResponse{Name: d.Name, Description: d.Description}
	for _, k := range d.Keys {
		out.Keys = append(out.Keys, &pb.ConfigKey{
			Section: k.Section, Name: k.Name, Type: pb.KeyType(k.Type), DefaultValue: k.Default,
			Min: k.Min, Max: k.Max, Choices: k.Choices, Help: k.Help,
		})
	}
	return out
}

// DescribeFromPB is the Description a plugin answered.
func DescribeFromPB(d *pb.DescribeResponse) Description {
	out := Description{Name: d.GetName(), Description: d.GetDescription()}
	for _, k := range d.GetKeys() {
		out.Keys = append(out.Keys, taskproto.Key{
			Section: k.GetSection(), Name: k.GetName(), Type: taskproto.KeyType(k.GetType()), Default: k.GetDefaultValue(),
			Min: k.GetMin(), Max: k.GetMax(), Choices: k.GetChoices(), Help: k.GetHelp(),
		})
	}
	return out
}

// KeyErrorOf is the configuration value a plugin refused, which
// ConfigureError sent as a field violation; nil for any other error.
func KeyErrorOf(err error) *taskproto.KeyError {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok || len(br.GetFieldViolations()) == 0 {
			continue
		}
		v := br.GetFieldViolations()[0]
		section, name, _ := strings.Cut(v.GetField(), ".")
		return &taskproto.KeyError{Key: taskproto.Key{Section: section, Name: name}, Problem: v.GetDescription()}
	}
	return nil
}

// ConfigureError is err as a plugin answers Configure with it: a
// *taskproto.KeyError (a value the strategy refuses, on this machine or
// any) travels as a BadRequest field violation, so that the host reports
// it as a configuration error naming the key (KeyErrorOf).
func ConfigureError(err error) error {
	st := status.New(codes.InvalidArgument, err.Error())
	var ke *taskproto.KeyError
	if errors.As(err, &ke) {
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: ke.Key.Section + "." + ke.Key.Name, Description: ke.Problem,
		}}}); derr == nil {
			st = d
		}
	}
	return st.Err()
}
