package multiproc

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/tasks"
)

// WorkerArg is the first argument that turns the multiproc plugin binary
// into one of its workers.
const WorkerArg = "worker"

// parentFD is where a worker finds its socket to the plugin (ExtraFiles[0]).
const parentFD = 3

// WorkerMain runs a worker process: it reads tasks from the socket its
// plugin passed it, runs each in a goroutine and writes back the results.
// It exits when the socket closes, which is how it notices its plugin died.
func WorkerMain(args []string) int {
	fset := flag.NewFlagSet("worker", flag.ContinueOnError)
	id := fset.String("id", "w?", "worker name")
	dataDir := fset.String("data-dir", "", "directory io tasks write in")
	fileName := fset.String("large-file-name", "large_file.txt", "io file name pattern")
	memoryMB := fset.Int64("memory-mb", 0, "memory limit in MiB (0: none)")
	concurrency := fset.Int("concurrency", 1, "tasks run at once; the rest wait in arrival order")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "worker." + *id,
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("WSLAB_LOG_LEVEL")),
	})
	if *memoryMB > 0 {
		if err := limitMemory(*memoryMB << 20); err != nil {
			log.Error("set memory limit", "error", err)
			return 1
		}
	}
	f := os.NewFile(parentFD, "plugin")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		log.Error("open socket to plugin", "error", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go taskproto.ExitWithParent(ctx, log, 250*time.Millisecond)

	w := &workerProc{
		runner:  tasks.Runner{DataDir: *dataDir, LargeFileName: *fileName},
		name:    *id,
		out:     bufio.NewWriter(conn),
		cancels: map[uint64]context.CancelFunc{},
		fault:   parseFault(os.Getenv(FaultEnv)),
		queue:   make(chan queuedTask, 1024),
	}
	for range max(*concurrency, 1) {
		w.wg.Add(1)
		go w.run()
	}
	err = w.serve(ctx, conn)
	cancel()
	close(w.queue)
	w.wg.Wait()
	if err != nil && !errors.Is(err, io.EOF) {
		log.Error("worker stopped", "error", err)
		return 1
	}
	return 0
}

// limitMemory caps the worker's heap: a soft limit the collector works to,
// and a hard RLIMIT_DATA past which the runtime cannot map more memory and
// the worker dies alone.
func limitMemory(bytes int64) error {
	debug.SetMemoryLimit(bytes * 9 / 10)
	lim := &syscall.Rlimit{Cur: uint64(bytes), Max: uint64(bytes)}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, lim); err != nil {
		return fmt.Errorf("RLIMIT_DATA: %w", err)
	}
	return nil
}

type workerProc struct {
	runner tasks.Runner
	name   string
	fault  fault

	outMu sync.Mutex
	out   *bufio.Writer

	mu      sync.Mutex
	cancels map[uint64]context.CancelFunc
	// queue holds tasks in arrival order for the runner goroutines; the
	// plugin sends no more than it allows (in flight plus prefetch).
	queue chan queuedTask
	wg    sync.WaitGroup
}

type queuedTask struct {
	ctx     context.Context
	cancel  context.CancelFunc
	task    *pb.Task
	arrived time.Time
}

func (w *workerProc) serve(ctx context.Context, conn net.Conn) error {
	r := bufio.NewReader(conn)
	var buf []byte
	for {
		var req pb.ExecuteRequest
		if err := readFrame(r, &buf, &req); err != nil {
			return err
		}
		switch m := req.GetMsg().(type) {
		case *pb.ExecuteRequest_Cancel:
			w.mu.Lock()
			if cancel := w.cancels[m.Cancel.GetSeq()]; cancel != nil {
				cancel()
			}
			w.mu.Unlock()
		case *pb.ExecuteRequest_Task:
			w.start(ctx, m.Task)
		}
	}
}

func (w *workerProc) start(ctx context.Context, t *pb.Task) {
	var cancel context.CancelFunc
	if t.GetTimeoutMs() > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t.GetTimeoutMs())*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	w.mu.Lock()
	w.cancels[t.GetSeq()] = cancel
	w.mu.Unlock()
	w.queue <- queuedTask{ctx: ctx, cancel: cancel, task: t, arrived: time.Now()}
}

// run runs queued tasks one after another and writes back their results.
func (w *workerProc) run() {
	defer w.wg.Done()
	for q := range w.queue {
		t := q.task
		task := taskproto.Task{Kind: t.GetKind(), N: t.GetN()}
		start := time.Now()
		res := taskproto.Result{Worker: w.name, Queue: start.Sub(q.arrived)}
		err := q.ctx.Err() // cancelled while it waited: not run
		if err == nil {
			if res.Value = w.fault.inject(task); res.Value == "" {
				res.Value, err = w.runner.Run(q.ctx, task)
			}
		}
		res.Run = time.Since(start)
		resp := taskproto.Response(q.ctx, t.GetSeq(), res, err)
		w.mu.Lock()
		delete(w.cancels, t.GetSeq())
		w.mu.Unlock()
		q.cancel()
		w.outMu.Lock()
		if writeFrame(w.out, resp) == nil {
			w.out.Flush()
		}
		w.outMu.Unlock()
	}
}

// FaultEnv names the environment variable through which tests make a worker
// fail on purpose, for one task kind and n: "panic:fib:13" panics;
// "hog:cpu:7" allocates memory without end; "wrong:cpu:7" answers a wrong
// result; "stall:cpu:7" never answers. The host passes its environment to
// the plugin, and the plugin to its workers.
const FaultEnv = "WSLAB_WORKER_FAULT"

type fault struct {
	action, kind string
	n            int64
}

func parseFault(s string) fault {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return fault{}
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return fault{}
	}
	return fault{action: parts[0], kind: parts[1], n: n}
}

var hogged [][]byte // what the hog fault holds on to

// inject acts out the fault when t is its task; a non-empty return is the
// (wrong) result to answer instead of running t.
func (f fault) inject(t taskproto.Task) string {
	if f.action == "" || t.Kind != f.kind || t.N != f.n {
		return ""
	}
	switch f.action {
	case "wrong":
		return "injected wrong result"
	case "stall":
		select {} // the runner is lost; the worker still reads and cancels
	case "panic":
		panic(fmt.Sprintf("injected fault: %s %d", t.Kind, t.N))
	case "hog":
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = byte(i)
			}
			hogged = append(hogged, b)
		}
	}
	return ""
}
