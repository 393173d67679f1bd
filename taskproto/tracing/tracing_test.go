package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := Remote(tp)
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() {
		t.Fatalf("Remote(%s) = %+v", tp, sc)
	}
	if got := Traceparent(sc); got != tp {
		t.Errorf("Traceparent = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-x", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if Remote(bad).IsValid() {
			t.Errorf("Remote(%q) is valid", bad)
		}
	}
	if got := Traceparent(trace.SpanContext{}); got != "" {
		t.Errorf("Traceparent of nothing = %q", got)
	}
}

// With tracing off, Start records nothing and passes the context on.
func TestStartUntraced(t *testing.T) {
	if Enabled() {
		t.Fatal("tracing on without Setup")
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	ctx, span := Start(context.Background(), tp, SpanPluginTask, trace.SpanKindServer)
	if span.IsRecording() {
		t.Error("a span records with tracing off")
	}
	if got := FromContext(ctx); got != tp {
		t.Errorf("FromContext = %q, want %q", got, tp)
	}
	End(span, "timeout", "late") // a no-op, and no panic
	ctx, _ = Start(context.Background(), "", SpanPluginTask, trace.SpanKindServer)
	if got := FromContext(ctx); got != "" {
		t.Errorf("an untraced start carries %q", got)
	}
}

// A NATS header carries the context as an HTTP header would.
func TestHeaderRoundTrip(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	h := map[string][]string{}
	Inject(trace.ContextWithRemoteSpanContext(context.Background(), Remote(tp)), h)
	if got := FromContext(Extract(context.Background(), h)); got != tp {
		t.Errorf("through a header: %q, want %q (header %v)", got, tp, h)
	}
}
