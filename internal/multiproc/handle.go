package multiproc

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/plugin"
)

// workerHandle is the plugin's handle on one worker process: the process
// comes and goes (a supervisor restarts it), the handle stays. Fields
// marked so are guarded by Executor.mu.
type workerHandle struct {
	e    *Executor
	name string
	sup  *supervise.Supervisor

	// Guarded by Executor.mu.
	ready    bool
	proc     *workerProcess // the current process; nil before the first start
	inflight map[uint64]*call
	tasks    int64
}

// workerProcess is one run of a worker: the process, its socket, and the
// goroutines that write and read that socket.
type workerProcess struct {
	cmd  *supervise.Command
	conn net.Conn
	out  *plugin.FrameWriter
	kick chan struct{} // out has frames for the writer goroutine
	read chan struct{} // closed when the reader has stopped
}

func (p *workerProcess) PID() int { return p.cmd.PID() }

// Kill closes the socket and kills the process.
func (p *workerProcess) Kill() {
	p.conn.Close()
	p.cmd.Kill()
}

// Wait returns once the socket has ended and the process has exited: a
// worker whose socket broke is of no use, so it is killed too.
func (p *workerProcess) Wait() error {
	<-p.read
	p.Kill()
	return p.cmd.Wait()
}

func (w *workerHandle) start() error {
	sup, err := supervise.Start(context.Background(), supervise.Options{
		Name:  "worker " + w.name,
		Start: w.launch,
		Log:   w.e.log,
		Up:    func(p supervise.Process) { w.up(p.(*workerProcess)) },
		Down:  func(p supervise.Process, err error) { w.e.lost(w, p.PID(), err) },
	})
	if err != nil {
		return err
	}
	w.e.mu.Lock()
	w.sup = sup
	w.e.mu.Unlock()
	return nil
}

// launch starts a worker process on a fresh socketpair.
func (w *workerHandle) launch(context.Context) (supervise.Process, error) {
	ours, theirs, err := plugin.NewChannel("worker-" + w.name)
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	opt := w.e.opt
	cmd := exec.Command(opt.Exe, WorkerArg,
		"--id", w.name, "--data-dir", opt.DataDir, "--large-file-name", opt.LargeFileName,
		"--concurrency", strconv.Itoa(opt.Inflight),
		// The plugin never sends a worker more than this: its queue cannot fill.
		"--queue", strconv.Itoa(opt.Inflight+opt.Prefetch),
		"--memory-mb", strconv.FormatInt(opt.MemoryMB, 10))
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(opt.GOMAXPROCS), plugin.DataFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stderr = &stderrLines{w: w}
	// In the plugin's process group: the host's kill of that group ends
	// workers too; the parent-death signal and the socket cover the rest.
	c, err := supervise.Spawn(cmd, false)
	if err != nil {
		ours.Close()
		return nil, err
	}
	p := &workerProcess{cmd: c, conn: ours, out: plugin.NewFrameWriter(ours), kick: make(chan struct{}, 1), read: make(chan struct{})}
	go p.write()
	go w.readFrom(p)
	w.e.log.Debug("worker started", "worker", w.name, "pid", c.PID())
	return p, nil
}

// up makes a started process the worker's and gives it work.
func (w *workerHandle) up(p *workerProcess) {
	w.e.mu.Lock()
	w.proc, w.ready = p, !w.e.closed
	w.e.fillLocked()
	w.e.unlockAndFlush(nil)
}

// sendLocked appends a request to the current process's socket, to be
// written by flushSent once Executor.mu is released. A write error means
// the worker is dying: its reader then reports it lost, which retries its
// tasks.
func (w *workerHandle) sendLocked(req *pb.ExecuteRequest) {
	p := w.proc
	if p == nil {
		return
	}
	if flush, _ := p.out.Append(req); flush {
		w.e.toFlush = append(w.e.toFlush, p)
	}
}

// kick has p's writer goroutine write what is appended.
func (p *workerProcess) kickWriter() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// write flushes the socket whenever there is something to write, until the
// reader stops.
func (p *workerProcess) write() {
	for {
		select {
		case <-p.kick:
			p.out.Flush()
		case <-p.read:
			return
		}
	}
}

// readFrom delivers the results p sends until its socket ends.
func (w *workerHandle) readFrom(p *workerProcess) {
	defer close(p.read)
	in := plugin.NewFrameReader(p.conn)
	for {
		var resp pb.ExecuteResponse
		if err := in.Read(&resp); err != nil {
			return
		}
		w.e.result(w, p, &resp)
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
			"worker", w.name, "pid", p.PID(), "task", c.task.Kind, "grace", OverrunGrace)
		p.Kill()
	}
}

func (w *workerHandle) statsLocked() taskproto.WorkerStats {
	st := taskproto.WorkerStats{ID: w.name, State: "idle", Tasks: w.tasks}
	switch {
	case !w.ready:
		st.State = "restarting"
	case len(w.inflight) > 0:
		st.State = "busy"
	}
	if w.sup != nil {
		s := w.sup.Status()
		st.PID, st.Restarts = s.PID, s.Restarts
	}
	return st
}

// stop ends supervision and the process.
func (w *workerHandle) stop() {
	w.e.mu.Lock()
	sup := w.sup
	w.ready = false
	w.e.mu.Unlock()
	if sup != nil {
		sup.Stop()
	}
}

// stderrLines passes a worker's JSON log lines on to the plugin's stderr,
// where the host re-levels them, and logs anything else it prints (a
// panic's or the runtime's crash report) as errors naming the worker.
type stderrLines struct {
	w       *workerHandle
	partial []byte
}

func (s *stderrLines) Write(p []byte) (int, error) {
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := s.partial[:i+1]
		if bytes.HasPrefix(line, []byte("{")) {
			os.Stderr.Write(line)
		} else if text := strings.TrimSpace(string(line)); text != "" {
			s.w.e.log.Error("worker output", "worker", s.w.name, "line", text)
		}
		s.partial = s.partial[i+1:]
	}
}
