package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
)

// Client is the host's handle on a plugin's control service.
type Client struct {
	client pb.ExecutorClient
}

// Description is what a plugin says of itself before it is configured.
type Description struct {
	Name        string
	Description string
	Keys        []taskproto.Key
}

// Describe asks the plugin for its name and the configuration keys it reads.
func (c *Client) Describe(ctx context.Context) (Description, error) {
	resp, err := c.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Description{}, fmt.Errorf("describe plugin: %w", err)
	}
	return describeFromPB(resp), nil
}

// Configure sends the plugin its configuration; the plugin builds its
// strategy, starts serving the data channel and describes itself.
func (c *Client) Configure(ctx context.Context, cfg taskproto.Config) (taskproto.StrategyInfo, error) {
	resp, err := c.client.Configure(ctx, &pb.ConfigureRequest{Config: configToPB(cfg)})
	if err != nil {
		if ke := keyErrorOf(err); ke != nil {
			return taskproto.StrategyInfo{}, ke
		}
		return taskproto.StrategyInfo{}, fmt.Errorf("configure plugin: %w", err)
	}
	return infoFromPB(resp.GetInfo()), nil
}

// Stats asks the plugin for its statistics.
func (c *Client) Stats(ctx context.Context) (taskproto.Stats, error) {
	resp, err := c.client.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return taskproto.Stats{}, fmt.Errorf("plugin stats: %w", err)
	}
	return statsFromPB(resp), nil
}

func configToPB(c taskproto.Config) *pb.Config {
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

func configFromPB(c *pb.Config) taskproto.Config {
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

func infoToPB(i taskproto.StrategyInfo) *pb.StrategyInfo {
	return &pb.StrategyInfo{Name: i.Name, Description: i.Description, Concurrency: int64(i.Concurrency), Pid: int64(i.PID), BoundedKinds: i.BoundedKinds, DirectWorkers: i.DirectWorkers}
}

func infoFromPB(i *pb.StrategyInfo) taskproto.StrategyInfo {
	return taskproto.StrategyInfo{Name: i.GetName(), Description: i.GetDescription(), Concurrency: int(i.GetConcurrency()), PID: int(i.GetPid()), BoundedKinds: i.GetBoundedKinds(), DirectWorkers: i.GetDirectWorkers()}
}

func statsToPB(s taskproto.Stats) *pb.StatsResponse {
	out := &pb.StatsResponse{
		Running: s.Running, Queued: s.Queued, Completed: s.Completed,
		Failed: s.Failed, Capacity: s.Capacity, Restarts: s.Restarts, Metrics: s.Metrics,
	}
	for _, w := range s.Workers {
		out.Workers = append(out.Workers, &pb.WorkerStats{Id: w.ID, Pid: int64(w.PID), State: w.State, Tasks: w.Tasks, Restarts: w.Restarts, Sandbox: w.Sandbox})
	}
	return out
}

func statsFromPB(s *pb.StatsResponse) taskproto.Stats {
	out := taskproto.Stats{
		Running: s.GetRunning(), Queued: s.GetQueued(), Completed: s.GetCompleted(),
		Failed: s.GetFailed(), Capacity: s.GetCapacity(), Restarts: s.GetRestarts(), Metrics: s.GetMetrics(),
	}
	for _, w := range s.GetWorkers() {
		out.Workers = append(out.Workers, taskproto.WorkerStats{ID: w.GetId(), PID: int(w.GetPid()), State: w.GetState(), Tasks: w.GetTasks(), Restarts: w.GetRestarts(), Sandbox: w.GetSandbox()})
	}
	return out
}

func describeToPB(d Description) *pb.DescribeResponse {
	out := &pb.DescribeResponse{Name: d.Name, Description: d.Description}
	for _, k := range d.Keys {
		out.Keys = append(out.Keys, &pb.ConfigKey{
			Section: k.Section, Name: k.Name, Type: pb.KeyType(k.Type), DefaultValue: k.Default,
			Min: k.Min, Max: k.Max, Choices: k.Choices, Help: k.Help,
		})
	}
	return out
}

func describeFromPB(d *pb.DescribeResponse) Description {
	out := Description{Name: d.GetName(), Description: d.GetDescription()}
	for _, k := range d.GetKeys() {
		out.Keys = append(out.Keys, taskproto.Key{
			Section: k.GetSection(), Name: k.GetName(), Type: taskproto.KeyType(k.GetType()), Default: k.GetDefaultValue(),
			Min: k.GetMin(), Max: k.GetMax(), Choices: k.GetChoices(), Help: k.GetHelp(),
		})
	}
	return out
}

// keyErrorOf is the configuration value a plugin refused, which
// configureError sent as a field violation; nil for any other error.
func keyErrorOf(err error) *taskproto.KeyError {
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
