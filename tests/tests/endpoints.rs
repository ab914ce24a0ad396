//! Several endpoints per service, end to end over real sockets: balancing (a slow
//! replica gets fewer calls), a retry on another endpoint, outlier ejection and the
//! half-open probe, the circuit when every endpoint is ejected, server load shedding
//! (`max_in_flight`) with the client moving to another replica, DNS re-resolution
//! through a resolver the test changes, and the configuration keys.
//!
//! A replica killed under load (a real child process, with Redis) is in
//! `process_kills.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use intercall::{CallError, Invoker};
use intercall_tests::faults::{Fault, FaultProxy};
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum WorkError {
    Unavailable(CallError),
}

impl From<CallError> for WorkError {
    fn from(error: CallError) -> Self {
        WorkError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Work {
    /// Records `n` as run on this replica, waits as the replica is told, returns `n`.
    async fn run(&self, n: u64) -> Result<u64, WorkError>;
}

/// One replica's implementation: what it ran, and how it is slowed.
#[derive(Default)]
struct Replica {
    runs: Mutex<Vec<u64>>,
    started: AtomicUsize,
    /// When set, each run waits for a permit of it (and gives it back).
    gate: Option<Arc<Semaphore>>,
    /// Each run takes this long: a slow replica (slowness, not synchronisation).
    delay: Option<Duration>,
}

impl Work for Arc<Replica> {
    async fn run(&self, n: u64) -> Result<u64, WorkError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            let _pass = gate.acquire().await.expect("never closed");
        }
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.runs.lock().unwrap().push(n);
        Ok(n)
    }
}

impl Replica {
    fn runs(&self) -> Vec<u64> {
        self.runs.lock().unwrap().clone()
    }
}

async fn serve(replica: &Arc<Replica>) -> TestServer {
    spawn(WorkServer::from_arc(Arc::new(Arc::clone(replica))).into_router()).await
}

fn proxy(invoker: Invoker) -> WorkProxy {
    WorkProxy::new(invoker).expect("Work has URLs")
}

/// `calls` calls numbered from 0, `concurrency` at a time; every result.
async fn load(work: &WorkProxy, calls: u64, concurrency: usize) -> Vec<(u64, Result<u64, WorkError>)> {
    let results = futures_util::stream::iter(0..calls)
        .map(|n| {
            let work = work.clone();
            async move { (n, work.run(n).await) }
        })
        .buffer_unordered(concurrency)
        .collect();
    tokio::time::timeout(HANG, results).await.expect("the load finishes")
}

fn assert_all_ok(results: &[(u64, Result<u64, WorkError>)]) {
    for (n, result) in results {
        assert_eq!(result, &Ok(*n), "call {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_every_endpoint() {
    let replicas: Vec<Arc<Replica>> = (0..3).map(|_| Arc::new(Replica::default())).collect();
    let mut servers = Vec::new();
    for replica in &replicas {
        servers.push(serve(replica).await);
    }
    let invoker = Invoker::builder().service_urls("Work", servers.iter().map(TestServer::url)).build().unwrap();
    assert_eq!(invoker.endpoints("Work").map(|e| e.len()), Some(3));
    let results = load(&proxy(invoker), 300, 8).await;
    assert_all_ok(&results);
    let counts: Vec<usize> = replicas.iter().map(|r| r.runs().len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 300, "each call ran once: {counts:?}");
    assert!(counts.iter().all(|&c| c >= 30), "every replica takes a share: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_gets_a_smaller_share() {
    let fast_a = Arc::new(Replica::default());
    let fast_b = Arc::new(Replica::default());
    let slow = Arc::new(Replica { delay: Some(Duration::from_millis(25)), ..Replica::default() });
    let (a, b, s) = (serve(&fast_a).await, serve(&fast_b).await, serve(&slow).await);
    let invoker = Invoker::builder().service_urls("Work", [a.url(), s.url(), b.url()]).build().unwrap();
    let results = load(&proxy(invoker), 400, 16).await;
    assert_all_ok(&results);
    let (a, b, s) = (fast_a.runs().len(), fast_b.runs().len(), slow.runs().len());
    eprintln!("400 calls, 16 at a time: fast {a} and {b}, slow {s}");
    assert_eq!(a + b + s, 400);
    // Power of two choices on outstanding calls: the slow replica holds its calls
    // longer, so it loses most draws. (Round robin would give each a third.)
    assert!(s * 2 < a.min(b), "the slow replica got {s}, the fast ones {a} and {b}");
}

/// A loopback port that accepts connections and closes them at once (a replica whose
/// process is broken), counting the connections that reach it.
async fn broken_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_goes_to_another_endpoint_and_a_failing_one_is_ejected() {
    let replica = Arc::new(Replica::default());
    let server = serve(&replica).await;
    let (broken, reached) = broken_endpoint().await;
    let invoker = Invoker::builder()
        .service_urls("Work", [broken, server.url()])
        .tries(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .ejection(3, Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    let results = load(&proxy(invoker), 100, 1).await;
    // Every call that met the broken endpoint was retried on the other one.
    assert_all_ok(&results);
    assert_eq!(replica.runs().len(), 100);
    // Three failures in a row ejected it for a minute: nothing more reached it.
    assert_eq!(reached.load(Ordering::SeqCst), 3, "connections to the broken endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_ejected_fails_calls_at_once_without_the_network() {
    let (first, reached_first) = broken_endpoint().await;
    let (second, reached_second) = broken_endpoint().await;
    let invoker = Invoker::builder()
        .service_urls("Work", [first, second])
        .tries(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .ejection(2, Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    let work = proxy(invoker);
    // Opening the circuit: each endpoint fails twice; the last attempt finds none left.
    let mut opened = None;
    for n in 0..10 {
        match work.run(n).await {
            Err(WorkError::Unavailable(error)) if error.is_circuit_open() => {
                opened = Some(error);
                break;
            }
            Err(WorkError::Unavailable(error)) => assert!(error.is_connect(), "{error}"),
            Ok(_) => panic!("nothing answers"),
        }
    }
    let opened = opened.expect("the circuit opens");
    assert!(opened.message().contains("every endpoint is ejected"), "{opened}");
    let before = (reached_first.load(Ordering::SeqCst), reached_second.load(Ordering::SeqCst));
    assert_eq!(before, (2, 2), "each endpoint failed twice before it was ejected");
    // Open: 200 calls fail at once, with the new predicate, and nothing is sent.
    for n in 0..200 {
        let Err(WorkError::Unavailable(error)) = work.run(n).await else { panic!("call {n} succeeded") };
        assert!(error.is_circuit_open() && !error.is_connect() && !error.is_timeout(), "{error}");
        assert_eq!(error.attempts(), 0, "no attempt was made: {error}");
        assert!(!error.is_retry_budget_exhausted());
    }
    let after = (reached_first.load(Ordering::SeqCst), reached_second.load(Ordering::SeqCst));
    assert_eq!(after, before, "no request reached the network while the circuit was open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_replica_returns_after_a_successful_probe() {
    let replica = Arc::new(Replica::default());
    let healthy = serve(&replica).await;
    // The other replica's port stays bound for the whole test, so that nothing else can
    // take it: first its process is broken (each connection is accepted and closed at
    // once), then it serves again on the same listener.
    let returning = Arc::new(Replica::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let (heal, healed) = tokio::sync::oneshot::channel::<()>();
    let broken = tokio::spawn({
        let reached = Arc::clone(&reached);
        async move {
            let mut healed = healed;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut healed => return listener,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            reached.fetch_add(1, Ordering::SeqCst);
                            drop(stream);
                        }
                    }
                }
            }
        }
    });
    let invoker = Invoker::builder()
        .service_urls("Work", [format!("http://{addr}/"), healthy.url()])
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .ejection(2, Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    let work = proxy(invoker);
    assert_all_ok(&load(&work, 40, 1).await);
    assert_eq!(replica.runs().len(), 40, "the healthy replica ran everything");
    assert!(reached.load(Ordering::SeqCst) >= 2, "the broken replica failed its calls (eject_after = 2)");

    heal.send(()).unwrap();
    let listener = broken.await.unwrap();
    let router = WorkServer::from_arc(Arc::new(Arc::clone(&returning))).into_router();
    tokio::spawn(async move { intercall::serve(listener, router).await });
    // Bounded polling: once its ejection (at most 100 ms) is over, one call probes
    // it, and when that succeeds traffic returns to it.
    let mut n = 1_000;
    while returning.runs().len() < 20 {
        assert!(n < 1_000 + 20_000, "the replica never got traffic back");
        assert_eq!(work.run(n).await, Ok(n));
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_calls_succeed_on_the_other_replica_and_nothing_runs_twice() {
    // Both replicas hold their runs until the test opens the gates, so that calls pile
    // up: A takes 4 and sheds every other that reaches it.
    let gate_a = Arc::new(Semaphore::new(0));
    let gate_b = Arc::new(Semaphore::new(0));
    let a = Arc::new(Replica { gate: Some(Arc::clone(&gate_a)), ..Replica::default() });
    let b = Arc::new(Replica { gate: Some(Arc::clone(&gate_b)), ..Replica::default() });
    let settings =
        intercall::ServerSettings { max_in_flight: Some(intercall::MaxInFlight::new(4)), ..Default::default() };
    let server_a = spawn(WorkServer::from_arc(Arc::new(Arc::clone(&a))).settings(settings).into_router()).await;
    let server_b = serve(&b).await;
    // In front of each replica, to count what reaches it.
    let front_a = FaultProxy::start(server_a.addr, |_| Fault::Pass).await;
    let front_b = FaultProxy::start(server_b.addr, |_| Fault::Pass).await;
    // The default retry budget (ratio 0.2, burst 10): moving a shed call spends none of
    // it, so more shed calls than its burst all succeed.
    let invoker = Invoker::builder()
        .service_urls("Work", [front_a.url(), front_b.url()])
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let work = proxy(invoker);
    let calls = tokio::spawn({
        let work = work.clone();
        async move { load(&work, 64, 64).await }
    });
    // Every call has started a run somewhere: 4 on A (its limit), the rest on B.
    let waited = tokio::time::timeout(HANG, async {
        while a.started.load(Ordering::SeqCst) + b.started.load(Ordering::SeqCst) < 64 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let started = (a.started.load(Ordering::SeqCst), b.started.load(Ordering::SeqCst), front_a.seen().len());
    waited.unwrap_or_else(|_| panic!("all 64 calls start a run: (A, B, reached A) = {started:?}"));
    assert_eq!(a.started.load(Ordering::SeqCst), 4, "A never runs more than max_in_flight");
    gate_a.add_permits(64);
    gate_b.add_permits(64);
    let results = calls.await.unwrap();
    assert_all_ok(&results);
    let (runs_a, runs_b) = (a.runs(), b.runs());
    assert_eq!((runs_a.len(), runs_b.len()), (4, 60));
    let mut all: Vec<u64> = runs_a.iter().chain(&runs_b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..64).collect::<Vec<_>>(), "every call ran exactly once");
    // The 64 first attempts are all made before any reply comes back, and power of two
    // choices over two endpoints sends each to the one with fewer in flight: 32 each.
    // A runs 4 and sheds 28; each of those moves to B once, so B gets 32 + 28 requests.
    let (seen_a, seen_b) = (front_a.seen().len(), front_b.seen().len());
    eprintln!("A got {seen_a} requests, ran 4 and shed the rest, each moved to B; B got {seen_b}");
    assert_eq!(seen_a, 32, "half of the first attempts reached A");
    let shed = seen_a - 4;
    assert_eq!(seen_b, 32 + shed, "B got its half and every shed call once; no call was shed twice or moved back");
    assert!(shed > 10, "more moves than the default budget's burst of 10 ({shed}): none spent it");
}

/// A call whose connection was refused ran nowhere, like a shed one: its move to the
/// other replica takes nothing from the retry budget, whether the built-in transport
/// carries it directly or under a client layer. The budget here allows one retry in
/// all: charged, the second refused call would fail with `is_retry_budget_exhausted()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_move_to_the_other_replica_without_spending_the_budget() {
    for layered in [false, true] {
        // Bound and never listening: every connection to it is refused, and nothing else
        // can take the port while the test runs.
        let refusing = tokio::net::TcpSocket::new_v4().unwrap();
        refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let refusing_url = format!("http://{}/", refusing.local_addr().unwrap());
        let replica = Arc::new(Replica::default());
        let healthy = serve(&replica).await;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let mut builder = Invoker::builder()
            .service_urls("Work", [refusing_url, healthy.url()])
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            // Kept in rotation, so that it keeps refusing first attempts.
            .ejection(1_000_000, Duration::from_millis(1), Duration::from_millis(1))
            .retry_budget(0.0, 1);
        if layered {
            let attempts = Arc::clone(&attempts);
            builder = builder.layer(tower::layer::layer_fn(move |inner: intercall::client::HttpClient| {
                let attempts = Arc::clone(&attempts);
                intercall::client::HttpClient::new(tower::service_fn(move |request: intercall::client::HttpRequest| {
                    let info = request.extensions().get::<intercall::client::CallInfo>().expect("a CallInfo");
                    attempts.lock().unwrap().push(info.attempt());
                    tower::ServiceExt::oneshot(inner.clone(), request)
                }))
            }));
        }
        let results = load(&proxy(builder.build().unwrap()), 60, 1).await;
        assert_all_ok(&results);
        let mut runs = replica.runs();
        runs.sort_unstable();
        assert_eq!(
            runs,
            (0..60).collect::<Vec<_>>(),
            "every call ran once, on the healthy replica (layered: {layered})"
        );
        if layered {
            let moved = attempts.lock().unwrap().iter().filter(|&&attempt| attempt == 2).count();
            assert!(moved >= 2, "more refused calls moved ({moved}) than the budget's one retry could pay for");
        }
    }
}

#[tokio::test]
async fn a_shed_call_is_answered_503_overloaded_with_retry_after_before_its_body_is_read() {
    let gate = Arc::new(Semaphore::new(0));
    let replica = Arc::new(Replica { gate: Some(Arc::clone(&gate)), ..Replica::default() });
    let router = WorkServer::from_arc(Arc::new(Arc::clone(&replica))).method_max_in_flight("run", 1).into_router();
    let server = spawn(router).await;
    let url = server.at("/Work/run");
    let held = tokio::spawn({
        let url = url.clone();
        async move { intercall_tests::post_raw(&url, Some("application/json"), r#"{"n":1}"#).await }
    });
    tokio::time::timeout(HANG, async {
        while replica.started.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first call runs");
    // Not even JSON: it is never read.
    let response = reqwest::Client::new().post(&url).body("not json").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "overloaded", "{body}");
    assert!(body["message"].as_str().unwrap().contains("max_in_flight"), "{body}");
    gate.add_permits(1);
    assert_eq!(held.await.unwrap().status, 200);
}

#[test]
#[should_panic(expected = "`Work` has no method `nope`")]
fn a_limit_for_a_method_the_service_lacks_is_refused() {
    let _ = WorkServer::new(Arc::new(Replica::default())).method_max_in_flight("nope", 1).into_router();
}

/// A service whose runs the test holds, to see what `max_in_flight` counts.
#[intercall::service]
pub trait Hold {
    /// Runs until the test lets it end.
    async fn hold(&self) -> Result<(), WorkError>;
    /// Answers at once.
    async fn ping(&self) -> Result<(), WorkError>;
    /// One item at once, a second when the test lets it, then the end.
    async fn items(&self) -> Result<intercall::Streaming<u64, WorkError>, WorkError>;
}

struct Holder {
    started: tokio::sync::Notify,
    /// Each run waits for a permit of it.
    gate: Semaphore,
    ended: AtomicUsize,
}

impl Default for Holder {
    fn default() -> Self {
        Self { started: tokio::sync::Notify::new(), gate: Semaphore::new(0), ended: AtomicUsize::new(0) }
    }
}

impl Hold for Arc<Holder> {
    async fn hold(&self) -> Result<(), WorkError> {
        self.started.notify_one();
        self.gate.acquire().await.expect("never closed").forget();
        self.ended.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn ping(&self) -> Result<(), WorkError> {
        Ok(())
    }

    async fn items(&self) -> Result<intercall::Streaming<u64, WorkError>, WorkError> {
        let this = Arc::clone(self);
        let second = futures_util::stream::once(async move {
            this.gate.acquire().await.expect("never closed").forget();
            Ok(2)
        });
        Ok(intercall::Streaming::new(futures_util::stream::iter([Ok(1)]).chain(second)))
    }
}

/// A node limited to one call in flight, and its limit.
async fn held_node(options: intercall::ServeOptions) -> (TestServer, Arc<Holder>, intercall::MaxInFlight) {
    let holder = Arc::new(Holder::default());
    let limit = intercall::MaxInFlight::new(1);
    let settings = intercall::ServerSettings { max_in_flight: Some(limit.clone()), ..Default::default() };
    let router = HoldServer::from_arc(Arc::new(Arc::clone(&holder))).settings(settings).into_router();
    (intercall_tests::spawn_with(router, options).await, holder, limit)
}

/// Waits (bounded) until no call holds a place under `limit`.
async fn all_places_free(limit: &intercall::MaxInFlight, what: &str) {
    tokio::time::timeout(HANG, async {
        while limit.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// `ping`'s status, from a plain client on a new connection.
async fn ping(server: &TestServer) -> u16 {
    let reply = intercall_tests::post_raw(&server.at("/Hold/ping"), Some("application/json"), "{}").await;
    if reply.status == 503 {
        assert_eq!(reply.body["kind"], "overloaded", "{}", reply.body);
    }
    reply.status
}

/// Lets the held run end and waits until its place is free: `ping` runs again.
async fn release(server: &TestServer, holder: &Holder, limit: &intercall::MaxInFlight) {
    holder.gate.add_permits(1);
    all_places_free(limit, "the run ended and freed its place").await;
    assert_eq!(ping(server).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_caller_gave_up_still_counts_against_max_in_flight() {
    let (server, holder, limit) = held_node(intercall::ServeOptions::default()).await;
    assert_eq!(ping(&server).await, 200);
    // With a call id and 50 ms to wait: the server stops waiting for the run and answers
    // `409 in_progress`; the run goes on.
    let reply = reqwest::Client::new()
        .post(server.at("/Hold/hold"))
        .header("content-type", "application/json")
        .header("x-call-id", "67e55044-10b1-426f-9247-bb680e5fe0c8")
        .header("x-deadline-ms", "50")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 409, "the caller's wait ended");
    assert_eq!(holder.ended.load(Ordering::SeqCst), 0);
    assert_eq!(ping(&server).await, 503, "the run still holds the only place");
    release(&server, &holder, &limit).await;
    assert_eq!(holder.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_client_disconnected_still_counts_against_max_in_flight() {
    use tokio::io::AsyncWriteExt;
    // One connection at a time: a second connection is served only once the server has
    // dropped the first, and the first's request with it.
    let (server, holder, limit) = held_node(intercall::ServeOptions::default().max_connections(Some(1))).await;
    // Without a call id, from a client that leaves mid-run.
    let mut client = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request =
        "POST /Hold/hold HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    client.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(HANG, holder.started.notified()).await.expect("the run started");
    drop(client);
    // Served once the server has dropped the first connection, and its request with it.
    assert_eq!(ping(&server).await, 503, "the detached run still holds the only place");
    assert_eq!(holder.ended.load(Ordering::SeqCst), 0);
    release(&server, &holder, &limit).await;
    assert_eq!(holder.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_stream_counts_against_max_in_flight_until_it_ends() {
    // Keep-alive frames while a stream is idle: how a server finds a client gone.
    let options = intercall::ServeOptions::default().stream_keepalive(Duration::from_millis(20));
    let (server, holder, limit) = held_node(options).await;
    let invoker = Invoker::builder().service("Hold", server.url()).build().unwrap();
    let hold = HoldProxy::new(invoker).unwrap();
    // A stream that ends: its place is held until its last item is made.
    let mut items = hold.items().await.expect("the stream opens");
    assert_eq!(items.next().await.map(Result::unwrap), Some(1));
    assert_eq!(ping(&server).await, 503, "its head was sent, and it still runs");
    holder.gate.add_permits(1);
    assert_eq!(items.next().await.map(Result::unwrap), Some(2));
    assert!(items.next().await.is_none(), "the end");
    // Freed as the final frame is made, before it is written: no wait is needed here.
    assert_eq!(ping(&server).await, 200, "the ended stream freed its place");
    // A stream its client leaves: held until the server finds it gone.
    let mut items = hold.items().await.expect("the stream opens");
    assert_eq!(items.next().await.map(Result::unwrap), Some(1));
    assert_eq!(ping(&server).await, 503);
    drop(items);
    all_places_free(&limit, "the server dropped the stream its client left, and freed its place").await;
    assert_eq!(ping(&server).await, 200);
}

/// A resolver whose answer the test changes.
#[derive(Clone, Default)]
struct Addresses(Arc<Mutex<Vec<SocketAddr>>>);

impl Addresses {
    fn set(&self, addrs: &[SocketAddr]) {
        *self.0.lock().unwrap() = addrs.to_vec();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_is_re_resolved_and_each_address_is_an_endpoint() {
    let (one, two) = (Arc::new(Replica::default()), Arc::new(Replica::default()));
    let (server_one, server_two) = (serve(&one).await, serve(&two).await);
    let addresses = Addresses::default();
    addresses.set(&[server_one.addr]);
    let lookups = Arc::new(AtomicU64::new(0));
    let resolver = {
        let (addresses, lookups) = (addresses.clone(), Arc::clone(&lookups));
        move |host: &str, port: u16| {
            assert_eq!((host, port), ("work.internal", 9000));
            lookups.fetch_add(1, Ordering::SeqCst);
            let found = addresses.0.lock().unwrap().clone();
            async move { Ok(found) }
        }
    };
    let invoker = Invoker::builder()
        .service("Work", "http://work.internal:9000/")
        .service_dns_refresh("Work", Duration::from_millis(20))
        .resolver(resolver)
        .build()
        .unwrap();
    assert_eq!(invoker.endpoints("Work"), Some(vec![]), "resolved on the first call");
    let work = proxy(invoker.clone());
    assert_all_ok(&load(&work, 20, 2).await);
    assert_eq!(one.runs().len(), 20);
    assert_eq!(invoker.endpoints("Work"), Some(vec![format!("http://{}", server_one.addr)]));

    // The name now resolves to the other address: after the next refresh, every call
    // goes there. Bounded polling of the condition, one call at a time.
    addresses.set(&[server_two.addr]);
    let mut n = 100;
    while invoker.endpoints("Work") != Some(vec![format!("http://{}", server_two.addr)]) {
        assert!(n < 100 + 5_000, "the name was never re-resolved");
        assert_eq!(work.run(n).await, Ok(n));
        n += 1;
    }
    let before = one.runs().len();
    assert_all_ok(&load(&work, 20, 2).await);
    assert_eq!(one.runs().len(), before, "the old address gets nothing more");

    // Both addresses: both get calls.
    addresses.set(&[server_one.addr, server_two.addr]);
    while invoker.endpoints("Work").map(|e| e.len()) != Some(2) {
        assert!(n < 100 + 10_000, "the name was never re-resolved");
        assert_eq!(work.run(n).await, Ok(n));
        n += 1;
    }
    let (one_before, two_before) = (one.runs().len(), two.runs().len());
    assert_all_ok(&load(&work, 100, 4).await);
    assert!(one.runs().len() > one_before && two.runs().len() > two_before, "both addresses serve");
    assert!(lookups.load(Ordering::SeqCst) >= 3);

    // A resolution that fails keeps the endpoints it had.
    addresses.set(&[]);
    assert_all_ok(&load(&work, 50, 2).await);
    assert_eq!(invoker.endpoints("Work").map(|e| e.len()), Some(2));
}

#[tokio::test]
async fn a_name_that_never_resolves_fails_the_call_with_a_connect_error() {
    let invoker = Invoker::builder()
        .service("Work", "http://work.internal:9000/")
        .service_dns_refresh("Work", Duration::from_secs(1))
        .resolver(|_: &str, _| async { Err(std::io::Error::other("no such host")) })
        .build()
        .unwrap();
    let Err(WorkError::Unavailable(error)) = proxy(invoker).run(1).await else { panic!("no address") };
    assert!(error.is_connect() && error.message().contains("work.internal"), "{error}");
}

mod config {
    use super::*;

    fn refused(text: &str) -> String {
        Invoker::builder().file(write(text)).environment(false).build().unwrap_err().to_string()
    }

    fn write(text: &str) -> std::path::PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "intercall-endpoints-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn urls_are_listed_validated_and_exclusive_with_url() {
        let invoker =
            Invoker::from_toml("[services.Work]\nurls = [\"http://10.0.0.1:1/\", \"http://10.0.0.2:1/p/\"]\n").unwrap();
        assert_eq!(invoker.base_urls("Work"), Some(vec!["http://10.0.0.1:1", "http://10.0.0.2:1/p"]));
        assert_eq!(invoker.endpoints("Work").map(|e| e.len()), Some(2));
        for (text, needles) in [
            (
                "[services.Work]\nurl = \"http://a/\"\nurls = [\"http://b/\"]\n",
                &["line 3", "both `url` and `urls`"][..],
            ),
            ("[services.Work]\nurls = []\n", &["line 2", "`services.Work.urls` is empty"]),
            ("[services.Work]\nurls = [\"http://a/\", \"ftp://b/\"]\n", &["`services.Work.urls[1]`", "scheme `ftp`"]),
            ("[services.Work]\nurls = [\"http://a/\", \"http://a\"]\n", &["`services.Work.urls[1]` repeats"]),
            ("[services.Work]\ntries = 2\n", &["line 1", "has no `url`", "urls = ["]),
            ("[services.Work]\nurls = \"http://a/\"\n", &["`services.Work.urls`", "sequence"]),
        ] {
            let message = refused(text);
            for needle in needles {
                assert!(message.contains(needle), "{needle}: {message}");
            }
        }
    }

    #[test]
    fn ejection_and_dns_keys_are_validated() {
        for (text, needle) in [
            ("[defaults]\neject_ms = 0\n", "`defaults.eject_ms` is 0"),
            (
                "[defaults]\neject_ms = 5000\nmax_eject_ms = 1000\n",
                "`defaults.max_eject_ms`: the first ejection (5000 ms) is longer",
            ),
            ("[services.Work]\nurl = \"http://a/\"\ndns_refresh_ms = 0\n", "`services.Work.dns_refresh_ms` is 0"),
            ("[services.Work]\nurl = \"http://a/\"\neject_after = -1\n", "eject_after"),
            ("[services.Work]\nurl = \"http://a/\"\nejectafter = 1\n", "unknown field `ejectafter`"),
            ("[server]\nmax_in_flight = 0\n", "`server.max_in_flight` is 0"),
        ] {
            let message = refused(text);
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }

    #[test]
    fn one_url_keeps_the_simple_path_unless_ejection_or_dns_is_asked_for() {
        let simple = Invoker::from_toml("[services.Work]\nurl = \"http://10.0.0.1:1/\"\n").unwrap();
        assert_eq!(simple.endpoints("Work"), None, "no balancer");
        let breaker = Invoker::from_toml("[services.Work]\nurl = \"http://10.0.0.1:1/\"\neject_after = 3\n").unwrap();
        assert_eq!(breaker.endpoints("Work"), Some(vec!["http://10.0.0.1:1".to_owned()]));
        let off = Invoker::from_toml("[services.Work]\nurls = [\"http://10.0.0.1:1/\"]\neject_after = 0\n").unwrap();
        assert_eq!(off.endpoints("Work"), None, "`urls` with one URL and ejection off is the simple case");
    }

    #[test]
    fn environment_overrides_set_urls_as_a_list_and_replace_url() {
        let invoker = Invoker::builder()
            .file(write("[services.Work]\nurl = \"http://10.0.0.9:1/\"\n"))
            .environment_vars([
                ("INTERCALL_SERVICES__WORK__URLS", "http://10.0.0.1:1/, http://10.0.0.2:1/"),
                ("INTERCALL_SERVICES__WORK__EJECT_AFTER", "2"),
                ("INTERCALL_SERVER__MAX_IN_FLIGHT", "64"),
            ])
            .build()
            .unwrap();
        assert_eq!(invoker.base_urls("Work"), Some(vec!["http://10.0.0.1:1", "http://10.0.0.2:1"]));
        assert_eq!(invoker.server_settings().max_in_flight.map(|m| m.limit()), Some(64));
        let invoker = Invoker::builder()
            .service("Work", "http://10.0.0.9:1/")
            .environment_vars([("INTERCALL_SERVICES__WORK__URLS", r#"["http://10.0.0.3:1/"]"#)])
            .build()
            .unwrap();
        assert_eq!(invoker.base_urls("Work"), Some(vec!["http://10.0.0.3:1"]), "a TOML array too");
        let message = Invoker::builder()
            .service("Work", "http://10.0.0.9:1/")
            .environment_vars([("INTERCALL_SERVICES__WORK__EJECT_MS", "soon")])
            .build()
            .unwrap_err()
            .to_string();
        assert!(message.contains("INTERCALL_SERVICES__WORK__EJECT_MS"), "{message}");
    }

    #[test]
    fn the_builder_s_urls_replace_the_file_s_url() {
        let invoker = Invoker::builder()
            .file(write("[services.Work]\nurl = \"http://10.0.0.9:1/\"\ntries = 2\n"))
            .environment(false)
            .service_urls("Work", ["http://10.0.0.1:1/", "http://10.0.0.2:1/"])
            .build()
            .unwrap();
        assert_eq!(invoker.base_urls("Work"), Some(vec!["http://10.0.0.1:1", "http://10.0.0.2:1"]));
        assert_eq!(invoker.tries("Work"), Some(2), "the file's other keys stay");
    }

    #[test]
    fn dns_refresh_refuses_https() {
        let message = refused("[services.Work]\nurl = \"https://work.internal/\"\ndns_refresh_ms = 1000\n");
        // Without the `tls` feature https itself is refused first.
        assert!(message.contains("https"), "{message}");
    }
}
