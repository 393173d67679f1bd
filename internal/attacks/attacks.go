// Package attacks is a task set that attacks its own sandbox, for tests:
// each attack stands in for a fib task of a chosen n (a kind outside the
// protocol would never reach a strategy), and does what a hostile task
// would. No shipped binary imports it; internal/e2e/faultyplugin does.
package attacks

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// Env names the targets, "FILE,ADDR": a file outside the data directory
// the attacks read and write, and a TCP listener they connect to.
const Env = "WSLAB_ATTACK_TARGETS"

// The attacks, by the n of the fib task they replace.
const (
	ReadPasswd   int64 = 9001 + iota // read /etc/passwd
	ReadOutside                      // read the file outside the data directory
	WriteOutside                     // overwrite it
	Connect                          // open a TCP connection to the listener
	Fork                             // start a process
	Allocate                         // allocate far past any memory cap
	Spin                             // loop past the deadline, deaf to cancellation
)

// Names are the attacks' names, by n, as tests and the lab's table show them.
var Names = map[int64]string{
	ReadPasswd: "read /etc/passwd", ReadOutside: "read outside the data directory",
	WriteOutside: "write outside the data directory", Connect: "connect to a loopback listener",
	Fork: "start a process", Allocate: "allocate past the memory cap", Spin: "loop past the deadline",
}

// Wrap runs the attacks in e's place.
func Wrap(e taskproto.Executor) taskproto.Executor {
	file, addr, _ := strings.Cut(os.Getenv(Env), ",")
	return &executor{Executor: e, file: file, addr: addr}
}

type executor struct {
	taskproto.Executor
	file, addr string
}

var held [][]byte // what Allocate holds on to

func (x *executor) Submit(ctx context.Context, t taskproto.Task, done taskproto.Done) {
	if t.Kind != taskproto.KindFib || Names[t.N] == "" {
		x.Executor.Submit(ctx, t, done)
		return
	}
	go func() {
		start := time.Now()
		v, err := x.attack(t.N)
		done(taskproto.Result{Value: v, Worker: "attacker", Run: time.Since(start)}, err)
	}()
}

func (x *executor) attack(n int64) (string, error) {
	switch n {
	case ReadPasswd:
		b, err := os.ReadFile("/etc/passwd")
		return fmt.Sprintf("read %d bytes", len(b)), err
	case ReadOutside:
		b, err := os.ReadFile(x.file)
		return fmt.Sprintf("read %q", b), err
	case WriteOutside:
		return "wrote it", os.WriteFile(x.file, []byte("attacked"), 0o644)
	case Connect:
		c, err := net.DialTimeout("tcp", x.addr, 2*time.Second)
		if err != nil {
			return "", err
		}
		c.Close()
		return "connected", nil
	case Fork:
		// os.StartProcess with no files: exec.Command would open
		// /dev/null first, which Landlock refuses before any fork.
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
		if err != nil {
			return "", err
		}
		_, err = p.Wait()
		return "started /bin/true", err
	case Allocate:
		for range 1 << 16 { // 64 GiB at most
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			held = append(held, b)
		}
		return "allocated 64 GiB", nil
	case Spin:
		deadline := time.Now().Add(time.Hour)
		for time.Now().Before(deadline) {
		}
		return "spun an hour", nil
	}
	return "", fmt.Errorf("no attack %d", n)
}
