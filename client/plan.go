package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// Task kinds, as indexes into per-kind arrays.
const (
	kindFib = iota
	kindCPU
	kindIO
	kindSleep
	kindNoop
	numKinds
)

// kindNames are taskproto.Kinds, in the order of the indexes above.
var kindNames = [numKinds]string{taskproto.KindFib, taskproto.KindCPU, taskproto.KindIO, taskproto.KindSleep, taskproto.KindNoop}

func kindIndex(name string) int {
	for i, k := range kindNames {
		if k == name {
			return i
		}
	}
	return -1
}

// Modes of a run, as Summary.Mode says them.
const (
	ModeSequence = "sequence" // each connection sends its tasks once
	ModeDuration = "duration" // closed loop, the sequence repeated until Duration
	ModeRate     = "rate"     // open loop at Rate requests per second
)

// Defaults applied by Run to zero-valued Options fields.
const (
	// ReplyMargin is added to [server] timeout_sec for Options.ReplyTimeout:
	// a task may run that long, and its reply still has to travel.
	ReplyMargin         = 5 * time.Second
	DefaultReplyTimeout = 100*time.Second + ReplyMargin
	DefaultDialTimeout  = 30 * time.Second
	// MaxClients bounds Options.Clients, as [client] num_client is bounded.
	MaxClients = 1_000_000
	// MaxPipeline bounds Options.Pipeline.
	MaxPipeline = 65536
	// maxFibN keeps the expected value of a fib task cheap to compute
	// (F(10^7) has about 2.1 million digits).
	maxFibN = 10_000_000
)

// token is one item of the task sequence, with its frames and expected reply
// computed once before the run.
type token struct {
	name     string // as given: "fib", "3"
	kind     int
	plain    []byte // the plain-text frame
	jsonTail []byte // the JSON frame after the id's number: `","task":"cpu","n":5}`
	expect   string // the expected result
	// expectJSON is expect as a JSON string, compared with a reply's raw
	// result before falling back to decoding it.
	expectJSON []byte
}

// plan is a validated, normalised Options with everything the run needs
// computed in advance.
type plan struct {
	opt    Options
	json   bool
	mode   string
	tokens []token
	tls    *tls.Config // for wss://; nil: the system's roots
}

// newPlan checks opt, fills in defaults and computes the expected replies.
// Its errors name the flag the option corresponds to.
func newPlan(opt Options) (*plan, error) {
	p := &plan{opt: opt}
	o := &p.opt
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	if o.MetricsURL != "" {
		if err := checkMetricsURL(o.MetricsURL); err != nil {
			return nil, err
		}
	}
	if o.TLSCA != "" {
		var err error
		if p.tls, err = TLSConfig(o.TLSCA); err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
	}
	if o.Clients < 1 || o.Clients > MaxClients {
		return nil, fmt.Errorf("--clients must be between 1 and %d, got %d", MaxClients, o.Clients)
	}
	if err := p.setProtocol(); err != nil {
		return nil, err
	}
	if err := p.setMode(); err != nil {
		return nil, err
	}
	if err := p.setTimeouts(); err != nil {
		return nil, err
	}
	if err := p.checkN(); err != nil {
		return nil, err
	}
	if len(o.Tasks) == 0 {
		return nil, fmt.Errorf("--tasks is empty, must list at least one task")
	}
	fibs := map[int64]string{}
	for i, name := range o.Tasks {
		t, err := p.newToken(strings.TrimSpace(name), fibs)
		if err != nil {
			return nil, fmt.Errorf("--tasks item %d: %w", i+1, err)
		}
		p.tokens = append(p.tokens, t)
	}
	o.Tasks = slices.Clone(o.Tasks)
	return p, nil
}

// checkURL checks that s is a WebSocket URL the run can dial.
func checkURL(s string) error {
	if s == "" {
		return fmt.Errorf("--url is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return fmt.Errorf("--url %q: the scheme must be ws or wss", s)
	}
	if u.Host == "" {
		return fmt.Errorf("--url %q has no host", s)
	}
	return nil
}

// setProtocol checks the protocol and the pipelining it allows.
func (p *plan) setProtocol() error {
	o := &p.opt
	switch o.Protocol {
	case "":
		o.Protocol = "plain"
	case "plain", "json":
	default:
		return fmt.Errorf("--protocol must be plain or json, got %q", o.Protocol)
	}
	p.json = o.Protocol == "json"
	if o.Pipeline == 0 {
		o.Pipeline = 1
	}
	if o.Pipeline < 1 || o.Pipeline > MaxPipeline {
		return fmt.Errorf("--pipeline must be between 1 and %d, got %d", MaxPipeline, o.Pipeline)
	}
	if !p.json && o.Timing {
		return fmt.Errorf("--timing needs --protocol json: plain-text replies carry no timeline")
	}
	if !p.json && o.Pipeline > 1 {
		return fmt.Errorf("--pipeline %d needs --protocol json: plain-text replies carry no id to match them with", o.Pipeline)
	}
	return nil
}

// setMode checks the timing options and derives the mode from them.
func (p *plan) setMode() error {
	o := &p.opt
	if o.Duration < 0 {
		return fmt.Errorf("--duration must not be negative, got %v", o.Duration)
	}
	if o.RampUp < 0 {
		return fmt.Errorf("--ramp-up must not be negative, got %v", o.RampUp)
	}
	if math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0 {
		return fmt.Errorf("--rate must be a positive number of requests per second, got %v", o.Rate)
	}
	switch {
	case o.Rate > 0:
		if o.Duration == 0 {
			return fmt.Errorf("--rate needs --duration: an open-loop run lasts a given time")
		}
		if !p.json {
			return fmt.Errorf("--rate needs --protocol json: replies are matched to requests by id")
		}
		if o.Rate > 10_000_000 {
			return fmt.Errorf("--rate must be at most 10000000 requests per second, got %v", o.Rate)
		}
		p.mode = ModeRate
	case o.Duration > 0:
		p.mode = ModeDuration
	default:
		p.mode = ModeSequence
	}
	return nil
}

// setTimeouts fills in the default timeouts.
func (p *plan) setTimeouts() error {
	o := &p.opt
	if o.ReplyTimeout == 0 {
		o.ReplyTimeout = DefaultReplyTimeout
	}
	if o.ReplyTimeout < 0 {
		return fmt.Errorf("--reply-timeout must be positive, got %v", o.ReplyTimeout)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.DialTimeout < 0 {
		return fmt.Errorf("--dial-timeout must be positive, got %v", o.DialTimeout)
	}
	return nil
}

// checkN checks the task arguments, and the fib index replies are checked
// against: the client computes every expected value before the run.
func (p *plan) checkN() error {
	o := &p.opt
	if o.FibN < 0 || o.FibN > maxFibN {
		return fmt.Errorf("fibonacci_limit must be between 0 and %d for the client to check fib replies, got %d", maxFibN, o.FibN)
	}
	for k, v := range o.N {
		if kindIndex(k) < 0 {
			return fmt.Errorf("--n %s=%d: unknown task %q, must be one of %s", k, v, k, strings.Join(kindNames[:], ", "))
		}
		if v < 0 {
			return fmt.Errorf("--n %s=%d: must not be negative", k, v)
		}
		if !p.json {
			return fmt.Errorf("--n %s=%d needs --protocol json: plain-text requests use the host's defaults", k, v)
		}
		if k == "fib" && v > maxFibN {
			return fmt.Errorf("--n fib=%d: must be at most %d for the client to check the replies", v, maxFibN)
		}
	}
	return nil
}

// newToken prepares one task of the sequence. fibs caches F(n) as text.
func (p *plan) newToken(name string, fibs map[int64]string) (token, error) {
	t := token{name: name, kind: kindIndex(name)}
	n, hasN := p.opt.N[name]
	if t.kind < 0 {
		secs, err := strconv.ParseInt(name, 10, 64)
		if err != nil || secs < 0 || name == "" || name[0] < '0' || name[0] > '9' {
			return t, fmt.Errorf("unknown task %q, must be one of %s or a whole number N ≥ 0 (sleep N seconds)",
				name, strings.Join(taskproto.Kinds, ", "))
		}
		if secs > math.MaxInt64/1000 {
			return t, fmt.Errorf("sleep of %s seconds is too long", name)
		}
		t.kind, n, hasN = kindSleep, secs*1000, true
	} else if (t.kind == kindSleep || t.kind == kindNoop) && !p.json {
		return t, fmt.Errorf("task %s needs --protocol json (plain text has no such word; a whole number N sleeps N seconds)", name)
	}
	switch t.kind {
	case kindFib:
		if !hasN {
			n = p.opt.FibN
		}
		s, ok := fibs[n]
		if !ok {
			s = Fib(n).String()
			fibs[n] = s
		}
		t.expect = s
	case kindCPU:
		if !hasN {
			n = tasks.DefaultCPUN
		}
		t.expect = SumBelow(n).String()
	case kindIO:
		if !hasN {
			n = tasks.DefaultIOBytes
		}
		t.expect = strconv.FormatInt(n, 10)
	case kindSleep:
		t.expect = "Request done"
	case kindNoop:
		t.expect = ""
	}
	t.plain = []byte(name)
	tail := `","task":"` + kindNames[t.kind] + `"`
	if hasN {
		tail += `,"n":` + strconv.FormatInt(n, 10)
	}
	if p.opt.Timing {
		tail += `,"timing":true`
	}
	t.jsonTail = []byte(tail + "}")
	t.expectJSON = strconv.AppendQuote(nil, t.expect)
	return t, nil
}

// TLSConfig trusts the CAs in the PEM file caFile besides the system's.
func TLSConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Fib returns F(n), F(0) = 0, F(1) = 1, by fast doubling: the client checks
// the host's work, it does not repeat it.
func Fib(n int64) *big.Int {
	a, b := big.NewInt(0), big.NewInt(1) // F(k), F(k+1) for k = 0
	if n <= 0 {
		return a
	}
	for i := bits.Len64(uint64(n)) - 1; i >= 0; i-- {
		// F(2k) = F(k) (2 F(k+1) - F(k)); F(2k+1) = F(k)² + F(k+1)².
		c := new(big.Int).Lsh(b, 1)
		c.Sub(c, a)
		c.Mul(c, a)
		d := new(big.Int).Mul(a, a)
		d.Add(d, new(big.Int).Mul(b, b))
		if n>>uint(i)&1 == 1 {
			a, b = d, c.Add(c, d)
		} else {
			a, b = c, d
		}
	}
	return a
}

// SumBelow returns 0 + 1 + ... + (n-1), the cpu task's result.
func SumBelow(n int64) *big.Int {
	if n <= 0 {
		return new(big.Int)
	}
	s := new(big.Int).Mul(big.NewInt(n), big.NewInt(n-1))
	return s.Rsh(s, 1)
}

// OptionsFromConfig is the load config.ini describes: [client] num_client
// connections sending [client] tasks in plain text to [server] host:port,
// one request at a time, as the Python lab's client did.
func OptionsFromConfig(cfg *config.Config) Options {
	return Options{
		URL:          DefaultURL(cfg),
		Token:        cfg.Server.AuthToken,
		TLSCA:        cfg.Client.TLSCA,
		Clients:      cfg.Client.NumClient,
		Tasks:        slices.Clone(cfg.Client.Tasks),
		Protocol:     "plain",
		Pipeline:     1,
		FibN:         cfg.TaskSetting.FibonacciLimit,
		ReplyTimeout: cfg.Server.Timeout + ReplyMargin,
	}
}

// DefaultURL is ws://[server] host:[server] port/ws (wss:// when the host
// serves TLS); a wildcard bind address is dialled on loopback.
func DefaultURL(cfg *config.Config) string {
	host := strings.Trim(cfg.Server.Host, "[]")
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "ws"
	if cfg.Server.TLSCert != "" {
		scheme = "wss"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Server.Port)) + "/ws"
}
