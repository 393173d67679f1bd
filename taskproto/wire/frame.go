package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"
)

// MaxFrame bounds one message on a data channel; the largest reply, a fib
// result of the largest n a configuration may allow in practice, is a few
// megabytes at most.
const MaxFrame = 16 << 20

// readBufferSize is the buffer of a FrameReader: several small frames per
// read system call.
const readBufferSize = 64 << 10

// AppendFrame appends m as a 4-byte big-endian length and its protobuf
// encoding.
func AppendFrame(dst []byte, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], fmt.Errorf("encode frame: %w", err)
	}
	n := len(dst) - start - 4
	if n > MaxFrame {
		return dst[:start], fmt.Errorf("encode frame: %d bytes exceed %d", n, MaxFrame)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// FrameReader reads length-prefixed protobuf frames.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, readBufferSize)}
}

// Read reads the next frame into m.
func (fr *FrameReader) Read(m proto.Message) error {
	var n [4]byte
	if _, err := io.ReadFull(fr.r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", size, MaxFrame)
	}
	if cap(fr.buf) < int(size) {
		fr.buf = make([]byte, size)
	}
	b := fr.buf[:size]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// Buffered reports whether a whole frame may already be read without a
// system call: the reader's caller then holds its writes back until the
// batch is done (see FrameWriter.Hold). A frame only partly read is not:
// the rest may be long in coming, and what was held would wait for it.
func (fr *FrameReader) Buffered() bool {
	n := fr.r.Buffered()
	if n < 4 {
		return false
	}
	head, _ := fr.r.Peek(4)
	return n >= 4+int(binary.BigEndian.Uint32(head))
}

// FrameWriter writes frames from many goroutines with as few system calls
// as it can: a frame appended while another goroutine is writing goes out
// with that goroutine's next write, so that frames that are ready together
// leave together. The goroutine that finds nothing being written writes
// itself; no goroutine waits for work.
type FrameWriter struct {
	w io.Writer

	mu      sync.Mutex
	buf     []byte // frames not yet handed to w
	spare   []byte
	writing bool // a goroutine is in w.Write
	held    int  // Hold calls not yet released: append only
	err     error
}

// NewFrameWriter writes frames to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// ErrWriterBroken is returned by Write once a write to the underlying
// writer has failed.
var ErrWriterBroken = errors.New("data channel write failed")

// Append adds m to what is to be written and reports whether the caller
// must call Flush (it is then the one to write). Callers that must order
// frames against other state append under their own lock and flush after
// releasing it.
func (fw *FrameWriter) Append(m proto.Message) (mustFlush bool, err error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return false, fw.err
	}
	if fw.buf, err = AppendFrame(fw.buf, m); err != nil {
		return false, err
	}
	if fw.writing || fw.held > 0 {
		return false, nil
	}
	fw.writing = true
	return true, nil
}

// Flush writes what is buffered, and what others append meanwhile, after
// an Append that said so.
func (fw *FrameWriter) Flush() {
	fw.mu.Lock()
	for len(fw.buf) > 0 && fw.err == nil && fw.held == 0 {
		b := fw.buf
		fw.buf = fw.spare[:0]
		fw.mu.Unlock()
		_, err := fw.w.Write(b)
		fw.mu.Lock()
		fw.spare = b[:0]
		if err != nil {
			fw.err = fmt.Errorf("%w: %v", ErrWriterBroken, err)
		}
	}
	fw.writing = false
	fw.mu.Unlock()
}

// Write appends m and writes it unless another goroutine is writing.
func (fw *FrameWriter) Write(m proto.Message) error {
	flush, err := fw.Append(m)
	if flush {
		fw.Flush()
	}
	return err
}

// Hold makes appends wait in the buffer until Release: a reader that
// handles a batch of incoming frames holds the replies they cause and
// sends them with one write.
func (fw *FrameWriter) Hold() {
	fw.mu.Lock()
	fw.held++
	fw.mu.Unlock()
}

// Release ends a Hold and writes what it held back.
func (fw *FrameWriter) Release() {
	fw.mu.Lock()
	fw.held--
	flush := fw.held == 0 && !fw.writing && len(fw.buf) > 0
	if flush {
		fw.writing = true
	}
	fw.mu.Unlock()
	if flush {
		fw.Flush()
	}
}
