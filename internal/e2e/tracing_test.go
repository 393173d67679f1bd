//go:build linux

package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// otlpReceiver is an OTLP/gRPC trace receiver on loopback, built on the
// protocol's own generated service: it keeps every span it is sent, with
// the service name of the process that sent it.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service: service, span: s})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// named is every span received called name.
func (r *otlpReceiver) named(name string) []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, s := range r.spans {
		if s.span.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

// trace is the spans received of trace id (32 hex digits), by name.
func (r *otlpReceiver) trace(id string) map[string]receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]receivedSpan{}
	for _, s := range r.spans {
		if hex.EncodeToString(s.span.GetTraceId()) == id {
			out[s.span.GetName()] = s
		}
	}
	return out
}

// waitTrace waits until trace id has every span named in want.
func (r *otlpReceiver) waitTrace(t *testing.T, id string, want ...string) map[string]receivedSpan {
	t.Helper()
	var got map[string]receivedSpan
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = r.trace(id)
		missing := false
		for _, name := range want {
			_, ok := got[name]
			missing = missing || !ok
		}
		if !missing {
			return got
		}
	}
	var names []string
	for name, s := range got {
		names = append(names, name+" from "+s.service)
	}
	t.Fatalf("trace %s: spans %v, want %v", id, names, want)
	return nil
}

// tracedEnv makes every process of a host export its spans to r at once.
func tracedEnv(r *otlpReceiver) []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + r.addr,
		"OTEL_TRACES_SAMPLER=always_on",
		"OTEL_BSP_SCHEDULE_DELAY=50",
	}
}

// childOf checks that child's parent is parent, and that they came from
// the services named.
func childOf(t *testing.T, spans map[string]receivedSpan, child, parent string) {
	t.Helper()
	c, p := spans[child], spans[parent]
	if hex.EncodeToString(c.span.GetParentSpanId()) != hex.EncodeToString(p.span.GetSpanId()) {
		t.Errorf("%s (from %s) has parent %x, want %s's %x (from %s)", child, c.service,
			c.span.GetParentSpanId(), parent, p.span.GetSpanId(), p.service)
	}
}

// tracedCall sends one request under a trace context of the test's and
// checks the reply echoes that trace with the host's own span.
func tracedCall(t *testing.T, h *hostProc, traceID, parentID string) {
	t.Helper()
	tp := fmt.Sprintf("00-%s-%s-01", traceID, parentID)
	r, err := call(h.dial(t), fmt.Sprintf(`{"id":"traced","task":"fib","n":12,"traceparent":"%s"}`, tp), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK          bool
		Traceparent string
	}
	mustUnmarshal(t, r, &rep)
	if !rep.OK || !strings.HasPrefix(rep.Traceparent, "00-"+traceID+"-") || strings.Contains(rep.Traceparent, parentID) {
		t.Errorf("reply %s: want ok and the trace %s under the host's own span", r, traceID)
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("reply %q: %v", s, err)
	}
}

// TestTraceAcrossMultiproc: one request through multiproc makes one
// trace: the host's span, a child of the client's context, and the
// worker's, a child of the host's. Since the host hands tasks to
// multiproc's workers directly, the plugin process is not on the task's
// path and records no span of it. It runs plain multiproc only: a worker
// under [multiproc] sandbox = strict may open no socket, so it exports no
// span (the trace context still passes through it).
func TestTraceAcrossMultiproc(t *testing.T) {
	r := startOTLPReceiver(t)
	h := startHostEnv(t, "multiproc", "[other]\nmultiprocessing_processes = 2\n", tracedEnv(r))
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tracedCall(t, h, traceID, parentID)
	spans := r.waitTrace(t, traceID, "wslab.request", "wslab.worker.task")
	if got := hex.EncodeToString(spans["wslab.request"].span.GetParentSpanId()); got != parentID {
		t.Errorf("the host's span has parent %s, want the client's %s", got, parentID)
	}
	childOf(t, spans, "wslab.worker.task", "wslab.request")
	if s := spans["wslab.request"].service; s != "wslab-host" {
		t.Errorf("wslab.request from %q, want wslab-host", s)
	}
	if s := spans["wslab.worker.task"].service; s != "wslab-worker-multiproc" {
		t.Errorf("wslab.worker.task from %q, want wslab-worker-multiproc", s)
	}
}

// TestTraceAcrossDistributed: one request through distributed makes one
// trace across host, plugin and worker processes, with the NATS publish
// and the stream's delivery between plugin and worker.
func TestTraceAcrossDistributed(t *testing.T) {
	r := startOTLPReceiver(t)
	h := startHostEnv(t, "distributed", "[distributed]\nworkers = 1\n", tracedEnv(r))
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	tracedCall(t, h, traceID, parentID)
	spans := r.waitTrace(t, traceID, "wslab.request", "wslab.plugin.task", "wslab.nats.publish", "wslab.nats.deliver", "wslab.worker.task")
	childOf(t, spans, "wslab.plugin.task", "wslab.request")
	childOf(t, spans, "wslab.nats.publish", "wslab.plugin.task")
	childOf(t, spans, "wslab.nats.deliver", "wslab.nats.publish")
	childOf(t, spans, "wslab.worker.task", "wslab.nats.deliver")
	for name, want := range map[string]string{
		"wslab.request":      "wslab-host",
		"wslab.plugin.task":  "wslab-plugin-distributed",
		"wslab.nats.publish": "wslab-plugin-distributed",
		"wslab.nats.deliver": "wslab-worker-distributed",
		"wslab.worker.task":  "wslab-worker-distributed",
	} {
		if got := spans[name].service; got != want {
			t.Errorf("%s from %q, want %q", name, got, want)
		}
	}
	for _, s := range spans {
		t.Logf("%-20s %-26s span %x parent %x %6.0f µs", s.span.GetName(), s.service, s.span.GetSpanId(),
			s.span.GetParentSpanId(), float64(s.span.GetEndTimeUnixNano()-s.span.GetStartTimeUnixNano())/1e3)
	}
}

// TestTraceStartedByTheHost: a request without a trace context starts a
// trace when the sampler says so, and its reply names it.
func TestTraceStartedByTheHost(t *testing.T) {
	r := startOTLPReceiver(t)
	h := startHostEnv(t, "pool", "", tracedEnv(r))
	reply, err := call(h.dial(t), `{"id":1,"task":"noop"}`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Traceparent string }
	mustUnmarshal(t, reply, &rep)
	parts := strings.Split(rep.Traceparent, "-")
	if len(parts) != 4 {
		t.Fatalf("reply %s carries no traceparent", reply)
	}
	spans := r.waitTrace(t, parts[1], "wslab.request", "wslab.plugin.task")
	childOf(t, spans, "wslab.plugin.task", "wslab.request")
	if len(spans["wslab.request"].span.GetParentSpanId()) != 0 {
		t.Errorf("the host's span of an untraced request has a parent")
	}

	// The control channel is gRPC, traced by otelgrpc: /stats asks the
	// plugin for its Stats, client span in the host, server span in the
	// plugin, one trace.
	h.stats(t)
	const rpc = "wslab.taskproto.v3.Executor/Stats"
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		services := map[string]bool{}
		for _, s := range r.named(rpc) {
			services[s.service] = true
		}
		if services["wslab-host"] && services["wslab-plugin-pool"] {
			return
		}
	}
	t.Errorf("no %s spans from both wslab-host and wslab-plugin-pool", rpc)
}
