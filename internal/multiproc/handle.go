package multiproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/wslab/wslab/internal/sandbox"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/tracing"
	"github.com/wslab/wslab/taskproto/wire"
)

// workerHandle is the dispatcher's handle on one worker: the process
// comes and goes (a supervisor restarts it), the handle stays. Fields
// marked so are guarded by Executor.mu.
type workerHandle struct {
	e    *Executor
	name string
	sup  *supervise.Supervisor // nil for a worker the host was handed

	// Guarded by Executor.mu.
	ready    bool
	proc     *workerProcess // the current process; nil before the first start
	runs     int            // tasks it runs at once
	slots    int            // tasks it may hold: those it runs and those sent ahead (Options.Prefetch)
	inflight map[uint64]*call
	tasks    int64
	restarts int64 // of a worker the host was handed, as the plugin counted them

	// lastPID is the process launch started last, whose crash report
	// (crash.go) it removes when it starts the next (by then whoever had
	// its tasks has read it) and stop when the worker stops. Only the
	// supervisor's goroutine, and stop after it, touch it.
	lastPID int
}

// workerProcess is one run of a worker. The dispatcher that talks to it
// has its socket (conn) and reads it; a plugin that handed the socket to
// the host has only the process (cmd), and the host only the socket, which
// kill asks the plugin to end.
type workerProcess struct {
	pid  int
	cmd  *supervise.Command // nil in the host
	conn net.Conn           // nil in a plugin that handed it over
	out  *wire.FrameWriter
	read chan struct{} // closed when the reader has stopped (or at once, with no socket)
	kill func()        // the host's way to have the plugin kill it
}

func (p *workerProcess) PID() int { return p.pid }

// Kill closes the socket and kills the process.
func (p *workerProcess) Kill() {
	if p.conn != nil {
		p.conn.Close()
	}
	if p.cmd != nil {
		p.cmd.Kill()
	} else if p.kill != nil {
		p.kill()
	}
}

// Wait returns once the socket has ended and the process has exited: a
// worker whose socket broke is of no use, so it is killed too.
func (p *workerProcess) Wait() error {
	<-p.read
	if p.conn != nil {
		p.Kill()
	}
	return p.cmd.Wait()
}

func (w *workerHandle) start() error {
	sup, err := supervise.Start(context.Background(), supervise.Options{
		Name:  "worker " + w.name,
		Start: w.launch,
		Log:   w.e.log,
		Up:    func(p supervise.Process) { w.up(p.(*workerProcess)) },
		Down:  func(p supervise.Process, err error) { w.e.lost(w, p.(*workerProcess), err) },
	})
	if err != nil {
		return err
	}
	w.e.mu.Lock()
	w.sup = sup
	w.e.mu.Unlock()
	return nil
}

// launch starts a worker process on a fresh socketpair, and hands the
// socket to the host when the host talks to the workers itself.
func (w *workerHandle) launch(context.Context) (supervise.Process, error) {
	ours, theirs, err := wire.NewChannel("worker-" + w.name)
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	opt := w.e.opt
	cmd := exec.Command(opt.Exe, WorkerArg,
		"--id", w.name, "--data-dir", opt.DataDir, "--large-file-name", opt.LargeFileName,
		"--concurrency", strconv.Itoa(opt.Inflight),
		// It is never sent more than this: its queue cannot fill.
		"--queue", strconv.Itoa(opt.Inflight+opt.Prefetch),
		"--memory-mb", strconv.FormatInt(opt.MemoryMB, 10))
	if opt.Sandbox != "" && opt.Sandbox != sandbox.None {
		cmd.Args = append(cmd.Args, "--sandbox", opt.Sandbox, "--cgroup", cgroupName(w.name),
			"--cpu-seconds", strconv.FormatInt(opt.CPUSeconds, 10), "--file-bytes", strconv.FormatInt(opt.MaxFileBytes, 10))
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(opt.GOMAXPROCS), wire.DataFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stderr = supervise.LogLines(w.e.log, "worker "+w.name)
	// In the plugin's process group: the host's kill of that group ends
	// workers too; the parent-death signal and the socket cover the rest.
	if w.lastPID != 0 {
		os.Remove(crashPath(w.lastPID))
	}
	c, err := supervise.Spawn(cmd, false)
	if err != nil {
		ours.Close()
		return nil, err
	}
	w.lastPID = c.PID()
	p := &workerProcess{pid: c.PID(), cmd: c, read: make(chan struct{})}
	if opt.Handoff != nil {
		err = w.handOff(p, ours)
		close(p.read)
		if err != nil {
			c.Kill()
			c.Wait()
			return nil, err
		}
	} else {
		p.conn, p.out = ours, wire.NewFrameWriter(ours)
		go w.readFrom(p)
	}
	w.e.log.Debug("worker started", "worker", w.name, "pid", c.PID(), "handed_to_host", opt.Handoff != nil)
	return p, nil
}

// handOff sends the host the socket of p, which this process then keeps
// no copy of: the worker sees the host's end of it as its peer's.
func (w *workerHandle) handOff(p *workerProcess, sock net.Conn) error {
	defer sock.Close()
	f, err := sock.(*net.UnixConn).File()
	if err != nil {
		return fmt.Errorf("worker %s's socket: %w", w.name, err)
	}
	defer f.Close()
	w.e.mu.Lock()
	restarts := int64(0)
	if w.sup != nil {
		restarts = int64(w.sup.Status().Restarts)
	}
	w.e.mu.Unlock()
	opt := w.e.opt
	return opt.Handoff.SendWorker(&pb.WorkerSocket{
		Name: w.name, Pid: int64(p.pid), Inflight: int64(opt.Inflight), Prefetch: int64(opt.Prefetch), Restarts: restarts,
	}, f)
}

// up makes a started process the worker's and gives it work.
func (w *workerHandle) up(p *workerProcess) {
	w.e.mu.Lock()
	w.proc, w.ready = p, !w.e.closed && p.conn != nil
	w.e.fillLocked()
	w.e.unlockAndFlush()
}

// sendLocked appends a request to the current process's socket, to be
// written by unlockAndFlush once Executor.mu is released. A write error
// means the worker is dying: its reader then reports it lost, which
// retries its tasks.
func (w *workerHandle) sendLocked(req *pb.ExecuteRequest) {
	p := w.proc
	if p == nil || p.out == nil {
		return
	}
	if flush, _ := p.out.Append(req); flush {
		w.e.toFlush = append(w.e.toFlush, p)
	}
}

// readFrom delivers the results p sends until its socket ends; the
// results it has read together are delivered as one batch
// (Options.Batch).
func (w *workerHandle) readFrom(p *workerProcess) {
	defer close(p.read)
	in := wire.NewFrameReader(p.conn)
	batch := w.e.opt.Batch
	inBatch := false
	for {
		var resp pb.ExecuteResponse
		if err := in.Read(&resp); err != nil {
			if inBatch {
				batch.Call(batch.End)
			}
			return
		}
		if !inBatch {
			inBatch = true
			batch.Call(batch.Begin)
		}
		w.e.result(w, p, &resp)
		if !in.Buffered() {
			inBatch = false
			batch.Call(batch.End)
		}
	}
}

// overran replaces the worker if it still holds the abandoned call c (task
// seq) after OverrunGrace.
func (w *workerHandle) overran(seq uint64, c *call) {
	w.e.mu.Lock()
	p := w.proc
	still := w.inflight[seq] == c
	w.e.mu.Unlock()
	if still && p != nil {
		w.e.log.Warn("worker did not stop an abandoned task in time, replacing it",
			append(tracing.LogArgs(c.ctx), "worker", w.name, "pid", p.PID(), "task", c.task.Kind, "grace", OverrunGrace)...)
		p.Kill()
	}
}

func (w *workerHandle) statsLocked() taskproto.WorkerStats {
	st := taskproto.WorkerStats{ID: w.name, State: "idle", Tasks: w.tasks, Sandbox: w.e.sandbox}
	switch {
	case !w.ready:
		st.State = "restarting"
	case len(w.inflight) > 0:
		st.State = "busy"
	}
	if w.sup != nil {
		s := w.sup.Status()
		st.PID, st.Restarts = s.PID, s.Restarts
	} else if w.proc != nil {
		st.PID, st.Restarts = w.proc.pid, w.restarts
	}
	return st
}

// stop ends supervision and the process.
func (w *workerHandle) stop() {
	w.e.mu.Lock()
	sup, p := w.sup, w.proc
	w.ready = false
	w.e.mu.Unlock()
	if sup != nil {
		sup.Stop()
		if w.lastPID != 0 {
			os.Remove(crashPath(w.lastPID))
		}
	} else if p != nil { // the host's: the plugin stops the process
		p.conn.Close()
	}
}

// cgroupName is the cgroup of this plugin's worker name under the sandbox;
// cgroupPrefix is what every one of them starts with.
func cgroupName(worker string) string { return cgroupPrefix() + worker }

func cgroupPrefix() string { return cgroupPrefixOf(os.Getpid()) }

func cgroupPrefixOf(pid int) string { return cgroupStem + strconv.Itoa(pid) + "-" }

// cgroupStem begins the name of every multiproc plugin's workers' cgroups.
const cgroupStem = "multiproc-"

// removeStaleCgroups removes the workers' cgroups of multiproc plugins
// that are gone. A plugin that is killed (SIGKILL, the host's chaos, its
// host killed) cannot remove its own, which would pile up under
// sandbox.CgroupRoot, one per worker for each plugin that ever ran. A
// plugin still running keeps its own, and a cgroup that still holds a
// process (a worker of the dead plugin still exiting) stays: the next
// sweep takes it.
func removeStaleCgroups() {
	for _, name := range sandbox.CgroupNames(cgroupStem) {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, cgroupStem), "-", 2)[0])
		if err != nil || pid == os.Getpid() || supervise.Alive(pid) {
			continue
		}
		sandbox.RemoveCgroups(cgroupPrefixOf(pid))
	}
}
