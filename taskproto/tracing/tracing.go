// Package tracing is wslab's OpenTelemetry tracing: every process (host,
// plugin, worker) calls Setup once, which exports spans over OTLP when the
// standard environment names an endpoint and does nothing otherwise, and
// the code on a task's path starts its spans through Start, which costs a
// branch when tracing is off.
//
// A task's trace context crosses processes as a W3C traceparent: in the
// JSON request and reply, in the task message of the host-plugin protocol
// (pb.Task.traceparent) and in NATS headers. A process that does not trace
// passes the context it was given on unchanged (Remote, Traceparent), so
// that a trace started by a client survives a hop that records nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// ScopeName is the instrumentation scope of wslab's spans.
const ScopeName = "github.com/wslab/wslab"

// Span names, one per place a task passes that a trace shows.
const (
	SpanRequest     = "wslab.request"      // the host: frame read to reply written
	SpanPluginTask  = "wslab.plugin.task"  // a plugin: task read to outcome sent
	SpanWorkerTask  = "wslab.worker.task"  // a worker: task read to outcome sent
	SpanNATSPublish = "wslab.nats.publish" // the dispatcher publishes to the stream
	SpanNATSDeliver = "wslab.nats.deliver" // stored in the stream until a worker has it
)

// enabled is set once Setup has installed an exporting provider.
var enabled atomic.Bool

// Enabled reports whether this process exports spans.
func Enabled() bool { return enabled.Load() }

// traceContext is the W3C propagator; wslab uses it directly rather than
// otel's global one, which is a no-op until set, because a process that
// does not trace still passes a traceparent on.
var traceContext = propagation.TraceContext{}

// Setup exports this process's spans over OTLP/gRPC, as service, when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (the exporter and OTEL_TRACES_SAMPLER, OTEL_BSP_* are read by the
// OpenTelemetry SDK as its specification says), unless OTEL_SDK_DISABLED
// is true or OTEL_TRACES_EXPORTER is none. Without them it installs
// nothing and shutdown does nothing. shutdown flushes what is buffered.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	if !wanted() {
		return none, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return none, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(service),
		semconv.ProcessPID(os.Getpid()),
	))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return none, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(traceContext)
	enabled.Store(true)
	return func(ctx context.Context) error {
		enabled.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// wanted reads the standard variables that turn the OTLP trace export on.
func wanted() bool {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// flushWait bounds how long a process that exits waits for its last
// spans to be exported.
const flushWait = 2 * time.Second

// Begin is Setup for a process's main: a failure is logged, and the
// process serves untraced. stop flushes what is buffered (at most
// flushWait); call it as the process exits, os.Exit included.
func Begin(service string, log hclog.Logger) (stop func()) {
	shutdown, err := Setup(context.Background(), service)
	if err != nil {
		log.Warn("tracing off", "error", err)
	} else if Enabled() {
		log.Debug("exporting traces over OTLP", "service", service)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), flushWait)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Debug("flush traces", "error", err)
		}
	}
}

// Remote is the span context a traceparent carries; invalid (IsValid
// false) when tp is empty or malformed, which W3C says to treat as none.
func Remote(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	c := carrier(tp)
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), &c))
}

// Traceparent is the W3C traceparent of sc, "" when sc is invalid.
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := carrier("")
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), &c)
	return string(c)
}

// FromContext is the traceparent of the span, or of the remote context,
// that ctx carries: what a task sent on from ctx is to carry.
func FromContext(ctx context.Context) string {
	return Traceparent(trace.SpanContextFromContext(ctx))
}

// Start starts span name as a child of the remote context tp (a task's
// traceparent), or of ctx's span when tp is empty. With tracing off it
// starts nothing: ctx then carries tp unchanged, so that it is passed on,
// and the span returned is a no-op one.
func Start(ctx context.Context, tp, name string, kind trace.SpanKind, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tp != "" {
		if sc := Remote(tp); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	if !Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return otel.Tracer(ScopeName).Start(ctx, name, append(opts, trace.WithSpanKind(kind))...)
}

// End ends span with a task's outcome: code is its error code, "" for
// success.
func End(span trace.Span, code, message string) {
	if !span.IsRecording() {
		return
	}
	if code != "" {
		span.SetAttributes(attribute.String("wslab.outcome", code))
		span.SetStatus(otelcodes.Error, message)
	} else {
		span.SetAttributes(attribute.String("wslab.outcome", "ok"))
	}
	span.End()
}

// TraceID is the trace id (32 hex digits) of the span or remote context
// ctx carries, "" when it carries none: what log lines about a task show.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// Request is what a task's context says of the request the task serves,
// for log lines about it (LogArgs); the host's tasks carry one.
type Request interface {
	LogArgs() []any
}

// RequestKey is the context key under which a task's context holds its
// Request.
type RequestKey struct{}

// LogArgs name, in a log line about a task, the request it serves: its
// connection and id when the task runs in the host's process, and the
// request's trace wherever it runs.
func LogArgs(ctx context.Context) []any {
	if r, ok := ctx.Value(RequestKey{}).(Request); ok {
		return r.LogArgs()
	}
	if id := TraceID(ctx); id != "" {
		return []any{"trace_id", id}
	}
	return nil
}

// GRPCServerOptions instrument a gRPC server (a plugin's control
// channel: Describe, Configure, Stats) when this process traces.
func GRPCServerOptions() []grpc.ServerOption {
	if !Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler())}
}

// GRPCDialOptions instrument the host's side of that channel.
func GRPCDialOptions() []grpc.DialOption {
	if !Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler())}
}

// Inject writes ctx's trace context into a NATS (or HTTP) header.
func Inject(ctx context.Context, h map[string][]string) {
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract is the trace context a NATS (or HTTP) header carries, added to ctx.
func Extract(ctx context.Context, h map[string][]string) context.Context {
	return traceContext.Extract(ctx, propagation.HeaderCarrier(h))
}

// carrier holds one traceparent for the propagator.
type carrier string

func (c *carrier) Get(key string) string {
	if key == "traceparent" {
		return string(*c)
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	if key == "traceparent" {
		*c = carrier(value)
	}
}

func (c *carrier) Keys() []string { return []string{"traceparent"} }
