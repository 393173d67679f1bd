package client

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

// fibSlow is F(n) by n additions, independent of Fib's fast doubling.
func fibSlow(n int) *big.Int {
	a, b := big.NewInt(0), big.NewInt(1)
	for range n {
		a.Add(a, b)
		a, b = b, a
	}
	return a
}

func TestFib(t *testing.T) {
	for n := range 300 {
		if got, want := Fib(int64(n)), fibSlow(n); got.Cmp(want) != 0 {
			t.Fatalf("Fib(%d) = %v, want %v", n, got, want)
		}
	}
	f := Fib(5000).String()
	if len(f) != 1045 || f != fibSlow(5000).String() {
		t.Fatalf("F(5000) has %d digits, want 1045 and the slow value", len(f))
	}
	if Fib(90).String() != "2880067194370816120" {
		t.Fatalf("F(90) = %v", Fib(90))
	}
}

func TestSumBelow(t *testing.T) {
	for n, want := range map[int64]string{
		-3: "0", 0: "0", 1: "0", 2: "1", 5: "10", 1_000_000: "499999500000",
		4_000_000_000: "7999999998000000000",
		1 << 62:       "10633823966279326980924613473029062656",
	} {
		if got := SumBelow(n).String(); got != want {
			t.Errorf("SumBelow(%d) = %s, want %s", n, got, want)
		}
	}
}

func baseOptions() Options {
	return Options{URL: "ws://127.0.0.1:1/ws", Clients: 2, Tasks: []string{"fib", "cpu", "io"}, FibN: 5000}
}

func TestPlanExpectedValues(t *testing.T) {
	o := baseOptions()
	o.Tasks = []string{"fib", " cpu", "io", "3", "0"}
	p, err := newPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ plain, expect string }{
		{"fib", fibSlow(5000).String()},
		{"cpu", "499999500000"},
		{"io", "1000000"},
		{"3", "Request done"},
		{"0", "Request done"},
	}
	for i, w := range want {
		tk := p.tokens[i]
		if string(tk.plain) != w.plain || tk.expect != w.expect {
			t.Errorf("token %d: plain %q expect %.30q, want %q %.30q", i, tk.plain, tk.expect, w.plain, w.expect)
		}
	}
	if p.opt.Protocol != "plain" || p.opt.Pipeline != 1 || p.mode != ModeSequence || p.opt.ReplyTimeout != DefaultReplyTimeout {
		t.Errorf("defaults not applied: %+v mode %s", p.opt, p.mode)
	}

	o = baseOptions()
	o.Protocol = "json"
	o.Tasks = []string{"fib", "cpu", "io", "sleep", "noop", "2"}
	o.N = map[string]int64{"fib": 90, "cpu": 10, "io": 4096}
	p, err = newPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := []struct{ frame, expect string }{
		{`{"id":"c7-12","task":"fib","n":90}`, "2880067194370816120"},
		{`{"id":"c7-12","task":"cpu","n":10}`, "45"},
		{`{"id":"c7-12","task":"io","n":4096}`, "4096"},
		{`{"id":"c7-12","task":"sleep"}`, "Request done"},
		{`{"id":"c7-12","task":"noop"}`, ""},
		{`{"id":"c7-12","task":"sleep","n":2000}`, "Request done"},
	}
	r := newRun(p)
	c := newConn(r, 7, r.shards[0])
	for i, w := range wantJSON {
		tk := &p.tokens[i]
		if got := string(c.buildFrame(12, tk)); got != w.frame || tk.expect != w.expect {
			t.Errorf("token %d: frame %s expect %q, want %s %q", i, got, tk.expect, w.frame, w.expect)
		}
		if string(tk.expectJSON) != `"`+w.expect+`"` {
			t.Errorf("token %d: expectJSON %s", i, tk.expectJSON)
		}
	}
}

func TestPlanRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*Options)
		want string
	}{
		"no url":            {func(o *Options) { o.URL = "" }, "--url"},
		"http url":          {func(o *Options) { o.URL = "http://x/ws" }, "scheme"},
		"no clients":        {func(o *Options) { o.Clients = 0 }, "--clients"},
		"bad protocol":      {func(o *Options) { o.Protocol = "xml" }, "--protocol"},
		"plain pipeline":    {func(o *Options) { o.Pipeline = 4 }, "--pipeline 4 needs --protocol json"},
		"negative pipeline": {func(o *Options) { o.Protocol, o.Pipeline = "json", -1 }, "--pipeline"},
		"rate no duration":  {func(o *Options) { o.Protocol, o.Rate = "json", 10 }, "--rate needs --duration"},
		"rate plain":        {func(o *Options) { o.Rate, o.Duration = 10, time.Second }, "--rate needs --protocol json"},
		"negative duration": {func(o *Options) { o.Duration = -time.Second }, "--duration"},
		"unknown task":      {func(o *Options) { o.Tasks = []string{"fib", "bogus"} }, "item 2: unknown task"},
		"empty tasks":       {func(o *Options) { o.Tasks = nil }, "--tasks is empty"},
		"signed sleep":      {func(o *Options) { o.Tasks = []string{"+3"} }, "unknown task"},
		"plain sleep word":  {func(o *Options) { o.Tasks = []string{"sleep"} }, "needs --protocol json"},
		"plain noop":        {func(o *Options) { o.Tasks = []string{"noop"} }, "needs --protocol json"},
		"n with plain":      {func(o *Options) { o.N = map[string]int64{"cpu": 5} }, "needs --protocol json"},
		"n unknown": {func(o *Options) {
			o.Protocol, o.N = "json", map[string]int64{"gpu": 5}
		}, "unknown task"},
		"n negative": {func(o *Options) {
			o.Protocol, o.N = "json", map[string]int64{"cpu": -5}
		}, "negative"},
		"fib too big":      {func(o *Options) { o.FibN = maxFibN + 1 }, "fibonacci_limit"},
		"negative timeout": {func(o *Options) { o.ReplyTimeout = -1 }, "--reply-timeout"},
		"sleep overflow":   {func(o *Options) { o.Protocol, o.Tasks = "json", []string{"9223372036854775807"} }, "too long"},
		"ws metrics":       {func(o *Options) { o.MetricsURL = "ws://127.0.0.1:1/metrics" }, "--metrics"},
		"no metrics host":  {func(o *Options) { o.MetricsURL = "http:///metrics" }, "--metrics"},
	} {
		t.Run(name, func(t *testing.T) {
			o := baseOptions()
			tc.mod(&o)
			_, err := newPlan(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
