//go:build linux

package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/hostproc"
	"github.com/wslab/wslab/internal/pythonplugins"
)

// The issue-21 misspellings: a key nothing reads, in the host's own
// sections, in the Python lab's [other] or in the section of the plugin
// that runs, stops the host before it serves, with exit status 2 and one
// line naming the file, the section, the key and, when one is close, the
// key it most likely meant.
func TestConfigUnknownKeysExit2(t *testing.T) {
	const loop = "[server]\nhost = 127.0.0.1\nport = 0\n"
	for _, c := range []struct {
		name, plugin, ini, want string // want: the line, after the file's path
	}{
		{"server bogus", "inproc", loop + "bogus = 1\n",
			"[server] bogus: unknown key (the keys of [server] are allowed_hosts, allowed_origins, auth_token, data_dir, host, " +
				"log_format, log_level, metrics_listen, plugin_dir, port, shutdown_grace_sec, timeout_sec, timing_sample, " +
				"tls_cert, tls_key, verify_plugins, watch_plugin)"},
		{"server typo", "inproc", loop + "timeout_secs = 5\n", "[server] timeout_secs: unknown key; did you mean timeout_sec?"},
		// The host's own keys are refused whichever strategy runs.
		{"server bogus under pool", "pool", loop + "bogus = 1\n",
			"[server] bogus: unknown key (the keys of [server] are allowed_hosts, allowed_origins, auth_token, data_dir, host, " +
				"log_format, log_level, metrics_listen, plugin_dir, port, shutdown_grace_sec, timeout_sec, timing_sample, " +
				"tls_cert, tls_key, verify_plugins, watch_plugin)"},
		{"client", "inproc", loop + "[client]\nnum_clients = 5\n", "[client] num_clients: unknown key; did you mean num_client?"},
		{"task_setting", "inproc", loop + "[task_setting]\nfibonaci_limit = 50\n", "[task_setting] fibonaci_limit: unknown key; did you mean fibonacci_limit?"},
		{"limits", "pool", loop + "[limits]\nmax_queue = 5\n", "[limits] max_queue: unknown key; did you mean max_queued?"},
		{"lab", "inproc", loop + "[lab]\nround = 2\n", "[lab] round: unknown key; did you mean rounds?"},
		{"other", "semaphore", loop + "[other]\nasyn_semaphor = 3\n", "[other] asyn_semaphor: unknown key; did you mean asyn_semaphore?"},
		{"other under inproc", "inproc", loop + "[other]\nmultiprocessing_process = 3\n",
			"[other] multiprocessing_process: unknown key; did you mean multiprocessing_processes?"},
		// The plugin's own section: the keys it declares.
		{"pool workerz", "pool", loop + "[pool]\nworkerz = 4\n", "[pool] workerz: unknown key; did you mean workers?"},
		{"distributed workerz", "distributed", loop + "[distributed]\nworkerz = 4\n", "[distributed] workerz: unknown key; did you mean workers?"},
		{"adaptive", "adaptive", loop + "[adaptive]\nmax_queue_msec = 4\n", "[adaptive] max_queue_msec: unknown key; did you mean max_queue_ms?"},
		// multiproc has no key near workerz (its count of workers is
		// [other] multiprocessing_processes): the line lists its keys.
		{"multiproc workerz", "multiproc", loop + "[multiproc]\nworkerz = 4\n",
			"[multiproc] workerz: unknown key (the keys of [multiproc] are queue_size, sandbox, worker_cpu_seconds, " +
				"worker_gomaxprocs, worker_inflight, worker_memory_mb, worker_prefetch)"},
		{"python other", "python-multiprocessing", loop + "[other]\nmultiprocessing_processs = 2\n",
			"[other] multiprocessing_processs: unknown key; did you mean multiprocessing_processes?"},
	} {
		t.Run(c.name, func(t *testing.T) {
			skipMissingPython(t, c.plugin)
			path := errWriteFile(t, "config.ini", c.ini)
			_, stderr, code := errRunHost(t, "--config", path, "--plugin", c.plugin, "--plugin-dir", filepath.Join(binDir, "plugins"))
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
			}
			if got, want := lastLineAlone(t, stderr), path+": "+c.want; got != want {
				t.Errorf("stderr ends with\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// lastLineAlone is the last line of stderr, checking that the lines
// before it are info or debug lines (a plugin started, then stopped).
func lastLineAlone(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\r\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		if !strings.Contains(l, "[INFO]") && !strings.Contains(l, "[DEBUG]") {
			t.Errorf("stderr holds more than the line that says what is wrong: %q", l)
		}
	}
	return lines[len(lines)-1]
}

// The Python lab's own file (SPEC's sample, every section and key it had)
// and the repository's config.ini start every strategy without a word of
// warning: their sections are the host's, the Python lab's [other], and
// the strategies'.
func TestConfigPythonLabSectionsAccepted(t *testing.T) {
	pythonLab, err := filepath.Abs("../config/testdata/python-lab.ini") // the Python lab's own file
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../../config.ini")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{pythonLab, repo} {
		for _, strategy := range []string{"inproc", "semaphore", "pool", "multiproc", "python-multiprocessing"} {
			t.Run(filepath.Base(file)+"/"+strategy, func(t *testing.T) {
				skipMissingPython(t, strategy)
				h := startHostWith(t, hostproc.Options{Command: []string{
					filepath.Join(binDir, "host"), "--config", file, "--plugin", strategy, "--host", "127.0.0.1",
					"--data-dir", t.TempDir(), "--plugin-dir", filepath.Join(binDir, "plugins"),
				}})
				errExpectNoopOK(t, h.dial(t))
				for _, l := range strings.Split(h.stderr.String(), "\n") {
					if strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]") {
						t.Errorf("host warned: %s", l)
					}
				}
			})
		}
	}
}

// A section that neither the host nor any installed strategy reads gets a
// warning naming it (and the section it most likely meant), and the host
// serves. A section named after no plugin is looked for among the keys
// the installed plugins declare: here mypool, the pool plugin under
// another name, declares [pool]; the Python plugin that cannot start is
// named as not asked.
func TestConfigUnknownSectionWarning(t *testing.T) {
	dir := t.TempDir()
	for from, to := range map[string]string{"semaphore": "semaphore", "pool": "mypool"} {
		copyExecutable(t, filepath.Join(binDir, "plugins", from), filepath.Join(dir, to))
	}
	installBrokenPython(t, dir, "#!/usr/bin/python3 -IBS")
	path := writeConfig(t, "[bogus_section]\nx = 1\n[pool]\nworkers = 2\n[semaphor]\nasyn_semaphore = 2\n[multiproc]\nworker_inflight = 2\n")
	h := startHostWith(t, hostproc.Options{Command: []string{
		filepath.Join(binDir, "host"), "--config", path, "--plugin", "semaphore", "--plugin-dir", dir,
	}})
	errExpectNoopOK(t, h.dial(t))
	var warnings []string
	for _, l := range strings.Split(h.stderr.String(), "\n") {
		if _, w, ok := strings.Cut(l, "[WARN]  host: "); ok {
			warnings = append(warnings, w)
		}
	}
	const unasked = " (not asked, for they did not start: python-multiprocessing)"
	want := []string{
		path + ": [bogus_section]: ignored: neither the host nor any installed strategy reads this section" + unasked,
		path + ": [semaphor]: ignored: neither the host nor any installed strategy reads this section; did you mean [semaphore]?" + unasked,
		path + ": [multiproc]: ignored: neither the host nor any installed strategy reads this section" + unasked,
	}
	if strings.Join(warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}
}

// --list-plugins says which plugins cannot run here, and why: a Python
// plugin whose interpreter lacks the Python plugins' packages (here the
// real /usr/bin/python3 without its site-packages, -S, as the plugin's
// first line runs it), one whose interpreter is not installed, and a
// binary built for another architecture. The others have no third field.
func TestListPluginsSaysWhichCannotRun(t *testing.T) {
	if _, err := os.Stat(pythonplugins.Interpreter); err != nil {
		t.Skipf("%s: %v", pythonplugins.Interpreter, err)
	}
	dir := t.TempDir()
	copyExecutable(t, filepath.Join(binDir, "plugins", "pool"), filepath.Join(dir, "pool"))
	installBrokenPython(t, dir, "#!/usr/bin/python3 -IBS")
	script := "#!/nonexistent/python3\nprint('never')\n"
	if err := os.WriteFile(filepath.Join(dir, "python-nowhere"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign")
	otherMachine := foreignELF(t, filepath.Join(binDir, "plugins", "pool"), foreign)
	empty := errWriteFile(t, "empty.ini", "")
	stdout, stderr, code := errRunHost(t, "--list-plugins", "--plugin-dir", dir, "--config", empty)
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, stderr)
	}
	want := strings.Join([]string{
		"inproc\t(built in)",
		"foreign\t" + foreign + "\tcannot run here: built for " + otherMachine + ", this machine is " + runtime.GOARCH + " (rebuild it here, e.g. with make build)",
		"pool\t" + filepath.Join(dir, "pool"),
		"python-multiprocessing\t" + filepath.Join(dir, "python-multiprocessing") +
			"\tcannot run here: needs grpcio, protobuf and cryptography: run make python-deps",
		"python-nowhere\t" + filepath.Join(dir, "python-nowhere") +
			"\tcannot run here: needs the interpreter /nonexistent/python3, which is not here",
	}, "\n") + "\n"
	if stdout != want {
		t.Errorf("--list-plugins printed\n%s\nwant\n%s", stdout, want)
	}
	// It is so: the plugin does not start.
	path := writeConfig(t, "")
	if _, stderr, code := errRunHost(t, "--config", path, "--plugin", "python-multiprocessing", "--plugin-dir", dir); code != 1 {
		t.Errorf("the Python plugin without its packages: exit status %d, want 1; stderr %q", code, stderr)
	}
	// A Python plugin whose interpreter has them is listed as runnable.
	if pythonMissing == "" {
		stdout, _, _ := errRunHost(t, "--list-plugins", "--plugin-dir", filepath.Join(binDir, "plugins"), "--config", empty)
		for _, name := range pythonplugins.Names {
			if !regexp.MustCompile(`(?m)^` + name + `\t[^\t]+$`).MatchString(stdout) {
				t.Errorf("%s is not listed as runnable:\n%s", name, stdout)
			}
		}
	}
}

// installBrokenPython installs python-multiprocessing into dir, as make
// build does, with its first line replaced by shebang.
func installBrokenPython(t *testing.T, dir, shebang string) {
	t.Helper()
	if err := pythonplugins.Install("../..", dir); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "python-asyncio"))
	p := filepath.Join(dir, "python-multiprocessing")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(p, []byte(shebang+"\n"+rest), 0o755); err != nil {
		t.Fatal(err)
	}
}

// foreignELF copies the binary from to to, marked in its ELF header as
// built for another architecture than this machine's, whose name it
// returns as CannotRun spells it.
func foreignELF(t *testing.T, from, to string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	machine, name := elf.EM_AARCH64, "aarch64"
	if runtime.GOARCH == "arm64" {
		machine, name = elf.EM_X86_64, "x86_64"
	}
	binary.LittleEndian.PutUint16(data[18:20], uint16(machine)) // e_machine
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// bin/host --conformance kills the plugin on purpose in one check: at
// every log level that is an info line saying so, never an error line.
func TestConformanceDeliberateKillIsNoError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "host"), "--conformance", "pool", "--log-level", "debug",
		"--plugin-dir", filepath.Join(binDir, "plugins"), "--config", errWriteFile(t, "empty.ini", ""))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("host --conformance pool: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "pool: conforms") {
		t.Errorf("stdout:\n%s", &stdout)
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "[ERROR]") {
			t.Errorf("error line: %s", l)
		}
	}
	for _, want := range []string{
		"[INFO]  pool: killing the plugin on purpose (SIGKILL), as a crash would: pid=",
		"[INFO]  pool.pool: plugin process exited: killed on purpose by the conformance kit (check: one reply per task when killed): ",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &stderr)
		}
	}
}
