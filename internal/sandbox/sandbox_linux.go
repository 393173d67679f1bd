package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Check says which mechanisms strict needs that the kernel lacks (nil:
// none), for the host to refuse to start.
func Check() []string {
	var missing []string
	if abi, err := llsys.LandlockGetABIVersion(); err != nil || abi < minLandlockABI {
		missing = append(missing, fmt.Sprintf("Landlock ABI %d or later (this kernel: %s)", minLandlockABI, landlockABIText(abi, err)))
	}
	if !seccomp.Supported() {
		missing = append(missing, "seccomp filters")
	}
	return missing
}

func landlockABIText(abi int, err error) string {
	if err != nil {
		return "none, " + err.Error()
	}
	return strconv.Itoa(abi)
}

// Probe is what strict puts in force on this machine, as the plugin
// reports it in /stats before any worker has applied it.
func Probe(p Policy) State {
	st := State{Mode: p.Mode}
	if p.Mode == None {
		return st
	}
	st.NoNewPrivs, st.CapsDropped = true, true
	if abi, err := llsys.LandlockGetABIVersion(); err == nil {
		st.LandlockABI = min(abi, landlockMaxABI)
	}
	st.Seccomp = seccomp.Supported()
	st.Rlimits = rlimitNames(p)
	if p.Cgroup != "" {
		if ctl := cgroupControllers(); len(ctl) > 0 {
			st.Cgroup = fmt.Sprint(ctl)
		}
	}
	st.Missing = Check()
	return st
}

// landlockMaxABI is the newest Landlock ABI the ruleset asks for.
const landlockMaxABI = 7

// Apply confines this process, every thread of it, as p says. Under
// strict, a mechanism that fails is an error (the worker exits); under
// best-effort it is left out and named in State.Missing. The cgroup is
// best-effort in both: many machines do not let a process make one.
func Apply(p Policy) (State, error) {
	st := State{Mode: p.Mode}
	if p.Mode == None || p.Mode == "" {
		st.Mode = None
		return st, nil
	}
	strict := p.Mode == Strict
	fail := func(what string, err error) error {
		if strict {
			return fmt.Errorf("sandbox: %s: %w", what, err)
		}
		st.Missing = append(st.Missing, what+": "+err.Error())
		return nil
	}
	if err := setRlimits(p); err != nil {
		if err := fail("rlimits", err); err != nil {
			return st, err
		}
	} else {
		st.Rlimits = rlimitNames(p)
	}
	if p.Cgroup != "" {
		if joined, err := joinCgroup(p); err != nil {
			st.Missing = append(st.Missing, "cgroup: "+err.Error())
		} else {
			st.Cgroup = joined
		}
	}
	if err := allThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
		if err := fail("no_new_privs", err); err != nil {
			return st, err
		}
	} else {
		st.NoNewPrivs = true
	}
	if err := dropCapabilities(); err != nil {
		if err := fail("drop capabilities", err); err != nil {
			return st, err
		}
	} else {
		st.CapsDropped = true
	}
	if abi, err := restrictLandlock(p, strict); err != nil {
		if err := fail("landlock", err); err != nil {
			return st, err
		}
	} else {
		st.LandlockABI = abi
	}
	if err := loadSeccomp(); err != nil {
		if err := fail("seccomp", err); err != nil {
			return st, err
		}
	} else {
		st.Seccomp = true
	}
	return st, nil
}

func rlimitNames(p Policy) []string {
	var out []string
	if p.OpenFiles > 0 {
		out = append(out, "nofile="+strconv.FormatUint(p.OpenFiles, 10))
	}
	if p.FileBytes > 0 {
		out = append(out, "fsize="+strconv.FormatUint(p.FileBytes, 10))
	}
	if p.CPUSeconds > 0 {
		out = append(out, "cpu="+strconv.FormatUint(p.CPUSeconds, 10)+"s")
	}
	return append(out, "core=0")
}

// setRlimits sets the limits of p. RLIMIT_NPROC is not among them: it
// counts every process and thread of the user machine-wide (root's
// included), so a bound low enough to matter stops the Go runtime's own
// threads; the seccomp filter stops process creation instead. Memory is
// bounded by the heap limit (RLIMIT_DATA, worker_memory_mb) and the
// cgroup; RLIMIT_AS would stop the runtime, which reserves far more
// address space than it uses.
func setRlimits(p Policy) error {
	set := func(name string, res int, v uint64) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if p.OpenFiles > 0 {
		if err := set("RLIMIT_NOFILE", unix.RLIMIT_NOFILE, p.OpenFiles); err != nil {
			return err
		}
	}
	if p.FileBytes > 0 {
		if err := set("RLIMIT_FSIZE", unix.RLIMIT_FSIZE, p.FileBytes); err != nil {
			return err
		}
		// A write past it gets EFBIG instead of killing the worker.
		signal.Ignore(syscall.SIGXFSZ)
	}
	if p.CPUSeconds > 0 {
		if err := set("RLIMIT_CPU", unix.RLIMIT_CPU, p.CPUSeconds); err != nil {
			return err
		}
	}
	return set("RLIMIT_CORE", unix.RLIMIT_CORE, 0)
}

// allThreadsPrctl runs prctl on every thread of the process: the
// attributes it sets are each thread's own.
func allThreadsPrctl(option int, arg2 uintptr) error {
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, uintptr(option), arg2, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// dropCapabilities empties every thread's bounding, ambient, effective,
// permitted and inheritable sets.
func dropCapabilities() error {
	if err := allThreadsPrctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c <= lastCap(); c++ {
		if err := allThreadsPrctl(unix.PR_CAPBSET_DROP, uintptr(c)); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63
	}
	n, err := strconv.Atoi(string(trimNewline(b)))
	if err != nil {
		return 63
	}
	return n
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// restrictLandlock allows reading the worker's binary, reading and
// writing the data directory (and p.Writable), nothing else of the file
// system, and no TCP connect or bind.
func restrictLandlock(p Policy, strict bool) (int, error) {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0, fmt.Errorf("not available: %w", err)
	}
	if strict && abi < minLandlockABI {
		return 0, fmt.Errorf("ABI %d, strict needs %d (TCP rules)", abi, minLandlockABI)
	}
	rules := []landlock.Rule{landlock.RWDirs(append([]string{p.DataDir}, p.Writable...)...)}
	if p.Exe != "" {
		rules = append(rules, landlock.ROFiles(p.Exe))
	}
	if err := landlock.V7.BestEffort().Restrict(rules...); err != nil {
		return 0, err
	}
	return min(abi, landlockMaxABI), nil
}

// deniedSyscalls fail with EPERM once the filter is loaded: new sockets
// (Landlock stops TCP, this every family), process creation and exec,
// tracing and other processes' memory, mounts and namespaces, kernel
// modules and kexec, keyrings, BPF, perf and io_uring (whose operations
// seccomp does not see).
var deniedSyscalls = []string{
	"socket", "socketpair",
	"fork", "vfork", "execve", "execveat",
	"ptrace", "process_vm_readv", "process_vm_writev",
	"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"keyctl", "add_key", "request_key",
	"bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
}

// loadSeccomp installs the filter on every thread (TSYNC). clone is
// allowed only for threads (CLONE_THREAD), which the Go runtime starts;
// clone3, whose flags a filter cannot read, fails with ENOSYS, on which
// glibc's pthread_create (a cgo binary's threads) falls back to clone.
func loadSeccomp() error {
	if !seccomp.Supported() {
		return errors.New("not supported by this kernel")
	}
	return seccomp.LoadFilter(seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls: []seccomp.SyscallGroup{{
				Action: seccomp.ActionErrno,
				Names:  deniedSyscalls,
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name: "clone",
					Conditions: seccomp.ArgumentConditions{{
						Argument: 0, Operation: seccomp.BitsNotSet, Value: unix.CLONE_THREAD,
					}},
				}},
			}, {
				Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS),
				Names:  []string{"clone3"},
			}},
		},
	})
}

// CgroupRoot is where workers' cgroups are made, under each controller's
// hierarchy (v1) or the unified one (v2).
const CgroupRoot = "wslab"

const cgroupFS = "/sys/fs/cgroup"

// cgroupControllers are the controllers a worker's cgroup gets here:
// "v2" when the hierarchy is unified, else the v1 memory and cpu
// hierarchies that are mounted.
func cgroupControllers() []string {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return []string{"v2"}
	}
	var out []string
	for _, c := range []string{"memory", "cpu"} {
		if _, err := os.Stat(filepath.Join(cgroupFS, c, "cgroup.procs")); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// joinCgroup makes the worker's cgroup (CgroupRoot/p.Cgroup), sets its
// limits and moves this process into it; it says which controllers it
// joined.
func joinCgroup(p Policy) (string, error) {
	ctl := cgroupControllers()
	if len(ctl) == 0 {
		return "", errors.New("no cgroup v2 hierarchy nor v1 memory or cpu controller mounted")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	write := func(dir, file, v string) error {
		return os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644)
	}
	var joined []string
	for _, c := range ctl {
		var dir string
		var limits [][2]string
		switch c {
		case "v2":
			dir = filepath.Join(cgroupFS, CgroupRoot, p.Cgroup)
			if p.MemoryBytes > 0 {
				limits = append(limits, [2]string{"memory.max", strconv.FormatInt(p.MemoryBytes, 10)})
			}
			if p.CPUs > 0 {
				limits = append(limits, [2]string{"cpu.max", fmt.Sprintf("%d 100000", p.CPUs*100000)})
			}
		case "memory":
			dir = filepath.Join(cgroupFS, c, CgroupRoot, p.Cgroup)
			if p.MemoryBytes > 0 {
				limits = append(limits, [2]string{"memory.limit_in_bytes", strconv.FormatInt(p.MemoryBytes, 10)})
			}
		case "cpu":
			dir = filepath.Join(cgroupFS, c, CgroupRoot, p.Cgroup)
			if p.CPUs > 0 {
				limits = append(limits, [2]string{"cpu.cfs_period_us", "100000"}, [2]string{"cpu.cfs_quota_us", strconv.Itoa(p.CPUs * 100000)})
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("make %s: %w", dir, err)
		}
		for _, l := range limits {
			if err := write(dir, l[0], l[1]); err != nil {
				return "", fmt.Errorf("set %s: %w", l[0], err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0o644); err != nil {
			return "", fmt.Errorf("join %s: %w", dir, err)
		}
		joined = append(joined, c)
	}
	return fmt.Sprint(joined), nil
}

// CgroupBases are the CgroupRoot directories in which workers' cgroups
// are made: the unified hierarchy's, or the v1 memory and cpu ones'.
func CgroupBases() []string {
	return []string{filepath.Join(cgroupFS, CgroupRoot), filepath.Join(cgroupFS, "memory", CgroupRoot), filepath.Join(cgroupFS, "cpu", CgroupRoot)}
}

// CgroupNames lists the cgroups under CgroupRoot, in any hierarchy, whose
// names start with prefix, each name once.
func CgroupNames(prefix string) []string {
	var names []string
	for _, base := range CgroupBases() {
		matches, _ := filepath.Glob(filepath.Join(base, prefix+"*"))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() && !slices.Contains(names, filepath.Base(m)) {
				names = append(names, filepath.Base(m))
			}
		}
	}
	return names
}

// RemoveCgroups removes the cgroups named under CgroupRoot that start
// with prefix, once their processes are gone: what a plugin calls as it
// stops its workers.
func RemoveCgroups(prefix string) {
	for _, base := range CgroupBases() {
		matches, _ := filepath.Glob(filepath.Join(base, prefix+"*"))
		for _, m := range matches {
			os.Remove(m) // rmdir: fails, harmlessly, while a process is in it
		}
	}
}
