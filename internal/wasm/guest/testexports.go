//go:build wasip1 && wasmtest

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/taskproto"
)

// What the tests build with -tags wasmtest: exports for internal/wasm's
// tests, and the attacks of internal/attacks run inside the guest in the
// place of the fib tasks they stand for. Never in the module `make build`
// ships.

func init() { override = attack }

var hoard [][]byte

// wslab_test_alloc_mb keeps n MiB allocated, to run past a memory cap.
//
//go:wasmexport wslab_test_alloc_mb
func testAllocMB(n int32) int32 {
	for range n {
		hoard = append(hoard, touched(1<<20))
	}
	return int32(len(hoard))
}

// touched is n bytes, one in each 4 KiB written, as a native attack's
// writes keep its pages resident. (A wasm memory is as large as the guest
// grew it, written or not: the writes are for likeness, and few, since
// every loop turn of the guest costs a termination check.)
func touched(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4 << 10 {
		b[i] = 1
	}
	return b
}

// wslab_test_create creates the file named by the kind the host wrote
// (wslab_input), and returns 0 when it could, 1 when it could not: the
// tests try paths outside the data directory.
//
//go:wasmexport wslab_test_create
func testCreate() int32 {
	f, err := os.Create(string(kind))
	if err != nil {
		return 1
	}
	f.Close()
	return 0
}

// spun counts the attack's turns, so that its loop does something.
var spun uint64

// attack runs the attack of internal/attacks that t stands for, as the
// native one does (attacks.go), against the targets the host passed in
// attacks.Env. What refused it is an error with the code saying so; an
// attack that worked is its result, for the test to see.
func attack(t taskproto.Task) (string, error, bool) {
	if t.Kind != taskproto.KindFib || attacks.Names[t.N] == "" {
		return "", nil, false
	}
	file, addr, _ := strings.Cut(os.Getenv(attacks.Env), ",")
	switch t.N {
	case attacks.ReadPasswd:
		b, err := os.ReadFile("/etc/passwd")
		return fmt.Sprintf("read %d bytes", len(b)), noFile(err), true
	case attacks.ReadOutside:
		b, err := os.ReadFile(file)
		return fmt.Sprintf("read %q", b), noFile(err), true
	case attacks.WriteOutside:
		return "wrote it", noFile(os.WriteFile(file, []byte("attacked"), 0o644)), true
	case attacks.Connect:
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return "", denied(err, "WASI preview 1 has no call that opens a socket; Go's wasip1 network is a fake inside the guest, with no listener at "+addr), true
		}
		c.Close()
		return "connected", nil, true
	case attacks.Fork:
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
		if err != nil {
			return "", denied(err, "WASI has no call that starts a process"), true
		}
		_, err = p.Wait()
		return "started /bin/true", err, true
	case attacks.Allocate:
		for range 1 << 16 { // 64 GiB, beyond any wasm32 memory
			hoard = append(hoard, touched(1<<20))
		}
		return "allocated 64 GiB", nil, true
	case attacks.Spin:
		// Deaf to its context: no look at the host's cancelled, no call
		// out of the guest at all.
		for spun = 0; spun < 1<<62; spun++ {
		}
		return "spun", nil, true
	}
	return "", nil, false
}

// noFile is sandbox_denied for a file the guest has no way to reach: one
// outside its only preopened directory has no descriptor to open it
// against (EBADF), or is not there (ENOENT) or not allowed (ENOTCAPABLE).
// Any other error is as it came.
func noFile(err error) error {
	if errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTCAPABLE) {
		return denied(err, "WASI gives the guest only its preopened data directory /data, and this file is outside it")
	}
	return err
}

// denied is sandbox_denied saying what refused err.
func denied(err error, why string) error {
	if err == nil {
		return nil
	}
	return taskproto.Errorf(taskproto.CodeSandboxDenied, "%v (refused by the wasm sandbox: %s)", err, why)
}

// wslab_test_panic panics, as a guest task with a bug would: Go's runtime
// prints the panic and ends the instance (proc_exit).
//
//go:wasmexport wslab_test_panic
func testPanic() int32 {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return 0
}
