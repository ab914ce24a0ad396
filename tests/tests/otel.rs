#![cfg(feature = "otel")]
//! OpenTelemetry trace context across real nodes (feature `otel`): with an
//! `OpenTelemetryLayer` and an in-memory exporter, one trace spans A → B → C, each
//! server span is the child of the calling attempt's span, and a retried call has two
//! attempt spans under one call span.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::IntoResponse;
use intercall::{CallError, Invoker};
use intercall_tests::spawn;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum HopError {
    Unavailable(CallError),
}

impl From<CallError> for HopError {
    fn from(error: CallError) -> Self {
        HopError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Leaf {
    async fn ping(&self) -> Result<u32, HopError>;
}

#[intercall::service]
pub trait Middle {
    async fn relay(&self) -> Result<u32, HopError>;
}

struct LeafNode;

impl Leaf for LeafNode {
    async fn ping(&self) -> Result<u32, HopError> {
        Ok(1)
    }
}

struct MiddleNode(LeafProxy);

impl Middle for MiddleNode {
    async fn relay(&self) -> Result<u32, HopError> {
        Ok(self.0.ping().await? + 1)
    }
}

/// The finished span named `name` for `service` (its `rpc.service`), the only one.
fn span<'a>(spans: &'a [SpanData], name: &str, service: &str) -> &'a SpanData {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| s.attributes.iter().any(|kv| kv.key.as_str() == "rpc.service" && kv.value.as_str() == service))
        .collect();
    assert_eq!(found.len(), 1, "one `{name}` span for {service}: {:#?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// The spans whose parent is `parent`.
fn children<'a>(spans: &'a [SpanData], parent: SpanId, name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.parent_span_id == parent && s.name == name).collect()
}

#[tokio::test]
async fn one_trace_runs_through_every_hop_and_retries_are_sibling_attempts() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("intercall-tests"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    // C, then B in front of it (B's first request is answered 503 by a gateway).
    let leaf = spawn(LeafServer::new(LeafNode).into_router()).await;
    let to_leaf = Invoker::builder().service("Leaf", leaf.url()).build().unwrap();
    let failed_once = Arc::new(AtomicBool::new(false));
    let middle = MiddleServer::new(MiddleNode(LeafProxy::new(to_leaf).unwrap())).into_router();
    let middle = spawn(middle.layer(from_fn(move |request: Request, next: Next| {
        let failed_once = Arc::clone(&failed_once);
        async move {
            if !failed_once.swap(true, Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response();
            }
            next.run(request).await
        }
    })))
    .await;
    let backoff = std::time::Duration::from_millis(1);
    let to_middle = Invoker::builder().service("Middle", middle.url()).backoff(backoff, backoff).build().unwrap();

    // A.
    assert_eq!(MiddleProxy::new(to_middle).unwrap().relay().await, Ok(2));
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().expect("the exported spans");

    let a_call = span(&spans, "intercall.call", "Middle");
    let trace_id = a_call.span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace_id), "one trace: {:#?}", names(&spans));

    // A's call made two attempts, siblings under the call; the second reached B.
    let a_attempts = children(&spans, a_call.span_context.span_id(), "intercall.attempt");
    assert_eq!(a_attempts.len(), 2, "{:#?}", names(&spans));
    let b_serve = span(&spans, "intercall.serve", "Middle");
    assert!(b_serve.parent_span_is_remote);
    assert_eq!(
        b_serve.parent_span_id,
        a_attempts[1].span_context.span_id(),
        "B's server span: the 2nd attempt's child"
    );

    // B's nested call runs inside its server span; C's server span is its attempt's child.
    let b_call = span(&spans, "intercall.call", "Leaf");
    assert_eq!(b_call.parent_span_id, b_serve.span_context.span_id());
    let b_attempts = children(&spans, b_call.span_context.span_id(), "intercall.attempt");
    assert_eq!(b_attempts.len(), 1);
    let c_serve = span(&spans, "intercall.serve", "Leaf");
    assert_eq!(c_serve.parent_span_id, b_attempts[0].span_context.span_id());
}

#[tokio::test]
async fn a_retry_answered_from_the_call_id_store_is_a_replayed_server_span_under_its_own_attempt() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("intercall-tests"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    // The first request runs, and a gateway loses its reply: the retry is replayed.
    let lost_once = Arc::new(AtomicBool::new(false));
    let leaf = spawn(LeafServer::new(LeafNode).into_router().layer(from_fn(move |request: Request, next: Next| {
        let lost_once = Arc::clone(&lost_once);
        async move {
            let response = next.run(request).await;
            if !lost_once.swap(true, Ordering::SeqCst) {
                return (StatusCode::BAD_GATEWAY, "upstream reset").into_response();
            }
            response
        }
    })))
    .await;
    let backoff = std::time::Duration::from_millis(1);
    let to_leaf = Invoker::builder().service("Leaf", leaf.url()).backoff(backoff, backoff).build().unwrap();
    assert_eq!(LeafProxy::new(to_leaf).unwrap().ping().await, Ok(1));
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().expect("the exported spans");

    let call = span(&spans, "intercall.call", "Leaf");
    let attempts = children(&spans, call.span_context.span_id(), "intercall.attempt");
    assert_eq!(attempts.len(), 2, "{:#?}", names(&spans));
    let replayed = |serve: &SpanData| {
        serve.attributes.iter().find(|kv| kv.key.as_str() == "replayed").map(|kv| kv.value.as_str().into_owned())
    };
    for (attempt, expected) in attempts.iter().zip([None, Some("true".to_owned())]) {
        let served = children(&spans, attempt.span_context.span_id(), "intercall.serve");
        assert_eq!(served.len(), 1, "one server span per attempt: {:#?}", names(&spans));
        assert_eq!(replayed(served[0]), expected, "the first ran, the second was replayed");
    }
}
