//go:build unix

package launch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto/pb"
)

// WorkersFDEnv names the environment variable whose file descriptor is
// the workers channel, when the host offers one (LaunchOptions.
// DirectWorkers).
const WorkersFDEnv = "WSLAB_WORKERS_FD"

// maxWorkerMessage bounds a workers-channel packet.
const maxWorkerMessage = 4096

// WorkerChannel joins a plugin that runs worker processes to the host, so
// that the host talks to the workers itself: the plugin sends the data
// socket of each worker it starts (SendWorker), the host asks it to kill
// a worker that overran a task (SendKill). Each message is one packet of a
// SOCK_SEQPACKET socket, the socket riding along as SCM_RIGHTS.
type WorkerChannel struct {
	conn *net.UnixConn
}

// newWorkerChannel makes the socketpair: ours, and theirs for the child.
func newWorkerChannel() (ours *WorkerChannel, theirs *os.File, err error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("workers channel socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "workers-channel")
	theirs = os.NewFile(uintptr(fds[1]), "workers-channel")
	ours, err = workerChannelOf(mine)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return ours, theirs, nil
}

func workerChannelOf(f *os.File) (*WorkerChannel, error) {
	defer f.Close() // FileConn has its own copy
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("open workers channel: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("workers channel is not a Unix socket")
	}
	return &WorkerChannel{conn: uc}, nil
}

// OpenWorkerChannel is the workers channel the host passed this plugin,
// nil when it passed none.
func OpenWorkerChannel() (*WorkerChannel, error) {
	v := os.Getenv(WorkersFDEnv)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 3 {
		return nil, fmt.Errorf("workers channel file descriptor %q is not one a parent passes", v)
	}
	return workerChannelOf(os.NewFile(uintptr(n), "workers-channel"))
}

// SendWorker hands the host a worker's data socket, sock, which the caller
// still closes.
func (w *WorkerChannel) SendWorker(m *pb.WorkerSocket, sock *os.File) error {
	b, err := proto.Marshal(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Socket{Socket: m}})
	if err != nil {
		return fmt.Errorf("encode worker %s: %w", m.GetName(), err)
	}
	if _, _, err := w.conn.WriteMsgUnix(b, syscall.UnixRights(int(sock.Fd())), nil); err != nil {
		return fmt.Errorf("send worker %s to the host: %w", m.GetName(), err)
	}
	return nil
}

// SendKill asks the plugin to kill worker name, if it is still process pid.
func (w *WorkerChannel) SendKill(name string, pid int) error {
	b, _ := proto.Marshal(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Kill{Kill: &pb.KillWorker{Name: name, Pid: int64(pid)}}})
	if _, err := w.conn.Write(b); err != nil {
		return fmt.Errorf("ask the plugin to kill worker %s: %w", name, err)
	}
	return nil
}

// Read waits for the next message. A WorkerSocket comes with its socket,
// which the caller owns; sock is nil for any other message.
func (w *WorkerChannel) Read() (m *pb.WorkerMessage, sock net.Conn, err error) {
	buf := make([]byte, maxWorkerMessage)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := w.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, net.ErrClosed // the other end closed
	}
	var fds []int
	if oobn > 0 {
		cmsgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
		for _, c := range cmsgs {
			if rights, rerr := syscall.ParseUnixRights(&c); rerr == nil {
				fds = append(fds, rights...)
			}
		}
		if perr != nil {
			err = fmt.Errorf("workers channel control message: %w", perr)
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	m = &pb.WorkerMessage{}
	if err := proto.Unmarshal(buf[:n], m); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("decode workers channel message: %w", err)
	}
	if m.GetSocket() == nil || len(fds) != 1 {
		closeAll()
		if m.GetSocket() != nil {
			return nil, nil, fmt.Errorf("worker %s came with %d sockets, want 1", m.GetSocket().GetName(), len(fds))
		}
		return m, nil, nil
	}
	syscall.CloseOnExec(fds[0])
	f := os.NewFile(uintptr(fds[0]), "worker-"+m.GetSocket().GetName())
	defer f.Close()
	if sock, err = net.FileConn(f); err != nil {
		return nil, nil, fmt.Errorf("open worker %s's socket: %w", m.GetSocket().GetName(), err)
	}
	return m, sock, nil
}

// Close ends the channel; a Read waiting returns.
func (w *WorkerChannel) Close() error { return w.conn.Close() }
