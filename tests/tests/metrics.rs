//! Metrics (feature `metrics`) with a real recorder: exact counts of calls by outcome,
//! attempts and retries on the client, calls by outcome and status on the server, and
//! in-flight gauges back at zero. One recorder per process, so one test in this file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::IntoResponse;
use futures_util::{StreamExt, stream};
use intercall::{CallError, Invoker, Streaming};
use intercall_tests::spawn;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TallyError {
    Refused,
    Unavailable(CallError),
}

impl From<CallError> for TallyError {
    fn from(error: CallError) -> Self {
        TallyError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Tally {
    async fn add(&self, n: u64) -> Result<u64, TallyError>;
    async fn refuse(&self) -> Result<u64, TallyError>;
    /// Behind a gateway that answers the first request with 503.
    async fn flaky(&self) -> Result<u64, TallyError>;
    /// `0..n`, then a clean end, or `TallyError::Refused` when `fail`.
    async fn upto(&self, n: u64, fail: bool) -> Result<Streaming<u64, TallyError>, TallyError>;
    /// One item, then nothing for ever.
    async fn forever(&self) -> Result<Streaming<u64, TallyError>, TallyError>;
}

struct Tallies;

impl Tally for Tallies {
    async fn add(&self, n: u64) -> Result<u64, TallyError> {
        Ok(n + 1)
    }

    async fn refuse(&self) -> Result<u64, TallyError> {
        Err(TallyError::Refused)
    }

    async fn flaky(&self) -> Result<u64, TallyError> {
        Ok(7)
    }

    async fn upto(&self, n: u64, fail: bool) -> Result<Streaming<u64, TallyError>, TallyError> {
        let end = fail.then_some(Err(TallyError::Refused));
        Ok(Streaming::new(stream::iter((0..n).map(Ok).chain(end))))
    }

    async fn forever(&self) -> Result<Streaming<u64, TallyError>, TallyError> {
        Ok(Streaming::new(stream::iter([Ok(0)]).chain(stream::pending())))
    }
}

/// One snapshot of every metric (taking one drains the counters and the histograms).
type Snapshot = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The value of the metric `name` whose labels include every one of `labels`, summed
/// over the series that match: a counter's count, a gauge's value, a histogram's
/// number of samples.
fn value(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter(|(key, ..)| {
            labels.iter().all(|(k, v)| key.key().labels().any(|label| label.key() == *k && label.value() == *v))
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        })
        .sum()
}

#[tokio::test]
async fn calls_are_counted_by_outcome_on_both_sides() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let failed_once = Arc::new(AtomicBool::new(false));
    let router = TallyServer::new(Tallies).into_router().layer(from_fn(move |request: Request, next: Next| {
        let failed_once = Arc::clone(&failed_once);
        async move {
            if request.uri().path() == "/Tally/flaky" && !failed_once.swap(true, Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response();
            }
            next.run(request).await
        }
    }));
    let server = spawn(router).await;
    let invoker = Invoker::builder()
        .service("Tally", server.url())
        .backoff(std::time::Duration::from_millis(1), std::time::Duration::from_millis(1))
        .build()
        .unwrap();
    let proxy = TallyProxy::new(invoker).unwrap();
    for n in 0..3 {
        assert_eq!(proxy.add(n).await, Ok(n + 1));
    }
    assert_eq!(proxy.refuse().await, Err(TallyError::Refused));
    assert_eq!(proxy.flaky().await, Ok(7));

    let snapshot = snapshotter.snapshot().into_vec();
    let client_in = |snapshot: &Snapshot, metric, method, extra: &[(&str, &str)]| {
        let mut labels = vec![("rpc.system", "intercall"), ("rpc.service", "Tally"), ("rpc.method", method)];
        labels.extend_from_slice(extra);
        value(snapshot, metric, &labels)
    };
    let client = |metric, method, extra: &[(&str, &str)]| client_in(&snapshot, metric, method, extra);
    assert_eq!(client("intercall.client.calls", "add", &[("outcome", "ok")]), 3.0);
    assert_eq!(client("rpc.client.call.duration", "add", &[("outcome", "ok")]), 3.0, "one sample per call");
    assert_eq!(client("intercall.client.calls", "refuse", &[("outcome", "service_error")]), 1.0);
    assert_eq!(client("intercall.client.calls", "flaky", &[("outcome", "ok")]), 1.0);
    assert_eq!(client("intercall.client.attempts", "flaky", &[]), 2.0);
    assert_eq!(client("intercall.client.retries", "flaky", &[]), 1.0);
    assert_eq!(client("intercall.client.retries", "add", &[]), 0.0);
    assert_eq!(client("intercall.client.in_flight", "add", &[]), 0.0);

    let served = |snapshot: &Snapshot, method, outcome, status| {
        let labels = [("rpc.method", method), ("outcome", outcome), ("http.response.status_code", status)];
        value(snapshot, "intercall.server.calls", &labels)
    };
    assert_eq!(served(&snapshot, "add", "ok", "200"), 3.0);
    assert_eq!(served(&snapshot, "refuse", "service_error", "422"), 1.0);
    // The gateway's 503 never reached the server: one call served.
    assert_eq!(served(&snapshot, "flaky", "ok", "200"), 1.0);
    assert_eq!(value(&snapshot, "rpc.server.call.duration", &[("rpc.method", "add")]), 3.0);
    assert_eq!(value(&snapshot, "intercall.server.in_flight", &[]), 0.0);

    // The call-id store: a duplicate is replayed, a different body under the same id
    // is a mismatch.
    let send = |body: &'static str| {
        let url = server.at("Tally/add");
        async move {
            let request = reqwest::Client::new().post(url).header("content-type", "application/json");
            let request = request.header("x-call-id", "0b7e2b9a-8c55-4f0e-a0b1-3c1c0f6b1e11").body(body);
            request.send().await.expect("the server answers").status().as_u16()
        }
    };
    assert_eq!((send(r#"{"n":1}"#).await, send(r#"{"n":1}"#).await, send(r#"{"n":2}"#).await), (200, 200, 422));
    let snapshot = snapshotter.snapshot().into_vec();
    let store = |event| value(&snapshot, "intercall.server.call_id_store", &[("rpc.method", "add"), ("event", event)]);
    assert_eq!((store("replay"), store("mismatch"), store("wait")), (1.0, 1.0, 0.0));
    // Counts since the previous snapshot (taking one drains it): the first call and its replay.
    assert_eq!(served(&snapshot, "add", "ok", "200"), 2.0, "the replay is a call served too");
    assert_eq!(served(&snapshot, "add", "framework_error", "422"), 1.0, "a mismatch is not a typed error");

    // A framework error on the server: an unknown argument type.
    let raw = intercall_tests::post_raw(&server.at("Tally/add"), Some("application/json"), r#"{"n":"x"}"#).await;
    assert_eq!(raw.status, 400);
    assert_eq!(served(&snapshotter.snapshot().into_vec(), "add", "framework_error", "400"), 1.0);

    // Regression: a stream was counted (as `ok`) when its head left (server) or arrived
    // (client). It is in flight until it ends, and counted by how it ended, on both sides.
    let mut open = proxy.forever().await.unwrap();
    assert_eq!(open.next().await, Some(Ok(0)));
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(value(&snapshot, "intercall.server.in_flight", &[("rpc.method", "forever")]), 1.0);
    assert_eq!(value(&snapshot, "intercall.server.calls", &[("rpc.method", "forever")]), 0.0, "not ended yet");
    assert_eq!(client_in(&snapshot, "intercall.client.in_flight", "forever", &[]), 1.0, "the caller's side too");
    assert_eq!(client_in(&snapshot, "intercall.client.calls", "forever", &[]), 0.0);
    drop(open);
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(client_in(&snapshot, "intercall.client.calls", "forever", &[("outcome", "cancelled")]), 1.0);
    // A snapshot drains gauges too: this is the change since the one that saw it at 1.
    assert_eq!(client_in(&snapshot, "intercall.client.in_flight", "forever", &[]), -1.0, "out of flight");
    // Taking a snapshot drains the counters: add them up until the cancellation shows.
    let mut cancelled = served(&snapshot, "forever", "cancelled", "200");
    let mut other = value(&snapshot, "intercall.server.calls", &[("rpc.method", "forever")]);
    for _ in 0..500 {
        if cancelled > 0.0 {
            break;
        }
        let snapshot = snapshotter.snapshot().into_vec();
        cancelled += served(&snapshot, "forever", "cancelled", "200");
        other += value(&snapshot, "intercall.server.calls", &[("rpc.method", "forever")]);
        if cancelled > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!((cancelled, other), (1.0, 1.0), "one call, cancelled by its client");
    assert_eq!(
        value(&snapshotter.snapshot().into_vec(), "intercall.server.in_flight", &[("rpc.method", "forever")]),
        0.0
    );

    assert_eq!(proxy.upto(2, false).await.unwrap().collect::<Vec<_>>().await, [Ok(0), Ok(1)]);
    assert_eq!(proxy.upto(1, true).await.unwrap().collect::<Vec<_>>().await, [Ok(0), Err(TallyError::Refused)]);
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(served(&snapshot, "upto", "ok", "200"), 1.0);
    assert_eq!(served(&snapshot, "upto", "service_error", "200"), 1.0, "a typed error item ends the stream");
    assert_eq!(value(&snapshot, "rpc.server.call.duration", &[("rpc.method", "upto")]), 2.0);
    assert_eq!(client_in(&snapshot, "intercall.client.calls", "upto", &[("outcome", "ok")]), 1.0);
    assert_eq!(client_in(&snapshot, "intercall.client.calls", "upto", &[("outcome", "service_error")]), 1.0);
    assert_eq!(client_in(&snapshot, "intercall.client.in_flight", "upto", &[]), 0.0);
}
