//! Idempotent retries end to end: real proxies and routers, a fault-injecting proxy in
//! between, and a side-effect counter that must match the number of logical calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use intercall::calls::MemoryCallStore;
use intercall::{CallError, Invoker};
use intercall_tests::faults::{Fault, FaultProxy, Seen};
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LedgerError {
    Rejected { code: u32 },
    Unavailable(CallError),
}

impl From<CallError> for LedgerError {
    fn from(error: CallError) -> Self {
        LedgerError::Unavailable(error)
    }
}

/// A result whose serialization panics, as a buggy `Serialize` impl can.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("secret detail of a broken Serialize impl")
    }
}

#[intercall::service]
pub trait Ledger {
    /// The side effect: counts one run, returns `2n`.
    async fn add(&self, n: u64) -> Result<u64, LedgerError>;
    /// Always the typed error `Rejected { code }`.
    async fn reject(&self, code: u32) -> Result<u64, LedgerError>;
    /// Counts a run, signals `started`, then waits for the test to open the gate.
    async fn gated(&self, n: u64) -> Result<u64, LedgerError>;
    /// Never answers.
    async fn stall(&self) -> Result<u64, LedgerError>;
    /// Counts a run, then returns a value whose `Serialize` panics.
    async fn unserializable(&self) -> Result<Unserializable, LedgerError>;
    /// Panics on its first run, answers afterwards.
    async fn flaky(&self) -> Result<u64, LedgerError>;
}

struct Books {
    runs: AtomicU64,
    started: Notify,
    gate: Semaphore,
    panicked: AtomicBool,
}

impl Ledger for Arc<Books> {
    async fn add(&self, n: u64) -> Result<u64, LedgerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(2 * n)
    }

    async fn reject(&self, code: u32) -> Result<u64, LedgerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Err(LedgerError::Rejected { code })
    }

    async fn gated(&self, n: u64) -> Result<u64, LedgerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        Ok(2 * n)
    }

    async fn stall(&self) -> Result<u64, LedgerError> {
        std::future::pending().await
    }

    async fn unserializable(&self) -> Result<Unserializable, LedgerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(Unserializable)
    }

    async fn flaky(&self) -> Result<u64, LedgerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("the first run of flaky panics");
        }
        Ok(1)
    }
}

impl Default for Books {
    fn default() -> Self {
        Self {
            runs: AtomicU64::new(0),
            started: Notify::new(),
            gate: Semaphore::new(0),
            panicked: AtomicBool::new(false),
        }
    }
}

impl Books {
    fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A Ledger server with its own in-memory call-id store.
async fn ledger(store: MemoryCallStore) -> (Arc<Books>, TestServer) {
    let books = Arc::new(Books::default());
    let router = LedgerServer::new(Arc::clone(&books)).call_store(Arc::new(store)).into_router();
    (books, spawn(router).await)
}

fn invoker(url: &str, tries: u32, timeout: Duration) -> Invoker {
    Invoker::builder()
        .service("Ledger", url)
        .timeout(timeout)
        .tries(tries)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .retry_budget(1.0, 1_000)
        .build()
        .unwrap()
}

/// A stable pseudo-random number in 0..100 for one request of one call.
fn percent(seen: &Seen) -> u64 {
    let text = format!("{:?}{:?}", seen.call_id, seen.attempt);
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3)) % 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_calls_with_30_percent_of_responses_dropped_each_run_exactly_once() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    // Drop ~30% of the responses of first and second attempts, after the server ran
    // the method; a third attempt always gets through, so every call can succeed.
    let proxy = FaultProxy::start(server.addr, |seen| {
        if seen.attempt.unwrap_or(1) < 3 && percent(seen) < 30 { Fault::DropResponse } else { Fault::Pass }
    })
    .await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 3, Duration::from_secs(5))).unwrap();

    let results: Vec<_> = futures_util::stream::iter(0..1_000u64)
        .map(|n| {
            let ledger = ledger.clone();
            async move { (n, ledger.add(n).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    for (n, result) in &results {
        assert_eq!(result, &Ok(2 * n), "call {n}");
    }
    assert_eq!(results.len(), 1_000);
    assert_eq!(books.runs(), 1_000, "every call ran exactly once");
    let dropped = proxy.faults();
    assert!(dropped > 250, "the proxy dropped only {dropped} responses");
    assert_eq!(proxy.seen().len(), 1_000 + dropped, "one retry per dropped response");
}

#[tokio::test]
async fn every_attempt_of_a_call_carries_the_same_call_id_and_the_same_body() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let proxy =
        FaultProxy::start(server.addr, |seen| if seen.attempt < Some(3) { Fault::DropResponse } else { Fault::Pass })
            .await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 3, Duration::from_secs(5))).unwrap();
    assert_eq!(ledger.add(21).await, Ok(42));

    let seen = proxy.seen();
    assert_eq!(seen.iter().map(|s| s.attempt).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    let id = seen[0].call_id.clone().expect("a call id");
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 4), "{id}");
    assert!(seen.iter().all(|s| s.call_id.as_deref() == Some(id.as_str()) && s.body == seen[0].body));
    assert_eq!(books.runs(), 1);

    // The next call is a new call id.
    assert_eq!(ledger.add(1).await, Ok(2));
    assert_ne!(proxy.seen().last().unwrap().call_id.as_deref(), Some(id.as_str()));
}

/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(30);

async fn started(books: &Books) {
    tokio::time::timeout(HANG, books.started.notified()).await.expect("the run starts");
}

async fn post(server: &TestServer, method: &str, call_id: &str, body: &str) -> (u16, serde_json::Value) {
    post_as(server, method, call_id, body, &[]).await
}

async fn post_as(
    server: &TestServer,
    method: &str,
    call_id: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let mut request = client
        .post(server.at(&format!("Ledger/{method}")))
        .header("content-type", "application/json")
        .header("x-call-id", call_id)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON reply"))
}

const ID: &str = "4b5dd2fc-98c3-4c1c-8f0a-3ac7cd1b2f10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_call_id_run_once_and_get_one_answer() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let server = Arc::new(server);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { post(&server, "gated", ID, r#"{"n": 5}"#).await })
        })
        .collect();
    started(&books).await;
    books.gate.add_permits(1_000);
    for request in requests {
        assert_eq!(request.await.unwrap(), (200, serde_json::json!(10)));
    }
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_call_cancels_nothing_and_its_retry_gets_the_first_result() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    let first = impatient
        .post(server.at("Ledger/gated"))
        .header("content-type", "application/json")
        .header("x-call-id", ID)
        .body(r#"{"n": 8}"#)
        .send()
        .await;
    assert!(first.is_err_and(|e| e.is_timeout()), "the first attempt must time out");
    started(&books).await;
    books.gate.add_permits(1);

    // With a deadline: if the disconnect had cancelled the run without releasing it,
    // this would end in 409 instead of hanging.
    let retry = post_as(&server, "gated", ID, r#"{"n": 8}"#, &[("x-deadline-ms", "10000")]).await;
    assert_eq!(retry, (200, serde_json::json!(16)));
    assert_eq!(books.runs(), 1, "the disconnect did not cancel the run, and the retry did not run again");
}

#[tokio::test]
async fn a_duplicate_that_outlives_its_deadline_gets_a_retryable_in_progress() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let server = Arc::new(server);
    let owner = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { post(&server, "gated", ID, r#"{"n": 1}"#).await })
    };
    started(&books).await;
    let reply = reqwest::Client::new()
        .post(server.at("Ledger/gated"))
        .header("content-type", "application/json")
        .header("x-call-id", ID)
        .header("x-deadline-ms", "20")
        .body(r#"{"n": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 409);
    let body: serde_json::Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "in_progress", "{body}");
    books.gate.add_permits(1);
    assert_eq!(owner.await.unwrap(), (200, serde_json::json!(2)));
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_reused_call_id_with_another_body_is_422_and_runs_nothing() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    assert_eq!(post(&server, "add", ID, r#"{"n": 1}"#).await, (200, serde_json::json!(2)));
    let (status, body) = post(&server, "add", ID, r#"{"n": 2}"#).await;
    assert_eq!(status, 422);
    assert_eq!(body["kind"], "call_id_mismatch", "{body}");
    assert!(body["message"].as_str().unwrap().contains(ID), "{body}");
    assert_eq!(books.runs(), 1);
    // The original is still answered from the store.
    assert_eq!(post(&server, "add", ID, r#"{"n": 1}"#).await, (200, serde_json::json!(2)));
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_body_that_does_not_decode_frees_its_call_id_so_the_same_request_gets_the_same_400() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    // The store is consulted before the body is decoded; the claim must not outlive
    // the 400, or the retry would wait on it and get a 409.
    for _ in 0..3 {
        let (status, body) = post(&server, "add", ID, r#"{"n": "one"}"#).await;
        assert_eq!((status, body["kind"].as_str()), (400, Some("bad_request")), "{body}");
    }
    assert_eq!(books.runs(), 0);
    // A valid body under the same call id is a fresh call.
    assert_eq!(post(&server, "add", ID, r#"{"n": 1}"#).await, (200, serde_json::json!(2)));
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_typed_error_is_stored_and_replayed_byte_for_byte_not_run_again() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let first = post(&server, "reject", ID, r#"{"code": 7}"#).await;
    assert_eq!(first.0, 422);
    assert_eq!(first.1["value"], serde_json::json!({"Rejected": {"code": 7}}));
    assert_eq!(post(&server, "reject", ID, r#"{"code": 7}"#).await, first);
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_typed_error_is_never_retried() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let proxy = FaultProxy::start(server.addr, |_| Fault::Pass).await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 5, Duration::from_secs(5))).unwrap();
    assert_eq!(ledger.reject(3).await, Err(LedgerError::Rejected { code: 3 }));
    assert_eq!(proxy.seen().len(), 1, "one attempt");
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn an_expired_entry_runs_again() {
    // A generous time to live, so that the two back-to-back calls below stay inside it
    // even on a loaded machine.
    let (books, server) = ledger(MemoryCallStore::new(1_000, Duration::from_millis(500))).await;
    assert_eq!(post(&server, "add", ID, r#"{"n": 4}"#).await, (200, serde_json::json!(8)));
    assert_eq!(post(&server, "add", ID, r#"{"n": 4}"#).await, (200, serde_json::json!(8)));
    assert_eq!(books.runs(), 1, "within the time to live, a duplicate is answered from the store");
    // Not synchronisation: the entry's time to live has to pass on the clock.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(post(&server, "add", ID, r#"{"n": 4}"#).await, (200, serde_json::json!(8)));
    assert_eq!(books.runs(), 2, "after the time to live, the call id is new again");
}

#[tokio::test]
async fn a_run_that_panics_releases_its_call_id_so_a_retry_runs_again() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let (status, body) = post(&server, "flaky", ID, "{}").await;
    assert_eq!((status, body["kind"].as_str()), (500, Some("panic")));
    assert_eq!(post(&server, "flaky", ID, "{}").await, (200, serde_json::json!(1)));
    assert_eq!(books.runs(), 2);
    assert_eq!(post(&server, "flaky", ID, "{}").await, (200, serde_json::json!(1)), "now stored");
    assert_eq!(books.runs(), 2);
}

#[tokio::test]
async fn a_spent_retry_budget_fails_fast_and_sends_nothing_more() {
    let (_books, server) = ledger(MemoryCallStore::default()).await;
    let proxy = FaultProxy::start(server.addr, |_| Fault::Pass).await;
    let invoker = Invoker::builder()
        .service("Ledger", proxy.url())
        .timeout(Duration::from_millis(100))
        .tries(5)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .retry_budget(0.0, 1)
        .build()
        .unwrap();
    let ledger = LedgerProxy::new(invoker).unwrap();

    let Err(LedgerError::Unavailable(first)) = ledger.stall().await else { panic!("stall never answers") };
    // The server gives up waiting a little before the client, so the attempt ends in
    // `409 in_progress` (or a plain timeout on a slow machine): a timeout either way.
    assert!(first.is_timeout() && first.is_retry_budget_exhausted(), "{first}");
    assert_eq!(first.attempts(), 2, "one retry, paid with the only token");
    assert_eq!(proxy.seen().len(), 2);

    let Err(LedgerError::Unavailable(second)) = ledger.stall().await else { panic!("stall never answers") };
    assert!(second.is_retry_budget_exhausted(), "{second}");
    assert_eq!(second.attempts(), 1, "no token left: no retry");
    assert_eq!(proxy.seen().len(), 3);
    assert!(second.to_string().contains("retry budget exhausted"), "{second}");
}

#[tokio::test]
async fn with_retries_off_a_dropped_response_is_one_attempt() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let proxy = FaultProxy::start(server.addr, |_| Fault::DropResponse).await;
    let invoker = Invoker::builder().service("Ledger", proxy.url()).service_retries("Ledger", false).build().unwrap();
    let Err(LedgerError::Unavailable(e)) = LedgerProxy::new(invoker).unwrap().add(1).await else {
        panic!("the response is dropped")
    };
    assert!(e.is_connect(), "{e}");
    assert_eq!(e.attempts(), 1);
    assert_eq!(proxy.seen().len(), 1);
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_cut_response_is_retried_and_answered_from_the_store() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let proxy =
        FaultProxy::start(server.addr, |seen| if seen.index == 0 { Fault::CutResponse } else { Fault::Pass }).await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 3, Duration::from_secs(5))).unwrap();
    assert_eq!(ledger.add(50).await, Ok(100));
    assert_eq!(proxy.seen().len(), 2);
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_503_is_retried_and_a_retry_after_beyond_the_deadline_stops_retrying() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let unavailable = |retry_after: &str| Fault::Respond {
        status: 503,
        headers: vec![("retry-after".into(), retry_after.into())],
        body: r#"{"kind":"store_unavailable","message":"try later"}"#.into(),
    };
    let proxy = FaultProxy::start(server.addr, move |seen| match seen.index {
        0 => unavailable("0"),
        2 => unavailable("3600"),
        _ => Fault::Pass,
    })
    .await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 3, Duration::from_secs(2))).unwrap();
    assert_eq!(ledger.add(1).await, Ok(2), "a 503 is retried");
    assert_eq!(proxy.seen().len(), 2);

    let Err(LedgerError::Unavailable(e)) = ledger.add(2).await else { panic!("503 with a long Retry-After") };
    assert!(e.is_status() && e.status_code() == Some(503), "{e}");
    assert_eq!(proxy.seen().len(), 3, "waiting an hour would pass the call's deadline: no retry");
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn malformed_call_headers_are_400_and_run_nothing() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    for (name, value) in [("x-call-id", "not-a-uuid"), ("x-call-attempt", "0"), ("x-deadline-ms", "soon")] {
        let reply = reqwest::Client::new()
            .post(server.at("Ledger/add"))
            .header("content-type", "application/json")
            .header(name, value)
            .body(r#"{"n": 1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400, "{name}: {value}");
        let body: serde_json::Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
        assert!(body["message"].as_str().unwrap().contains(name), "{body}");
    }
    assert_eq!(books.runs(), 0);
    // Without a call id, a plain client still works, and nothing is stored.
    let plain = intercall_tests::post_raw(&server.at("Ledger/add"), Some("application/json"), r#"{"n": 3}"#).await;
    assert_eq!((plain.status, plain.body), (200, serde_json::json!(6)));
    let plain = intercall_tests::post_raw(&server.at("Ledger/add"), Some("application/json"), r#"{"n": 3}"#).await;
    assert_eq!(plain.status, 200);
    assert_eq!(books.runs(), 2);
}

#[tokio::test]
async fn the_same_call_id_for_another_user_is_another_call() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let as_user = |user_type, id| [("x-user-type", user_type), ("x-user-id", id)];
    let body = r#"{"n": 1}"#;
    assert_eq!(post_as(&server, "add", ID, body, &as_user("customer", "1")).await.0, 200);
    assert_eq!(post_as(&server, "add", ID, body, &as_user("customer", "2")).await.0, 200);
    assert_eq!(books.runs(), 2, "another user never gets this user's stored result");
    // Regression: "a" + "b/c" and "a/b" + "c" were once one key.
    assert_eq!(post_as(&server, "add", ID, body, &as_user("a", "b/c")).await.0, 200);
    assert_eq!(post_as(&server, "add", ID, body, &as_user("a/b", "c")).await.0, 200);
    assert_eq!(books.runs(), 4);
    // The same user again is a duplicate.
    assert_eq!(post_as(&server, "add", ID, body, &as_user("customer", "1")).await.0, 200);
    assert_eq!(books.runs(), 4);
    // The same call id on another method is another call.
    assert_eq!(post(&server, "reject", ID, r#"{"code": 1}"#).await.0, 422);
    assert_eq!(books.runs(), 5);
}

#[tokio::test]
async fn a_duplicate_answered_in_progress_is_retried_by_the_proxy_until_the_run_ends() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let gate = Arc::clone(&books);
    // The first attempt waits out its deadline and gets 409; the second attempt
    // opens the gate as it passes, so the run ends while it waits.
    let proxy = FaultProxy::start(server.addr, move |seen| {
        if seen.attempt == Some(2) {
            gate.gate.add_permits(1);
        }
        Fault::Pass
    })
    .await;
    let ledger = LedgerProxy::new(invoker(&proxy.url(), 3, Duration::from_millis(300))).unwrap();
    assert_eq!(ledger.gated(4).await, Ok(8));
    assert_eq!(proxy.seen().len(), 2, "one 409, one success");
    assert_eq!(books.runs(), 1);
}

#[tokio::test]
async fn a_panic_while_serializing_the_result_is_a_panic_reply_and_frees_the_call_id() {
    let (books, server) = ledger(MemoryCallStore::default()).await;
    let (status, body) = post(&server, "unserializable", ID, "{}").await;
    assert_eq!((status, body["kind"].as_str()), (500, Some("panic")), "{body}");
    assert!(!body.to_string().contains("secret detail"), "the panic message leaked: {body}");
    // Released, not stuck: the retry runs again instead of waiting on a dead claim.
    let (status, _) = post_as(&server, "unserializable", ID, "{}", &[("x-deadline-ms", "10000")]).await;
    assert_eq!(status, 500);
    assert_eq!(books.runs(), 2);
}
