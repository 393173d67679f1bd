package lab

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/tick"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux the Go runtime supports.
const clockTicks = 100

// procSample is one process as /proc shows it.
type procSample struct {
	pid, ppid  int
	cpuTicks   uint64 // utime + stime
	rssBytes   int64
	startTicks uint64 // start time since boot, to tell reused PIDs apart
}

// readProc reads /proc/PID/stat; ok is false once the process is gone.
func readProc(pid int) (procSample, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procSample{}, false
	}
	// The command name, in parentheses, may hold spaces: fields start after
	// its closing parenthesis, at field 3 (state).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procSample{}, false
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 22 {
		return procSample{}, false
	}
	num := func(field int) uint64 { // field numbers as in proc(5)
		v, _ := strconv.ParseUint(string(f[field-3]), 10, 64)
		return v
	}
	return procSample{
		pid:        pid,
		ppid:       int(num(4)),
		cpuTicks:   num(14) + num(15),
		startTicks: num(22),
		rssBytes:   int64(num(24)) * int64(os.Getpagesize()),
	}, true
}

// processTree returns root and its descendants, as /proc shows them now.
func processTree(root int) []procSample {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procSample{}
	var rootSample procSample
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if !ok {
			continue
		}
		if pid == root {
			rootSample, found = p, true
		}
		children[p.ppid] = append(children[p.ppid], p)
	}
	if !found {
		return nil
	}
	tree := []procSample{rootSample}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i].pid]...)
	}
	return tree
}

// treeMeter follows the CPU time and memory of a process and everything it
// starts, by polling /proc: processes that come and go between polls
// (restarted workers) are counted for the CPU they had at the last poll.
type treeMeter struct {
	root  int
	every time.Duration

	mu      sync.Mutex
	base    map[procKey]uint64 // CPU ticks at the first sight, for processes there at Start
	last    map[procKey]uint64 // CPU ticks at the latest sight
	peakRSS int64

	stop context.CancelFunc
	done chan struct{}
}

type procKey struct {
	pid   int
	start uint64
}

func newTreeMeter(root int, every time.Duration) *treeMeter {
	return &treeMeter{
		root: root, every: every,
		base: map[procKey]uint64{}, last: map[procKey]uint64{},
		done: make(chan struct{}),
	}
}

// Start takes the baseline, then polls until Stop.
func (m *treeMeter) Start() {
	m.poll()
	m.mu.Lock()
	for k, v := range m.last {
		m.base[k] = v
	}
	m.peakRSS = 0
	m.mu.Unlock()
	m.poll()
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	go func() {
		defer close(m.done)
		tick.Every(ctx, m.every, m.poll)
	}()
}

func (m *treeMeter) poll() {
	tree := processTree(m.root)
	var rss int64
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range tree {
		m.last[procKey{p.pid, p.startTicks}] = p.cpuTicks
		rss += p.rssBytes
	}
	m.peakRSS = max(m.peakRSS, rss)
}

// Stop polls once more and returns the CPU seconds used since Start, the
// peak resident memory in bytes and how many processes were seen.
func (m *treeMeter) Stop() (cpuSeconds float64, peakRSS int64, processes int) {
	m.stop()
	<-m.done
	m.poll()
	m.mu.Lock()
	defer m.mu.Unlock()
	var ticks uint64
	for k, v := range m.last {
		ticks += v - m.base[k] // base is 0 for processes started during the run
	}
	return float64(ticks) / clockTicks, m.peakRSS, len(m.last)
}
