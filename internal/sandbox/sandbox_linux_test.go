package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/testnet"
)

// childEnv makes the test binary, re-executed, apply a sandbox and try
// what a hostile task would; it prints what happened as JSON.
const childEnv = "WSLAB_SANDBOX_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// attempts are what the child tried, each "ok" or the error it got.
type attempts struct {
	State       State
	ApplyErr    string
	ReadPasswd  string
	ReadOutside string
	WriteOut    string
	WriteData   string
	Connect     string
	Fork        string
	Thread      string
	Status      map[string]string
}

func outcome(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func child(mode string) int {
	exe, _ := os.Executable()
	data, outside, addr := os.Getenv("DATA"), os.Getenv("OUTSIDE"), os.Getenv("ADDR")
	var a attempts
	// Opened before the sandbox, which would refuse it; read after.
	status, err := os.Open("/proc/self/status")
	if err != nil {
		return 1
	}
	st, err := Apply(Policy{Mode: mode, Exe: exe, DataDir: data, OpenFiles: 256, FileBytes: 1 << 20,
		Cgroup: os.Getenv("CGROUP"), MemoryBytes: 256 << 20, CPUs: 1})
	a.State, a.ApplyErr = st, outcome(err)
	_, err = os.ReadFile("/etc/passwd")
	a.ReadPasswd = outcome(err)
	_, err = os.ReadFile(outside)
	a.ReadOutside = outcome(err)
	a.WriteOut = outcome(os.WriteFile(outside, []byte("overwritten"), 0o644))
	a.WriteData = outcome(os.WriteFile(filepath.Join(data, "f"), []byte("x"), 0o644))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		a.Connect = "ok"
	} else {
		a.Connect = err.Error()
	}
	a.Fork = outcome(exec.Command("/bin/true").Run())
	// A goroutine on a thread of its own: the runtime must still start
	// threads (clone with CLONE_THREAD).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	a.Thread = "ok"
	a.Status = map[string]string{}
	if b, err := io.ReadAll(status); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "CapEff", "CapBnd", "NoNewPrivs", "Seccomp":
				a.Status[k] = strings.TrimSpace(v)
			}
		}
	}
	json.NewEncoder(os.Stdout).Encode(a)
	return 0
}

// run re-executes the test binary under mode against a file outside its
// data directory and a listener, and says what it could do.
func run(t *testing.T, mode string) (attempts, string, *testnet.CountingListener) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	outside := filepath.Join(dir, "outside.txt")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := testnet.Listen(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cgroup := fmt.Sprintf("test-%d-%s", os.Getpid(), mode)
	t.Cleanup(func() { RemoveCgroups(cgroup) })
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "DATA="+data, "OUTSIDE="+outside, "ADDR="+ln.Addr().String(), "CGROUP="+cgroup)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child under %s: %v\n%s", mode, err, out)
	}
	var a attempts
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("child's report %q: %v", out, err)
	}
	return a, outside, ln
}

func TestStrictStopsTheAttacks(t *testing.T) {
	if missing := Check(); len(missing) > 0 {
		t.Skipf("this kernel lacks what strict needs: %v", missing)
	}
	a, outside, ln := run(t, Strict)
	if a.ApplyErr != "ok" {
		t.Fatalf("Apply: %s", a.ApplyErr)
	}
	for what, got := range map[string]string{
		"read /etc/passwd": a.ReadPasswd, "read a file outside the data directory": a.ReadOutside,
		"write outside": a.WriteOut, "connect to a loopback listener": a.Connect, "start a process": a.Fork,
	} {
		if got == "ok" {
			t.Errorf("%s: allowed under strict", what)
		} else if !strings.Contains(got, "permission denied") && !strings.Contains(got, "operation not permitted") {
			t.Errorf("%s: %s, want a permission error", what, got)
		}
	}
	if a.WriteData != "ok" || a.Thread != "ok" {
		t.Errorf("the data directory (%s) and new threads (%s) must still work", a.WriteData, a.Thread)
	}
	if b, _ := os.ReadFile(outside); string(b) != "original" {
		t.Errorf("the file outside was changed: %q", b)
	}
	if n := ln.Accepted(); n != 0 {
		t.Errorf("the listener accepted %d connections", n)
	}
	if s := a.Status; s["NoNewPrivs"] != "1" || s["Seccomp"] != "2" || strings.Trim(s["CapEff"], "0") != "" || strings.Trim(s["CapBnd"], "0") != "" {
		t.Errorf("/proc/self/status of the child: %v; want no_new_privs, a seccomp filter and no capabilities", s)
	}
	if st := a.State; !st.NoNewPrivs || !st.CapsDropped || st.LandlockABI < minLandlockABI || !st.Seccomp || len(st.Missing) > 0 {
		t.Errorf("state %s", st)
	}
	if ctl := cgroupControllers(); len(ctl) > 0 && os.Geteuid() == 0 && a.State.Cgroup == "" {
		t.Errorf("root, with cgroup controllers %v here, joined no cgroup: %v", ctl, a.State.Missing)
	}
	t.Logf("in force: %s", a.State)
}

// Under none every attack succeeds: the honest row of the ladder.
func TestNoneStopsNothing(t *testing.T) {
	a, outside, ln := run(t, None)
	for what, got := range map[string]string{
		"read /etc/passwd": a.ReadPasswd, "read outside": a.ReadOutside, "write outside": a.WriteOut,
		"connect": a.Connect, "start a process": a.Fork,
	} {
		if got != "ok" {
			t.Errorf("%s under none: %s", what, got)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "overwritten" {
		t.Errorf("the file outside: %q", b)
	}
	if n := ln.Accepted(); n != 1 {
		t.Errorf("the listener accepted %d connections, want 1", n)
	}
}
