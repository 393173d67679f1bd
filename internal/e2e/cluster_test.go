//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wslab/wslab/internal/hostproc"
)

// clProc is a process the cluster test started and stops by its PID.
type clProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *hostproc.Buffer
	exited chan struct{}
}

// clStart starts exe with args, capturing stderr, and stops it by its PID
// when the test ends: SIGTERM, then SIGKILL after 5 s.
func clStart(t *testing.T, name, exe string, args ...string) *clProc {
	t.Helper()
	p := &clProc{name: name, stderr: &hostproc.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", p.name, p.cmd.Process.Pid, p.stderr)
		}
	})
	return p
}

func (p *clProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the exit, with SIGKILL after grace.
func (p *clProc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		syscall.Kill(p.pid(), syscall.SIGKILL)
		<-p.exited
	}
}

// clWaitOutput waits until the process's output contains s.
func (p *clProc) clWaitOutput(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), s) {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before %q; output:\n%s", p.name, s, p.stderr)
		default:
		}
	}
	t.Fatalf("%s: no %q in %s; output:\n%s", p.name, s, limit, p.stderr)
}

// clNATSServer finds nats-server or skips the test.
func clNATSServer(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	t.Skip("nats-server not found in PATH nor at /usr/sbin/nats-server; install it (apt-get install nats-server) to run the NATS cluster test")
	return ""
}

// clWaitJetStream waits until JetStream in the cluster has a meta leader
// and can create an R3 stream.
func clWaitJetStream(t *testing.T, urls, token string) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.Token(token), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	try := func(what string, f func(ctx context.Context) error) {
		var err error
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = f(ctx)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("JetStream cluster not ready in 30 s (%s): %v", what, err)
	}
	try("account info", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	try("R3 probe stream", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "CLUSTER_PROBE", Subjects: []string{"cluster.probe"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		if err != nil {
			return err
		}
		if err := js.DeleteStream(ctx, "CLUSTER_PROBE"); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		return nil
	})
}

// clCollect reads replies on ws until it has one for every id in want or
// the deadline passes; a duplicate or an unexpected id fails the test.
func clCollect(t *testing.T, ws *websocket.Conn, want map[string]bool, deadline time.Time) map[string]reply {
	t.Helper()
	got := map[string]reply{}
	for len(got) < len(want) {
		limit := time.Until(deadline)
		if limit <= 0 {
			break
		}
		msg, err := read(ws, limit)
		if err != nil {
			break
		}
		var r reply
		if err := json.Unmarshal([]byte(msg), &r); err != nil {
			t.Errorf("reply %q is not JSON: %v", msg, err)
			continue
		}
		id, _ := strconv.Unquote(string(r.ID))
		if !want[id] {
			t.Errorf("reply for an id never sent here: %s", msg)
			continue
		}
		if _, dup := got[id]; dup {
			t.Errorf("second reply for %s: %s", id, msg)
			continue
		}
		got[id] = r
	}
	// Nothing more may arrive (the read's timeout ends the connection).
	if msg, err := read(ws, 500*time.Millisecond); err == nil {
		t.Errorf("extra reply %s", msg)
	}
	return got
}

// TestDistributedNATSCluster: the distributed strategy on a real 3-node
// NATS cluster with an R3 stream and external workers on different nodes.
// Under pipelined load a worker is SIGKILLed mid-task and a NATS node is
// stopped; every request still gets exactly one right reply.
func TestDistributedNATSCluster(t *testing.T) {
	server := clNATSServer(t)
	token := "cl-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	// 1. Three nodes, fully meshed routes, JetStream on.
	var client, route [3]int
	for i := range 3 {
		client[i], route[i] = freePort(t), freePort(t)
	}
	clientURL := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", client[i]) }
	routeURL := func(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", route[i]) }
	store := t.TempDir()
	var nodes [3]*clProc
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, routeURL(j))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		nodes[i] = clStart(t, "nats-server "+name, server,
			"-a", "127.0.0.1", "-p", strconv.Itoa(client[i]),
			"--server_name", name, "--cluster_name", "wslab",
			"--cluster", routeURL(i), "--routes", strings.Join(routes, ","),
			"-js", "-sd", filepath.Join(store, name), "--auth", token)
	}
	allURLs := strings.Join([]string{clientURL(0), clientURL(1), clientURL(2)}, ",")
	clWaitJetStream(t, allURLs, token)

	// 2. The host, with no local workers, on the whole cluster.
	h := startHost(t, "distributed", fmt.Sprintf(
		"timeout_sec = 40\n[distributed]\nnats_url = %s\ntoken = %s\nreplicas = 3\nworkers = 0\n", allURLs, token))

	// 3. External workers on different nodes.
	workerExe := filepath.Join(binDir, "plugins", "distributed")
	startWorker := func(name string, node int) *clProc {
		w := clStart(t, "worker "+name, workerExe, "worker", "--nats", clientURL(node), "--token", token, "--concurrency", "2")
		w.clWaitOutput(t, "worker ready", 20*time.Second)
		return w
	}
	wA := startWorker("A (n1)", 0)
	wB := startWorker("B (n2)", 1)

	// 4. Pipelined load: 4 connections × 6 sleeps of 1.2 s.
	const conns, perConn = 4, 6
	wss := make([]*websocket.Conn, conns)
	wants := make([]map[string]bool, conns)
	for c := range conns {
		wss[c] = h.dial(t)
		wants[c] = map[string]bool{}
		for i := range perConn {
			id := fmt.Sprintf("c%d-s%d", c, i)
			wants[c][id] = true
			sendJSON(t, wss[c], fmt.Sprintf(`{"id":%q,"task":"sleep","n":1200}`, id))
		}
	}
	// Read concurrently so that no reply waits on the faults below.
	deadline := time.Now().Add(60 * time.Second)
	results := make([]map[string]reply, conns)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[c] = clCollect(t, wss[c], wants[c], deadline)
		}()
	}

	time.Sleep(500 * time.Millisecond) // A runs two sleeps now
	if err := syscall.Kill(wA.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-wA.exited
	wC := startWorker("C (n2)", 1) // capacity stays at four
	time.Sleep(time.Second)
	nodes[2].stop(15 * time.Second)
	t.Logf("killed worker A (pid %d), started C (pid %d), stopped node n3", wA.pid(), wC.pid())
	wg.Wait()

	// 5. Exactly one right reply per request, from a worker process.
	pids := map[string]bool{strconv.Itoa(wA.pid()): true, strconv.Itoa(wB.pid()): true, strconv.Itoa(wC.pid()): true}
	byWorker := map[string]int{}
	for c := range conns {
		for id := range wants[c] {
			r, ok := results[c][id]
			if !ok {
				t.Errorf("%s: no reply within 60 s", id)
				continue
			}
			if !r.OK || r.Result == nil || *r.Result != "Request done" {
				t.Errorf("%s: %+v (error %+v); want ok and Request done", id, r, r.Error)
			}
			i := strings.LastIndexByte(r.Worker, ':')
			if i < 0 || !pids[r.Worker[i+1:]] {
				t.Errorf("%s: worker %q is not host:pid of worker A, B or C (%v)", id, r.Worker, pids)
			}
			byWorker[r.Worker]++
		}
	}
	t.Logf("replies by worker: %v", byWorker)

	// 6. The strategy still works with two nodes.
	msg, err := call(h.dial(t), `{"id":"after","task":"fib","n":90}`, 20*time.Second)
	if err != nil {
		t.Fatalf("fib after the faults: %v", err)
	}
	if r := decode(t, msg); !r.OK || r.Result == nil || !strings.Contains(r.Worker, ":") {
		t.Errorf("fib after the faults: %s", msg)
	}
}
