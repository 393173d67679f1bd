//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/hostproc"
)

// testNet is a small network of test hosts the test made: network
// namespaces joined by veth pairs to a bridge in the first one, which holds
// the host and its NATS server; the test itself reaches it through a veth
// of its own.
type testNet struct {
	t      *testing.T
	prefix string // of every name the test made
	hub    string // the namespace with the bridge, the host and NATS
}

const netBase = "10.201.0." // hub .1, the test .100, worker hosts .11, .12, ...

// newTestNet makes the hub namespace and its bridge, or skips the test
// where namespaces cannot be made here.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; this test runs as root in CI")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (Debian's iproute2): cannot make test hosts")
	}
	n := &testNet{t: t, prefix: "wsl" + strconv.Itoa(os.Getpid()%100000)}
	n.hub = n.prefix + "h"
	if err := exec.Command("ip", "netns", "add", n.hub).Run(); err != nil {
		t.Skipf("cannot create a network namespace here (%v): skipping the test across hosts", err)
	}
	t.Cleanup(n.teardown)
	n.in(n.hub, "ip", "link", "set", "lo", "up")
	n.in(n.hub, "ip", "link", "add", "br0", "type", "bridge")
	n.in(n.hub, "ip", "addr", "add", netBase+"1/24", "dev", "br0")
	n.in(n.hub, "ip", "link", "set", "br0", "up")
	// The test's own link to the hub.
	n.run("ip", "link", "add", n.prefix+"t", "type", "veth", "peer", "name", "vt", "netns", n.hub)
	n.run("ip", "addr", "add", netBase+"100/24", "dev", n.prefix+"t")
	n.run("ip", "link", "set", n.prefix+"t", "up")
	n.in(n.hub, "ip", "link", "set", "vt", "master", "br0", "up")
	return n
}

// addHost makes test host i (a namespace at netBase+(10+i)) joined to the
// bridge by a veth whose hub end is named v<i>, and returns its namespace.
func (n *testNet) addHost(i int) string {
	ns := fmt.Sprintf("%sw%d", n.prefix, i)
	n.run("ip", "netns", "add", ns)
	n.in(ns, "ip", "link", "set", "lo", "up")
	n.run("ip", "link", "add", fmt.Sprintf("%sv%d", n.prefix, i), "type", "veth", "peer", "name", "eth0", "netns", ns)
	n.run("ip", "link", "set", fmt.Sprintf("%sv%d", n.prefix, i), "netns", n.hub)
	n.in(n.hub, "ip", "link", "set", fmt.Sprintf("%sv%d", n.prefix, i), "master", "br0", "up")
	n.in(ns, "ip", "addr", "add", fmt.Sprintf("%s%d/24", netBase, 10+i), "dev", "eth0")
	n.in(ns, "ip", "link", "set", "eth0", "up")
	return ns
}

// cut takes test host i's link down at the hub, or brings it back.
func (n *testNet) link(i int, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	n.in(n.hub, "ip", "link", "set", fmt.Sprintf("%sv%d", n.prefix, i), state)
}

func (n *testNet) run(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *testNet) in(ns string, args ...string) {
	n.t.Helper()
	n.run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// teardown deletes every namespace and link the test made; the processes
// in them were stopped by their own cleanups, which run first.
func (n *testNet) teardown() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); strings.HasPrefix(name, n.prefix) {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
	exec.Command("ip", "link", "del", n.prefix+"t").Run()
}

// TestDistributedAcrossHosts: the host and NATS on one test host, two
// workers on two others. Worker host 1's link is cut while it runs a task:
// the task is redelivered to worker host 2, and each request gets exactly
// one right reply. When the link comes back, worker 1 rejoins and runs
// tasks again.
func TestDistributedAcrossHosts(t *testing.T) {
	n := newTestNet(t)
	const token = "netns-s3cret"
	hubAddr := netBase + "1"
	// timeout_sec 40: AckWait 2 s, so a task of a cut-off worker comes
	// back that soon. The namespace is new: port 4222 is free in it.
	ini := fmt.Sprintf("timeout_sec = 40\n[distributed]\nworkers = 0\nlisten = %s:4222\ntoken = %s\n", hubAddr, token)
	h := startHostWith(t, hostproc.Options{Command: []string{"ip", "netns", "exec", n.hub,
		filepath.Join(binDir, "host"), "--config", writeConfig(t, ini), "--plugin=distributed", "--host", hubAddr, "--log-level", "debug"}})

	workers := map[int]*clProc{}
	for i := 1; i <= 2; i++ {
		ns := n.addHost(i)
		w := clStart(t, fmt.Sprintf("worker host %d", i), "ip", "netns", "exec", ns,
			filepath.Join(binDir, "plugins", "distributed"), "worker", "--nats", "nats://"+hubAddr+":4222",
			"--token", token, "--concurrency", "1")
		w.clWaitOutput(t, "worker ready", 20*time.Second)
		workers[i] = w
	}
	workerOf := func(r reply) int {
		for i, w := range workers {
			if strings.HasSuffix(r.Worker, ":"+strconv.Itoa(w.pid())) {
				return i
			}
		}
		return 0
	}

	ws := h.dial(t)
	sendJSON(t, ws, `{"id":"a","task":"sleep","n":4000}`, `{"id":"b","task":"sleep","n":4000}`)
	time.Sleep(500 * time.Millisecond) // one sleep on each worker host
	n.link(1, false)
	cut := time.Now()
	got := collect(t, ws, 2)
	t.Logf("link of worker host 1 cut mid-task; both replies in %v", time.Since(cut).Round(time.Millisecond))
	for _, id := range []string{"a", "b"} {
		r := got[id]
		if !r.OK || r.Result == nil || *r.Result != "Request done" {
			t.Errorf("%s: %+v %+v", id, r, r.Error)
		}
		if workerOf(r) != 2 {
			t.Errorf("%s ran on worker host %d (%s): with host 1 cut off, want 2", id, workerOf(r), r.Worker)
		}
	}

	n.link(1, true)
	// Worker host 1 is back: with both busy on long tasks, both take some.
	ran := map[int]bool{}
	for round := 0; round < 10 && !ran[1]; round++ {
		ws := h.dial(t) // collect's last read ended the previous connection
		for i := range 4 {
			sendJSON(t, ws, fmt.Sprintf(`{"id":"r%d-%d","task":"sleep","n":300}`, round, i))
		}
		for _, r := range collect(t, ws, 4) {
			if !r.OK {
				t.Errorf("after the link came back: %+v %+v", r, r.Error)
			}
			ran[workerOf(r)] = true
		}
	}
	if !ran[1] {
		t.Error("worker host 1 ran nothing after its link came back: it did not rejoin")
	}
}
