//! OpenTelemetry trace context (feature `otel`): a proxy's attempt sends its own span as
//! the W3C `traceparent`, and a server's span continues the `traceparent` it received,
//! through `tracing-opentelemetry`. Nothing happens unless the node's subscriber has an
//! `OpenTelemetryLayer`: without one, spans have no OpenTelemetry context, and the
//! trace headers a request carried are forwarded as they came (PROTOCOL.md §3).
//!
//! The headers are written and read here, from the span context itself, rather than
//! through `opentelemetry::global`'s propagator: that one is a no-op until an
//! application installs one, and W3C Trace Context is the protocol's format whatever
//! propagators an application uses for its other traffic.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::protocol::trace::TraceContext;

/// The trace context of the current span (a proxy's attempt), if it has a valid one.
pub(crate) fn current() -> Option<TraceContext> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    if !span.is_valid() {
        return None;
    }
    let traceparent = format!("00-{}-{}-{:02x}", span.trace_id(), span.span_id(), span.trace_flags().to_u8());
    let tracestate = span.trace_state().header();
    TraceContext::parse(&traceparent, Some(tracestate.as_str()).filter(|state| !state.is_empty()))
}

/// Makes `span` (a server's, not yet entered) a child of the remote span `trace` names.
pub(crate) fn continue_trace(span: &tracing::Span, trace: &TraceContext) {
    let parent = trace.traceparent();
    let (Ok(trace_id), Ok(span_id), Ok(flags)) =
        (TraceId::from_hex(&parent[3..35]), SpanId::from_hex(&parent[36..52]), u8::from_str_radix(&parent[53..55], 16))
    else {
        return;
    };
    let state = trace.tracestate().and_then(|state| state.parse::<TraceState>().ok()).unwrap_or_default();
    let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
    // An error means no OpenTelemetry layer, or a disabled span: nothing to continue.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}
