//! The Redis call-id store with real `redis-server`s started by the harness: replicas
//! behind a balancer, a dead owner's lease, Redis going away and coming back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use intercall::calls::{CallKey, CallStore, Claim, MemoryCallStore, OnStoreError, RedisCallStore, StoredReply, Ticket};
use intercall::{CallError, Invoker, ServerSettings};
use intercall_tests::faults::{Fault, FaultProxy, Seen};
use intercall_tests::redis_server::RedisServer;
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TallyError {
    Unavailable(CallError),
}

impl From<CallError> for TallyError {
    fn from(error: CallError) -> Self {
        TallyError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Tally {
    /// Counts one run, returns `2n`.
    async fn add(&self, n: u64) -> Result<u64, TallyError>;
    /// Counts a run, signals `started`, waits for the gate.
    async fn gated(&self, n: u64) -> Result<u64, TallyError>;
}

struct Replica {
    runs: AtomicU64,
    started: Notify,
    gate: Semaphore,
}

impl Tally for Arc<Replica> {
    async fn add(&self, n: u64) -> Result<u64, TallyError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(2 * n)
    }

    async fn gated(&self, n: u64) -> Result<u64, TallyError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let _permit = self.gate.acquire().await.expect("never closed");
        Ok(2 * n)
    }
}

fn replica() -> Arc<Replica> {
    Arc::new(Replica { runs: AtomicU64::new(0), started: Notify::new(), gate: Semaphore::new(0) })
}

async fn serve(replica: &Arc<Replica>, store: Arc<dyn CallStore>, on_store_error: OnStoreError) -> TestServer {
    let settings = ServerSettings { call_store: Some(store), on_store_error, ..ServerSettings::default() };
    spawn(TallyServer::new(Arc::clone(replica)).settings(settings).into_router()).await
}

/// A store on `redis` with a prefix of its own, so tests never see each other's keys.
fn redis_store(redis: &RedisServer, test: &str) -> RedisCallStore {
    RedisCallStore::new(&redis.url()).unwrap().prefix(format!("test:{test}:"))
}

/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(30);

fn runs(replicas: &[&Arc<Replica>]) -> u64 {
    replicas.iter().map(|r| r.runs.load(Ordering::SeqCst)).sum()
}

/// 0 or 1 from the call id, so each call's first attempt goes to one replica and its
/// retry to the other.
fn side(seen: &Seen) -> usize {
    seen.call_id.as_deref().map_or(0, |id| id.bytes().map(usize::from).sum::<usize>() % 2)
}

/// 500 calls through a balancer that drops every first response and sends every retry
/// to the other replica; returns how often the method ran in all.
async fn five_hundred_retried_calls(stores: [Arc<dyn CallStore>; 2]) -> u64 {
    let (a, b) = (replica(), replica());
    let [store_a, store_b] = stores;
    let server_a = serve(&a, store_a, OnStoreError::Fail).await;
    let server_b = serve(&b, store_b, OnStoreError::Fail).await;
    let balancer = FaultProxy::start_routed(vec![server_a.addr, server_b.addr], |seen| match seen.attempt {
        Some(1) => (side(seen), Fault::DropResponse),
        _ => (1 - side(seen), Fault::Pass),
    })
    .await;
    let invoker = Invoker::builder()
        .service("Tally", balancer.url())
        .tries(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .retry_budget(1.0, 1_000)
        .build()
        .unwrap();
    let tally = TallyProxy::new(invoker).unwrap();
    let results: Vec<_> = futures_util::stream::iter(0..500u64)
        .map(|n| {
            let tally = tally.clone();
            async move { (n, tally.add(n).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (n, result) in results {
        assert_eq!(result, Ok(2 * n), "call {n}");
    }
    assert!(a.runs.load(Ordering::SeqCst) > 100 && b.runs.load(Ordering::SeqCst) > 100, "both replicas served");
    runs(&[&a, &b])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_run_each_retried_call_once_and_in_process_stores_do_not() {
    let Some(redis) = RedisServer::start("replicas") else { return };
    // One store instance per replica, as two processes would have, on one Redis.
    let shared = || Arc::new(redis_store(&redis, "replicas")) as Arc<dyn CallStore>;
    assert_eq!(five_hundred_retried_calls([shared(), shared()]).await, 500);

    // The control: each replica with its own in-process store runs every retry again.
    let own = || Arc::new(MemoryCallStore::default()) as Arc<dyn CallStore>;
    assert_eq!(five_hundred_retried_calls([own(), own()]).await, 1_000, "the test can see duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_duplicates_across_two_replicas_run_once() {
    let Some(redis) = RedisServer::start("fifty") else { return };
    let store = || Arc::new(redis_store(&redis, "fifty")) as Arc<dyn CallStore>;
    let (a, b) = (replica(), replica());
    let servers =
        Arc::new([serve(&a, store(), OnStoreError::Fail).await, serve(&b, store(), OnStoreError::Fail).await]);
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let servers = Arc::clone(&servers);
            tokio::spawn(async move { post(&servers[i % 2], "gated", ID, r#"{"n": 3}"#).await })
        })
        .collect();
    let first = tokio::time::timeout(HANG, async {
        tokio::select! { _ = a.started.notified() => {}, _ = b.started.notified() => {} }
    });
    first.await.expect("one replica starts the run");
    a.gate.add_permits(100);
    b.gate.add_permits(100);
    for request in requests {
        assert_eq!(request.await.unwrap(), (200, serde_json::json!(6)));
    }
    assert_eq!(runs(&[&a, &b]), 1);
}

const ID: &str = "0d6f3f0e-8a4b-4a57-9c1e-2f7b5a0c9d11";

async fn post(server: &TestServer, method: &str, call_id: &str, body: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let response = client
        .post(server.at(&format!("Tally/{method}")))
        .header("content-type", "application/json")
        .header("x-call-id", call_id)
        .header("x-deadline-ms", "10000")
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON reply"))
}

/// A request with a short deadline, for checking that a call is still running.
async fn status_within(server: &TestServer, method: &str, body: &str, deadline_ms: &str) -> u16 {
    let response = reqwest::Client::new()
        .post(server.at(&format!("Tally/{method}")))
        .header("content-type", "application/json")
        .header("x-call-id", ID)
        .header("x-deadline-ms", deadline_ms)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// A Redis store that counts the duplicates entering `wait`, so a test knows when they
/// all wait.
struct CountingWaits {
    inner: RedisCallStore,
    waits: AtomicUsize,
    expected: usize,
    all_waiting: Notify,
}

impl CallStore for CountingWaits {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> intercall::calls::StoreFuture<'a, Claim> {
        self.inner.claim(key, fingerprint)
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> intercall::calls::StoreFuture<'a, Option<StoredReply>> {
        if self.waits.fetch_add(1, Ordering::SeqCst) + 1 == self.expected {
            self.all_waiting.notify_one();
        }
        self.inner.wait(key, fingerprint, timeout)
    }

    fn complete<'a>(
        &'a self,
        key: &'a CallKey,
        ticket: Ticket,
        reply: StoredReply,
    ) -> intercall::calls::StoreFuture<'a, ()> {
        self.inner.complete(key, ticket, reply)
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> intercall::calls::StoreFuture<'a, ()> {
        self.inner.release(key, ticket)
    }
}

/// Regression (issue 17): each waiting duplicate opened a pub/sub connection of its
/// own, so a retry storm on one slow call exhausted Redis's clients (with
/// `maxclients 40`, 21 of 60 waiters got 503). The store's waiters now share one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_duplicates_of_one_slow_call_share_one_subscriber_under_a_low_maxclients() {
    let Some(redis) = RedisServer::start_with("maxclients", &["--maxclients", "12"]) else { return };
    let store = Arc::new(CountingWaits {
        inner: redis_store(&redis, "maxclients"),
        waits: AtomicUsize::new(0),
        expected: 59,
        all_waiting: Notify::new(),
    });
    let a = replica();
    let server = Arc::new(serve(&a, Arc::clone(&store) as Arc<dyn CallStore>, OnStoreError::Fail).await);
    let requests: Vec<_> = (0..60)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { post(&server, "gated", ID, r#"{"n": 4}"#).await })
        })
        .collect();
    tokio::time::timeout(HANG, a.started.notified()).await.expect("one request runs the call");
    tokio::time::timeout(HANG, store.all_waiting.notified()).await.expect("the other 59 wait for it");
    a.gate.add_permits(1);
    for request in requests {
        assert_eq!(request.await.unwrap(), (200, serde_json::json!(8)), "every duplicate gets the stored reply");
    }
    assert_eq!(a.runs.load(Ordering::SeqCst), 1);
}

/// The shared subscriber's connection dies while a duplicate waits (a failover, a
/// proxy's idle timeout): the waiter is woken, polls, and gets the reply, instead of
/// sleeping until its next read a lease later.
#[tokio::test]
async fn a_waiter_whose_subscriber_connection_is_killed_still_gets_the_reply() {
    let Some(redis) = RedisServer::start("resubscribe") else { return };
    // Without the fallback the waiter would read again only after this lease.
    let lease = Duration::from_secs(120);
    let owner = redis_store(&redis, "resubscribe").lease(lease);
    let waiter = redis_store(&redis, "resubscribe").lease(lease);
    let key = CallKey::new(ID.parse().unwrap(), "Tally", "gated", None);
    let Claim::Run(ticket) = owner.claim(&key, 7).await.unwrap() else { panic!("the first claim runs") };
    let waiting = {
        let key = key.clone();
        tokio::spawn(async move { waiter.wait(&key, 7, None).await })
    };
    // The waiter is subscribed once Redis counts a subscriber on the call's channel.
    let numsub = ["PUBSUB", "NUMSUB", &format!("test:resubscribe:done:{key}")].map(str::to_owned);
    let numsub: Vec<&str> = numsub.iter().map(String::as_str).collect();
    let subscribed = async {
        while !redis.command(&numsub).ends_with(":1\r\n") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(HANG, subscribed).await.expect("the waiter subscribes");
    assert!(redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).starts_with(":1"), "its connection is killed");
    let reply = StoredReply { status: 200, body: b"14".to_vec().into() };
    owner.complete(&key, ticket, reply.clone()).await.unwrap();
    let woken = tokio::time::timeout(HANG, waiting).await.expect("the waiter does not sleep a whole lease");
    assert_eq!(woken.unwrap().unwrap(), Some(reply));
}

#[tokio::test]
async fn a_dead_owners_call_runs_again_after_its_lease_and_its_late_write_is_fenced_off() {
    let Some(redis) = RedisServer::start("lease") else { return };
    let lease = Duration::from_millis(300);
    let dead = redis_store(&redis, "lease").lease(lease);
    let body = r#"{"n": 21}"#;
    let key = CallKey::new(ID.parse().unwrap(), "Tally", "gated", None);
    let fingerprint = intercall::calls::fingerprint(body.as_bytes());

    // Replica A claims the call and dies: its lease renewal stops with it.
    let Claim::Run(ticket) = dead.claim(&key, fingerprint).await.unwrap() else { panic!("the first claim runs") };
    let token = ticket.token();
    drop(ticket);

    // A duplicate on replica B finds it running under A's lease and runs nothing.
    let b = replica();
    let server_b = serve(&b, Arc::new(redis_store(&redis, "lease").lease(lease)), OnStoreError::Fail).await;
    assert_eq!(status_within(&server_b, "gated", body, "50").await, 409, "still running under A's lease");
    assert_eq!(b.runs.load(Ordering::SeqCst), 0);

    // Not synchronisation: A's lease has to run out on Redis's clock. Then B runs it.
    tokio::time::sleep(lease * 3).await;
    let first = {
        let server_b = server_b.url();
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
            client
                .post(format!("{server_b}Tally/gated"))
                .header("content-type", "application/json")
                .header("x-call-id", ID)
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    tokio::time::timeout(HANG, b.started.notified()).await.expect("B runs the call once A's lease expired");

    // A wakes up while B's run is in progress and stores its own late result: fenced
    // off, the entry stays B's running claim.
    let stale = StoredReply { status: 200, body: b"999".to_vec().into() };
    dead.complete(&key, Ticket::new(token), stale).await.unwrap();
    assert_eq!(status_within(&server_b, "gated", body, "50").await, 409, "A's late write did not land");

    b.gate.add_permits(10);
    assert_eq!(first.await.unwrap(), "42");
    assert_eq!(post(&server_b, "gated", ID, body).await, (200, serde_json::json!(42)), "B's result stands");
    assert_eq!(b.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_run_longer_than_its_lease_keeps_its_claim_by_renewing_it() {
    let Some(redis) = RedisServer::start("renew") else { return };
    let lease = Duration::from_millis(300);
    let store = || Arc::new(redis_store(&redis, "renew").lease(lease)) as Arc<dyn CallStore>;
    let (a, b) = (replica(), replica());
    let server_a = serve(&a, store(), OnStoreError::Fail).await;
    let server_b = serve(&b, store(), OnStoreError::Fail).await;
    let body = r#"{"n": 5}"#;
    let owner = {
        let url = server_a.url();
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
            let request = client.post(format!("{url}Tally/gated")).header("content-type", "application/json");
            request.header("x-call-id", ID).body(body).send().await.unwrap().text().await.unwrap()
        })
    };
    tokio::time::timeout(HANG, a.started.notified()).await.expect("A runs the call");
    // Not synchronisation: three leases pass on the clock while A's run goes on.
    tokio::time::sleep(lease * 3).await;
    assert_eq!(status_within(&server_b, "gated", body, "50").await, 409, "A's renewed claim still holds");
    assert_eq!(runs(&[&a, &b]), 1, "B did not run it a second time");
    a.gate.add_permits(10);
    assert_eq!(owner.await.unwrap(), "10");
    assert_eq!(post(&server_b, "gated", ID, body).await, (200, serde_json::json!(10)));
    assert_eq!(runs(&[&a, &b]), 1);
}

#[tokio::test]
async fn with_redis_down_calls_fail_closed_without_hanging_and_recover_when_it_returns() {
    let Some(mut redis) = RedisServer::start("down") else { return };
    let store = || redis_store(&redis, "down").op_timeout(Duration::from_millis(300));
    let (closed, open) = (replica(), replica());
    let server_closed = serve(&closed, Arc::new(store()), OnStoreError::Fail).await;
    let server_open = serve(&open, Arc::new(store()), OnStoreError::Run).await;
    assert_eq!(post(&server_closed, "add", ID, r#"{"n": 1}"#).await.0, 200, "Redis works");
    assert_eq!(closed.runs.load(Ordering::SeqCst), 1);

    redis.stop();
    let other = "6c1f0b9a-3e2d-4f5a-8b7c-9d0e1f2a3b4c";
    let (status, body) = tokio::time::timeout(HANG, post(&server_closed, "add", other, r#"{"n": 1}"#))
        .await
        .expect("no hang while Redis is down");
    assert_eq!((status, body["kind"].as_str()), (503, Some("store_unavailable")), "{body}");
    assert_eq!(closed.runs.load(Ordering::SeqCst), 1, "fail closed: nothing ran");
    assert_eq!(post(&server_open, "add", other, r#"{"n": 1}"#).await.0, 200, "fail open: it ran");
    assert_eq!(open.runs.load(Ordering::SeqCst), 1);

    redis.restart();
    // The first calls may still meet the dropped connection; the proxy retries a 503.
    let invoker = Invoker::builder()
        .service("Tally", server_closed.url())
        .tries(10)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(TallyProxy::new(invoker).unwrap().add(5).await, Ok(10), "calls recover when Redis returns");
    assert_eq!(closed.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn services_toml_selects_the_redis_store_for_the_node() {
    let text = "[server]\ncall_store = \"redis://127.0.0.1:6399/0\"\ncall_store_prefix = \"shop:\"\non_store_error = \"run\"\n";
    let settings = Invoker::from_toml(text).unwrap().server_settings();
    assert!(settings.call_store.is_some());
    assert_eq!(settings.on_store_error, OnStoreError::Run);
    let error = Invoker::from_toml("[server]\ncall_store = \"memcached://x\"\n").unwrap_err().to_string();
    assert!(error.contains("server.call_store") && error.contains("line 2"), "{error}");
    let error = Invoker::from_toml("[server]\non_store_error = \"maybe\"\n").unwrap_err().to_string();
    assert!(error.contains("on_store_error") && error.contains("\"fail\" or \"run\""), "{error}");
    // A store value is never echoed: it may hold a password.
    let error = Invoker::from_toml("[server]\ncall_store = \"redis+unix:///r.sock?pass=hunter2\"\n").unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = Invoker::from_toml("[server]\ncall_store = \"rediss://:hunter2@h:6380\"\n").unwrap_err();
    assert!(error.to_string().contains("TLS") && !error.to_string().contains("hunter2"), "{error}");
    // Redis-only settings without Redis, and a lease too short for its own renewals.
    let error = Invoker::from_toml("[server]\ncall_store_prefix = \"x:\"\n").unwrap_err().to_string();
    assert!(error.contains("call_store_prefix") && error.contains("only to a Redis store"), "{error}");
    let text = "[server]\ncall_store = \"redis://127.0.0.1:6399/0\"\ncall_lease_ms = 5\n";
    let error = Invoker::from_toml(text).unwrap_err().to_string();
    assert!(error.contains("call_lease_ms") && error.contains("line 3"), "{error}");
    // Memory-only settings beside Redis would be silently ignored: refused too.
    let text = "[server]\ncall_store = \"redis://127.0.0.1:6399/0\"\ncall_store_max_bytes = 1000\n";
    let error = Invoker::from_toml(text).unwrap_err().to_string();
    assert!(error.contains("call_store_max_bytes") && error.contains("only to the memory store"), "{error}");
    let error = Invoker::from_toml("[server]\ncall_store_max_bytes = 0\n").unwrap_err().to_string();
    assert!(error.contains("call_store_max_bytes") && error.contains("positive"), "{error}");
    assert!(
        Invoker::from_toml("[server]\ncall_store_max_bytes = 1000\n").unwrap().server_settings().call_store.is_some()
    );
}
