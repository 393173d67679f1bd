//go:build linux

// Package e2e tests the real binaries: it builds host, client, lab and the plugins,
// starts a host with a real plugin on a loopback port and talks to it over
// real WebSockets, with real processes and real signals.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/pythonplugins"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/internal/telemetry"
	"github.com/wslab/wslab/internal/wasm"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(echoChildEnv) != "" {
		os.Exit(runEchoChild())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wslab-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "./cmd/..."},
		{"build", "-o", filepath.Join(dir, "plugins") + "/", "./plugins/..."},
		// The multiproc plugin with workers that fail on purpose, in a
		// plugin directory of its own (see faultyPlugins).
		{"build", "-o", filepath.Join(dir, "faulty-plugins", "multiproc"), "./internal/e2e/faultyplugin"},
		// The wasm plugin that passes the attacks' targets to its guest,
		// there too, beside the attack tests' guest (below).
		{"build", "-o", filepath.Join(dir, "faulty-plugins", "wasm"), "./internal/e2e/faultywasm"},
		// An outside server for the lab to run as a contender.
		{"build", "-o", filepath.Join(dir, "contender"), "./internal/e2e/contender"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, out)
			return 1
		}
	}
	// The wasm plugin's module beside it, as make build installs it; the
	// faulty one's guest runs the attacks (-tags wasmtest).
	for _, g := range []struct {
		dir  string
		tags []string
	}{{"plugins", nil}, {"faulty-plugins", []string{"wasmtest"}}} {
		if err := wasm.BuildGuest(context.Background(), "../..", filepath.Join(dir, g.dir, wasm.ModuleDir, wasm.ModuleFile), g.tags...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if pythonMissing = pythonplugins.Missing(); pythonMissing == "" {
		if err := pythonplugins.Install("../..", filepath.Join(dir, "plugins")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// pythonMissing says why the Python plugins cannot run here; "" when they
// can, and are installed in the plugin directory beside the Go ones.
var pythonMissing string

// withPython is strategies and the Python plugins, for the tests the
// Python plugins must pass as the Go ones do; the Python ones skip, saying
// why, where they cannot run.
func withPython() []string { return append(slices.Clone(strategies), pythonplugins.Names...) }

// skipMissingPython skips a subtest of a Python strategy that cannot run here.
func skipMissingPython(t *testing.T, strategy string) {
	t.Helper()
	if pythonMissing != "" && slices.Contains(pythonplugins.Names, strategy) {
		t.Skip(pythonMissing)
	}
}

// strategies are every strategy the host can serve in this build.
var strategies = []string{"inproc", "semaphore", "pool", "multiproc", "distributed", "wasm"}

// faultyPlugins is a plugin directory whose multiproc plugin injects the
// fault named by faults.Env into its workers.
func faultyPlugins() string { return filepath.Join(binDir, "faulty-plugins") }

// hostProc is a running bin/host.
type hostProc struct {
	*hostproc.Host
	t      testing.TB
	addr   string
	stderr *hostproc.Buffer
}

// freePort finds a port nothing listens on, for servers that cannot
// announce the port they chose (a NATS node its cluster routes to).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHost writes ini (sections appended to a loopback [server] section)
// to a config file and starts bin/host with the strategy on a port of its
// choosing, returning once /healthz answers 200. The host is stopped by
// its PID when the test ends.
func startHost(t testing.TB, strategy, ini string) *hostProc {
	t.Helper()
	return startHostEnv(t, strategy, ini, nil)
}

// writeConfig writes a loopback [server] section followed by ini.
func writeConfig(t testing.TB, ini string) string {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf("[server]\nhost = 127.0.0.1\ndata_dir = %s\n%s\n", filepath.Join(dir, "data"), ini)
	path := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startHostEnv is startHost with extra environment variables for the host,
// which its plugin and workers inherit.
// strategy may be a variant (variants_test.go).
func startHostEnv(t testing.TB, strategy, ini string, env []string) *hostProc {
	t.Helper()
	name := strategy
	strategy, ini = resolveStrategy(t, name, ini)
	h := startHostWith(t, hostproc.Options{
		Command: []string{filepath.Join(binDir, "host"), "--config", writeConfig(t, ini), "--plugin=" + strategy, "--log-level", "debug"},
		Env:     env,
	})
	checkVariant(t, h, name)
	return h
}

// startHostWith starts a host as opt says, logging into a buffer that is
// shown when the test fails, and stops it when the test ends.
func startHostWith(t testing.TB, opt hostproc.Options) *hostProc {
	t.Helper()
	buf := &hostproc.Buffer{}
	opt.Log = buf
	hp, err := hostproc.Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("%v\nhost output:\n%s", err, buf)
	}
	h := &hostProc{Host: hp, t: t, addr: hp.Addr, stderr: buf}
	t.Cleanup(func() {
		h.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("host stderr:\n%s", h.stderr)
		}
	})
	return h
}

func (h *hostProc) healthz() int { return h.Health() }

func (h *hostProc) waitHealthy(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-h.Exited():
			return false
		default:
		}
		if h.healthz() == http.StatusOK {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (h *hostProc) stats(t testing.TB) host.HostStats {
	t.Helper()
	var st host.HostStats
	if err := h.Stats(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// metric is the sum of the series of family name on the host's /metrics
// whose labels include want (telemetry.Sum).
func (h *hostProc) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := h.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return telemetry.Sum(mfs, name, want)
}

// waitExit waits for the host to exit and returns its exit code.
func (h *hostProc) waitExit(limit time.Duration) (int, bool) { return h.WaitExit(limit) }

func (h *hostProc) dial(t testing.TB) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws://"+h.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", h.addr, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// call sends one text frame and reads one reply, within limit.
func call(ws *websocket.Conn, frame string, limit time.Duration) (string, error) {
	ws.SetWriteDeadline(time.Now().Add(limit))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		return "", err
	}
	return read(ws, limit)
}

func read(ws *websocket.Conn, limit time.Duration) (string, error) {
	ws.SetReadDeadline(time.Now().Add(limit))
	_, data, err := ws.ReadMessage()
	return string(data), err
}

// reply is a decoded JSON reply.
type reply struct {
	ID       json.RawMessage `json:"id"`
	Task     string          `json:"task"`
	OK       bool            `json:"ok"`
	Result   *string         `json:"result"`
	Strategy string          `json:"strategy"`
	Worker   string          `json:"worker"`
	QueueUS  *int64          `json:"queue_us"`
	RunUS    *int64          `json:"run_us"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decode(t testing.TB, s string) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("reply %q is not JSON: %v", s, err)
	}
	return r
}

func (r reply) code() string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// descendantsOf lists the live processes below pid, children first; none
// for pid 0 (no process).
func descendantsOf(pid int) []int {
	if pid <= 0 {
		return nil
	}
	var all []int
	for next := []int{pid}; len(next) > 0; {
		var kids []int
		for _, p := range next {
			kids = append(kids, supervise.Children(p)...)
		}
		all = append(all, kids...)
		next = kids
	}
	return all
}
