//! Process kills under load, the way Kafka's and Jepsen's tests do it: real processes,
//! SIGKILL mid-run, and every side effect counted outside the killed process.
//!
//! Two replicas of `Ledger` run as child processes (`src/bin/ledger_replica.rs`),
//! sharing a Redis call-id store, behind a round-robin balancer that fails over when a
//! replica refuses connections. 300 calls, 8 at a time, with `tries = 5`; after 100
//! have completed, one process is killed with SIGKILL: a replica in one test, Redis
//! (append-only file, `appendfsync always`) in the other. Each run appends the call's
//! number to its replica's runs file, which outlives the replica; the tests compare
//! those files with what the client saw. docs/RELIABILITY.md, "Process kills", says
//! what they show. The last test has no proxy: three replicas behind one service name
//! (`urls`), balanced by the client itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use intercall::Invoker;
use intercall_tests::faults::{Fault, FaultProxy};
use intercall_tests::ledger::{Ledger, LedgerError, LedgerProxy};
use intercall_tests::redis_server::RedisServer;

const CALLS: u64 = 300;
const KILL_AFTER: u64 = 100;
const CONCURRENCY: usize = 8;
/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(30);

/// A `ledger_replica` child process; SIGKILLed when dropped.
struct Replica {
    /// Shared with the thread that kills it mid-load.
    child: Arc<Mutex<Option<Child>>>,
    addr: SocketAddr,
    runs: PathBuf,
}

impl Replica {
    fn spawn(redis: &RedisServer, prefix: &str, runs: PathBuf, lease_ms: u64, op_timeout_ms: u64) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger_replica"))
            .arg(redis.url())
            .arg(prefix)
            .arg(&runs)
            .arg(lease_ms.to_string())
            .arg(op_timeout_ms.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ledger_replica");
        let stdout = child.stdout.take().expect("piped");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let port = lines.next().and_then(|line| line.strip_prefix("listening on ")?.parse::<u16>().ok());
            let _ = port_tx.send(port);
            lines.for_each(drop);
        });
        let port = match port_rx.recv_timeout(HANG) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!("ledger_replica did not print its port: {other:?}")
            }
        };
        Self { child: Arc::new(Mutex::new(Some(child))), addr: SocketAddr::from(([127, 0, 0, 1], port)), runs }
    }

    /// What SIGKILLs it (`Child::kill` on Unix) and reaps it, to run on another thread.
    fn killer(&self) -> impl FnOnce() + Send + 'static {
        let child = Arc::clone(&self.child);
        move || {
            let mut child = child.lock().unwrap().take().expect("alive until killed");
            child.kill().expect("SIGKILL the replica");
            let status = child.wait().expect("reap the replica");
            assert!(!status.success(), "killed, not exited: {status:?}");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How many times each call ran on a replica, from its runs file.
fn runs(path: &Path) -> HashMap<u64, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs = HashMap::new();
    for line in text.lines() {
        let n = line.parse::<u64>().unwrap_or_else(|e| panic!("{}: line `{line}`: {e}", path.display()));
        *runs.entry(n).or_insert(0) += 1;
    }
    runs
}

/// A scratch directory for one test's runs files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("intercall-kills-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn proxy(url: &str, backoff: (Duration, Duration)) -> LedgerProxy {
    let invoker = Invoker::builder()
        .service("Ledger", url)
        .timeout(Duration::from_secs(2))
        .tries(5)
        .backoff(backoff.0, backoff.1)
        .retry_budget(1.0, 1_000)
        .build()
        .expect("a valid config");
    LedgerProxy::new(invoker).expect("Ledger has a URL")
}

/// `CALLS` calls, `CONCURRENCY` at a time; `kill` runs (on a blocking thread) once
/// `KILL_AFTER` have completed, and has returned when this does.
async fn load(ledger: &LedgerProxy, kill: impl FnOnce() + Send + 'static) -> Vec<(u64, Result<u64, LedgerError>)> {
    load_with(ledger, CALLS, KILL_AFTER, CONCURRENCY, kill).await
}

/// `calls` calls, `concurrency` at a time; `kill` runs (on a blocking thread) once
/// `kill_after` have completed, and has returned when this does.
async fn load_with(
    ledger: &LedgerProxy,
    calls: u64,
    kill_after: u64,
    concurrency: usize,
    kill: impl FnOnce() + Send + 'static,
) -> Vec<(u64, Result<u64, LedgerError>)> {
    let kill: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(Some(Box::new(kill)));
    let killing = Mutex::new(None);
    let done = std::sync::atomic::AtomicU64::new(0);
    let results = futures_util::stream::iter(0..calls)
        .map(|n| {
            let (ledger, kill, killing, done) = (ledger.clone(), &kill, &killing, &done);
            async move {
                let result = ledger.record(n).await;
                if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == kill_after {
                    let kill = kill.lock().unwrap().take().expect("killed once");
                    *killing.lock().unwrap() = Some(tokio::task::spawn_blocking(kill));
                }
                (n, result)
            }
        })
        .buffer_unordered(concurrency)
        .collect();
    let results = tokio::time::timeout(HANG, results).await.expect("the load finishes");
    let killing = killing.lock().unwrap().take().expect("the kill happened");
    killing.await.expect("the kill did not panic");
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_loses_no_call_and_reruns_only_its_unrecorded_runs() {
    let Some(redis) = RedisServer::start("kill_replica") else { return };
    let scratch = Scratch::new("replica");
    // A 1 s lease (renewed every third of it; three 300 ms operation timeouts): a
    // killed owner's calls are free to run again a second after its last renewal.
    let a = Replica::spawn(&redis, "kills:replica:", scratch.0.join("runs-a"), 1_000, 300);
    let b = Replica::spawn(&redis, "kills:replica:", scratch.0.join("runs-b"), 1_000, 300);
    let balancer = FaultProxy::start_failover(vec![a.addr, b.addr], |seen| (seen.index % 2, Fault::Pass)).await;
    let ledger = proxy(&balancer.url(), (Duration::from_millis(10), Duration::from_millis(200)));

    let results = load(&ledger, a.killer()).await;

    let (on_a, on_b) = (runs(&a.runs), runs(&b.runs));
    let (mut ok, mut failed, mut twice) = (0, 0, 0);
    for (n, result) in &results {
        let (ran_a, ran_b) = (on_a.get(n).copied().unwrap_or(0), on_b.get(n).copied().unwrap_or(0));
        // The store deduplicates on each replica and across them: no replica runs a
        // call twice, whatever retries reach it.
        assert!(ran_a <= 1 && ran_b <= 1, "call {n} ran {ran_a} times on A and {ran_b} on B");
        match result {
            Ok(value) => {
                assert_eq!(*value, *n);
                ok += 1;
                assert!(ran_a + ran_b >= 1, "call {n} succeeded without running");
                // Both: A ran it and died before recording its result; its lease ran
                // out, and a retry ran it again on B. The one way to two runs.
                twice += u64::from(ran_a + ran_b == 2);
            }
            Err(error) => {
                failed += 1;
                assert!(ran_a + ran_b <= 1, "failed call {n} ran on both replicas: {error:?}");
            }
        }
    }
    let (runs_a, runs_b): (u32, u32) = (on_a.values().sum(), on_b.values().sum());
    eprintln!(
        "replica SIGKILLed after {KILL_AFTER} of {CALLS} calls: {ok} succeeded, {failed} failed; \
         A ran {runs_a} calls, B ran {runs_b}; {twice} calls ran twice (on A before the kill, \
         their results unrecorded, then on B after the lease)"
    );
    // Only the calls in flight on A when it died can run twice or fail; every call
    // after the kill lands on B (the balancer fails over, the store lets B take over).
    assert!(twice <= CONCURRENCY as u64, "{twice} calls ran twice");
    assert!(failed <= CONCURRENCY, "{failed} calls failed");
    assert!(runs_a >= 1 && u64::from(runs_a) <= KILL_AFTER + CONCURRENCY as u64, "A ran {runs_a}, all before the kill");
    assert!(u64::from(runs_b) + KILL_AFTER + CONCURRENCY as u64 >= ok, "B took over: it ran {runs_b}");
    // B still serves.
    assert_eq!(ledger.record(CALLS).await, Ok(CALLS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_with_aof_loses_no_record() {
    let Some(redis) = RedisServer::start_durable("kill_redis") else { return };
    let scratch = Scratch::new("redis");
    // A 3 s lease, three 1 s operation timeouts: a run whose completion meets the
    // restart keeps retrying to record it for a lease.
    let a = Replica::spawn(&redis, "kills:redis:", scratch.0.join("runs-a"), 3_000, 1_000);
    let b = Replica::spawn(&redis, "kills:redis:", scratch.0.join("runs-b"), 3_000, 1_000);
    let balancer = FaultProxy::start_failover(vec![a.addr, b.addr], |seen| (seen.index % 2, Fault::Pass)).await;
    // Backoff up to 1 s: five tries ride over the restart (503 store_unavailable is
    // retried).
    let ledger = proxy(&balancer.url(), (Duration::from_millis(50), Duration::from_secs(1)));

    let redis = Arc::new(Mutex::new(redis));
    let restarted = Arc::clone(&redis);
    let results = load(&ledger, move || restarted.lock().unwrap().restart()).await;

    let (on_a, on_b) = (runs(&a.runs), runs(&b.runs));
    let (mut ok, mut failed) = (0, 0);
    for (n, result) in &results {
        let ran = on_a.get(n).copied().unwrap_or(0) + on_b.get(n).copied().unwrap_or(0);
        match result {
            Ok(value) => {
                assert_eq!(*value, *n);
                assert_eq!(ran, 1, "call {n} succeeded and ran {ran} times");
                ok += 1;
            }
            Err(error) => {
                assert!(ran <= 1, "failed call {n} ran {ran} times: {error:?}");
                failed += 1;
            }
        }
    }
    let retried = balancer.seen().iter().filter(|seen| seen.attempt.is_some_and(|a| a > 1)).count();
    eprintln!(
        "Redis SIGKILLed and restarted after {KILL_AFTER} of {CALLS} calls: {ok} succeeded (each ran once), \
         {failed} failed; {retried} retried attempts reached the replicas"
    );
    assert!(ok >= KILL_AFTER, "{ok} calls succeeded");

    // The first call's record outlived the kill: the very same request (call id and
    // body) sent again gets the stored reply, and nothing runs. Without the
    // append-only file the restarted Redis would be empty, and it would run again.
    let first = balancer.seen().into_iter().next().expect("a first request");
    let n: u64 =
        serde_json::from_slice::<serde_json::Value>(&first.body).expect("a JSON body")["n"].as_u64().expect("`n`");
    let before = runs(&a.runs).get(&n).copied().unwrap_or(0) + runs(&b.runs).get(&n).copied().unwrap_or(0);
    let replay = reqwest::Client::new()
        .post(format!("http://{}{}", b.addr, first.path))
        .header("content-type", "application/json")
        .header("x-call-id", first.call_id.expect("a call id"))
        .body(first.body)
        .timeout(HANG)
        .send()
        .await
        .expect("B answers");
    assert_eq!(replay.status(), 200);
    let body = replay.bytes().await.expect("a reply body");
    assert_eq!(serde_json::from_slice::<u64>(&body).expect("a u64"), n);
    let after = runs(&a.runs).get(&n).copied().unwrap_or(0) + runs(&b.runs).get(&n).copied().unwrap_or(0);
    assert_eq!((before, after), (1, 1), "call {n} ran again after the restart");
    // The replicas reconnected.
    assert_eq!(ledger.record(CALLS).await, Ok(CALLS));
}

/// Issue 15's test: three replicas behind one service name (`urls`, the client's own
/// balancer; no proxy in between), one SIGKILLed during 2,000 calls with `tries = 3`.
/// No call fails: a call in flight on the dead replica is retried on another, whose
/// Redis store waits out the dead owner's lease and runs it; every call after the kill
/// that meets the dead address is retried elsewhere, until it is ejected.
///
/// What "no duplicate run" can mean: the survivors never run a call twice between
/// them, and no call runs twice on one replica. A call the dead replica had *run* (its
/// side effect written) and not yet recorded runs again on a survivor once its lease
/// is over: the at-least-once window every store has for a process that dies mid-run
/// (docs/RELIABILITY.md, "Process kills"). Those are counted, and bounded by the calls
/// it had in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_one_name_one_killed_under_load_fail_no_call() {
    const CALLS: u64 = 2_000;
    const KILL_AFTER: u64 = 600;
    const CONCURRENCY: usize = 12;
    let Some(redis) = RedisServer::start("kill_one_of_three") else { return };
    let scratch = Scratch::new("three");
    let replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|name| Replica::spawn(&redis, "kills:three:", scratch.0.join(format!("runs-{name}")), 1_000, 300))
        .collect();
    let invoker = Invoker::builder()
        .service_urls("Ledger", replicas.iter().map(|r| format!("http://{}/", r.addr)))
        .timeout(Duration::from_secs(2))
        .tries(3)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        // The kill needs a burst of retries at once (C's calls in flight, and the calls
        // that meet its address before it is ejected): more than the default reserve
        // of 10 can hold when they land within a few milliseconds.
        .retry_budget(0.2, 50)
        .build()
        .expect("a valid config");
    let ledger = LedgerProxy::new(invoker).expect("Ledger has URLs");

    let results = load_with(&ledger, CALLS, KILL_AFTER, CONCURRENCY, replicas[2].killer()).await;

    let on: Vec<HashMap<u64, u32>> = replicas.iter().map(|r| runs(&r.runs)).collect();
    let ran = |i: usize, n: &u64| on[i].get(n).copied().unwrap_or(0);
    let (mut failed, mut rerun_after_kill) = (Vec::new(), 0);
    for (n, result) in &results {
        let (a, b, c) = (ran(0, n), ran(1, n), ran(2, n));
        assert!(a <= 1 && b <= 1 && c <= 1, "call {n} ran twice on one replica: {a}, {b}, {c}");
        assert!(a + b <= 1, "call {n} ran on both survivors");
        match result {
            Ok(value) => {
                assert_eq!(value, n);
                assert!(a + b + c >= 1, "call {n} succeeded without running");
                rerun_after_kill += u64::from(c == 1 && a + b == 1);
            }
            Err(error) => failed.push((*n, format!("{error:?}"))),
        }
    }
    let totals: Vec<u32> = on.iter().map(|m| m.values().sum()).collect();
    eprintln!(
        "3 replicas, C SIGKILLed after {KILL_AFTER} of {CALLS} calls: {} failed; runs A {}, B {}, C {}; \
         {rerun_after_kill} calls C had run but not recorded ran again after its lease",
        failed.len(),
        totals[0],
        totals[1],
        totals[2]
    );
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    assert!(rerun_after_kill <= CONCURRENCY as u64, "{rerun_after_kill} reruns, more than C had in flight");
    assert!(totals[2] >= 1 && u64::from(totals[2]) <= KILL_AFTER + CONCURRENCY as u64, "C ran only before the kill");
    assert!(totals[0] > 0 && totals[1] > 0, "both survivors served");
    // The survivors still serve.
    assert_eq!(ledger.record(CALLS).await, Ok(CALLS));
}
