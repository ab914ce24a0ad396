//! Metrics (feature `metrics`) with a real recorder: exact counts of calls by outcome,
//! attempts and retries on the client, calls by outcome and status on the server, the
//! call-id store's events and the retry budget, and in-flight gauges back at zero. One
//! recorder per process, shared by the tests here, which run one at a time ([`recorder`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn};
use axum::response::IntoResponse;
use futures_util::{StreamExt, stream};
use intercall::{CallError, Invoker, Streaming};
use intercall_tests::spawn;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
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

/// The recorder of this test binary (a process has one), and the lock that runs the
/// tests here one at a time: taking a snapshot drains every series, so two tests at
/// once would take each other's counts. What earlier tests recorded is drained first.
async fn recorder() -> (tokio::sync::MutexGuard<'static, ()>, &'static Snapshotter) {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let guard = ONE_AT_A_TIME.lock().await;
    let snapshotter = SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this test binary");
        snapshotter
    });
    snapshotter.snapshot();
    (guard, snapshotter)
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
    let (_one_at_a_time, snapshotter) = recorder().await;

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

/// The unit and description of `name` (a histogram here) as the recorder was told them.
fn described(snapshot: &Snapshot, name: &str) -> (Option<Unit>, Option<String>) {
    let found = snapshot.iter().find(|(key, ..)| key.key().name() == name);
    found.map_or((None, None), |(_, unit, description, _)| (*unit, description.as_ref().map(|d| d.to_string())))
}

/// The durations are described to the recorder as histograms in seconds, so that an
/// exporter can name and bucket them (Prometheus: `rpc_server_call_duration_seconds`).
/// They were recorded in seconds but described nowhere.
#[tokio::test]
async fn the_durations_are_described_in_seconds() {
    let (_one_at_a_time, snapshotter) = recorder().await;
    let server = spawn(TallyServer::new(Tallies).into_router()).await;
    let proxy = TallyProxy::new(Invoker::builder().service("Tally", server.url()).build().unwrap()).unwrap();
    assert_eq!(proxy.add(1).await, Ok(2));
    let snapshot = snapshotter.snapshot().into_vec();
    for name in ["rpc.server.call.duration", "rpc.client.call.duration"] {
        let (unit, description) = described(&snapshot, name);
        assert_eq!(unit, Some(Unit::Seconds), "{name}");
        assert!(description.is_some_and(|d| d.to_lowercase().contains("duration")), "{name}");
    }
    let (_, calls) = described(&snapshot, "intercall.server.calls");
    assert!(calls.is_some(), "the counters are described too");
}

#[intercall::service]
pub trait Waiting {
    /// Signals `entered`, then waits for a permit of `release`.
    async fn hold(&self, n: u64) -> Result<u64, TallyError>;
}

struct Holding {
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    runs: std::sync::atomic::AtomicUsize,
}

impl Default for Holding {
    fn default() -> Self {
        let runs = std::sync::atomic::AtomicUsize::new(0);
        Self { entered: tokio::sync::Notify::new(), release: tokio::sync::Semaphore::new(0), runs }
    }
}

/// The served implementation: a handle on the test's [`Holding`].
struct Holder(Arc<Holding>);

impl Waiting for Holder {
    async fn hold(&self, n: u64) -> Result<u64, TallyError> {
        self.0.runs.fetch_add(1, Ordering::SeqCst);
        self.0.entered.notify_one();
        self.0.release.acquire().await.expect("never closed").forget();
        Ok(n)
    }
}

/// A duplicate that arrives while its call id's run is in flight waits for it, and is
/// counted once as `call_id_store{event="wait"}` (not as a replay); its reply is the
/// run's, and the run is the only one.
#[tokio::test]
async fn a_duplicate_that_waits_for_the_run_is_counted_as_a_wait() {
    let (_one_at_a_time, snapshotter) = recorder().await;
    let holding = Arc::new(Holding::default());
    let server = spawn(WaitingServer::new(Holder(Arc::clone(&holding))).into_router()).await;
    let post = || {
        let request = reqwest::Client::new().post(server.at("Waiting/hold")).header("content-type", "application/json");
        let request = request.header("x-call-id", "9a4f2c1e-7b3d-4e5f-8a6b-1c2d3e4f5a6b").body(r#"{"n":3}"#);
        async move {
            let reply = request.send().await.expect("the server answers");
            (reply.status().as_u16(), reply.text().await.unwrap())
        }
    };
    let store = |snapshot: &Snapshot, event| {
        value(snapshot, "intercall.server.call_id_store", &[("rpc.method", "hold"), ("event", event)])
    };
    let entered = holding.entered.notified();
    let first = tokio::spawn(post());
    entered.await;
    let duplicate = tokio::spawn(post());
    // Bounded polling (a snapshot drains the counters: they are added up): the wait is
    // counted when the store tells the duplicate the run is in flight.
    let (mut waits, mut replays) = (0.0, 0.0);
    for _ in 0..500 {
        let snapshot = snapshotter.snapshot().into_vec();
        (waits, replays) = (waits + store(&snapshot, "wait"), replays + store(&snapshot, "replay"));
        if waits > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waits, 1.0, "the duplicate waits");
    holding.release.add_permits(1);
    assert_eq!(first.await.unwrap(), (200, "3".to_owned()));
    assert_eq!(duplicate.await.unwrap(), (200, "3".to_owned()), "the run's reply");
    assert_eq!(holding.runs.load(Ordering::SeqCst), 1);
    let snapshot = snapshotter.snapshot().into_vec();
    waits += store(&snapshot, "wait");
    replays += store(&snapshot, "replay");
    assert_eq!((waits, replays), (1.0, 0.0));
}

/// A retry the invoker's budget cannot pay for is not made, and is counted as
/// `intercall.client.retry_budget_exhausted`.
#[tokio::test]
async fn a_retry_the_budget_cannot_pay_for_is_counted() {
    let (_one_at_a_time, snapshotter) = recorder().await;
    // A gateway in front of the server that answers every request 503: retryable.
    let router = TallyServer::new(Tallies)
        .into_router()
        .layer(from_fn(|_: Request, _: Next| async { (StatusCode::SERVICE_UNAVAILABLE, "down").into_response() }));
    let server = spawn(router).await;
    let invoker = Invoker::builder()
        .service("Tally", server.url())
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .retry_budget(0.0, 0)
        .build()
        .unwrap();
    let proxy = TallyProxy::new(invoker).unwrap();
    let failed = proxy.add(1).await;
    assert!(matches!(&failed, Err(TallyError::Unavailable(e)) if e.is_retry_budget_exhausted()), "{failed:?}");
    let snapshot = snapshotter.snapshot().into_vec();
    let client = |metric, extra: &[(&str, &str)]| {
        let mut labels = vec![("rpc.system", "intercall"), ("rpc.service", "Tally"), ("rpc.method", "add")];
        labels.extend_from_slice(extra);
        value(&snapshot, metric, &labels)
    };
    assert_eq!(client("intercall.client.retry_budget_exhausted", &[]), 1.0);
    assert_eq!((client("intercall.client.attempts", &[]), client("intercall.client.retries", &[])), (1.0, 0.0));
    assert_eq!(client("intercall.client.calls", &[]), 1.0, "{snapshot:?}");
}

/// A call-id store that fails (its Redis killed) is counted as
/// `call_id_store{event="store_error"}`, whether the server then refuses the call
/// (`on_store_error = "fail"`, 503) or runs it without deduplication (`"run"`).
#[tokio::test]
async fn a_failing_call_id_store_is_counted_as_a_store_error() {
    use intercall::ServerSettings;
    use intercall::calls::{OnStoreError, RedisCallStore};

    let (_one_at_a_time, snapshotter) = recorder().await;
    let Some(mut redis) = intercall_tests::redis_server::RedisServer::start("metrics-store-error") else { return };
    let serve = |on_store_error| {
        let store =
            RedisCallStore::new(&redis.url()).unwrap().prefix("metrics:").op_timeout(Duration::from_millis(300));
        let settings =
            ServerSettings { call_store: Some(Arc::new(store)), on_store_error, ..ServerSettings::default() };
        spawn(TallyServer::new(Tallies).settings(settings).into_router())
    };
    let (closed, open) = (serve(OnStoreError::Fail).await, serve(OnStoreError::Run).await);
    let post = |server: &intercall_tests::TestServer, id: &'static str| {
        let request = reqwest::Client::new().post(server.at("Tally/add")).header("content-type", "application/json");
        let request = request.header("x-call-id", id).body(r#"{"n":1}"#);
        async move { request.send().await.expect("the server answers").status().as_u16() }
    };
    let store_errors = |snapshot: &Snapshot| {
        value(snapshot, "intercall.server.call_id_store", &[("rpc.method", "add"), ("event", "store_error")])
    };
    assert_eq!(post(&closed, "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b").await, 200, "Redis works");
    assert_eq!(store_errors(&snapshotter.snapshot().into_vec()), 0.0);

    redis.stop();
    assert_eq!(post(&closed, "2e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b").await, 503, "fail closed");
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(store_errors(&snapshot), 1.0);
    let refused = [("rpc.method", "add"), ("outcome", "framework_error"), ("http.response.status_code", "503")];
    assert_eq!(value(&snapshot, "intercall.server.calls", &refused), 1.0);
    assert_eq!(post(&open, "3e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b").await, 200, "fail open: it ran");
    assert_eq!(store_errors(&snapshotter.snapshot().into_vec()), 1.0);
}
