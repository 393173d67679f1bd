package taskproto

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto/pb"
)

// grpcServer adapts an Executor, built on Configure, to the gRPC service.
type grpcServer struct {
	pb.UnimplementedExecutorServer
	factory Factory
	log     hclog.Logger

	mu   sync.Mutex
	exec Executor
}

func newGRPCServer(f Factory, log hclog.Logger) *grpcServer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &grpcServer{factory: f, log: log}
}

func (s *grpcServer) executor() Executor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exec
}

func (s *grpcServer) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exec != nil {
		return nil, status.Error(codes.FailedPrecondition, "plugin is already configured")
	}
	if s.factory == nil {
		return nil, status.Error(codes.Unimplemented, "plugin has no executor factory")
	}
	exec, err := s.factory(configFromPB(req.GetConfig()), s.log)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "build executor: %v", err)
	}
	s.exec = exec
	s.log.Info("configured", "strategy", exec.Info().Name, "concurrency", exec.Info().Concurrency)
	return &pb.ConfigureResponse{Info: infoToPB(exec.Info())}, nil
}

func (s *grpcServer) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	exec := s.executor()
	if exec == nil {
		return nil, status.Error(codes.FailedPrecondition, "plugin is not configured")
	}
	st, err := exec.Stats(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stats: %v", err)
	}
	return statsToPB(st), nil
}

// Execute admits the stream's tasks in the order they arrive, waits for each
// in a goroutine of its own (the strategy decides how many actually run) and
// sends each reply when it is ready.
func (s *grpcServer) Execute(stream pb.Executor_ExecuteServer) error {
	exec := s.executor()
	if exec == nil {
		return status.Error(codes.FailedPrecondition, "plugin is not configured")
	}
	ctx, cancelAll := context.WithCancel(stream.Context())

	var (
		sendMu  sync.Mutex
		mu      sync.Mutex
		cancels = make(map[uint64]context.CancelFunc)
		wg      sync.WaitGroup
	)
	defer func() {
		// No Send may follow the handler's return: stop every task first.
		cancelAll()
		wg.Wait()
	}()

	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		switch m := req.GetMsg().(type) {
		case *pb.ExecuteRequest_Cancel:
			mu.Lock()
			if cancel, ok := cancels[m.Cancel.GetSeq()]; ok {
				cancel()
			}
			mu.Unlock()
		case *pb.ExecuteRequest_Task:
			t := m.Task
			var (
				tctx   context.Context
				cancel context.CancelFunc
			)
			if t.GetTimeoutMs() > 0 {
				tctx, cancel = context.WithTimeout(ctx, time.Duration(t.GetTimeoutMs())*time.Millisecond)
			} else {
				tctx, cancel = context.WithCancel(ctx)
			}
			mu.Lock()
			cancels[t.GetSeq()] = cancel
			mu.Unlock()
			// Admitted here, in stream order; waited for in a goroutine.
			wait := Submit(tctx, exec, Task{Kind: t.GetKind(), N: t.GetN()})
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := wait()
				resp := Response(tctx, t.GetSeq(), res, err)
				mu.Lock()
				delete(cancels, t.GetSeq())
				mu.Unlock()
				cancel()
				sendMu.Lock()
				defer sendMu.Unlock()
				if err := stream.Send(resp); err != nil {
					s.log.Debug("send reply", "seq", t.GetSeq(), "error", err)
				}
			}()
		}
	}
}
