package host

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wslab/wslab/internal/limit"
)

// clientFrame is a frame as a client sends it: masked, here with a zero
// key, so that the payload stays readable.
func clientFrame(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// dialRaw opens a WebSocket connection to ts and returns its socket too,
// for a test that writes frames itself; it is closed when the test ends.
func dialRaw(t *testing.T, ts *testServer) (*websocket.Conn, net.Conn) {
	t.Helper()
	var raw net.Conn
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		raw = c
		return c, err
	}}
	ws, _, err := d.Dial(ts.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, raw
}

func TestMessageBuffered(t *testing.T) {
	text := clientFrame(true, opText, []byte(`{"id":1,"task":"noop"}`))
	long := clientFrame(true, opText, bytes.Repeat([]byte("x"), 300))
	huge := clientFrame(true, opText, bytes.Repeat([]byte("x"), 70000))
	ping := clientFrame(true, opPing, []byte("p"))
	first := clientFrame(false, opText, []byte("a"))
	last := clientFrame(true, 0, []byte("b"))
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name string
		buf  []byte
		want bool
	}{
		{"empty", nil, false},
		{"one byte", text[:1], false},
		{"header only", text[:6], false},
		{"all but one byte", text[:len(text)-1], false},
		{"whole", text, true},
		{"whole and more", cat(text, text[:3]), true},
		{"16-bit length, cut in the length", long[:3], false},
		{"16-bit length, whole", long, true},
		{"64-bit length, cut in the length", huge[:9], false},
		{"64-bit length, cut in the payload", huge[:1000], false},
		{"64-bit length, whole", huge, true},
		{"control frame alone", ping, false},
		{"control frame, then a whole message", cat(ping, text), true},
		{"control frame, then part of one", cat(ping, text[:5]), false},
		{"first fragment alone", first, false},
		{"both fragments", cat(first, last), true},
		{"fragments with a control frame between", cat(first, ping, last), true},
		{"length past the end of memory", []byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
	} {
		if got := messageBuffered(c.buf); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRepliesNotHeldForAPartialMessage: the reader holds its replies back
// only while the client's next message is whole in its buffer. A client
// that sends one request and the start of the next, then waits, gets its
// first reply; the second comes once the rest of its frame does.
func TestRepliesNotHeldForAPartialMessage(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t)})
	ws, raw := dialRaw(t, ts)
	second := clientFrame(true, opText, []byte(`{"id":"b","task":"noop"}`))
	out := append(clientFrame(true, opText, []byte(`{"id":"a","task":"noop"}`)), clientFrame(true, opPing, nil)...)
	out = append(out, second[:7]...)
	raw.SetWriteDeadline(time.Now().Add(guard))
	if _, err := raw.Write(out); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, ws); idOf(r) != "a" || !r.OK {
		t.Fatalf("first reply %+v", r)
	}
	if _, err := raw.Write(second[7:]); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, ws); idOf(r) != "b" || !r.OK {
		t.Fatalf("second reply %+v", r)
	}
}

// TestReaderBatchOfRequests: requests that arrive in one write are all
// answered, in as few writes as the reader makes of them.
func TestReaderBatchOfRequests(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t), MaxInflight: 64})
	ws, raw := dialRaw(t, ts)
	const n = 50
	var out []byte
	for i := range n {
		out = append(out, clientFrame(true, opText, []byte(`{"id":"r`+strings.Repeat("x", i%3)+`","task":"noop"}`))...)
	}
	raw.SetWriteDeadline(time.Now().Add(guard))
	if _, err := raw.Write(out); err != nil {
		t.Fatal(err)
	}
	for range n {
		if r := readReply(t, ws); !r.OK || !strings.HasPrefix(idOf(r), "r") {
			t.Fatalf("reply %+v", r)
		}
	}
}

// FuzzMessageBuffered: whatever a client sends, the check neither panics
// nor changes its mind when more bytes come.
func FuzzMessageBuffered(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte(`{"id":1,"task":"noop"}`)), []byte{1})
	f.Add(clientFrame(false, opText, []byte("a")), clientFrame(true, 0, []byte("b")))
	f.Add(clientFrame(true, opPing, nil), []byte{0x81, 0xfe, 0x01})
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []byte{0})
	f.Fuzz(func(t *testing.T, buf, more []byte) {
		if messageBuffered(buf) && !messageBuffered(append(buf[:len(buf):len(buf)], more...)) {
			t.Errorf("whole with %x, not with %x more", buf, more)
		}
	})
}

// TestReaderBatchesAcrossConnections: with a window of one task, whoever
// ends a task hands the next one over, often a task of another connection
// whose reader is inside a batch of its own. Every reply still arrives:
// one held back for a batch is written at that batch's end, by its reader.
func TestReaderBatchesAcrossConnections(t *testing.T) {
	ts := startServer(t, Options{Strategy: inproc(t), MaxInflight: 64, Window: limit.New(1, 1, 1, time.Second)})
	const conns, rounds, perWrite = 6, 20, 8
	errs := make(chan error, conns)
	for c := range conns {
		ws, raw := dialRaw(t, ts)
		go func() {
			errs <- func() error {
				for i := range rounds {
					var out []byte
					for j := range perWrite {
						out = append(out, clientFrame(true, opText, fmt.Appendf(nil, `{"id":"%d-%d-%d","task":"fib","n":%d}`, c, i, j, j))...)
					}
					raw.SetWriteDeadline(time.Now().Add(guard))
					if _, err := raw.Write(out); err != nil {
						return err
					}
					ws.SetReadDeadline(time.Now().Add(guard))
					for range perWrite {
						var r reply
						if err := ws.ReadJSON(&r); err != nil {
							return fmt.Errorf("connection %d, round %d: %w", c, i, err)
						}
						if !r.OK {
							return fmt.Errorf("connection %d: reply %+v", c, r)
						}
					}
				}
				return nil
			}()
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
