package tasks

import (
	"context"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// fibDoubling computes F(n) by fast doubling, independently of Fib:
//
//	F(2k)   = F(k) * (2F(k+1) - F(k))
//	F(2k+1) = F(k)^2 + F(k+1)^2
func fibDoubling(n int64) *big.Int {
	if n < 0 {
		panic("negative n")
	}
	a, b := big.NewInt(0), big.NewInt(1) // F(k), F(k+1) with k = 0
	for bit := 62; bit >= 0; bit-- {
		// k -> 2k
		t := new(big.Int).Lsh(b, 1)
		t.Sub(t, a)
		c := new(big.Int).Mul(a, t) // F(2k)
		d := new(big.Int).Mul(a, a)
		d.Add(d, new(big.Int).Mul(b, b)) // F(2k+1)
		if n>>uint(bit)&1 == 1 {
			// 2k -> 2k+1
			a, b = d, c.Add(c, d)
		} else {
			a, b = c, d
		}
	}
	return a
}

func TestFibDoublingHelper(t *testing.T) {
	// Sanity check of the test's own reference against the recurrence.
	a, b := big.NewInt(0), big.NewInt(1)
	for n := int64(0); n <= 200; n++ {
		if got := fibDoubling(n); got.Cmp(a) != 0 {
			t.Fatalf("fibDoubling(%d) = %s, want %s", n, got, a)
		}
		a, b = b, new(big.Int).Add(a, b)
	}
}

func TestFibKnownValues(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{2, "1"},
		{3, "2"},
		{10, "55"},
		{90, "2880067194370816120"},
		{92, "7540113804746346429"}, // largest fitting int64
		{93, "12200160415121876738"},
		{100, "354224848179261915075"},
	} {
		got, err := Fib(ctx, tc.n)
		if err != nil {
			t.Fatalf("Fib(%d): %v", tc.n, err)
		}
		if got.String() != tc.want {
			t.Errorf("Fib(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestFib5000(t *testing.T) {
	got, err := Fib(context.Background(), 5000)
	if err != nil {
		t.Fatal(err)
	}
	s := got.String()
	if len(s) != 1045 {
		t.Errorf("F(5000) has %d digits, want 1045", len(s))
	}
	if want := fibDoubling(5000); got.Cmp(want) != 0 {
		t.Errorf("F(5000) differs from fast doubling:\n got  %s\n want %s", s, want)
	}
	// Pisano period modulo 10 is 60, and 5000 = 20 (mod 60): F(20) = 6765.
	if s[len(s)-1] != '5' {
		t.Errorf("F(5000) ends in %c, want 5", s[len(s)-1])
	}
}

func TestFibAgainstFastDoubling(t *testing.T) {
	ctx := context.Background()
	for n := int64(0); n <= 300; n++ {
		got, err := Fib(ctx, n)
		if err != nil {
			t.Fatalf("Fib(%d): %v", n, err)
		}
		if want := fibDoubling(n); got.Cmp(want) != 0 {
			t.Fatalf("Fib(%d) = %s, want %s", n, got, want)
		}
	}
	large := []int64{1000, 1023, 1024, 1025, 4096, 12345, 20000}
	if !testing.Short() {
		large = append(large, DefaultMaxFibN)
	}
	for _, n := range large {
		got, err := Fib(ctx, n)
		if err != nil {
			t.Fatalf("Fib(%d): %v", n, err)
		}
		if want := fibDoubling(n); got.Cmp(want) != 0 {
			t.Errorf("Fib(%d) differs from fast doubling", n)
		}
	}
}

func TestFibNegative(t *testing.T) {
	if _, err := Fib(context.Background(), -1); err == nil {
		t.Fatal("Fib(-1) returned no error")
	}
}

func TestFibCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := Fib(ctx, 100_000)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fib on cancelled ctx: err = %v, want context.Canceled", err)
	}
	if got != nil {
		t.Errorf("Fib on cancelled ctx returned a value %v", got)
	}
}

func TestFibDeadline(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := Fib(ctx, 100_000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fib past deadline: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestCPU(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		n, want int64
	}{
		{0, 0},
		{1, 0},
		{2, 1},
		{3, 3},
		{1_000_000, 499999500000},
	} {
		got, err := CPU(ctx, tc.n)
		if err != nil {
			t.Fatalf("CPU(%d): %v", tc.n, err)
		}
		if got != tc.want {
			t.Errorf("CPU(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	// Around the chunk boundary at which the context is checked.
	for _, n := range []int64{4, 10, 100, 1000, checkEvery - 1, checkEvery, checkEvery + 1, 2*checkEvery + 7, 12345} {
		got, err := CPU(ctx, n)
		if err != nil {
			t.Fatalf("CPU(%d): %v", n, err)
		}
		if want := n * (n - 1) / 2; got != want {
			t.Errorf("CPU(%d) = %d, want %d", n, got, want)
		}
	}
	for n := int64(0); n <= 300; n++ {
		got, err := CPU(ctx, n)
		if err != nil {
			t.Fatalf("CPU(%d): %v", n, err)
		}
		if want := n * (n - 1) / 2; got != want {
			t.Fatalf("CPU(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestCPUMaxFitsInt64(t *testing.T) {
	// The documented reason for MaxCPUN: the sum 0..MaxCPUN-1 fits an int64.
	n := big.NewInt(MaxCPUN)
	s := new(big.Int).Mul(n, new(big.Int).Sub(n, big.NewInt(1)))
	s.Rsh(s, 1)
	if !s.IsInt64() {
		t.Fatalf("sum of 0..%d = %s overflows int64", int64(MaxCPUN), s)
	}
	if DefaultMaxCPUN > MaxCPUN {
		t.Fatalf("DefaultMaxCPUN %d > MaxCPUN %d", int64(DefaultMaxCPUN), int64(MaxCPUN))
	}
}

func TestCPURejectsOutOfRange(t *testing.T) {
	for _, n := range []int64{-1, -1 << 62, MaxCPUN + 1, 1 << 62} {
		if got, err := CPU(context.Background(), n); err == nil {
			t.Errorf("CPU(%d) = %d, nil; want an error", n, got)
		}
	}
}

func TestCPUCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	got, err := CPU(ctx, MaxCPUN)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CPU on cancelled ctx: err = %v, want context.Canceled", err)
	}
	if got != 0 {
		t.Errorf("CPU on cancelled ctx = %d, want 0", got)
	}
	// A full run takes seconds; one chunk takes microseconds.
	if d := time.Since(start); d > time.Second {
		t.Errorf("CPU on cancelled ctx took %v", d)
	}
}

func TestCPUCancelledWhileRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := CPU(ctx, MaxCPUN)
		done <- err
	}()
	time.Sleep(5 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("CPU did not return after cancel")
	}
}

func TestSleep(t *testing.T) {
	start := time.Now()
	if err := Sleep(context.Background(), 10*time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("Sleep(10ms) returned after %v", d)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0): %v", err)
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on cancelled ctx: err = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	time.Sleep(5 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Sleep did not return after cancel")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sleep past deadline: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestRunnerRun(t *testing.T) {
	dir := t.TempDir()
	r := Runner{DataDir: dir, LargeFileName: "large_file.txt"}
	ctx := context.Background()
	for _, tc := range []struct {
		task taskproto.Task
		want string
	}{
		{taskproto.Task{Kind: taskproto.KindFib, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 10}, "55"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 93}, "12200160415121876738"},
		{taskproto.Task{Kind: taskproto.KindFib, N: 5000}, fibDoubling(5000).String()},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindCPU, N: 1_000_000}, "499999500000"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 0}, "0"},
		{taskproto.Task{Kind: taskproto.KindIO, N: 100_000}, "100000"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 0}, "Request done"},
		{taskproto.Task{Kind: taskproto.KindSleep, N: 2}, "Request done"},
		{taskproto.Task{Kind: taskproto.KindNoop, N: 0}, ""},
		{taskproto.Task{Kind: taskproto.KindNoop, N: -5}, ""},
	} {
		got, err := r.Run(ctx, tc.task)
		if err != nil {
			t.Errorf("Run(%+v): %v", tc.task, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Run(%+v) = %q, want %q", tc.task, got, tc.want)
		}
	}
	assertEmptyDir(t, dir)
}

func TestRunnerRunUnknown(t *testing.T) {
	for _, kind := range []string{"", "FIB", "fibonacci", "bogus", " noop"} {
		got, err := Runner{}.Run(context.Background(), taskproto.Task{Kind: kind, N: 1})
		var te *taskproto.Error
		if !errors.As(err, &te) {
			t.Fatalf("Run(%q): err = %v (%T), want *taskproto.Error", kind, err, err)
		}
		if te.Code != taskproto.CodeUnknownTask {
			t.Errorf("Run(%q): code = %q, want %q", kind, te.Code, taskproto.CodeUnknownTask)
		}
		if !strings.Contains(te.Message, strconv.Quote(kind)) {
			t.Errorf("Run(%q): message %q does not name the kind", kind, te.Message)
		}
		if got != "" {
			t.Errorf("Run(%q) = %q, want empty", kind, got)
		}
	}
}

func TestRunnerRunErrors(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		r    Runner
		ctx  context.Context
		task taskproto.Task
	}{
		{"fib negative", Runner{}, ctx, taskproto.Task{Kind: taskproto.KindFib, N: -1}},
		{"cpu negative", Runner{}, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: -1}},
		{"cpu too large", Runner{}, ctx, taskproto.Task{Kind: taskproto.KindCPU, N: MaxCPUN + 1}},
		{"io without dir", Runner{}, ctx, taskproto.Task{Kind: taskproto.KindIO, N: 10}},
		{"io negative", Runner{DataDir: t.TempDir()}, ctx, taskproto.Task{Kind: taskproto.KindIO, N: -1}},
		{"fib cancelled", Runner{}, cancelled, taskproto.Task{Kind: taskproto.KindFib, N: 100_000}},
		{"cpu cancelled", Runner{}, cancelled, taskproto.Task{Kind: taskproto.KindCPU, N: MaxCPUN}},
		{"io cancelled", Runner{DataDir: t.TempDir()}, cancelled, taskproto.Task{Kind: taskproto.KindIO, N: 1000}},
		{"sleep cancelled", Runner{}, cancelled, taskproto.Task{Kind: taskproto.KindSleep, N: 3_600_000}},
	} {
		got, err := tc.r.Run(tc.ctx, tc.task)
		if err == nil {
			t.Errorf("%s: Run(%+v) = %q, nil; want an error", tc.name, tc.task, got)
		} else if got != "" {
			t.Errorf("%s: Run returned %q with error %v", tc.name, got, err)
		}
		if tc.ctx == cancelled && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", tc.name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	lim := taskproto.Limits{
		MaxFibN:    1111,
		MaxCPUN:    22222,
		MaxIOBytes: 333333,
		MaxSleep:   4444 * time.Millisecond,
	}
	limitOf := map[string]int64{
		taskproto.KindFib:   1111,
		taskproto.KindCPU:   22222,
		taskproto.KindIO:    333333,
		taskproto.KindSleep: 4444,
	}
	for _, kind := range []string{taskproto.KindFib, taskproto.KindCPU, taskproto.KindIO, taskproto.KindSleep} {
		hi := limitOf[kind]
		for _, tc := range []struct {
			n  int64
			ok bool
		}{
			{0, true},
			{1, true},
			{hi - 1, true},
			{hi, true},
			{hi + 1, false},
			{hi * 1000, false},
			{1<<63 - 1, false},
			{-1, false},
			{-hi, false},
			{-1 << 63, false},
		} {
			task := taskproto.Task{Kind: kind, N: tc.n}
			err := Check(task, lim)
			if tc.ok {
				if err != nil {
					t.Errorf("Check(%+v) = %v, want nil", task, err)
				}
				continue
			}
			var te *taskproto.Error
			if !errors.As(err, &te) {
				t.Errorf("Check(%+v) = %v (%T), want *taskproto.Error", task, err, err)
				continue
			}
			if te.Code != taskproto.CodeOutOfRange {
				t.Errorf("Check(%+v): code %q, want %q", task, te.Code, taskproto.CodeOutOfRange)
			}
			for _, part := range []string{kind, "0", strconv.FormatInt(hi, 10), strconv.FormatInt(tc.n, 10)} {
				if !strings.Contains(te.Message, part) {
					t.Errorf("Check(%+v): message %q does not contain %q", task, te.Message, part)
				}
			}
			if !strings.HasPrefix(te.Message, kind+" ") {
				t.Errorf("Check(%+v): message %q does not start with the task name", task, te.Message)
			}
		}
	}
}

func TestCheckDefaults(t *testing.T) {
	lim := taskproto.Limits{
		MaxFibN:    DefaultMaxFibN,
		MaxCPUN:    DefaultMaxCPUN,
		MaxIOBytes: DefaultMaxIOBytes,
		MaxSleep:   100 * time.Second,
	}
	for _, task := range []taskproto.Task{
		{Kind: taskproto.KindFib, N: DefaultMaxFibN},
		{Kind: taskproto.KindCPU, N: DefaultCPUN},
		{Kind: taskproto.KindCPU, N: DefaultMaxCPUN},
		{Kind: taskproto.KindIO, N: DefaultIOBytes},
		{Kind: taskproto.KindIO, N: DefaultMaxIOBytes},
		{Kind: taskproto.KindSleep, N: DefaultSleepMS},
		{Kind: taskproto.KindSleep, N: 100_000},
	} {
		if err := Check(task, lim); err != nil {
			t.Errorf("Check(%+v) = %v, want nil", task, err)
		}
	}
	for _, task := range []taskproto.Task{
		{Kind: taskproto.KindFib, N: DefaultMaxFibN + 1},
		{Kind: taskproto.KindCPU, N: DefaultMaxCPUN + 1},
		{Kind: taskproto.KindIO, N: DefaultMaxIOBytes + 1},
		{Kind: taskproto.KindSleep, N: 100_001},
	} {
		if err := Check(task, lim); err == nil {
			t.Errorf("Check(%+v) = nil, want out_of_range", task)
		}
	}
}

func TestCheckZeroLimits(t *testing.T) {
	// With zero limits only 0 is accepted (noop accepts anything).
	var lim taskproto.Limits
	for _, kind := range []string{taskproto.KindFib, taskproto.KindCPU, taskproto.KindIO, taskproto.KindSleep} {
		if err := Check(taskproto.Task{Kind: kind, N: 0}, lim); err != nil {
			t.Errorf("Check(%s 0, zero limits) = %v", kind, err)
		}
		if err := Check(taskproto.Task{Kind: kind, N: 1}, lim); err == nil {
			t.Errorf("Check(%s 1, zero limits) = nil, want out_of_range", kind)
		}
	}
}

func TestCheckUnknown(t *testing.T) {
	lim := taskproto.Limits{MaxFibN: 10, MaxCPUN: 10, MaxIOBytes: 10, MaxSleep: time.Second}
	for _, kind := range []string{"", "Fib", "CPU", "sleepy", "no-op", "io "} {
		err := Check(taskproto.Task{Kind: kind, N: 1}, lim)
		var te *taskproto.Error
		if !errors.As(err, &te) {
			t.Fatalf("Check(%q) = %v (%T), want *taskproto.Error", kind, err, err)
		}
		if te.Code != taskproto.CodeUnknownTask {
			t.Errorf("Check(%q): code %q, want %q", kind, te.Code, taskproto.CodeUnknownTask)
		}
		// Unknown kind is reported even when N is out of every range.
		err = Check(taskproto.Task{Kind: kind, N: -1}, lim)
		if !errors.As(err, &te) || te.Code != taskproto.CodeUnknownTask {
			t.Errorf("Check(%q, -1) = %v, want unknown_task", kind, err)
		}
	}
}

func TestCheckNoop(t *testing.T) {
	for _, lim := range []taskproto.Limits{{}, {MaxFibN: 1, MaxCPUN: 1, MaxIOBytes: 1, MaxSleep: time.Millisecond}} {
		for _, n := range []int64{0, 1, -1, 1 << 62, -1 << 63, 1<<63 - 1} {
			if err := Check(taskproto.Task{Kind: taskproto.KindNoop, N: n}, lim); err != nil {
				t.Errorf("Check(noop %d, %+v) = %v, want nil", n, lim, err)
			}
		}
	}
}

func TestCheckEveryKindKnown(t *testing.T) {
	// Every documented kind passes Check at 0 and runs.
	lim := taskproto.Limits{MaxFibN: 1, MaxCPUN: 1, MaxIOBytes: 1, MaxSleep: time.Millisecond}
	r := Runner{DataDir: t.TempDir(), LargeFileName: "large_file.txt"}
	for _, kind := range taskproto.Kinds {
		task := taskproto.Task{Kind: kind, N: 0}
		if err := Check(task, lim); err != nil {
			t.Errorf("Check(%+v) = %v", task, err)
		}
		if _, err := r.Run(context.Background(), task); err != nil {
			t.Errorf("Run(%+v) = %v", task, err)
		}
	}
}
