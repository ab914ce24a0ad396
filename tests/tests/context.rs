//! The call context end to end: user, activity and deadline across a chain of three
//! real nodes, the checks a server makes on context headers, and signed calls (forged,
//! tampered, stale and replayed requests; secret rotation). Every node is a real
//! router on a loopback socket; every client is a real proxy or a plain reqwest client.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use intercall::calls::MemoryCallStore;
use intercall::{ActivityId, CallContext, CallError, Invoker, Security, UserContext, UserType, with_deadline};
use intercall_tests::{TestServer, spawn};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What one hop saw of the call it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Seen {
    pub hop: String,
    pub user_type: Option<String>,
    pub user_id: Option<String>,
    pub activity: Option<String>,
    pub has_deadline: bool,
    /// Milliseconds left before the deadline when the hop started.
    pub remaining_ms: Option<u64>,
}

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

impl HopError {
    fn call_error(&self) -> &CallError {
        let HopError::Unavailable(error) = self;
        error
    }
}

#[intercall::service]
pub trait Hop {
    /// Records what this hop sees, then calls the next hop (if any) and appends.
    async fn trace(&self) -> Result<Vec<Seen>, HopError>;
    /// Counts a run and returns `2n`; a method with an argument, to tamper with.
    async fn double(&self, n: u64) -> Result<u64, HopError>;
}

/// A gate a run waits at until the test opens it.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    opened: Notify,
    /// Signalled when a run reaches the gate (and waits).
    entered: Notify,
    /// The deadline of the run waiting at the gate.
    deadline: Mutex<Option<Instant>>,
}

impl Gate {
    async fn pass(&self) {
        let mut opened = pin!(self.opened.notified());
        // Registered before the flag is read, so an `open` in between is not missed.
        opened.as_mut().enable();
        if !self.open.load(Ordering::SeqCst) {
            *self.deadline.lock().unwrap() = CallContext::current().deadline;
            self.entered.notify_one();
            opened.await;
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

struct Node {
    name: &'static str,
    next: Option<HopProxy>,
    gate: Option<Arc<Gate>>,
    /// Runs of any method of this node's implementation.
    runs: AtomicU64,
    /// The outcome of the latest `trace` run, and a signal when one ends.
    last: Mutex<Option<Result<Vec<Seen>, HopError>>>,
    finished: Notify,
}

impl Node {
    fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Hop for Arc<Node> {
    async fn trace(&self) -> Result<Vec<Seen>, HopError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let context = CallContext::current();
        let user = UserContext::current();
        let me = Seen {
            hop: self.name.to_owned(),
            user_type: user.as_ref().map(|u| u.user_type().as_str().to_owned()),
            user_id: user.as_ref().and_then(|u| u.user_id()).map(str::to_owned),
            activity: ActivityId::current().map(|a| a.to_string()),
            has_deadline: context.deadline.is_some(),
            remaining_ms: context.remaining().map(|d| u64::try_from(d.as_millis()).unwrap()),
        };
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        let result = match &self.next {
            None => Ok(vec![me]),
            Some(next) => next.trace().await.map(|rest| std::iter::once(me).chain(rest).collect()),
        };
        *self.last.lock().unwrap() = Some(result.clone());
        self.finished.notify_one();
        result
    }

    async fn double(&self, n: u64) -> Result<u64, HopError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(2 * n)
    }
}

/// A bound on anything a bug could make wait forever.
const HANG: Duration = Duration::from_secs(30);

async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG, future).await.unwrap_or_else(|_| panic!("{what}: no result within {HANG:?}"))
}

fn hop_invoker(url: &str, security: Security) -> Invoker {
    Invoker::builder().service("Hop", url).security(security).build().unwrap()
}

fn front(url: &str, security: Security) -> HopProxy {
    HopProxy::new(hop_invoker(url, security)).unwrap()
}

/// One node: its implementation and its server, with its own call-id store.
async fn node(
    name: &'static str,
    next: Option<HopProxy>,
    gate: Option<Arc<Gate>>,
    security: Security,
) -> (Arc<Node>, TestServer) {
    let node =
        Arc::new(Node { name, next, gate, runs: AtomicU64::new(0), last: Mutex::new(None), finished: Notify::new() });
    let router = HopServer::new(Arc::clone(&node))
        .call_store(Arc::new(MemoryCallStore::default()))
        .security(security)
        .into_router();
    (node, spawn(router).await)
}

/// Three nodes, A -> B -> C, each its own server; `gate` makes B wait at it. Every
/// node's server verifies, and its proxy signs, with `security`.
struct Chain {
    a: (Arc<Node>, TestServer),
    b: (Arc<Node>, TestServer),
    c: (Arc<Node>, TestServer),
}

impl Chain {
    async fn start(security: Security, gate: Option<Arc<Gate>>) -> Self {
        let c = node("C", None, None, security.clone()).await;
        let to_c = front(&c.1.url(), security.clone());
        let b = node("B", Some(to_c), gate, security.clone()).await;
        let to_b = front(&b.1.url(), security.clone());
        let a = node("A", Some(to_b), None, security).await;
        Chain { a, b, c }
    }

    fn url(&self) -> String {
        self.a.1.url()
    }

    fn runs(&self) -> [u64; 3] {
        [self.a.0.runs(), self.b.0.runs(), self.c.0.runs()]
    }
}

/// The user a hop saw, rebuilt.
fn user_of(seen: &Seen) -> Option<UserContext> {
    let user_type = UserType::from(seen.user_type.as_deref()?);
    Some(match &seen.user_id {
        Some(id) => UserContext::new(user_type, id).unwrap(),
        None => UserContext::anonymous(user_type).unwrap(),
    })
}

fn hops(trace: &[Seen]) -> Vec<&str> {
    trace.iter().map(|s| s.hop.as_str()).collect()
}

// ---------------------------------------------------------------------------------
// 1. User and activity across three hops
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_in_scope_reaches_every_hop_with_one_activity_id() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let alice = UserContext::new(UserType::Customer, "42").unwrap();

    let trace = bounded("trace", alice.clone().scope(hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    for seen in &trace {
        assert_eq!(user_of(seen), Some(alice.clone()), "{seen:?}");
        assert_eq!(seen.user_type.as_deref(), Some("customer"));
        assert!(seen.has_deadline, "every proxy call sends a deadline: {seen:?}");
    }
    let activity = trace[0].activity.clone().expect("an activity id at the first hop");
    assert!(uuid::Uuid::try_parse(&activity).is_ok(), "{activity}");
    assert!(trace.iter().all(|s| s.activity.as_deref() == Some(activity.as_str())), "{trace:?}");
    // Outside the scope the test has no user again.
    assert_eq!(UserContext::current(), None);
    assert_eq!(chain.runs(), [1, 1, 1]);
}

#[tokio::test]
async fn a_given_user_and_activity_arrive_unchanged_at_the_third_hop() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let activity = ActivityId::new();
    // Beyond ASCII and at the length limit: both travel byte for byte.
    for id in ["Zoë-🦀", &"x".repeat(intercall::MAX_USER_FIELD_BYTES)] {
        let user = UserContext::new(UserType::Admin, id).unwrap();
        let context = CallContext { user: Some(user.clone()), activity: Some(activity), ..CallContext::default() };
        let trace = bounded("trace", context.scope(hop.trace())).await.unwrap();
        assert_eq!(hops(&trace), ["A", "B", "C"]);
        let third = &trace[2];
        assert_eq!(user_of(third), Some(user.clone()));
        assert_eq!(third.user_id.as_deref(), Some(id));
        assert_eq!(third.activity, Some(activity.to_string()));
        assert!(trace.iter().all(|s| user_of(s) == Some(user.clone()) && s.activity == Some(activity.to_string())));
    }
}

#[tokio::test]
async fn without_a_context_no_user_is_sent_but_one_activity_id_is_minted_per_call() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let first = bounded("trace", hop.trace()).await.unwrap();
    let second = bounded("trace", hop.trace()).await.unwrap();
    for trace in [&first, &second] {
        assert_eq!(hops(trace), ["A", "B", "C"]);
        assert!(trace.iter().all(|s| s.user_type.is_none() && s.user_id.is_none()), "{trace:?}");
        let activity = trace[0].activity.as_deref().expect("minted at the first hop");
        assert!(trace.iter().all(|s| s.activity.as_deref() == Some(activity)), "{trace:?}");
    }
    assert_ne!(first[0].activity, second[0].activity, "each new call starts a new activity");
}

#[tokio::test]
async fn a_guest_arrives_as_a_guest_without_an_id() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let trace = bounded("trace", UserContext::guest().scope(hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    for seen in &trace {
        assert_eq!(seen.user_type.as_deref(), Some("guest"), "{seen:?}");
        assert_eq!(seen.user_id, None, "{seen:?}");
        assert_eq!(user_of(seen), Some(UserContext::guest()));
    }
    // Another type without an id, too.
    let integration = UserContext::anonymous(UserType::Integration).unwrap();
    let trace = bounded("trace", integration.clone().scope(hop.trace())).await.unwrap();
    assert!(trace.iter().all(|s| user_of(s) == Some(integration.clone())), "{trace:?}");
}

#[tokio::test]
async fn a_user_type_of_another_name_round_trips() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let partner = UserContext::new(UserType::Other(Arc::from("partner")), "p-7").unwrap();
    let trace = bounded("trace", partner.clone().scope(hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    for seen in &trace {
        assert_eq!(seen.user_type.as_deref(), Some("partner"), "{seen:?}");
        assert_eq!(UserType::from(seen.user_type.as_deref().unwrap()), UserType::Other(Arc::from("partner")));
        assert_eq!(user_of(seen), Some(partner.clone()));
    }
}

#[tokio::test]
async fn a_plain_http_request_gets_its_activity_minted_by_the_first_server() {
    let chain = Chain::start(Security::none(), None).await;
    let user = [("x-user-type", value("admin")), ("x-user-id", value("root"))];
    let (status, body) = raw_post(&chain.a.1.at("Hop/trace"), &user, "{}").await;
    assert_eq!(status, 200, "{body}");
    let trace: Vec<Seen> = serde_json::from_value(body).unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    let activity = trace[0].activity.as_deref().expect("the first server mints an activity id");
    assert!(trace.iter().all(|s| s.activity.as_deref() == Some(activity)), "{trace:?}");
    let admin = UserContext::new(UserType::Admin, "root").unwrap();
    assert!(trace.iter().all(|s| user_of(s) == Some(admin.clone())), "{trace:?}");
    // No deadline was sent to A; its proxy gives B (and B's gives C) one.
    let deadlines: Vec<bool> = trace.iter().map(|s| s.has_deadline).collect();
    assert_eq!(deadlines, [false, true, true]);
}

// ---------------------------------------------------------------------------------
// 2. Deadlines
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_deadline_shrinks_along_the_chain() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let budget = Duration::from_secs(10);
    let trace = bounded("trace", with_deadline(budget, hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    let left: Vec<u64> = trace.iter().map(|s| s.remaining_ms.expect("a deadline at every hop")).collect();
    assert!(left[0] <= 10_000, "{left:?}");
    assert!(left[0] > left[1] && left[1] > left[2], "each hop has less time than its caller: {left:?}");
}

#[tokio::test]
async fn a_deadline_stops_the_whole_chain_and_the_last_hop_never_runs() {
    let gate = Arc::new(Gate::default());
    let chain = Chain::start(Security::none(), Some(Arc::clone(&gate))).await;
    let hop = front(&chain.url(), Security::none());

    let started = Instant::now();
    let failed = bounded("a call with a deadline", with_deadline(Duration::from_millis(400), hop.trace())).await;
    let error = failed.expect_err("B waits at a closed gate past the deadline");
    assert!(error.call_error().is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline, not the 5 s timeout, ended the call");
    bounded("B reaches the gate", gate.entered.notified()).await;
    assert_eq!(chain.runs(), [1, 1, 0], "C never ran");

    // B's run is detached from the connection and still waits. Once its own deadline
    // has passed, opening the gate lets it go on, and its call to C must not be sent.
    let b_deadline = gate.deadline.lock().unwrap().expect("B runs with a deadline");
    // Not synchronisation: B's deadline has to pass on the clock (it normally has).
    tokio::time::sleep_until(tokio::time::Instant::from_std(b_deadline + Duration::from_millis(5))).await;
    let b_finished = chain.b.0.finished.notified();
    gate.open();
    bounded("B's run ends", b_finished).await;
    let b_result = chain.b.0.last.lock().unwrap().clone().expect("B recorded its outcome");
    let b_error = b_result.expect_err("B's deadline had passed");
    assert!(b_error.call_error().is_timeout(), "{b_error:?}");
    assert_eq!(chain.c.0.runs(), 0, "a call past its deadline is not sent");

    // With the gate open and time to spare, the same chain reaches C.
    let trace = bounded("trace", with_deadline(Duration::from_secs(10), hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    assert!(trace.iter().all(|s| s.has_deadline), "{trace:?}");
    assert_eq!(chain.c.0.runs(), 1);
}

async fn raw_post(
    url: &str,
    headers: &[(&str, HeaderValue)],
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let mut request = client.post(url).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap()
}

#[tokio::test]
async fn a_request_arriving_with_no_time_left_is_504_and_runs_nothing() {
    let (node, server) = node("A", None, None, Security::none()).await;
    let url = server.at("Hop/trace");
    let (status, body) = raw_post(&url, &[("x-deadline-ms", value("0"))], "{}").await;
    assert_eq!((status, body["kind"].as_str()), (504, Some("deadline_exceeded")), "{body}");
    let call_id = ("x-call-id", value("0b9f3c52-2a7e-4b8e-9f43-6f7e1d2c3b4a"));
    let (status, body) = raw_post(&url, &[("x-deadline-ms", value("0")), call_id], "{}").await;
    assert_eq!((status, body["kind"].as_str()), (504, Some("deadline_exceeded")), "{body}");
    assert_eq!(node.runs(), 0);
    // With time left, the same request runs.
    let (status, _) = raw_post(&url, &[("x-deadline-ms", value("5000"))], "{}").await;
    assert_eq!(status, 200);
    assert_eq!(node.runs(), 1);
}

/// A plain axum server that records every request it receives and answers `200` with
/// a fixed JSON body.
struct Capture {
    server: TestServer,
    seen: Arc<Mutex<Vec<Captured>>>,
}

#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Capture {
    async fn start(reply: &'static str) -> Self {
        let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let record = Arc::clone(&seen);
        // A route, not a fallback: `spawn` installs intercall's own fallback.
        let router = axum::Router::new().route(
            "/{*path}",
            axum::routing::any(move |request: axum::extract::Request| {
                let record = Arc::clone(&record);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                    let path = parts.uri.path().to_owned();
                    record.lock().unwrap().push(Captured { path, headers: parts.headers, body });
                    ([("content-type", "application/json")], reply)
                }
            }),
        );
        Capture { server: spawn(router).await, seen }
    }

    fn seen(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_call_whose_deadline_has_passed_fails_at_once_and_sends_nothing() {
    let capture = Capture::start("4").await;
    let hop = front(&capture.server.url(), Security::none());
    let started = Instant::now();
    let error = bounded("a call past its deadline", with_deadline(Duration::ZERO, hop.double(2)))
        .await
        .expect_err("the deadline has passed");
    assert!(error.call_error().is_timeout(), "{error:?}");
    let past = CallContext { deadline: Some(Instant::now()), ..CallContext::default() };
    let error = bounded("a call past its deadline", past.scope(hop.double(2))).await.expect_err("passed");
    assert!(error.call_error().is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "failed at once, not after a timeout");
    assert_eq!(capture.seen().len(), 0, "nothing was sent");
    // The same call with time left is sent.
    assert_eq!(bounded("a call", with_deadline(Duration::from_secs(10), hop.double(2))).await, Ok(4));
    assert_eq!(capture.seen().len(), 1);

    // The same against a real server: its implementation never runs.
    let (node, server) = node("A", None, None, Security::none()).await;
    let hop = front(&server.url(), Security::none());
    let error = bounded("a call", with_deadline(Duration::ZERO, hop.double(2))).await.expect_err("passed");
    assert!(error.call_error().is_timeout(), "{error:?}");
    assert_eq!(node.runs(), 0);
}

// ---------------------------------------------------------------------------------
// 3. Malformed context headers
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_context_headers_are_400_and_run_nothing() {
    let (node, server) = node("A", None, None, Security::none()).await;
    let url = server.at("Hop/trace");
    let customer = || ("x-user-type", value("customer"));
    let cases: Vec<(&str, Vec<(&str, HeaderValue)>)> = vec![
        ("empty user type", vec![("x-user-type", value("")), ("x-user-id", value("1"))]),
        ("empty user type without an id", vec![("x-user-type", value(""))]),
        ("empty user id", vec![customer(), ("x-user-id", value(""))]),
        ("non-UTF-8 user id", vec![customer(), ("x-user-id", HeaderValue::from_bytes(b"\xff\xfe").unwrap())]),
        ("non-UTF-8 user type", vec![("x-user-type", HeaderValue::from_bytes(b"\xff\xfe").unwrap())]),
        ("257-byte user id", vec![customer(), ("x-user-id", value(&"x".repeat(257)))]),
        ("257-byte user type", vec![("x-user-type", value(&"t".repeat(257)))]),
        ("tab in the user id", vec![customer(), ("x-user-id", value("a\tb"))]),
        ("user id without a type", vec![("x-user-id", value("42"))]),
        ("malformed activity id", vec![("x-activity-id", value("not-a-uuid"))]),
        ("truncated activity id", vec![("x-activity-id", value("67e55044-10b1-426f-9247-bb680e5fe0c"))]),
    ];
    for (case, headers) in &cases {
        let (status, body) = raw_post(&url, headers, "{}").await;
        assert_eq!((status, body["kind"].as_str()), (400, Some("bad_request")), "{case}: {body}");
        assert_eq!(node.runs(), 0, "{case}");
    }

    // The limits are inclusive: a 256-byte id is a valid user.
    let id = "x".repeat(256);
    let (status, body) = raw_post(&url, &[customer(), ("x-user-id", value(&id))], "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["user_id"].as_str(), Some(id.as_str()), "{body}");
    let activity = ActivityId::new().to_string();
    let (status, body) = raw_post(&url, &[("x-activity-id", value(&activity))], "{}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["activity"].as_str(), Some(activity.as_str()), "{body}");
    assert_eq!(node.runs(), 2);
}

// ---------------------------------------------------------------------------------
// 4. Signed calls
// ---------------------------------------------------------------------------------

const SECRET: &str = "the-shared-secret-0123456789";
const OLD_SECRET: &str = "the-old-secret-abcdefghijklmn";
const OTHER_SECRET: &str = "an-unrelated-secret-zyxwvuts";

fn signing(secret: &str) -> Security {
    Security::shared_secret(secret).unwrap()
}

/// Everything the tests received, checked at the end for any secret.
#[derive(Default)]
struct Received(Vec<String>);

impl Received {
    fn add(&mut self, text: impl Into<String>) {
        self.0.push(text.into());
    }

    fn assert_no_secret(&self) {
        assert!(!self.0.is_empty());
        for text in &self.0 {
            for secret in [SECRET, OLD_SECRET, OTHER_SECRET] {
                assert!(!text.contains(secret), "a secret leaked: {text}");
                assert!(!text.contains(&secret[..16]), "part of a secret leaked: {text}");
            }
        }
    }
}

/// Replays a captured request against `server`, after `edit` changes its headers or
/// body. Transport headers are recomputed by reqwest.
async fn replay(
    server: &TestServer,
    captured: &Captured,
    edit: impl FnOnce(&mut HeaderMap, &mut Vec<u8>),
) -> (u16, serde_json::Value) {
    let mut headers = captured.headers.clone();
    for name in ["host", "content-length", "connection", "transfer-encoding"] {
        headers.remove(name);
    }
    let mut body = captured.body.to_vec();
    edit(&mut headers, &mut body);
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let response =
        client.post(server.at(&captured.path)).headers(headers).body(body).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

/// Captures the request a signing proxy sends for `double(n)` as `user`.
async fn capture_signed(secret: &str, user: UserContext, n: u64) -> Captured {
    let capture = Capture::start("0").await;
    let hop = front(&capture.server.url(), signing(secret));
    assert_eq!(bounded("a captured call", user.scope(hop.double(n))).await, Ok(0));
    let seen = capture.seen();
    assert_eq!(seen.len(), 1);
    let captured = seen.into_iter().next().unwrap();
    assert_eq!(captured.path, "/Hop/double");
    for header in ["x-intercall-timestamp", "x-intercall-signature", "x-call-id", "x-activity-id"] {
        assert!(captured.headers.contains_key(header), "a signed call sends {header}: {captured:?}");
    }
    let signature = captured.headers["x-intercall-signature"].to_str().unwrap();
    assert!(signature.starts_with("v1=") && signature.len() == 67, "{signature}");
    captured
}

fn set(headers: &mut HeaderMap, name: &'static str, text: &str) {
    headers.insert(HeaderName::from_static(name), value(text));
}

fn assert_unauthorized(case: &str, (status, body): &(u16, serde_json::Value), received: &mut Received) {
    received.add(body.to_string());
    assert_eq!((*status, body["kind"].as_str()), (401, Some("unauthorized")), "{case}: {body}");
}

#[tokio::test]
async fn a_signed_chain_carries_the_user_and_an_unsigned_call_is_401() {
    let chain = Chain::start(signing(SECRET), None).await;
    let alice = UserContext::new(UserType::Customer, "42").unwrap();
    let signed = front(&chain.url(), signing(SECRET));
    let trace = bounded("trace", alice.clone().scope(signed.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
    assert!(trace.iter().all(|s| user_of(s) == Some(alice.clone())), "{trace:?}");
    let zoe = UserContext::new(UserType::from("partner"), "Zoë-🦀").unwrap();
    let trace = bounded("trace", zoe.clone().scope(signed.trace())).await.unwrap();
    assert!(trace.iter().all(|s| user_of(s) == Some(zoe.clone())), "{trace:?}");
    let trace = bounded("trace", signed.trace()).await.unwrap();
    assert!(trace.iter().all(|s| s.user_type.is_none()), "{trace:?}");
    assert_eq!(chain.runs(), [3, 3, 3]);

    let mut received = Received::default();
    let unsigned = front(&chain.url(), Security::none());
    let error = bounded("trace", alice.clone().scope(unsigned.trace())).await.expect_err("unsigned");
    received.add(format!("{error:?} {}", error.call_error()));
    let error = error.call_error();
    assert!(error.is_status() && error.status_code() == Some(401), "{error}");
    assert!(error.message().contains("unauthorized"), "{error}");

    let raw =
        raw_post(&chain.a.1.at("Hop/trace"), &[("x-user-type", value("admin")), ("x-user-id", value("1"))], "{}").await;
    assert_unauthorized("unsigned raw request", &raw, &mut received);
    assert_eq!(chain.runs(), [3, 3, 3], "nothing ran for an unsigned call");
    received.assert_no_secret();
}

#[tokio::test]
async fn forged_or_tampered_signed_requests_are_401_and_an_exact_replay_is_not() {
    let (node, server) = node("A", None, None, signing(SECRET)).await;
    let alice = UserContext::new(UserType::Customer, "42").unwrap();
    let captured = capture_signed(SECRET, alice, 1).await;
    assert_eq!(captured.headers["x-user-id"], "42");
    assert_eq!(captured.body.as_ref(), br#"{"n":1}"#);

    let mut received = Received::default();
    let ours = replay(&server, &captured, |h, _| {
        h.remove("x-intercall-timestamp");
        h.remove("x-intercall-signature");
    });
    assert_unauthorized("signature headers removed", &ours.await, &mut received);
    let forged_user = replay(&server, &captured, |h, _| set(h, "x-user-id", "43")).await;
    assert_unauthorized("forged user id", &forged_user, &mut received);
    let forged_type = replay(&server, &captured, |h, _| set(h, "x-user-type", "admin")).await;
    assert_unauthorized("forged user type", &forged_type, &mut received);
    let dropped_user = replay(&server, &captured, |h, _| {
        h.remove("x-user-type");
        h.remove("x-user-id");
    });
    assert_unauthorized("user removed", &dropped_user.await, &mut received);
    let tampered = replay(&server, &captured, |_, body| *body = br#"{"n":2}"#.to_vec()).await;
    assert_unauthorized("tampered body", &tampered, &mut received);
    let other_activity = ActivityId::new().to_string();
    let activity = replay(&server, &captured, |h, _| set(h, "x-activity-id", &other_activity)).await;
    assert_unauthorized("another activity id", &activity, &mut received);
    let call_id = replay(&server, &captured, |h, _| set(h, "x-call-id", "0b9f3c52-2a7e-4b8e-9f43-6f7e1d2c3b4a"));
    assert_unauthorized("another call id", &call_id.await, &mut received);
    let no_call_id = replay(&server, &captured, |h, _| {
        h.remove("x-call-id");
    });
    assert_unauthorized("call id removed", &no_call_id.await, &mut received);
    let mut elsewhere = captured.clone();
    elsewhere.path = "/Hop/trace".to_owned();
    let other_method = replay(&server, &elsewhere, |_, body| *body = b"{}".to_vec()).await;
    assert_unauthorized("another method", &other_method, &mut received);
    let retimed = replay(&server, &captured, |h, _| {
        let sent: u64 = h["x-intercall-timestamp"].to_str().unwrap().parse().unwrap();
        set(h, "x-intercall-timestamp", &(sent + 1).to_string());
    });
    assert_unauthorized("another timestamp", &retimed.await, &mut received);
    let garbage = replay(&server, &captured, |h, _| set(h, "x-intercall-signature", &format!("v1={}", "0".repeat(64))));
    assert_unauthorized("wrong signature", &garbage.await, &mut received);
    let malformed = replay(&server, &captured, |h, _| set(h, "x-intercall-signature", "v1=zz"));
    assert_unauthorized("malformed signature", &malformed.await, &mut received);
    assert_eq!(node.runs(), 0, "nothing ran for a forged or tampered request");

    // The captured request itself, replayed within the window, is accepted: it ran
    // nowhere before (the capture server only recorded it), so it runs once now...
    assert_eq!(replay(&server, &captured, |_, _| {}).await, (200, serde_json::json!(2)));
    assert_eq!(node.runs(), 1);
    // ...and a second replay is answered from the call-id store, not run again.
    assert_eq!(replay(&server, &captured, |_, _| {}).await, (200, serde_json::json!(2)));
    assert_eq!(node.runs(), 1);
    received.assert_no_secret();
}

#[tokio::test]
async fn a_signed_request_older_than_the_window_is_401() {
    let max_age = Duration::from_millis(500);
    let (node, server) = node("A", None, None, signing(SECRET).max_age(max_age)).await;
    let user = UserContext::new(UserType::Customer, "42").unwrap();
    let early = capture_signed(SECRET, user.clone(), 1).await;
    let late = capture_signed(SECRET, user, 2).await;
    assert_eq!(replay(&server, &early, |_, _| {}).await, (200, serde_json::json!(2)), "within the window");
    assert_eq!(node.runs(), 1);

    // Not synchronisation: the signatures' age has to pass the window on the clock.
    tokio::time::sleep(max_age * 2 + Duration::from_millis(100)).await;
    let mut received = Received::default();
    let stale = replay(&server, &late, |_, _| {}).await;
    assert_unauthorized("stale, never seen", &stale, &mut received);
    assert!(stale.1["message"].as_str().unwrap().contains("ms"), "{}", stale.1);
    let stale = replay(&server, &early, |_, _| {}).await;
    assert_unauthorized("stale, seen before", &stale, &mut received);
    assert_eq!(node.runs(), 1, "a stale request runs nothing");
    received.assert_no_secret();
}

#[tokio::test]
async fn during_a_rotation_both_secrets_are_accepted_and_no_other() {
    let rotating = signing(SECRET).with_accepted_secret(OLD_SECRET).unwrap();
    assert!(!format!("{rotating:?}").contains(&SECRET[..16]), "{rotating:?}");
    let (node, server) = node("A", None, None, rotating).await;
    let alice = UserContext::new(UserType::Customer, "42").unwrap();
    let mut received = Received::default();

    for (secret, n) in [(OLD_SECRET, 1), (SECRET, 2)] {
        let hop = front(&server.url(), signing(secret));
        assert_eq!(
            bounded("double", alice.clone().scope(hop.double(n))).await,
            Ok(2 * n),
            "signed with a known secret"
        );
        let trace = bounded("trace", alice.clone().scope(hop.trace())).await.unwrap();
        assert_eq!(user_of(&trace[0]), Some(alice.clone()));
    }
    assert_eq!(node.runs(), 4);

    for security in [signing(OTHER_SECRET), Security::none()] {
        let hop = front(&server.url(), security.clone());
        let error = bounded("double", alice.clone().scope(hop.double(3))).await.expect_err("not a known secret");
        received.add(format!("{error:?} {}", error.call_error()));
        let error = error.call_error();
        assert!(error.is_status() && error.status_code() == Some(401), "{security:?}: {error}");
        assert!(error.message().contains("unauthorized"), "{error}");
    }
    // Signed with the unrelated secret, captured and replayed raw: the reply body too.
    let captured = capture_signed(OTHER_SECRET, alice.clone(), 3).await;
    let reply = replay(&server, &captured, |_, _| {}).await;
    assert_unauthorized("unrelated secret", &reply, &mut received);
    assert_eq!(node.runs(), 4, "nothing ran for an unknown secret");
    received.assert_no_secret();
}

// ---------------------------------------------------------------------------------
// Known problems: these assert the correct behaviour and fail until the runtime is
// fixed.
// ---------------------------------------------------------------------------------

/// `UserContext::new` accepts a user id with leading or trailing spaces, but HTTP
/// strips them from header values: unsigned, the next hop sees another user ("42");
/// signed, the server verifies against the stripped id and answers 401. Either the
/// constructor refuses such ids or they must arrive unchanged.
#[tokio::test]
async fn a_user_id_with_surrounding_spaces_is_refused_or_arrives_unchanged() {
    let Ok(user) = UserContext::new(UserType::Customer, " 42 ") else { return };
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let trace = bounded("trace", user.clone().scope(hop.trace())).await.unwrap();
    assert!(trace.iter().all(|s| s.user_id.as_deref() == Some(" 42 ")), "the user changed on the way: {trace:?}");

    let chain = Chain::start(signing(SECRET), None).await;
    let hop = front(&chain.url(), signing(SECRET));
    let trace = bounded("trace", user.scope(hop.trace())).await;
    assert!(trace.is_ok(), "a correctly signed call is refused: {trace:?}");
}

/// `with_deadline` adds the budget to `Instant::now()` unchecked, so a budget such as
/// `Duration::MAX` ("no real limit") panics instead of leaving the deadline as it is.
#[tokio::test]
async fn an_unbounded_budget_does_not_panic() {
    let chain = Chain::start(Security::none(), None).await;
    let hop = front(&chain.url(), Security::none());
    let budget = std::panic::catch_unwind(|| {
        drop(with_deadline(Duration::MAX, async {}));
    });
    assert!(budget.is_ok(), "with_deadline(Duration::MAX) panics");
    let trace = bounded("trace", with_deadline(Duration::MAX, hop.trace())).await.unwrap();
    assert_eq!(hops(&trace), ["A", "B", "C"]);
}
