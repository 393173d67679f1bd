package conformance

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto/pb"
	"github.com/wslab/wslab/taskproto/wire"
)

// dataChannel speaks the data channel's frames itself, unlike launch.Remote, which
// answers a cancelled or overdue task at once on the host's side: the kit
// checks what the plugin itself sends, and that it sends exactly one reply
// per task.
type dataChannel struct {
	out *wire.FrameWriter

	mu      sync.Mutex
	seq     uint64
	sent    map[uint64]bool
	replies map[uint64][]*pb.ExecuteResponse
	strays  []string      // replies to tasks never sent, or sent twice
	arrived chan struct{} // closed and replaced on every reply
	ended   error         // why the channel ended; nil while it is open
}

func newWire(conn net.Conn) *dataChannel {
	w := &dataChannel{
		out:     wire.NewFrameWriter(conn),
		sent:    map[uint64]bool{},
		replies: map[uint64][]*pb.ExecuteResponse{},
		arrived: make(chan struct{}),
	}
	go w.read(conn)
	return w
}

// read collects replies until the channel ends; its owner ends it by
// closing the connection (or the plugin by exiting).
func (w *dataChannel) read(conn net.Conn) {
	in := wire.NewFrameReader(conn)
	for {
		resp := &pb.ExecuteResponse{}
		err := in.Read(resp)
		w.mu.Lock()
		if err != nil {
			w.ended = fmt.Errorf("data channel ended: %w", err)
		} else {
			seq := resp.GetSeq()
			switch {
			case !w.sent[seq]:
				w.strays = append(w.strays, fmt.Sprintf("a reply to task %d, which was never sent", seq))
			case len(w.replies[seq]) == 1:
				w.strays = append(w.strays, fmt.Sprintf("a second reply to task %d", seq))
			}
			w.replies[seq] = append(w.replies[seq], resp)
		}
		close(w.arrived)
		w.arrived = make(chan struct{})
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// send writes a task; timeout 0 gives it no deadline.
func (w *dataChannel) send(kind string, n int64, timeout time.Duration) uint64 {
	w.mu.Lock()
	w.seq++
	seq := w.seq
	w.sent[seq] = true
	w.mu.Unlock()
	w.out.Write(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Task{Task: &pb.Task{
		Seq: seq, Kind: kind, N: n, TimeoutMs: timeout.Milliseconds(),
	}}})
	return seq
}

func (w *dataChannel) cancel(seq uint64) {
	w.out.Write(&pb.ExecuteRequest{Msg: &pb.ExecuteRequest_Cancel{Cancel: &pb.Cancel{Seq: seq}}})
}

// wait waits up to limit for done, called with w.mu held, to hold.
func (w *dataChannel) wait(limit time.Duration, done func() bool) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok, arrived := done(), w.arrived
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-arrived:
		case <-deadline.C:
			return false
		}
	}
}

// await waits up to limit for task seq's reply.
func (w *dataChannel) await(seq uint64, limit time.Duration) (*pb.ExecuteResponse, error) {
	var (
		reply *pb.ExecuteResponse
		ended error
	)
	w.wait(limit, func() bool {
		if r := w.replies[seq]; len(r) > 0 {
			reply = r[0]
			return true
		}
		ended = w.ended
		return ended != nil
	})
	switch {
	case reply != nil:
		return reply, nil
	case ended != nil:
		return nil, fmt.Errorf("no reply to task %d: %w", seq, ended)
	}
	return nil, fmt.Errorf("no reply to task %d within %v", seq, limit)
}

// awaitAll waits for every task of seqs, each within limit of the call.
func (w *dataChannel) awaitAll(seqs []uint64, limit time.Duration) ([]*pb.ExecuteResponse, error) {
	end := time.Now().Add(limit)
	out := make([]*pb.ExecuteResponse, len(seqs))
	for i, seq := range seqs {
		r, err := w.await(seq, max(time.Until(end), time.Millisecond))
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// awaitEnd waits up to limit for the channel to end, and says whether it did.
func (w *dataChannel) awaitEnd(limit time.Duration) bool {
	return w.wait(limit, func() bool { return w.ended != nil })
}

// problems are the replies that should not have come.
func (w *dataChannel) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.strays...)
}
