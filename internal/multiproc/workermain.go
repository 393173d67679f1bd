package multiproc

import (
	"context"
	"flag"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/internal/strategy"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/plugin"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
)

// WorkerArg is the first argument that turns the multiproc plugin binary
// into one of its workers.
const WorkerArg = "worker"

// Main is the multiproc plugin binary's main: a worker when started as
// `multiproc worker ...` by the plugin, the plugin otherwise. wrapWorker,
// when not nil, wraps each worker's executor (test binaries inject faults
// with it); the shipped plugin passes nil.
func Main(wrapWorker func(taskproto.Executor) taskproto.Executor) {
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		os.Exit(WorkerMain(os.Args[2:], wrapWorker))
	}
	plugin.Serve(plugin.Strategy{
		Name:        "multiproc",
		Description: "tasks run in [other] multiprocessing_processes worker processes, each its own Go runtime",
		Keys:        Keys,
		New: func(cfg taskproto.Config, log hclog.Logger) (taskproto.Executor, error) {
			opt, err := OptionsFrom(cfg, log)
			if err != nil {
				return nil, err
			}
			// A host that offers a workers channel talks to the workers
			// itself; the conformance kit, which offers none, talks to
			// the plugin.
			if opt.Handoff, err = launch.OpenWorkerChannel(); err != nil {
				return nil, err
			}
			return New(opt)
		},
	})
}

// sandboxOpenFiles is a confined worker's RLIMIT_NOFILE: its socket, its
// log, the files of the io tasks it runs at once, and room to spare.
const sandboxOpenFiles = 256

// cgroupHeadroom is what a confined worker's cgroup allows beyond
// worker_memory_mb: the runtime's own memory, which the heap limit does
// not count.
const cgroupHeadroom = 64 << 20

// cgroupMemory is the memory.max of a confined worker's cgroup for a
// worker_memory_mb of mb: none without one.
func cgroupMemory(mb int64) int64 {
	if mb <= 0 {
		return 0
	}
	return mb<<20 + cgroupHeadroom
}

// WorkerMain runs a worker process: it serves the tasks its plugin sends
// on the socket the plugin passed it, running them in arrival order,
// --concurrency at once. It exits when the socket closes, which is how it
// notices its plugin died.
func WorkerMain(args []string, wrap func(taskproto.Executor) taskproto.Executor) int {
	fset := flag.NewFlagSet("worker", flag.ContinueOnError)
	id := fset.String("id", "w?", "worker name")
	dataDir := fset.String("data-dir", "", "directory io tasks write in")
	fileName := fset.String("large-file-name", "large_file.txt", "io file name pattern")
	memoryMB := fset.Int64("memory-mb", 0, "memory limit in MiB (0: none)")
	concurrency := fset.Int("concurrency", 1, "tasks run at once; the rest wait in arrival order")
	queue := fset.Int("queue", 1, "tasks the plugin may send beyond those running")
	mode := fset.String("sandbox", sandbox.None, "confinement: none, strict or best-effort (internal/sandbox)")
	cgroup := fset.String("cgroup", "", "cgroup to join under the sandbox")
	cpuSeconds := fset.Uint64("cpu-seconds", 0, "RLIMIT_CPU under the sandbox (0: none)")
	fileBytes := fset.Uint64("file-bytes", 0, "RLIMIT_FSIZE under the sandbox (0: none)")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "worker." + *id,
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      hclog.LevelFromString(os.Getenv("WSLAB_LOG_LEVEL")),
	})
	if remove, err := crashOutput(); err != nil {
		log.Warn("no crash report: a death under the memory cap will be told as executor_failed", "error", err)
	} else {
		defer remove()
	}
	if *memoryMB > 0 {
		if err := limitMemory(*memoryMB << 20); err != nil {
			log.Error("set memory limit", "error", err)
			return 1
		}
	}
	conn, err := wire.FileConn(os.Getenv(wire.DataFDEnv))
	if err != nil {
		log.Error("open socket to plugin", "error", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go plugin.ExitWithParent(ctx, log, 250*time.Millisecond)

	pool, err := strategy.NewPoolOf(max(*concurrency, 1), max(*queue, 1),
		taskproto.Config{DataDir: *dataDir, LargeFileName: *fileName})
	if err != nil {
		log.Error("start runners", "error", err)
		return 1
	}
	defer pool.Close()
	defer plugin.StartProfile("worker-" + *id)()
	if *mode == sandbox.None {
		// A confined worker opens no socket: it could not export spans.
		defer tracing.Begin("wslab-worker-multiproc", log)()
	}
	var exec taskproto.Executor = pool
	if wrap != nil {
		exec = wrap(exec)
	}
	if *mode != sandbox.None {
		exec = deniedErrors{exec}
	}
	if *mode != sandbox.None {
		exe, _ := os.Executable()
		var writable []string
		if dir := os.Getenv(plugin.ProfileEnv); dir != "" {
			writable = append(writable, dir)
		}
		st, err := sandbox.Apply(sandbox.Policy{
			Mode: *mode, Exe: exe, DataDir: *dataDir, Writable: writable,
			MemoryBytes: cgroupMemory(*memoryMB), CPUs: runtime.GOMAXPROCS(0),
			CPUSeconds: *cpuSeconds, OpenFiles: sandboxOpenFiles, FileBytes: *fileBytes, Cgroup: *cgroup,
		})
		if err != nil {
			log.Error("confine the worker", "error", err)
			return 1
		}
		log.Debug("worker confined", "sandbox", st.String())
		if len(st.Missing) > 0 {
			log.Warn("sandbox incomplete", "missing", strings.Join(st.Missing, "; "))
		}
	}
	log.Debug("worker serving", "pid", os.Getpid(), "concurrency", *concurrency, "memory_mb", *memoryMB)
	if err := wire.ServeTasks(ctx, conn, exec, log, wire.WorkerHop); err != nil {
		log.Error("worker stopped", "error", err)
		return 1
	}
	return 0
}

// deniedErrors answers a confined worker's tasks that the sandbox stopped
// with sandbox_denied (sandbox.Denied).
type deniedErrors struct{ taskproto.Executor }

func (d deniedErrors) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	d.Executor.Submit(ctx, t, func(res taskproto.Result, err error) {
		if err != nil {
			err = sandbox.Denied(err)
		}
		done(res, err)
	})
}
