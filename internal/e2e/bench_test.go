//go:build linux

package e2e

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkNoopRoundTrip is one JSON noop request and its reply through a
// real host, sequentially on one connection: the fixed cost of each
// strategy (inproc has no plugin hop; the others pay a gRPC stream hop,
// multiproc a socket hop to a worker on top).
//
//	go test -run '^$' -bench 'NoopRoundTrip|UnixSocketPingPong' -count 5 ./internal/e2e
func BenchmarkNoopRoundTrip(b *testing.B) {
	for _, s := range strategies {
		b.Run(s, func(b *testing.B) {
			h := startHost(b, s, "")
			ws := h.dial(b)
			frame := []byte(`{"id":1,"task":"noop"}`)
			for b.Loop() {
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					b.Fatal(err)
				}
				if _, _, err := ws.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// echoChildEnv makes the test binary, re-executed, echo bytes on fd 3.
const echoChildEnv = "WSLAB_E2E_ECHO_CHILD"

// runEchoChild is the child of BenchmarkUnixSocketPingPong.
func runEchoChild() int {
	f := os.NewFile(3, "socket")
	buf := make([]byte, 1)
	for {
		if _, err := io.ReadFull(f, buf); err != nil {
			return 0
		}
		if _, err := f.Write(buf); err != nil {
			return 0
		}
	}
}

// BenchmarkUnixSocketPingPong is one byte to another process over a Unix
// socketpair and back: the floor any process hop pays on this machine.
func BenchmarkUnixSocketPingPong(b *testing.B) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), echoChildEnv+"=1")
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); cmd.Wait() })
	buf := []byte{'x'}
	for b.Loop() {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCPUTask is the throughput of cpu tasks (n = 2·10^6, about
// 0.6 ms each) kept 8 in flight on one connection, per strategy and, for
// multiproc, per worker count. ns/op is the time per task at that rate.
//
//	go test -run '^$' -bench CPUTask -count 5 ./internal/e2e
func BenchmarkCPUTask(b *testing.B) {
	for _, c := range []struct{ name, strategy, ini string }{
		{"inproc", "inproc", ""},
		{"pool", "pool", ""},
		{"multiproc-1", "multiproc", "[other]\nmultiprocessing_processes = 1\n"},
		{"multiproc-2", "multiproc", "[other]\nmultiprocessing_processes = 2\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := startHost(b, c.strategy, c.ini)
			ws := h.dial(b)
			frame := []byte(`{"task":"cpu","n":2000000}`)
			const window = 8
			sent, got := 0, 0
			for b.Loop() {
				for sent-got < window {
					if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				if _, msg, err := ws.ReadMessage(); err != nil {
					b.Fatal(err)
				} else if !bytes.Contains(msg, []byte(`"ok":true`)) {
					b.Fatalf("reply %s", msg)
				}
				got++
			}
			for ; got < sent; got++ { // drain before the host stops
				ws.ReadMessage()
			}
		})
	}
}
