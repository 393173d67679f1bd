package lab

// From the rounds' trials to the figures the report states: medians with
// their intervals, comparisons with inproc, isolation costs and capacities.

import (
	"fmt"
	"math"

	"github.com/wslab/wslab/client"
	"github.com/wslab/wslab/lab/stats"
)

// aggregate fills in every estimate from the trials.
func (r *Report) aggregate() {
	for i := range r.Results {
		r.Results[i].summarise()
	}
	for i := range r.Results {
		res := &r.Results[i]
		base := r.result("inproc", res.Scenario)
		if base == nil || res.Strategy == "inproc" {
			continue
		}
		res.VsInproc = &Versus{
			Throughput: stats.Compare(base.Throughput, res.Throughput),
			P50:        stats.Compare(base.P50, res.P50),
			P99:        stats.Compare(base.P99, res.P99),
		}
		if res.Scenario == scenarioRTT {
			res.IsolationUS = isolation(base, res)
		}
	}
	for i := range r.Capacity {
		r.Capacity[i].summarise(r.Rounds)
	}
	r.buildLadder()
}

// result is the strategy's result under the scenario, nil if none.
func (r *Report) result(strategy, scenario string) *Result {
	for i := range r.Results {
		if res := &r.Results[i]; res.Strategy == strategy && res.Scenario == scenario {
			return res
		}
	}
	return nil
}

// summarise estimates res's figures over its trials that measured.
func (res *Result) summarise() {
	var tput, p50, p99, mean, cpu, queue, run, rss []float64
	res.Errors, res.Processes, res.Failed = 0, 0, ""
	for _, t := range res.Trials {
		if t.Failed != "" && res.Failed == "" {
			res.Failed = fmt.Sprintf("round %d: %s", t.Round, t.Failed)
		}
		s := t.Summary
		if s == nil {
			continue
		}
		res.Errors += errorCount(s)
		res.Processes = max(res.Processes, t.Processes)
		tput = append(tput, s.Throughput)
		rss = append(rss, t.PeakRSSMB)
		if p, ok := allKinds(s.Latency); ok {
			p50, p99, mean = append(p50, p.P50), append(p99, p.P99), append(mean, p.Mean*1000)
		}
		if s.OK > 0 {
			cpu = append(cpu, t.CPUSeconds*1e6/float64(s.OK))
		}
		if q, ok := allKinds(s.Queue); ok {
			queue = append(queue, q.Mean*1000)
		}
		if p, ok := allKinds(s.Run); ok {
			run = append(run, p.Mean*1000)
		}
	}
	res.Throughput, res.P50, res.P99 = stats.Estimated(tput), stats.Estimated(p50), stats.Estimated(p99)
	res.CPUPerTask, res.PeakRSSMB = stats.Estimated(cpu), stats.Estimated(rss)
	res.MeanUS, res.QueueUS, res.RunUS = stats.Estimated(mean), stats.Estimated(queue), stats.Estimated(run)
	res.Spans = medianSpans(res.Trials)
	res.Host = hostResult(res.Trials)
}

// hostResult sums up the hosts' own accounts of the trials; nil when no
// trial asked for one.
func hostResult(trials []Trial) *HostResult {
	var (
		h                             HostResult
		asked                         bool
		tasks, qp50, qp99, rp50, rp99 []float64
	)
	add := func(to *map[string]int64, from map[string]int64) {
		for k, n := range from {
			if *to == nil {
				*to = map[string]int64{}
			}
			(*to)[k] += n
		}
	}
	addRestarts := func(to **int64, n *int64) {
		if n == nil {
			return
		}
		if *to == nil {
			*to = new(int64)
		}
		**to += *n
	}
	for _, t := range trials {
		if t.Summary == nil || t.Summary.Host == nil {
			continue
		}
		asked = true
		v := t.Summary.Host
		if v.Error != "" {
			if h.Unread == "" {
				h.Unread = fmt.Sprintf("round %d: %s", t.Round, v.Error)
			}
			continue
		}
		h.Rounds++
		tasks = append(tasks, float64(v.TasksTotal))
		h.Unmatched += v.TasksTotal - t.Summary.Replies
		for code, n := range v.Outcomes {
			if code != "ok" {
				add(&h.NotOK, map[string]int64{code: n})
			}
		}
		if q := v.Queue["all"]; q.Count > 0 {
			qp50, qp99 = append(qp50, q.P50), append(qp99, q.P99)
		}
		if r := v.Run["all"]; r.Count > 0 {
			rp50, rp99 = append(rp50, r.P50), append(rp99, r.P99)
		}
		addRestarts(&h.PluginRestarts, v.PluginRestarts)
		addRestarts(&h.WorkerRestarts, v.WorkerRestarts)
		add(&h.Refused, v.Refused)
		add(&h.Closed, v.Closed)
	}
	if !asked {
		return nil
	}
	h.Tasks = stats.Estimated(tasks)
	h.QueueP50, h.QueueP99 = stats.Estimated(qp50), stats.Estimated(qp99)
	h.RunP50, h.RunP99 = stats.Estimated(rp50), stats.Estimated(rp99)
	return &h
}

// allKinds is the percentiles over all task kinds (the client's "all"),
// when any was measured.
func allKinds(m map[string]client.Percentiles) (client.Percentiles, bool) {
	p := m["all"]
	return p, p.Count > 0
}

// errorCount is every reply that was not right, plus failed connections.
func errorCount(s *client.Summary) int64 {
	return s.TotalErrors() + s.Wrong + s.Missing + s.ConnFailures
}

// isolation is res's round trip minus base's, round by round: both ran in
// the same round, close in time, so the difference carries less of the
// machine's drift than the difference of the two medians.
func isolation(base, res *Result) *stats.Estimate {
	baseByRound := map[int]float64{}
	for _, t := range base.Trials {
		if p, ok := trialP50(t); ok {
			baseByRound[t.Round] = p
		}
	}
	var diffs []float64
	for _, t := range res.Trials {
		b, ok := baseByRound[t.Round]
		if p, ok2 := trialP50(t); ok && ok2 {
			diffs = append(diffs, (p-b)*1000)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	e := stats.Estimated(diffs)
	return &e
}

func trialP50(t Trial) (float64, bool) {
	if t.Failed != "" || t.Summary == nil || errorCount(t.Summary) > 0 {
		return 0, false
	}
	p, ok := allKinds(t.Summary.Latency)
	return p.P50, ok
}

// summarise estimates each point over the rounds that offered it, and
// finds the capacity: the highest rate that most of the rounds sustained,
// every lower rate too. A round that stopped below a rate (because a lower
// one broke) counts against it.
func (c *Capacity) summarise(rounds int) {
	c.Sustained, c.Failed = 0, ""
	broken := false
	for i := range c.Points {
		pt := &c.Points[i]
		var p50, p99, tput, errShare []float64
		pt.Passed = 0
		for _, t := range pt.Trials {
			if t.Failed != "" {
				if c.Failed == "" {
					c.Failed = fmt.Sprintf("round %d at %s/s: %s", t.Round, num(pt.Rate), t.Failed)
				}
				continue
			}
			if t.Sustained {
				pt.Passed++
			}
			if t.P99 > 0 || t.P50 > 0 {
				p50, p99 = append(p50, t.P50), append(p99, t.P99)
			}
			tput = append(tput, t.Throughput)
			if t.Offered > 0 {
				errShare = append(errShare, float64(t.Errors)/float64(t.Offered))
			}
		}
		pt.P50, pt.P99, pt.Throughput = stats.Estimated(p50), stats.Estimated(p99), stats.Estimated(tput)
		pt.ErrorShare = stats.Estimated(errShare)
		pt.Sustained = 2*pt.Passed > rounds
		if !pt.Sustained {
			broken = true
		}
		if !broken {
			c.Sustained = pt.Rate
		}
	}
}

// atTop says whether the strategy sustained every rate offered: its
// capacity is then at least the highest, not found.
func (c *Capacity) atTop() bool {
	return len(c.Points) > 0 && c.Sustained > 0 && c.Sustained == c.Points[len(c.Points)-1].Rate
}

// ran says whether any round offered the point.
func (pt *CapacityPoint) ran() bool { return pt.P99.N() > 0 }

// median is e's median, NaN when nothing was measured: for charts.
func median(e stats.Estimate) float64 {
	if e.N() == 0 {
		return math.NaN()
	}
	return e.Median
}
