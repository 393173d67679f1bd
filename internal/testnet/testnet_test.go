package testnet

import (
	"net"
	"testing"
	"time"
)

// Each connection made is counted once, those in flight too.
func TestCountingListener(t *testing.T) {
	ln := Listen(t)
	if n := ln.Accepted(); n != 0 {
		t.Fatalf("%d accepted before any dial", n)
	}
	for range 3 {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if n := ln.Accepted(); n != 3 {
		t.Errorf("%d accepted, want 3", n)
	}
}
