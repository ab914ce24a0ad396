//! Replies that are not intercall's (PROTOCOL.md §4.2, §5, §7): a real
//! `tower_http::timeout::TimeoutLayer` in front of a served trait, a raw axum handler
//! answering as a gateway or a rate limiter would, and a gateway that gives up after
//! the method ran. A `504` or `408` without an intercall body is a timeout; `408`,
//! `429`, `502`, `503` and `504` are retried, and the call-id store runs the method
//! once however often that happens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::response::IntoResponse;
use axum::routing::post;
use intercall::calls::MemoryCallStore;
use intercall::{CallError, Invoker};
use intercall_tests::faults::{Fault, FaultProxy};
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tower_http::timeout::TimeoutLayer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum StockError {
    Unavailable(CallError),
}

impl From<CallError> for StockError {
    fn from(error: CallError) -> Self {
        StockError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Stock {
    /// The side effect: counts one run, returns `2n`.
    async fn reserve(&self, n: u64) -> Result<u64, StockError>;
    /// Counts a run, signals `started`, then waits for the test to open the gate.
    async fn gated(&self, n: u64) -> Result<u64, StockError>;
}

struct Shelf {
    runs: AtomicU64,
    started: Notify,
    gate: Semaphore,
}

impl Default for Shelf {
    fn default() -> Self {
        Self { runs: AtomicU64::new(0), started: Notify::new(), gate: Semaphore::new(0) }
    }
}

impl Stock for Arc<Shelf> {
    async fn reserve(&self, n: u64) -> Result<u64, StockError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(2 * n)
    }

    async fn gated(&self, n: u64) -> Result<u64, StockError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        Ok(2 * n)
    }
}

impl Shelf {
    fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(30);

/// How long the server's timeout layer waits: long enough for a loaded machine to start
/// the run, far below the client's own timeout, so the layer always answers first.
const LAYER_TIMEOUT: Duration = Duration::from_millis(400);

/// A Stock server with its own call-id store, behind a `TimeoutLayer` answering `408`
/// with an empty body, as `TimeoutLayer::new` did before it was deprecated.
async fn stock_behind_a_timeout_layer() -> (Arc<Shelf>, TestServer) {
    let shelf = Arc::new(Shelf::default());
    let router = StockServer::new(Arc::clone(&shelf))
        .call_store(Arc::new(MemoryCallStore::default()))
        .into_router()
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, LAYER_TIMEOUT));
    (shelf, spawn(router).await)
}

fn invoker(url: &str, tries: u32) -> Invoker {
    Invoker::builder()
        .service("Stock", url)
        .timeout(Duration::from_secs(10))
        .tries(tries)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .retry_budget(1.0, 1_000)
        .build()
        .unwrap()
}

fn unavailable(result: Result<u64, StockError>) -> CallError {
    match result {
        Err(StockError::Unavailable(error)) => error,
        Ok(value) => panic!("expected a failure, got Ok({value})"),
    }
}

#[tokio::test]
async fn a_timeout_layer_s_empty_408_is_a_timeout_retried_and_the_method_runs_once() {
    let (shelf, server) = stock_behind_a_timeout_layer().await;
    let stock = StockProxy::new(invoker(&server.url(), 3)).unwrap();

    // The gate stays shut: every attempt outlasts the layer.
    let error = unavailable(stock.gated(1).await);
    assert!(error.is_timeout() && !error.is_status(), "a 408 without an intercall body is a timeout: {error:?}");
    assert_eq!(error.status_code(), Some(408), "{error}");
    assert_eq!(error.attempts(), 3, "a 408 is retried: {error}");
    assert!(error.message().contains("may have run"), "{error}");
    tokio::time::timeout(HANG, shelf.started.notified()).await.expect("the run started");
    assert_eq!(shelf.runs(), 1, "the retries joined the first run, which the layer did not cancel");

    // The run the layer cut off goes on, and its result is what a retry gets.
    shelf.gate.add_permits(1);
    let mut rounds = 0;
    while shelf.gate.available_permits() != 0 {
        rounds += 1;
        assert!(rounds < 3_000, "the detached run never took the permit");
        tokio::task::yield_now().await;
    }
    assert_eq!(shelf.runs(), 1);
}

#[tokio::test]
async fn a_retry_after_a_408_gets_the_result_of_the_run_the_layer_cut_off() {
    let (shelf, server) = stock_behind_a_timeout_layer().await;
    // The second attempt opens the gate as it passes: the first run ends while the
    // retry waits for it.
    let opener = Arc::clone(&shelf);
    let proxy = FaultProxy::start(server.addr, move |seen| {
        if seen.attempt == Some(2) {
            opener.gate.add_permits(1);
        }
        Fault::Pass
    })
    .await;
    let stock = StockProxy::new(invoker(&proxy.url(), 3)).unwrap();
    assert_eq!(stock.gated(4).await, Ok(8));
    assert_eq!(proxy.seen().iter().map(|s| s.attempt).collect::<Vec<_>>(), [Some(1), Some(2)]);
    assert_eq!(shelf.runs(), 1, "the retry got the first run's result");
}

/// A node whose every reply to `/Stock/reserve` is `status` with a plain-text body and
/// `Retry-After: {retry_after}`, as a gateway, a balancer or a rate limiter answers;
/// it counts the requests.
async fn intermediary(status: u16, retry_after: &'static str) -> (Arc<AtomicU32>, TestServer) {
    let requests = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&requests);
    let router = axum::Router::new().route(
        "/Stock/reserve",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(status).expect("a valid status");
            async move {
                (status, [(CONTENT_TYPE, "text/plain"), (RETRY_AFTER, retry_after)], "the gateway says no")
                    .into_response()
            }
        }),
    );
    (requests, spawn(router).await)
}

#[tokio::test]
async fn an_intermediary_s_429_502_503_and_504_are_retried_and_504_is_a_timeout() {
    for status in [429, 502, 503, 504] {
        let (requests, server) = intermediary(status, "0").await;
        let error = unavailable(StockProxy::new(invoker(&server.url(), 3)).unwrap().reserve(1).await);
        assert_eq!(error.status_code(), Some(status), "{error}");
        assert_eq!((error.attempts(), requests.load(Ordering::SeqCst)), (3, 3), "{status} is retried: {error}");
        assert!(error.message().contains("the gateway says no"), "the body is described: {error}");
        match status {
            504 => assert!(error.is_timeout() && !error.is_status(), "{error:?}"),
            _ => assert!(error.is_status() && !error.is_timeout(), "{error:?}"),
        }
    }
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_stops_the_retries_of_a_429_and_a_503() {
    for status in [429, 503] {
        let (requests, server) = intermediary(status, "3600").await;
        let error = unavailable(StockProxy::new(invoker(&server.url(), 3)).unwrap().reserve(1).await);
        assert!(error.is_status() && error.status_code() == Some(status), "{error:?}");
        assert_eq!(
            (error.attempts(), requests.load(Ordering::SeqCst)),
            (1, 1),
            "waiting an hour would pass the call's deadline: no retry after {status}"
        );
    }
}

#[tokio::test]
async fn with_retries_off_a_gateway_timeout_is_one_attempt() {
    let (requests, server) = intermediary(504, "0").await;
    let invoker = Invoker::builder().service("Stock", server.url()).service_retries("Stock", false).build().unwrap();
    let error = unavailable(StockProxy::new(invoker).unwrap().reserve(1).await);
    assert!(error.is_timeout() && error.status_code() == Some(504), "{error:?}");
    assert_eq!((error.attempts(), requests.load(Ordering::SeqCst)), (1, 1));
}

#[tokio::test]
async fn a_gateway_that_gives_up_after_the_method_ran_is_retried_and_the_method_runs_once() {
    for status in [408, 502, 504] {
        let shelf = Arc::new(Shelf::default());
        let router =
            StockServer::new(Arc::clone(&shelf)).call_store(Arc::new(MemoryCallStore::default())).into_router();
        let server = spawn(router).await;
        // The first attempt reaches the server, which runs the method; the gateway
        // then answers in its place, with an HTML page.
        let proxy = FaultProxy::start(server.addr, move |seen| match seen.index {
            0 => Fault::Replace {
                status,
                headers: vec![("content-type".into(), "text/html".into())],
                body: "<html>upstream trouble</html>".into(),
            },
            _ => Fault::Pass,
        })
        .await;
        let stock = StockProxy::new(invoker(&proxy.url(), 3)).unwrap();
        assert_eq!(stock.reserve(21).await, Ok(42), "{status}");
        let seen = proxy.seen();
        assert_eq!(seen.len(), 2, "{status}: one retry");
        assert_eq!(seen[0].call_id, seen[1].call_id, "{status}: the retry is the same call");
        assert_eq!(shelf.runs(), 1, "{status}: the retry got the stored result, nothing ran twice");
    }
}

#[tokio::test]
async fn intercall_s_own_504_is_still_not_retried() {
    // `deadline_exceeded`: the caller's deadline had passed on arrival; a retry cannot help.
    let requests = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&requests);
    let router = axum::Router::new().route(
        "/Stock/reserve",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                let body = r#"{"kind":"deadline_exceeded","message":"the caller gave up"}"#;
                (StatusCode::GATEWAY_TIMEOUT, [(CONTENT_TYPE, "application/json")], body).into_response()
            }
        }),
    );
    let server = spawn(router).await;
    let error = unavailable(StockProxy::new(invoker(&server.url(), 3)).unwrap().reserve(1).await);
    assert!(error.is_timeout() && error.status_code() == Some(504), "{error:?}");
    assert_eq!((error.attempts(), requests.load(Ordering::SeqCst)), (1, 1));
}
