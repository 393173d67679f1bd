package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wslab/wslab/lab/stats"
)

// natsFloorSubject is what the bare NATS floor's responder answers on.
const natsFloorSubject = "wslab.bench.echo"

// natsPingPong is the median round trip, in µs, of a bare core-NATS
// request and its reply through an embedded server, the responder in
// another process: the least a task sent through NATS can cost, which
// distributed is held against.
func natsPingPong(ctx context.Context, n int) (float64, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return 0, fmt.Errorf("embedded NATS server: %w", err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return 0, fmt.Errorf("embedded NATS server did not start")
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, exe, ns.ClientURL())
	cmd.Env = append(os.Environ(), benchChildEnv+"=nats")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the NATS responder: %w", err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	ready := make([]byte, 1) // the responder says it has subscribed
	if _, err := io.ReadFull(stdout, ready); err != nil {
		return 0, fmt.Errorf("NATS responder: %w", err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return 0, fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	defer nc.Close()
	payload := []byte("x")
	rtts := make([]float64, 0, n)
	for i := range n + n/10 { // the first tenth warms up
		start := time.Now()
		if _, err := nc.Request(natsFloorSubject, payload, 5*time.Second); err != nil {
			return 0, fmt.Errorf("NATS request: %w", err)
		}
		if i >= n/10 {
			rtts = append(rtts, float64(time.Since(start).Nanoseconds())/1000)
		}
	}
	return stats.Median(rtts), nil
}

// natsResponderChild answers every request on natsFloorSubject at the
// server args[0], until stdin closes.
func natsResponderChild(args []string) int {
	if len(args) != 1 {
		return 2
	}
	nc, err := nats.Connect(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "NATS responder:", err)
		return 1
	}
	defer nc.Close()
	if _, err := nc.Subscribe(natsFloorSubject, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		fmt.Fprintln(os.Stderr, "NATS responder:", err)
		return 1
	}
	if err := nc.Flush(); err != nil {
		return 1
	}
	os.Stdout.Write([]byte{'!'})
	io.Copy(io.Discard, os.Stdin)
	return 0
}
