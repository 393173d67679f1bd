package host

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// WebSocket opcodes the host writes (RFC 6455 section 5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// maxFrameHeader is the longest header of an unmasked server frame.
const maxFrameHeader = 10

// appendFrame appends one unmasked, unfragmented frame. The host builds its
// frames itself so that replies ready together leave in one write: gorilla
// writes each message with a system call of its own.
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	dst = append(dst, 0x80|opcode) // FIN
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closePayload is a close frame's body: the status code and a reason,
// which RFC 6455 bounds to 123 bytes.
func closePayload(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// lockedConn serializes writes to a WebSocket's connection: the host's
// batches and the few frames gorilla writes itself (the close it sends on a
// protocol error or an oversized frame) never interleave mid-frame.
type lockedConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time       // gorilla's, for gorilla's writes
	raw      syscall.RawConn // for tryWrite; nil when the connection has no socket of its own (TLS)
}

func newLockedConn(c net.Conn) *lockedConn {
	lc := &lockedConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok && rawSockets {
		lc.raw, _ = sc.SyscallConn()
	}
	return lc
}

// tryWrite writes what of p the socket takes now, without waiting: the
// goroutine that has a reply ready writes it itself when it can, and only
// a client that is slow to read costs a writer goroutine. It returns how
// much went; when only part of p did, the lock is kept (held) so that
// nothing is written in the middle of the frame, and the caller finishes
// with writeHeld.
func (c *lockedConn) tryWrite(p []byte) (n int, held bool) {
	if c.raw == nil || !c.mu.TryLock() {
		return 0, false
	}
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = writeNonBlocking(fd, p)
		return true // never wait: the writer goroutine does
	})
	if err != nil || werr != nil || n < 0 {
		n = 0
	}
	if n > 0 && n < len(p) {
		return n, true
	}
	c.mu.Unlock()
	return n, false
}

// writeHeld finishes a write tryWrite began, and releases the lock.
func (c *lockedConn) writeHeld(p []byte, deadline time.Time) error {
	defer c.mu.Unlock()
	c.Conn.SetWriteDeadline(deadline)
	_, err := c.Conn.Write(p)
	return err
}

// SetWriteDeadline records gorilla's deadline for its next Write; the
// host's batches carry their own.
func (c *lockedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *lockedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Conn.SetWriteDeadline(c.deadline)
	return c.Conn.Write(p)
}

// writeBatch writes p with its own deadline.
func (c *lockedConn) writeBatch(p []byte, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Conn.SetWriteDeadline(deadline)
	_, err := c.Conn.Write(p)
	return err
}

// waitReadable blocks until the socket has something to read (or its read
// deadline passes), from a shallow stack: an idle connection's reader waits
// here rather than deep inside gorilla, so that its goroutine keeps the
// smallest stack. On a connection with no socket of its own it returns at
// once.
func (c *lockedConn) waitReadable() error {
	if c.raw == nil {
		return nil
	}
	// Anything there (or the end, or an error) is gorilla's to read; only
	// "nothing yet" waits for the poller.
	return c.raw.Read(func(fd uintptr) bool { return !nothingToRead(fd) })
}

// messageBuffered says whether buf, what the client has sent and the host
// not read yet, begins with a whole data message: complete frames up to
// one that ends a message (FIN set, not a control frame). Reading that
// message cannot wait on the network.
func messageBuffered(buf []byte) bool {
	for len(buf) >= 2 {
		fin, control := buf[0]&0x80 != 0, buf[0]&0x08 != 0
		n, head := uint64(buf[1]&0x7f), 2
		switch n {
		case 126:
			if len(buf) < 4 {
				return false
			}
			n, head = uint64(binary.BigEndian.Uint16(buf[2:])), 4
		case 127:
			if len(buf) < 10 {
				return false
			}
			n, head = binary.BigEndian.Uint64(buf[2:]), 10
		}
		if buf[1]&0x80 != 0 { // masked, as every client frame is
			head += 4
		}
		if len(buf) < head || n > uint64(len(buf)-head) {
			return false
		}
		if fin && !control {
			return true
		}
		buf = buf[uint64(head)+n:]
	}
	return false
}

// hijacker hands gorilla's upgrader a lockedConn instead of the raw
// connection it hijacks, and a read buffer of the host's size that the host
// can look into (br).
type hijacker struct {
	http.ResponseWriter
	conn *lockedConn
	br   *bufio.Reader
}

var errNotHijackable = errors.New("response writer does not support hijacking")

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errNotHijackable
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = newLockedConn(c)
	if brw.Reader.Buffered() > 0 {
		return h.conn, brw, nil // data before the handshake: gorilla refuses it
	}
	h.br = bufio.NewReaderSize(h.conn, readBufferSize)
	return h.conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// bufPool holds reply batches and request buffers between uses, so that an
// idle connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf is the largest buffer worth keeping in bufPool.
const maxPooledBuf = 64 << 10

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > maxPooledBuf || cap(b) == 0 {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}
