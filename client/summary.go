package client

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Thresholds are the pass/fail limits given on the command line.
type Thresholds struct {
	// MaxP99 is the highest p99 latency allowed over all kinds; 0: none.
	MaxP99 time.Duration
	// MinRate is the lowest throughput (right results per second) allowed;
	// 0: none.
	MinRate float64
	// MaxErrors is how many error replies are allowed.
	MaxErrors int64
}

// TotalErrors is the number of error replies of every code.
func (s *Summary) TotalErrors() int64 {
	var n int64
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// Exit judges the run: ExitIncorrect when a reply was wrong or missing, a
// request could not be sent, a connection failed, error replies exceed
// th.MaxErrors or the run was interrupted; otherwise ExitThreshold when
// th.MaxP99 or th.MinRate was crossed; otherwise ExitOK. reasons lists
// everything that failed, worst first.
func (s *Summary) Exit(th Thresholds) (code int, reasons []string) {
	incorrect := false
	fail := func(format string, args ...any) {
		incorrect = true
		reasons = append(reasons, fmt.Sprintf(format, args...))
	}
	if s.Interrupted {
		fail("the run was interrupted")
	}
	if s.Wrong > 0 {
		fail("%d wrong %s", s.Wrong, plural(s.Wrong, "reply", "replies"))
	}
	if s.Missing > 0 {
		fail("%d %s missing (sent, never answered)", s.Missing, plural(s.Missing, "reply", "replies"))
	}
	if s.Unsent > 0 {
		fail("%d %s never sent", s.Unsent, plural(s.Unsent, "request", "requests"))
	}
	if s.ConnFailures > 0 {
		fail("%d connection %s", s.ConnFailures, plural(s.ConnFailures, "failure", "failures"))
	}
	if n := s.TotalErrors(); n > th.MaxErrors {
		fail("%d error %s, more than --max-errors %d (%s)", n, plural(n, "reply", "replies"), th.MaxErrors, errorList(s.Errors))
	}
	if s.Sent == 0 && !incorrect {
		fail("no request was sent")
	}
	threshold := false
	if th.MaxP99 > 0 {
		all := s.Latency["all"]
		limit := float64(th.MaxP99) / float64(time.Millisecond)
		switch {
		case all.Count == 0:
			threshold = true
			reasons = append(reasons, fmt.Sprintf("--max-p99 %v: no latency was recorded", th.MaxP99))
		case all.P99 > limit:
			threshold = true
			reasons = append(reasons, fmt.Sprintf("p99 latency %s ms is above --max-p99 %v", fmtMS(all.P99), th.MaxP99))
		}
	}
	if th.MinRate > 0 && s.Throughput < th.MinRate {
		threshold = true
		reasons = append(reasons, fmt.Sprintf("throughput %.1f tasks/s is below --min-rate %g", s.Throughput, th.MinRate))
	}
	switch {
	case incorrect:
		code = ExitIncorrect
	case threshold:
		code = ExitThreshold
	default:
		code = ExitOK
	}
	return code, reasons
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func errorList(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func fmtMS(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// kindOrder lists latency keys in the documented order, then any other,
// then "all".
func kindOrder[V any](m map[string]V) []string {
	var out []string
	for _, k := range kindNames {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(out, k) && k != "all" {
			out = append(out, k)
		}
	}
	if _, ok := m["all"]; ok {
		out = append(out, "all")
	}
	return out
}

// WriteReport writes the human-readable report of the run.
func (s *Summary) WriteReport(w io.Writer) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	load := fmt.Sprintf("%d %s × %s, %s", s.Clients, plural(int64(s.Clients), "client", "clients"),
		strings.Join(s.Tasks, ", "), s.Protocol)
	if s.Pipeline > 1 {
		load += fmt.Sprintf(", pipeline %d", s.Pipeline)
	}
	switch s.Mode {
	case ModeDuration:
		load += fmt.Sprintf(", for %v", time.Duration(s.DurationSeconds*float64(time.Second)))
	case ModeRate:
		load += fmt.Sprintf(", %g requests/s for %v", s.Rate, time.Duration(s.DurationSeconds*float64(time.Second)))
	}
	p("wslab client: %s → %s\n", load, s.URL)
	if s.Interrupted {
		p("INTERRUPTED: the figures cover the run up to the interruption\n")
	}
	p("wall time      %.3f s\n", s.WallSeconds)
	p("requests       sent %d, replies %d: ok %d, wrong %d, errors %d; missing %d, unsent %d\n",
		s.Sent, s.Replies, s.OK, s.Wrong, s.TotalErrors(), s.Missing, s.Unsent)
	p("errors         %s\n", errorList(s.Errors))
	p("connections    %d opened, %d failed\n", s.Connections, s.ConnFailures)
	p("throughput     %.1f tasks/s (right results per second)\n", s.Throughput)

	table := func(title string, m map[string]Percentiles) {
		p("\n%-10s %9s %9s %9s %9s %9s %9s\n", title, "count", "p50", "p90", "p99", "p99.9", "max")
		for _, k := range kindOrder(m) {
			v := m[k]
			p("%-10s %9d %9s %9s %9s %9s %9s\n", k, v.Count, fmtMS(v.P50), fmtMS(v.P90), fmtMS(v.P99), fmtMS(v.P999), fmtMS(v.Max))
		}
	}
	table("latency ms", s.Latency)
	if len(s.Queue) > 0 || len(s.Run) > 0 {
		p("\nhost time ms   %9s %9s %9s   %9s %9s %9s\n", "queue p50", "p99", "max", "run p50", "p99", "max")
		for _, k := range kindOrder(s.Run) {
			q, r := s.Queue[k], s.Run[k]
			p("%-14s %9s %9s %9s   %9s %9s %9s\n", k, fmtMS(q.P50), fmtMS(q.P99), fmtMS(q.Max), fmtMS(r.P50), fmtMS(r.P99), fmtMS(r.Max))
		}
	}
	if s.Host != nil {
		s.Host.writeReport(p, s.Replies)
	}
	for _, k := range kindOrder(s.Timing) {
		p("\ntimeline of %s, µs (median of %d timed requests)\n", k, s.Timing[k][0].Count)
		for _, sp := range s.Timing[k] {
			p("  %-28s %9.1f\n", sp.From+" → "+sp.To, sp.P50)
		}
	}
	if l := s.SendLag; l != nil {
		p("\nsend lag ms (due → sent, included in latency): p50 %s  p90 %s  p99 %s  max %s\n",
			fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.Max))
	}
	if c := s.ClientSeconds; c.Count > 0 {
		p("\nclient completion s (%d clients): min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
			c.Count, c.Min/1000, c.P50/1000, c.P90/1000, c.P99/1000, c.Max/1000)
	}
	if len(s.WrongSamples) > 0 {
		p("\nwrong replies (samples):\n")
		for _, w := range s.WrongSamples {
			p("  %s\n", w)
		}
	}
	if len(s.FailureSamples) > 0 {
		p("\nfailures (samples):\n")
		for _, f := range s.FailureSamples {
			p("  %s\n", f)
		}
	}
	io.WriteString(w, b.String())
}

// writeReport writes the host's account of the run; replies is what the
// client counted, beside it.
func (v *HostView) writeReport(p func(format string, args ...any), replies int64) {
	if v.Error != "" {
		p("\nhost /metrics  could not be read: %s\n", v.Error)
		return
	}
	strategy := ""
	if v.Strategy != "" {
		strategy = " (strategy " + v.Strategy + ")"
	}
	p("\nhost /metrics  %s: what the host counted during the run%s\n", v.URL, strategy)
	answers := fmt.Sprintf("ok %d", v.Outcomes[outcomeOK])
	if others := maps.Clone(v.Outcomes); len(others) > 0 {
		delete(others, outcomeOK)
		if len(others) > 0 {
			answers += ", " + errorList(others)
		}
	}
	p("  answered     %d (the client counted %d replies): %s\n", v.TasksTotal, replies, answers)
	restarts := func(n *int64) string {
		if n == nil {
			return dashText
		}
		return fmt.Sprint(*n)
	}
	p("  restarts     plugin %s, workers %s\n", restarts(v.PluginRestarts), restarts(v.WorkerRestarts))
	p("  connections  %d opened; refused: %s; closed: %s\n", v.ConnectionsOpened, errorList(v.Refused), errorList(v.Closed))
	for _, n := range v.Notes {
		p("  note: %s\n", n)
	}
	if len(v.Run) == 0 && len(v.Queue) == 0 {
		return
	}
	p("\n%-14s %9s %9s %9s %9s   %9s %9s %9s\n", "/metrics ms", "count", "queue p50", "p90", "p99", "run p50", "p90", "p99")
	for _, k := range kindOrder(v.Run) {
		q, r := v.Queue[k], v.Run[k]
		p("%-14s %9d %9s %9s %9s   %9s %9s %9s\n", k, r.Count, fmtMS(q.P50), fmtMS(q.P90), fmtMS(q.P99), fmtMS(r.P50), fmtMS(r.P90), fmtMS(r.P99))
	}
}

// dashText stands for a figure the host does not report.
const dashText = "–"
