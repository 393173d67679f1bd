// Package distributed is the strategy whose tasks travel through NATS
// JetStream to worker processes that may live on other machines: the job
// the Python lab gave Ray. Tasks go into a work-queue stream; workers pull
// them from one durable consumer with explicit acks, so a task whose worker
// dies unacknowledged is redelivered to another; results come back on the
// dispatcher's own core-NATS subject, where duplicates are dropped, so each
// request gets exactly one reply.
//
// By default the plugin embeds a nats-server with JetStream on loopback,
// protected by a generated token, and starts local workers; with
// [distributed] nats_url it uses an existing cluster instead, and workers
// anywhere join it with `distributed worker --nats URL ...`.
package distributed

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wslab/wslab/taskproto"
)

// Names shared by the dispatcher and every worker.
const (
	StreamName   = "WSLAB_TASKS"
	TaskSubject  = "wslab.tasks"
	ConsumerName = "workers"
	replyHeader  = "Wslab-Reply"
	// ackHeader carries, on a result, its task's acknowledgement subject:
	// the dispatcher acknowledges the task there (a reply subject may not
	// be one of JetStream's).
	ackHeader = "Wslab-Ack"
	// Results go to resultPrefix + the dispatcher's id, cancels come from
	// cancelPrefix + its id.
	resultPrefix = "wslab.results."
	cancelPrefix = "wslab.cancel."
	// readySubject is where a worker says, with its id, that it listens
	// for cancels and takes tasks: every dispatcher then sends it again the
	// cancels of tasks that may still be in the stream, which a worker
	// that was starting (or restarting) missed.
	readySubject = "wslab.workers.ready"
)

func resultSubject(dispatcher string) string { return resultPrefix + dispatcher }
func cancelSubject(dispatcher string) string { return cancelPrefix + dispatcher }

// Conn says how to reach NATS.
type Conn struct {
	URLs     string // comma-separated
	Token    string
	User     string
	Password string
	Creds    string // credentials file
	TLSCA    string // CA file for TLS
}

// options returns the nats.go options for c.
func (c Conn) options(name string) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	return opts
}

// Options configure the dispatcher.
type Options struct {
	Conn    Conn   // URLs empty: embedded server
	Listen  string // embedded server's address, host:port (port 0: any)
	Workers int    // local worker processes
	// Concurrency is how many tasks each local worker runs at once; each
	// runner pulls a task only when it is free.
	Concurrency int
	Replicas    int // stream replicas
	// MaxOutstanding bounds tasks sent and not answered (beyond: overloaded).
	MaxOutstanding int
	// LostAfter is how long tasks wait for a lost NATS connection to
	// return before they fail with executor_failed.
	LostAfter time.Duration
	// Storage is the task stream's: memory or file. Empty: memory for the
	// embedded server (it lives and dies with the plugin, which purges it
	// on start anyway, so a disk adds only latency), file on a cluster
	// (where the stream outlives a node).
	Storage       string
	TaskTimeout   time.Duration
	Exe           string // this binary, run as `Exe worker ...`
	DataDir       string
	LargeFileName string
}

// Keys are the keys of [distributed] the strategy reads.
var Keys = []taskproto.Key{
	text("nats_url", "", "empty: an embedded NATS server; else the cluster's URLs, comma separated"),
	text("listen", "127.0.0.1:0", "the embedded server's address (port 0: any free port)"),
	text("token", "", "NATS token (embedded: generated when empty)"),
	text("user", "", "NATS user"),
	text("password", "", "NATS password"),
	text("creds", "", "NATS credentials file"),
	text("tls_ca", "", "CA file for the NATS servers' TLS certificates"),
	{Section: "distributed", Name: "workers", Type: taskproto.KeyInt, Default: strconv.Itoa(runtime.NumCPU()), Min: 0, Max: 1024,
		Help: "local worker processes, by default one per CPU (0: none; workers join from elsewhere)"},
	{Section: "distributed", Name: "worker_concurrency", Type: taskproto.KeyInt, Default: "4", Min: 1, Max: 4096,
		Help: "tasks each local worker runs at once"},
	{Section: "distributed", Name: "replicas", Type: taskproto.KeyInt, Default: "1", Min: 1, Max: 5,
		Help: "replicas of the task stream (3 on a 3-node cluster)"},
	{Section: "distributed", Name: "storage", Type: taskproto.KeyString, Choices: []string{"", "memory", "file"},
		Help: "the task stream's storage; empty: memory when embedded, file on a cluster"},
	{Section: "distributed", Name: "max_outstanding", Type: taskproto.KeyInt, Default: "10000", Min: 1, Max: 10_000_000,
		Help: "tasks sent and unanswered (beyond: overloaded)"},
	{Section: "distributed", Name: "lost_after_sec", Type: taskproto.KeyInt, Default: "10", Min: 1, Max: 3600,
		Help: "tasks in flight fail with executor_failed when NATS stays away this long"},
}

func text(name, def, help string) taskproto.Key {
	return taskproto.Key{Section: "distributed", Name: name, Type: taskproto.KeyString, Default: def, Help: help}
}

// OptionsFrom reads [distributed] from the host's configuration.
func OptionsFrom(cfg taskproto.Config, exe string) Options {
	s := func(key string) string { return cfg.String("distributed." + key) }
	return Options{
		Storage: s("storage"),
		Conn: Conn{
			URLs: s("nats_url"), Token: s("token"), User: s("user"), Password: s("password"),
			Creds: s("creds"), TLSCA: s("tls_ca"),
		},
		// An explicit empty listen = is the default too.
		Listen:         cmp.Or(s("listen"), "127.0.0.1:0"),
		Workers:        int(cfg.Int("distributed.workers")),
		Concurrency:    int(cfg.Int("distributed.worker_concurrency")),
		Replicas:       int(cfg.Int("distributed.replicas")),
		MaxOutstanding: int(cfg.Int("distributed.max_outstanding")),
		LostAfter:      time.Duration(cfg.Int("distributed.lost_after_sec")) * time.Second,
		TaskTimeout:    cfg.TaskTimeout,
		Exe:            exe,
		DataDir:        cfg.DataDir,
		LargeFileName:  cfg.LargeFileName,
	}
}

// ackWait is how long a worker may hold a task without a sign of life
// before JetStream redelivers it; workers signal progress three times per
// ackWait, so only a dead worker's task is redelivered, after at most this.
func ackWait(taskTimeout time.Duration) time.Duration {
	return min(max(taskTimeout/20, 2*time.Second), 30*time.Second)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
