package multiproc

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wslab/wslab/taskproto/pb"
)

// worker is one worker process and its socket. Fields other than the
// socket's are guarded by Executor.mu.
type worker struct {
	e    *Executor
	name string

	ready    bool
	pid      int
	inflight map[uint64]*call
	tasks    int64
	restarts int64

	sendMu sync.Mutex
	conn   net.Conn
	out    *bufio.Writer
	cmd    *exec.Cmd
}

// start launches the worker process and its reader.
func (w *worker) start() error {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "worker-"+w.name), os.NewFile(uintptr(fds[1]), "plugin")
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}

	opt := w.e.opt
	cmd := exec.Command(opt.Exe, WorkerArg,
		"--id", w.name, "--data-dir", opt.DataDir, "--large-file-name", opt.LargeFileName,
		"--concurrency", strconv.Itoa(opt.Inflight),
		"--memory-mb", strconv.FormatInt(opt.MemoryMB, 10))
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(opt.GOMAXPROCS))
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stderr = &stderrLines{w: w}
	// The kernel kills the worker when the plugin goes; the worker also
	// exits when its socket closes or it is re-parented.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return fmt.Errorf("exec %s: %w", opt.Exe, err)
	}

	w.sendMu.Lock()
	w.conn, w.out, w.cmd = conn, bufio.NewWriter(conn), cmd
	w.sendMu.Unlock()
	w.e.mu.Lock()
	closed := w.e.closed
	w.pid, w.ready = cmd.Process.Pid, !closed
	w.e.mu.Unlock()
	if closed { // Close ran while this worker was starting
		conn.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("multiproc strategy is stopping")
	}
	w.e.log.Debug("worker started", "worker", w.name, "pid", cmd.Process.Pid)

	w.e.wg.Add(1)
	go w.read(conn, cmd)
	return nil
}

// read delivers the worker's results until its socket ends, then reports
// the worker lost and restarts it.
func (w *worker) read(conn net.Conn, cmd *exec.Cmd) {
	defer w.e.wg.Done()
	started := time.Now()
	r := bufio.NewReader(conn)
	var buf []byte
	var err error
	for {
		var resp pb.ExecuteResponse
		if err = readFrame(r, &buf, &resp); err != nil {
			break
		}
		w.e.result(w, &resp)
	}
	conn.Close()
	cmd.Process.Kill() // a worker whose socket broke is of no use
	waitErr := cmd.Wait()
	why := fmt.Errorf("%v (socket: %v)", waitErr, err)
	w.e.lost(w, why)

	select {
	case <-w.e.stop:
		return
	default:
	}
	w.e.log.Error("worker died, restarting", "worker", w.name, "pid", cmd.Process.Pid, "reason", why)
	backoff := minBackoff
	if time.Since(started) < stableAfter {
		backoff = min(maxBackoff, minBackoff<<min(w.restartCount(), 6))
	}
	for {
		select {
		case <-w.e.stop:
			return
		case <-time.After(backoff):
		}
		if err := w.start(); err != nil {
			w.e.log.Error("worker restart failed", "worker", w.name, "error", err)
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		w.e.mu.Lock()
		w.restarts++
		n := w.restarts
		next := w.e.fillLocked()
		w.e.mu.Unlock()
		w.e.log.Warn("worker restarted", "worker", w.name, "pid", w.pidNow(), "restarts", n)
		sendAll(next)
		return
	}
}

func (w *worker) restartCount() int64 {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.restarts
}

func (w *worker) pidNow() int {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.pid
}

// send writes c's task to the worker. A write error means the worker is
// dying: its reader then reports the loss, which retries c; so write errors
// need no handling here.
func (w *worker) send(c *call) {
	t := &pb.Task{Seq: c.seq, Kind: c.task.Kind, N: c.task.N}
	if dl, ok := c.ctx.Deadline(); ok {
		t.TimeoutMs = max(time.Until(dl).Milliseconds(), 1)
	}
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if c.abandoned.Load() { // its cancel went (or goes) first: never deliver it
		return
	}
	w.writeLocked(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Task{Task: t}})
}

func (w *worker) cancel(seq uint64) {
	w.write(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Cancel{Cancel: &pb.Cancel{Seq: seq}}})
}

func (w *worker) write(m *pb.ExecuteRequest) {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	w.writeLocked(m)
}

func (w *worker) writeLocked(m *pb.ExecuteRequest) {
	if writeFrame(w.out, m) == nil {
		w.out.Flush()
	}
}

// kill stops the worker process; its reader then ends.
func (w *worker) kill() {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.conn != nil {
		w.conn.Close() // the worker sees EOF and exits
	}
	if w.cmd != nil && w.cmd.Process != nil {
		w.cmd.Process.Kill()
	}
}

// stderrLines passes a worker's JSON log lines on to the plugin's stderr,
// where the host re-levels them, and logs anything else it prints (a
// panic's or the runtime's crash report) as errors naming the worker.
type stderrLines struct {
	w       *worker
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
