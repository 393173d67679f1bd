package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// How long the kit waits for what the contract promises "promptly".
const (
	prompt    = 3 * time.Second
	resultsBy = 10 * time.Second // every results case, sent at once
	goneBy    = 5 * time.Second  // a process that must end
)

type check struct {
	name string
	// needsPrevious: the check runs on the plugin the checks before it set
	// up, and a failure of it skips the checks after it that need it too.
	needsPrevious bool
	run           func(context.Context, *kit) error
}

var checks = []check{
	{"describe", true, checkDescribe},
	{"config keys validated", true, checkKeys},
	{"exact results", true, checkResults},
	{"bounds", true, checkBounds},
	{"deadline", true, checkDeadline},
	{"cancel", true, checkCancel},
	{"declared concurrency", true, checkConcurrency},
	{"stats", true, checkStats},
	{"ends with its data channel", true, checkDataChannelEnd},
	{"one reply per task when killed", false, checkKilled},
}

// The checks below are each a paragraph of the contract (executor.proto,
// taskproto.Executor, docs/writing-a-strategy.md).

func checkDescribe(ctx context.Context, k *kit) error {
	proc, err := k.launch(ctx)
	if err != nil {
		return err
	}
	if k.desc, err = proc.Describe(ctx); err != nil {
		return err
	}
	if k.desc.Name == "" {
		return errors.New("Describe gives no name")
	}
	if file := k.name; k.desc.Name != file {
		return fmt.Errorf("Describe names the strategy %q, but its binary is %q: the host finds a strategy by its file name (--plugin %s), so name the file %q", k.desc.Name, file, file, k.desc.Name)
	}
	return taskproto.CheckKeys(k.desc.Keys)
}

// checkKeys sends, one after another, a value each declared key must
// refuse, expecting the refusal to name the key; then the good
// configuration, which must be accepted after those refusals.
func checkKeys(ctx context.Context, k *kit) error {
	cfg, err := k.config()
	if err != nil {
		return err
	}
	for _, key := range k.desc.Keys {
		for _, bad := range badValues(key) {
			c := cfg
			c.Settings = map[string]string{}
			for id, v := range cfg.Settings {
				c.Settings[id] = v
			}
			c.Settings[key.ID()] = bad
			_, err := k.proc.Configure(ctx, c)
			if err == nil {
				return fmt.Errorf("[%s] %s = %q was accepted; it is not %s", key.Section, key.Name, bad, key.Accepted())
			}
			if want := "[" + key.Section + "] " + key.Name; !strings.Contains(err.Error(), want) {
				return fmt.Errorf("[%s] %s = %q was refused with %q, which does not name %q", key.Section, key.Name, bad, err, want)
			}
		}
	}
	if k.info, err = k.proc.Configure(ctx, cfg); err != nil {
		return fmt.Errorf("the declared defaults were refused: %w", err)
	}
	k.cfg = cfg
	if _, err := k.proc.Configure(ctx, cfg); err == nil {
		return errors.New("a second Configure was accepted")
	}
	k.w = newWire(k.proc.Data())
	return nil
}

// badValues are values key must refuse.
func badValues(key taskproto.Key) []string {
	switch key.Type {
	case taskproto.KeyInt:
		out := []string{"not-a-number"}
		if key.Min > math.MinInt64 {
			out = append(out, fmt.Sprint(key.Min-1))
		}
		if key.Max < math.MaxInt64 {
			out = append(out, fmt.Sprint(key.Max+1))
		}
		return out
	case taskproto.KeyBool:
		return []string{"maybe"}
	case taskproto.KeyString:
		if len(key.Choices) > 0 {
			return []string{"no-such-choice-of-the-kit"}
		}
	}
	return nil
}

// resultCases are the tasks whose results must be exactly the workloads'.
var resultCases = []taskproto.Task{
	{Kind: taskproto.KindFib, N: 0}, {Kind: taskproto.KindFib, N: 1}, {Kind: taskproto.KindFib, N: 2},
	{Kind: taskproto.KindFib, N: 93}, {Kind: taskproto.KindFib, N: 1000}, {Kind: taskproto.KindFib, N: limits.MaxFibN},
	{Kind: taskproto.KindCPU, N: 0}, {Kind: taskproto.KindCPU, N: 1}, {Kind: taskproto.KindCPU, N: 100_000},
	{Kind: taskproto.KindIO, N: 0}, {Kind: taskproto.KindIO, N: 1}, {Kind: taskproto.KindIO, N: 65_537},
	{Kind: taskproto.KindIO, N: limits.MaxIOBytes},
	{Kind: taskproto.KindSleep, N: 0}, {Kind: taskproto.KindSleep, N: 20},
	{Kind: taskproto.KindNoop, N: 0}, {Kind: taskproto.KindNoop, N: 7},
}

// checkResults sends every case at once (a pipelined connection's worth)
// and compares each reply with what the workloads compute here; the io
// tasks must leave no file behind.
func checkResults(ctx context.Context, k *kit) error {
	expectDir, err := os.MkdirTemp(k.dir, "expect-")
	if err != nil {
		return err
	}
	runner := tasks.Runner{DataDir: expectDir, LargeFileName: k.cfg.LargeFileName}
	seqs := make([]uint64, len(resultCases))
	for i, t := range resultCases {
		seqs[i] = k.w.send(t.Kind, t.N, 0)
	}
	replies, err := k.w.awaitAll(seqs, resultsBy)
	if err != nil {
		return err
	}
	for i, t := range resultCases {
		r := replies[i]
		want, err := runner.Run(ctx, t)
		if err != nil {
			return fmt.Errorf("the kit's own %s %d: %w", t.Kind, t.N, err)
		}
		switch {
		case r.GetErrorCode() != "":
			return fmt.Errorf("%s n=%d failed: %s: %s", t.Kind, t.N, r.GetErrorCode(), r.GetErrorMessage())
		case r.GetResult() != want:
			return fmt.Errorf("%s n=%d = %s, want %s", t.Kind, t.N, clip(r.GetResult()), clip(want))
		case r.GetQueueUs() < 0 || r.GetRunUs() < 0:
			return fmt.Errorf("%s n=%d: negative queue_us %d or run_us %d", t.Kind, t.N, r.GetQueueUs(), r.GetRunUs())
		}
		k.succeeded++
	}
	// The io files are named after large_file_name ("large_file-*.txt");
	// a strategy may keep files of its own there (a NATS store).
	if left, _ := filepath.Glob(filepath.Join(k.cfg.DataDir, "large_file*")); len(left) > 0 {
		return fmt.Errorf("io tasks left files behind in the data directory: %v", left)
	}
	return k.strays()
}

func clip(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d digits)", s[:20], len(s))
	}
	return s
}

// strays reports replies that should not have come.
func (k *kit) strays() error {
	if p := k.w.problems(); len(p) > 0 {
		return fmt.Errorf("the plugin sent %s", p[0])
	}
	return nil
}

// checkBounds: a task outside the limits the plugin was configured with,
// or of an unknown kind, is refused by the plugin too, with its code.
func checkBounds(_ context.Context, k *kit) error {
	for _, c := range []struct {
		task taskproto.Task
		code taskproto.Code
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: limits.MaxFibN + 1}, taskproto.CodeOutOfRange},
		{taskproto.Task{Kind: taskproto.KindFib, N: -1}, taskproto.CodeOutOfRange},
		{taskproto.Task{Kind: taskproto.KindCPU, N: limits.MaxCPUN + 1}, taskproto.CodeOutOfRange},
		{taskproto.Task{Kind: taskproto.KindIO, N: limits.MaxIOBytes + 1}, taskproto.CodeOutOfRange},
		{taskproto.Task{Kind: taskproto.KindSleep, N: limits.MaxSleep.Milliseconds() + 1}, taskproto.CodeOutOfRange},
		{taskproto.Task{Kind: "nope", N: 1}, taskproto.CodeUnknownTask},
	} {
		r, err := k.w.await(k.w.send(c.task.Kind, c.task.N, 0), prompt)
		if err != nil {
			return err
		}
		if r.GetErrorCode() != string(c.code) {
			return fmt.Errorf("%s n=%d: got %q (%q), want error %s", c.task.Kind, c.task.N, r.GetErrorCode(), clip(r.GetResult()), c.code)
		}
	}
	return k.strays()
}

// checkDeadline: a task that carries a deadline ends by it with timeout,
// without a cancel, and stops running.
func checkDeadline(ctx context.Context, k *kit) error {
	seq := k.w.send(taskproto.KindSleep, 20_000, 300*time.Millisecond)
	r, err := k.w.await(seq, prompt)
	if err != nil {
		return fmt.Errorf("a 20 s sleep with a 300 ms deadline: %w", err)
	}
	if r.GetErrorCode() != string(taskproto.CodeTimeout) {
		return fmt.Errorf("a 20 s sleep with a 300 ms deadline ended with %q, want timeout", r.GetErrorCode())
	}
	if _, err := k.waitIdle(ctx, prompt); err != nil {
		return err
	}
	return k.strays()
}

// checkCancel: cancelled tasks, running and queued, are answered promptly
// and stop, and the slots they held serve the next task.
func checkCancel(ctx context.Context, k *kit) error {
	n := 4
	if k.info.Bounds(taskproto.KindSleep) && k.info.Concurrency <= 64 {
		n = k.info.Concurrency + 2 // some run, two wait
	}
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = k.w.send(taskproto.KindSleep, 20_000, 0)
	}
	time.Sleep(300 * time.Millisecond)
	for i := len(seqs) - 1; i >= 0; i-- { // the queued ones first
		k.w.cancel(seqs[i])
	}
	replies, err := k.w.awaitAll(seqs, prompt)
	if err != nil {
		return fmt.Errorf("cancelled 20 s sleeps: %w", err)
	}
	for _, r := range replies {
		if r.GetErrorCode() == "" {
			return fmt.Errorf("a cancelled 20 s sleep answered %q, want an error", r.GetResult())
		}
	}
	if _, err := k.waitIdle(ctx, prompt); err != nil {
		return err
	}
	r, err := k.w.await(k.w.send(taskproto.KindNoop, 0, 0), prompt)
	if err != nil {
		return fmt.Errorf("after the cancels: %w", err)
	}
	if r.GetErrorCode() != "" {
		return fmt.Errorf("a noop after the cancels failed: %s", r.GetErrorCode())
	}
	k.succeeded++
	return k.strays()
}

// checkConcurrency: a strategy that declares a bound runs no more sleeps
// at once than it (its stats say so, and the sleeps take their waves); one
// that declares none runs them side by side.
func checkConcurrency(ctx context.Context, k *kit) error {
	const d = 300 * time.Millisecond
	c := k.info.Concurrency
	n := 8
	if k.info.Bounds(taskproto.KindSleep) && c <= 64 {
		n = 2*c + 1
	}
	start := time.Now()
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = k.w.send(taskproto.KindSleep, d.Milliseconds(), 0)
	}
	var most int64
	for i := 0; ; i++ {
		st, err := k.proc.Stats(ctx)
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		most = max(most, st.Running)
		if _, err := k.w.await(seqs[n-1], 20*time.Millisecond); err == nil || i > 1000 {
			break
		}
	}
	replies, err := k.w.awaitAll(seqs, resultsBy)
	if err != nil {
		return err
	}
	took := time.Since(start)
	for _, r := range replies {
		if r.GetErrorCode() != "" {
			return fmt.Errorf("a %v sleep failed: %s: %s", d, r.GetErrorCode(), r.GetErrorMessage())
		}
		k.succeeded++
	}
	switch {
	case k.info.Bounds(taskproto.KindSleep) && c <= 64:
		if most > int64(c) {
			return fmt.Errorf("declares concurrency %d, and its stats showed %d tasks running at once", c, most)
		}
		if waves := time.Duration((n + c - 1) / c); took < waves*d*9/10 {
			return fmt.Errorf("declares concurrency %d, and ran %d sleeps of %v in %v, faster than %d waves", c, n, d, took, waves)
		}
	case most < 2:
		return fmt.Errorf("declares no bound on sleeps (concurrency %d), and its stats never showed two running at once", c)
	}
	return k.strays()
}

// checkStats: idle, the plugin says so; it has counted what it completed;
// its capacity is its concurrency; its workers are described.
func checkStats(ctx context.Context, k *kit) error {
	st, err := k.waitIdle(ctx, prompt)
	if err != nil {
		return err
	}
	switch {
	case st.Completed < k.succeeded:
		return fmt.Errorf("completed = %d, and it has answered %d tasks with a result", st.Completed, k.succeeded)
	case st.Failed < 0 || st.Restarts < 0:
		return fmt.Errorf("negative failed %d or restarts %d", st.Failed, st.Restarts)
	case k.info.Concurrency > 0 && st.Capacity != int64(k.info.Concurrency):
		return fmt.Errorf("capacity = %d, and it declares concurrency %d", st.Capacity, k.info.Concurrency)
	}
	for _, w := range st.Workers {
		// A worker between a death and its restart has no process.
		if w.ID == "" || w.PID <= 0 && w.State != "restarting" || w.Tasks < 0 || w.Restarts < 0 {
			return fmt.Errorf("a worker is described as %+v: it needs an id, a pid unless restarting, and counts ≥ 0", w)
		}
	}
	return nil
}

// checkDataChannelEnd: when the host closes the data channel (as it does
// when it stops, or dies), the plugin exits by itself, and so does
// everything it started.
func checkDataChannelEnd(_ context.Context, k *kit) error {
	pid := k.proc.PID()
	k.proc.Data().Close()
	if !supervise.WaitGone(pid, goneBy) {
		return fmt.Errorf("plugin process %d still runs %v after its data channel closed", pid, goneBy)
	}
	if left := waitGroupGone(pid, goneBy); len(left) > 0 {
		return fmt.Errorf("processes %v of the plugin's group still run %v after it exited", left, goneBy)
	}
	k.proc.Kill()
	k.proc = nil
	return nil
}

// checkKilled kills the plugin process under load, as a crash would: it
// has sent no reply twice nor any for a task not sent, its data channel
// ends (the host then answers what it held, once, with executor_failed),
// and what the plugin started ends by itself.
func checkKilled(ctx context.Context, k *kit) error {
	if k.cfg.Settings == nil {
		return errSkipped
	}
	proc, err := k.launch(ctx)
	if err != nil {
		return err
	}
	if _, err := proc.Describe(ctx); err != nil {
		return err
	}
	if _, err := proc.Configure(ctx, k.cfg); err != nil {
		return err
	}
	w := newWire(proc.Data())
	n := max(k.info.Concurrency, 1) + 3
	for range n {
		w.send(taskproto.KindSleep, 20_000, 0)
		w.send(taskproto.KindNoop, 0, 0)
	}
	time.Sleep(300 * time.Millisecond)
	pid := proc.PID()
	if k.opt.Logger != nil {
		k.opt.Logger.Info("killing the plugin on purpose (SIGKILL), as a crash would", "pid", pid)
	}
	proc.ExpectExit("killed on purpose by the conformance kit (check: one reply per task when killed)")
	if err := killProcess(pid); err != nil {
		return fmt.Errorf("kill plugin %d: %w", pid, err)
	}
	if !w.awaitEnd(goneBy) {
		return fmt.Errorf("the data channel of the killed plugin is still open %v after the kill", goneBy)
	}
	if p := w.problems(); len(p) > 0 {
		return fmt.Errorf("before it was killed, the plugin sent %s", p[0])
	}
	if left := waitGroupGone(pid, goneBy); len(left) > 0 {
		return fmt.Errorf("processes %v the killed plugin started still run %v after it died", left, goneBy)
	}
	return nil
}

func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// waitGroupGone waits until process group pgid is empty, and returns its
// members if it does not become so.
func waitGroupGone(pgid int, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		left := supervise.GroupMembers(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(25 * time.Millisecond)
	}
}
