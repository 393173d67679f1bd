package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/wslab/wslab/taskproto/pb"
)

// countingWriter counts writes.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func TestFramesRoundTrip(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	msgs := []*pb.ExecuteRequest{
		TaskRequest(&pb.Task{Seq: 1, Kind: "fib", N: 90, TimeoutMs: 100000}),
		CancelRequest(1),
		TaskRequest(&pb.Task{Seq: 2, Kind: "noop"}),
	}
	for _, m := range msgs {
		if err := fw.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(&w.buf)
	for i, want := range msgs {
		var got pb.ExecuteRequest
		if err := fr.Read(&got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.String() != want.String() {
			t.Errorf("frame %d: %v, want %v", i, &got, want)
		}
	}
}

// Frames appended while held leave with one write.
func TestHoldCoalesces(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	fw.Hold()
	for i := range 50 {
		if err := fw.Write(CancelRequest(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if w.writes != 0 {
		t.Fatalf("%d writes while held", w.writes)
	}
	fw.Release()
	if w.writes != 1 {
		t.Errorf("%d writes for 50 held frames, want 1", w.writes)
	}
	fr := NewFrameReader(&w.buf)
	for i := range 50 {
		var got pb.ExecuteRequest
		if err := fr.Read(&got); err != nil || got.GetCancel().GetSeq() != uint64(i) {
			t.Fatalf("frame %d: %v, %v", i, &got, err)
		}
	}
}

// Concurrent writers lose and garble nothing.
func TestConcurrentWriters(t *testing.T) {
	w := &countingWriter{}
	fw := NewFrameWriter(w)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fw.Write(CancelRequest(uint64(g*1000 + i)))
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	fr := NewFrameReader(&w.buf)
	for {
		var got pb.ExecuteRequest
		if err := fr.Read(&got); err != nil {
			break
		}
		seen[got.GetCancel().GetSeq()] = true
	}
	if len(seen) != 4000 {
		t.Errorf("read %d distinct frames, want 4000", len(seen))
	}
}

func TestOversizedFrameRefused(t *testing.T) {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(MaxFrame+1))
	var got pb.ExecuteRequest
	if err := NewFrameReader(&b).Read(&got); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized frame: %v", err)
	}
	big := &pb.ExecuteResponse{Result: strings.Repeat("9", MaxFrame)}
	if _, err := AppendFrame(nil, big); err == nil {
		t.Error("encoding an oversized frame succeeded")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// After a failed write every later write says the channel is broken.
func TestWriterBroken(t *testing.T) {
	fw := NewFrameWriter(failingWriter{})
	fw.Write(CancelRequest(1))
	if err := fw.Write(CancelRequest(2)); !errors.Is(err, ErrWriterBroken) {
		t.Errorf("write after a failure: %v, want ErrWriterBroken", err)
	}
}

// Buffered counts only whole frames: a reader that holds its writes while
// frames are buffered must not hold them for the rest of one still coming.
func TestBufferedMeansAWholeFrame(t *testing.T) {
	var b bytes.Buffer
	w := NewFrameWriter(&b)
	for _, seq := range []uint64{1, 2} {
		if err := w.Write(&pb.ExecuteResponse{Seq: seq, Result: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	whole := b.Bytes()
	second := len(whole) / 2 // both frames are the same size
	in := NewFrameReader(bytes.NewReader(whole[:len(whole)-1]))
	var m pb.ExecuteResponse
	if err := in.Read(&m); err != nil || m.GetSeq() != 1 {
		t.Fatalf("first frame: %v %v", &m, err)
	}
	if in.Buffered() {
		t.Errorf("Buffered with %d of the second frame's %d bytes read", len(whole)-1-second, second)
	}
	in = NewFrameReader(bytes.NewReader(whole))
	if err := in.Read(&m); err != nil {
		t.Fatal(err)
	}
	if !in.Buffered() {
		t.Error("not Buffered with the whole second frame read")
	}
}
