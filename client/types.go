// Package client is wslab's stress client, the Go successor of the Python
// lab's ws_client: many WebSocket connections sending task sequences,
// every reply checked, latency recorded in HdrHistograms.
package client

import (
	"io"
	"time"

	"github.com/wslab/wslab/internal/config"
)

// Options describe one run.
type Options struct {
	URL   string // ws://host:port/ws, or wss:// for a host that serves TLS
	Token string // bearer token for [server] auth_token, if any
	// TLSCA is a PEM file of CAs to trust for wss:// besides the system's
	// ([client] tls_ca): for a host with a self-signed certificate.
	TLSCA    string
	Clients  int // concurrent connections ([client] num_client)
	Tasks    []string
	Protocol string // "plain" (the Python lab's) or "json"
	// Pipeline is how many requests a connection keeps in flight (json;
	// plain text needs 1). In open loop, requests due while their
	// connection has Pipeline in flight wait, and the wait counts in their
	// latency.
	Pipeline int
	// Duration > 0 repeats each connection's sequence until it elapses
	// (counted from the start of the run; in open loop, from when every
	// connection has been dialled); 0 sends it once, as the Python lab did.
	Duration time.Duration
	// Rate > 0 is open-loop: requests per second across all connections,
	// each one's latency measured from its intended send time. Request i is
	// due at start + i/Rate and goes to connection i mod Clients. It needs
	// Duration and the json protocol.
	Rate   float64
	RampUp time.Duration // connections are opened evenly over this time
	// N sets a task kind's argument in JSON requests ("cpu" → 100000);
	// plain-text requests always use the host's defaults.
	N map[string]int64
	// FibN is [task_setting] fibonacci_limit, the host's default fib index,
	// which fib replies are checked against.
	FibN int64
	// ReplyTimeout bounds the wait for any one reply ([server] timeout_sec
	// plus a margin); a reply not in by then counts as missing.
	ReplyTimeout time.Duration
	// DialTimeout bounds each connection's dial and upgrade (default 30 s).
	DialTimeout time.Duration
	// Timing makes every JSON request ask for its timeline, which the
	// summary sums up (Summary.Timing).
	Timing bool
	// MetricsURL is the host's Prometheus /metrics (http://HOST:PORT/metrics),
	// scraped before and after the run for the host's own account of it
	// (Summary.Host), with Token as its bearer token. A scrape that fails
	// does not fail the run: Summary.Host says why.
	MetricsURL string
	// OnLoad, when set, is called right before the first connection is
	// dialled, after the first scrape; the function it returns is called
	// right after the last connection ended, before the second. A caller
	// that meters the host (the lab) leaves the scrapes' work out so.
	OnLoad   func() (ended func())
	Progress io.Writer // a progress bar goes here when it is a terminal
	Verbose  io.Writer // per-client lines ("client 3 took 1.2 s") when set
}

// Percentiles summarise a histogram, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary is everything a run measured. It is what --json writes.
type Summary struct {
	URL      string   `json:"url"`
	Protocol string   `json:"protocol"`
	Mode     string   `json:"mode"` // "sequence", "duration" or "rate"
	Clients  int      `json:"clients"`
	Pipeline int      `json:"pipeline"`
	Rate     float64  `json:"rate,omitempty"`
	Tasks    []string `json:"tasks"`
	// DurationSeconds is Options.Duration (duration and rate modes).
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	WallSeconds     float64 `json:"wall_seconds"`
	// Interrupted says the run was cancelled before it ended.
	Interrupted bool `json:"interrupted,omitempty"`

	Sent    int64 `json:"sent"`
	Replies int64 `json:"replies"`
	OK      int64 `json:"ok"`      // right results
	Wrong   int64 `json:"wrong"`   // a result that is not the expected one
	Missing int64 `json:"missing"` // sent, never answered
	// Unsent counts requests that were due but never sent: the rest of a
	// sequence after its connection failed, or open-loop requests still
	// waiting for their connection when the run ended.
	Unsent int64 `json:"unsent"`
	// Errors counts error replies by code.
	Errors       map[string]int64 `json:"errors"`
	ConnFailures int64            `json:"connection_failures"`
	// Connections counts connections that opened.
	Connections int64 `json:"connections"`
	// Throughput is right results per second of wall time.
	Throughput float64 `json:"throughput"`

	// Latency per task kind, and "all", of right results: from the send
	// (closed loop) or from the intended send time (open loop) to the reply.
	Latency map[string]Percentiles `json:"latency"`
	// SendLag is, in open loop, how late requests left after they were due:
	// the client's own scheduling delay plus waits for a free slot on their
	// connection (all kinds). Latency includes it.
	SendLag *Percentiles `json:"send_lag,omitempty"`
	// Queue and Run split the host's time per task kind (json protocol):
	// waiting for a slot, a goroutine or a worker, and running.
	Queue map[string]Percentiles `json:"queue,omitempty"`
	Run   map[string]Percentiles `json:"run,omitempty"`
	// Timing is, per task kind, where a request's time went (Options.Timing):
	// from the client's send through each stage of the host, its plugin and
	// workers to the client's read of the reply, in stage order.
	Timing map[string][]StageSpan `json:"timing,omitempty"`
	// ClientSeconds is the spread of per-connection completion times (from
	// its dial to its last reply), of the connections that completed. Like
	// every Percentiles its values are in milliseconds.
	ClientSeconds Percentiles `json:"client_seconds"`
	// WrongSamples shows a few wrong or unexpected replies.
	WrongSamples []string `json:"wrong_samples,omitempty"`
	// FailureSamples shows a few connection failures and reply timeouts.
	FailureSamples []string `json:"failure_samples,omitempty"`
	// Host is the host's own account of the run, from its /metrics
	// (Options.MetricsURL); nil when it was not asked for.
	Host *HostView `json:"host,omitempty"`
}

// Exit codes of the client command, for scripts (documented in the README).
const (
	ExitOK = config.ExitOK
	// ExitIncorrect: a reply was wrong or missing, a request went unsent, a
	// connection failed, error replies exceeded --max-errors, or the run was
	// interrupted.
	ExitIncorrect = 1
	ExitUsage     = config.ExitUsage
	ExitThreshold = 99 // only --max-p99 or --min-rate was crossed (as k6 does)
)
