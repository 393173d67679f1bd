package client

// The host's own account of a run (Options.MetricsURL): its Prometheus
// /metrics scraped just before the first connection and just after the
// last one, and the change between the two. The client sees replies; the
// host counts what it answered, how long tasks queued and ran inside it,
// what it refused, closed and restarted.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metrics the client reads, as the host names them (internal/telemetry
// and host/metrics.go). TestHostViewOfRealRegistry reads telemetry's from
// the host's own registry and internal/e2e's TestClientReadsHostMetrics
// the rest from a real host, so a renamed one fails there.
const (
	metricTasks          = "wslab_tasks_total"
	metricQueue          = "wslab_task_queue_seconds"
	metricRun            = "wslab_task_run_seconds"
	metricOpened         = "wslab_connections_opened_total"
	metricOpen           = "wslab_connections_open"
	metricRefused        = "wslab_connections_refused_total"
	metricClosed         = "wslab_connections_closed_total"
	metricPluginRestarts = "wslab_plugin_restarts_total"
	metricPluginUp       = "wslab_plugin_up"
	metricWorkerRestarts = "wslab_worker_restarts_total"
	metricStatsUp        = "wslab_strategy_stats_up"
)

// outcomeOK is the outcome label of a task answered with a result.
const outcomeOK = "ok"

const (
	// maxMetricsBytes bounds one scrape's body. A host's exposition is tens
	// of kilobytes, its plugin's own metrics included; a body past this is
	// not a wslab host's, and is not read into memory.
	maxMetricsBytes = 4 << 20
	// metricsTimeout bounds one scrape: the host gives its strategy 2 s
	// to report its stats and its handler 4 s in all.
	metricsTimeout = 5 * time.Second
	// settleWait bounds how long the client scrapes again after the run for
	// the host to settle: to have counted the closes of the run's
	// connections and to have its plugin and its stats back after a
	// restart. settleEvery spaces those scrapes.
	settleWait  = 3 * time.Second
	settleEvery = 100 * time.Millisecond
	// maxSettleScrapes bounds them in count as settleWait does in time.
	maxSettleScrapes = int(settleWait / settleEvery)
	// maxBaselineScrapes bounds the scrapes before the run that wait for
	// the closes of an earlier run's connections (the lab's warm-up) to
	// be counted: 1 s.
	maxBaselineScrapes = 10
)

// HostView is the host's own account of a run, from its /metrics: the
// change from just before the first connection to just after the last one
// ended. Other clients of the same host during the run count in it too.
type HostView struct {
	URL string `json:"url"`
	// Error says why the host's metrics could not be read; nothing below
	// is set then.
	Error string `json:"error,omitempty"`
	// Notes say what the figures may miss: the host had not settled when
	// the last scrape was taken.
	Notes []string `json:"notes,omitempty"`
	// Strategy is the strategy label of the host's metrics.
	Strategy string `json:"strategy,omitempty"`
	// Tasks counts the requests the host answered, by task kind and
	// outcome ("ok" or the reply's error code); Outcomes adds them up over
	// the kinds and TasksTotal over everything. Only what changed is
	// listed.
	Tasks      map[string]map[string]int64 `json:"tasks"`
	Outcomes   map[string]int64            `json:"outcomes"`
	TasksTotal int64                       `json:"tasks_total"`
	// Queue and Run are the host's histograms of how long the tasks that
	// ran waited inside it and ran, by task kind and "all", in ms.
	Queue map[string]HostTimes `json:"queue"`
	Run   map[string]HostTimes `json:"run"`
	// PluginRestarts counts the host's restarts of its strategy's plugin;
	// nil for a strategy without one (inproc).
	PluginRestarts *int64 `json:"plugin_restarts,omitempty"`
	// WorkerRestarts adds up the restarts of the strategy's workers; nil
	// when the strategy reports no workers.
	WorkerRestarts *int64 `json:"worker_restarts,omitempty"`
	// Connections the host upgraded, refused with 503 (by reason) and
	// closed (by reason: client, idle_timeout, not_reading, ...).
	ConnectionsOpened int64            `json:"connections_opened"`
	Refused           map[string]int64 `json:"connections_refused"`
	Closed            map[string]int64 `json:"connections_closed"`
}

// HostTimes sums up a host histogram's observations during the run, in
// ms. The quantiles are interpolated within the histogram's buckets, as
// Prometheus's histogram_quantile does: linearly inside the bucket the rank
// falls in, and the highest finite bound for a rank in the +Inf bucket.
type HostTimes struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
}

// families is one scrape, by metric name.
type families map[string]*dto.MetricFamily

// checkMetricsURL checks that s is an http(s) URL the client can scrape.
func checkMetricsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--metrics %q: the scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("--metrics %q has no host", s)
	}
	return nil
}

// metricsScraper reads the host's /metrics.
type metricsScraper struct {
	url, token string
	http       *http.Client
}

func newMetricsScraper(p *plan) *metricsScraper {
	return &metricsScraper{
		url:   p.opt.MetricsURL,
		token: p.opt.Token,
		http: &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: p.tls,
			// Two scrapes a run, minutes apart: no connection is worth
			// keeping open (and owning) between them.
			DisableKeepAlives: true,
		}},
	}
}

// scrape reads and parses one exposition, within metricsTimeout.
func (m *metricsScraper) scrape(ctx context.Context) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", m.url, err)
	}
	// The text format carries the classic buckets, which is all the
	// quantiles need; it is what promhttp serves to this Accept.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", m.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/plain" {
		return nil, fmt.Errorf("GET %s: Content-Type %q, not Prometheus's text format", m.url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.url, err)
	}
	if len(body) > maxMetricsBytes {
		return nil, fmt.Errorf("read %s: the exposition is larger than %d bytes", m.url, maxMetricsBytes)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", m.url, err)
	}
	return fams, nil
}

// baseline is the scrape before the run. While connections are open at
// the host and their number falls, an earlier run's closes are still
// being counted, and would count in this one: it scrapes again, up to
// maxBaselineScrapes times, until none is open or the number holds
// (another client's connections, which stay).
func (m *metricsScraper) baseline(ctx context.Context) (families, error) {
	f, err := m.scrape(ctx)
	for attempt := 1; err == nil && attempt < maxBaselineScrapes; attempt++ {
		open := gaugeOf(f, metricOpen)
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return f, nil
		case <-time.After(settleEvery):
		}
		next, nerr := m.scrape(ctx)
		if nerr != nil {
			return f, nil // the one before stands
		}
		f = next
		if gaugeOf(next, metricOpen) >= open {
			break
		}
	}
	return f, err
}

// view scrapes the host after the run and returns its account of the run:
// the change since before, or why it could not be read. An interrupted
// run (ctx done) still gets its view, from one scrape.
func (m *metricsScraper) view(ctx context.Context, before families, beforeErr error) *HostView {
	if beforeErr != nil {
		return &HostView{URL: m.url, Error: "before the run: " + beforeErr.Error()}
	}
	attempts := maxSettleScrapes
	if ctx.Err() != nil {
		attempts = 1
	}
	after, notes, err := m.settled(context.WithoutCancel(ctx), before, attempts)
	if err != nil {
		return &HostView{URL: m.url, Error: "after the run: " + err.Error()}
	}
	return newHostView(m.url, before, after, notes)
}

// settled scrapes, up to attempts times, until the host has settled (see
// unsettled) or settleWait has passed, and returns the last scrape with
// what was still unsettled in it.
func (m *metricsScraper) settled(ctx context.Context, before families, attempts int) (families, []string, error) {
	deadline := time.Now().Add(settleWait)
	for attempt := 1; ; attempt++ {
		after, err := m.scrape(ctx)
		if err != nil {
			return nil, nil, err
		}
		notes := unsettled(before, after)
		if len(notes) == 0 || attempt >= attempts || time.Now().After(deadline) {
			return after, notes, nil
		}
		select {
		case <-ctx.Done():
			return after, notes, nil
		case <-time.After(settleEvery):
		}
	}
}

// unsettled says what in after is not back to where before was: more
// connections open (the host has not counted their closes yet), the
// plugin down (it is restarting), the strategy's stats missing (its
// workers' restarts are then not in the exposition).
func unsettled(before, after families) []string {
	var notes []string
	if open, was := gaugeOf(after, metricOpen), gaugeOf(before, metricOpen); open > was {
		notes = append(notes, fmt.Sprintf("%.0f more connections open at the last scrape than before the run: their closes are not counted", open-was))
	}
	if _, ok := after[metricPluginUp]; ok && gaugeOf(after, metricPluginUp) < 1 {
		notes = append(notes, "the plugin was down at the last scrape: a restart under way is not counted")
	}
	if _, ok := after[metricStatsUp]; ok && gaugeOf(after, metricStatsUp) < 1 && gaugeOf(before, metricStatsUp) >= 1 {
		notes = append(notes, "the strategy did not report its stats at the last scrape: its workers' restarts are not counted")
	}
	return notes
}

// gaugeOf adds up a gauge's series; 0 when there is none.
func gaugeOf(f families, name string) float64 {
	var v float64
	for _, m := range f[name].GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

// labelsKey identifies a series within its family.
func labelsKey(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.GetLabel() { // the parser sorts them
		fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
	}
	return b.String()
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// counterDelta is one counter series' increase during the run: after
// minus before, or after alone when it went down (the counter was reset:
// a restarted plugin's workers count from zero), as Prometheus's
// increase() takes a reset; a series new in after counts from zero.
type counterDelta struct {
	series *dto.Metric // the after scrape's
	value  float64
}

func counterDeltas(before, after families, name string) []counterDelta {
	was := map[string]float64{}
	for _, m := range before[name].GetMetric() {
		was[labelsKey(m)] = m.GetCounter().GetValue()
	}
	var out []counterDelta
	for _, m := range after[name].GetMetric() {
		v := m.GetCounter().GetValue()
		if b := was[labelsKey(m)]; v >= b {
			v -= b
		}
		out = append(out, counterDelta{m, v})
	}
	return out
}

// byLabel adds a counter's increases up by the value of one label,
// leaving out what did not change.
func byLabel(ds []counterDelta, label string) map[string]int64 {
	out := map[string]int64{}
	for _, d := range ds {
		if n := int64(math.Round(d.value)); n != 0 {
			out[labelOf(d.series, label)] += n
		}
	}
	return out
}

// total adds a counter's increases up; ok is false when the family has no
// series at all.
func total(ds []counterDelta) (n int64, ok bool) {
	var v float64
	for _, d := range ds {
		v += d.value
	}
	return int64(math.Round(v)), len(ds) > 0
}

// bucket is a histogram's cumulative count up to an upper bound.
type bucket struct {
	upper, count float64
}

// histDelta is a histogram's observations during the run.
type histDelta struct {
	count, sum float64
	buckets    []bucket // ascending, ending at +Inf
}

// bucketsOf is h's cumulative buckets in ascending order, ending at +Inf
// (the text parser keeps the +Inf bucket; a histogram without one gets it
// from its count).
func bucketsOf(h *dto.Histogram) []bucket {
	var out []bucket
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			c = b.GetCumulativeCountFloat()
		}
		out = append(out, bucket{b.GetUpperBound(), c})
	}
	slices.SortStableFunc(out, func(a, b bucket) int { return compareFloat(a.upper, b.upper) })
	if len(out) == 0 || !math.IsInf(out[len(out)-1].upper, 1) {
		out = append(out, bucket{math.Inf(1), histCount(h)})
	}
	return out
}

func histCount(h *dto.Histogram) float64 {
	if h.SampleCountFloat != nil {
		return h.GetSampleCountFloat()
	}
	return float64(h.GetSampleCount())
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// histDeltas is every series of a histogram family, by the value of
// label, as the change from before to after. A series whose count went
// down was reset, and counts from zero.
func histDeltas(before, after families, name, label string) map[string]histDelta {
	was := map[string]*dto.Histogram{}
	for _, m := range before[name].GetMetric() {
		was[labelsKey(m)] = m.GetHistogram()
	}
	out := map[string]histDelta{}
	for _, m := range after[name].GetMetric() {
		h := m.GetHistogram()
		d := histDelta{count: histCount(h), sum: h.GetSampleSum(), buckets: bucketsOf(h)}
		if b := was[labelsKey(m)]; b != nil && histCount(b) <= d.count {
			d.count -= histCount(b)
			d.sum -= b.GetSampleSum()
			prev := map[float64]float64{}
			for _, bb := range bucketsOf(b) {
				prev[bb.upper] = bb.count
			}
			for i := range d.buckets {
				d.buckets[i].count -= prev[d.buckets[i].upper]
			}
		}
		key := labelOf(m, label)
		out[key] = addHist(out[key], d)
	}
	return out
}

// addHist adds two histograms' observations. The host's histograms share
// one set of buckets; a bound only one of them has keeps that one's count.
func addHist(a, b histDelta) histDelta {
	if len(a.buckets) == 0 {
		return histDelta{count: b.count, sum: b.sum, buckets: slices.Clone(b.buckets)}
	}
	byUpper := map[float64]float64{}
	for _, x := range a.buckets {
		byUpper[x.upper] += x.count
	}
	for _, x := range b.buckets {
		byUpper[x.upper] += x.count
	}
	out := histDelta{count: a.count + b.count, sum: a.sum + b.sum}
	for _, u := range slices.Sorted(maps.Keys(byUpper)) {
		out.buckets = append(out.buckets, bucket{u, byUpper[u]})
	}
	return out
}

// bucketQuantile is the q-quantile (0 ≤ q ≤ 1) of cumulative buckets
// ending at +Inf, as Prometheus's histogram_quantile computes it: the rank
// q × count is found in the first bucket whose cumulative count reaches
// it, and placed linearly between that bucket's lower and upper bounds (the
// lowest bucket starts at 0 when its upper bound is positive); a rank in
// the +Inf bucket gives the highest finite bound. NaN without
// observations.
func bucketQuantile(q float64, buckets []bucket) float64 {
	if len(buckets) < 2 || !math.IsInf(buckets[len(buckets)-1].upper, 1) {
		return math.NaN()
	}
	// Counts that go down between bounds (a scrape that raced an
	// observation) are evened out, as Prometheus does.
	b := slices.Clone(buckets)
	for i := 1; i < len(b); i++ {
		b[i].count = max(b[i].count, b[i-1].count)
	}
	observations := b[len(b)-1].count
	if observations <= 0 {
		return math.NaN()
	}
	rank := q * observations
	i := sort.Search(len(b)-1, func(i int) bool { return b[i].count >= rank })
	switch {
	case i == len(b)-1:
		return b[len(b)-2].upper
	case i == 0 && b[0].upper <= 0:
		return b[0].upper
	}
	start, end, count := 0.0, b[i].upper, b[i].count
	if i > 0 {
		start = b[i-1].upper
		count -= b[i-1].count
		rank -= b[i-1].count
	}
	if count <= 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// times sums a histogram of seconds up in ms; zero without observations.
func (d histDelta) times() HostTimes {
	n := int64(math.Round(d.count))
	if n <= 0 {
		return HostTimes{}
	}
	ms := func(q float64) float64 { return bucketQuantile(q, d.buckets) * 1000 }
	return HostTimes{Count: n, Mean: d.sum / d.count * 1000, P50: ms(0.5), P90: ms(0.9), P99: ms(0.99)}
}

// kindTimes is a histogram family's figures by kind, for the kinds with
// observations, and "all".
func kindTimes(before, after families, name string) map[string]HostTimes {
	byKind := histDeltas(before, after, name, "kind")
	var all histDelta
	out := map[string]HostTimes{}
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		d := byKind[k]
		all = addHist(all, d)
		if d.count > 0 {
			out[k] = d.times()
		}
	}
	out["all"] = all.times()
	return out
}

// newHostView is the change from before to after.
func newHostView(url string, before, after families, notes []string) *HostView {
	v := &HostView{URL: url, Notes: notes, Tasks: map[string]map[string]int64{}, Outcomes: map[string]int64{}}
	tasks := counterDeltas(before, after, metricTasks)
	for _, d := range tasks {
		if v.Strategy == "" {
			v.Strategy = labelOf(d.series, "strategy")
		}
		n := int64(math.Round(d.value))
		if n == 0 {
			continue
		}
		kind, outcome := labelOf(d.series, "kind"), labelOf(d.series, "outcome")
		if v.Tasks[kind] == nil {
			v.Tasks[kind] = map[string]int64{}
		}
		v.Tasks[kind][outcome] += n
		v.Outcomes[outcome] += n
		v.TasksTotal += n
	}
	v.Queue = kindTimes(before, after, metricQueue)
	v.Run = kindTimes(before, after, metricRun)
	if n, ok := total(counterDeltas(before, after, metricPluginRestarts)); ok {
		v.PluginRestarts = &n
	}
	if n, ok := total(counterDeltas(before, after, metricWorkerRestarts)); ok {
		v.WorkerRestarts = &n
		if _, was := before[metricWorkerRestarts]; !was {
			v.Notes = append(v.Notes, "the strategy did not report its workers before the run: their restarts count from the host's start")
		}
	}
	v.ConnectionsOpened, _ = total(counterDeltas(before, after, metricOpened))
	v.Refused = byLabel(counterDeltas(before, after, metricRefused), "reason")
	v.Closed = byLabel(counterDeltas(before, after, metricClosed), "reason")
	return v
}

// NotOK adds up the answers that were not a result.
func (v *HostView) NotOK() int64 { return v.TasksTotal - v.Outcomes[outcomeOK] }
