// Package testnet holds network helpers for tests: a loopback listener
// that counts the connections it accepts, for the tests that check a
// confined task could connect to nothing.
package testnet

import (
	"net"
	"sync"
	"testing"
	"time"
)

// CountingListener accepts on loopback, closes each connection at once
// and counts them. It is closed when the test ends.
type CountingListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

// Listen starts a CountingListener on a loopback port of its choosing.
func Listen(t testing.TB) *CountingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &CountingListener{Listener: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.mu.Lock()
			cl.n++
			cl.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return cl
}

// settle is how long Accepted waits for an accept in flight (a
// connection the kernel has completed that Accept has not returned yet).
const settle = 50 * time.Millisecond

// Accepted is how many connections the listener has accepted, an accept
// in flight included.
func (l *CountingListener) Accepted() int {
	time.Sleep(settle)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
