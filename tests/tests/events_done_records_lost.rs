//! `[events] done_records = "per_batch"` when the batch's records cannot be written, on a
//! real `redis-server`: the consumer connects as an ACL user, and `XACK` is taken from
//! it for a window the tests open and close on what they see (a handler's own step, or
//! Redis's `ACL LOG` showing the refusal). A flush is one transaction (`MULTI`/`EXEC`),
//! so a refused `XACK` refuses the records too; a refused `SET` never lets the `XACK`s
//! through. Either way the events stay pending, run again, and a key's events stay in
//! order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::{DoneRecords, Invoker};
use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;
use tokio::sync::oneshot;

/// A customer's account changes, in order per customer.
#[intercall::events]
pub trait Accounts {
    /// The `seq`-th change of `customer`'s account.
    async fn changed(&self, #[ordering_key] customer: String, seq: u64) -> Result<(), OrderError>;
}

const USER: &str = "consumer";

/// Creates the ACL user the consumer connects as (every command, key and channel), and
/// returns its URL.
async fn consumer_user(redis: &RedisServer) -> String {
    let mut admin = redis_connection(redis).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(USER)
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    redis.url().replace("redis://", &format!("redis://{USER}:pw@"))
}

/// `ACL SETUSER consumer {rule}` (`-xack`, `+xack`, `-set`, `+set`).
async fn acl(url: &str, rule: &str) {
    let mut admin = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL").arg("SETUSER").arg(USER).arg(rule).query_async(&mut admin).await.unwrap();
}

/// Whether Redis refused `command` (lower case) to the consumer's user (`ACL LOG`).
async fn refused(redis: &RedisServer, command: &str) -> bool {
    fn strings(value: &redis::Value, out: &mut Vec<String>) {
        match value {
            redis::Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
            redis::Value::SimpleString(s) => out.push(s.clone()),
            redis::Value::Array(items) | redis::Value::Set(items) => items.iter().for_each(|v| strings(v, out)),
            redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                strings(k, out);
                strings(v, out);
            }),
            _ => {}
        }
    }
    let mut conn = redis_connection(redis).await;
    let log: redis::Value = redis::cmd("ACL").arg("LOG").query_async(&mut conn).await.unwrap();
    let mut found = Vec::new();
    strings(&log, &mut found);
    found.windows(2).any(|pair| pair[0] == "object" && pair[1] == command)
}

/// Polls every 10 ms for up to 30 s until Redis refused `command` to the consumer.
async fn until_refused(redis: &RedisServer, command: &str) {
    for _ in 0..3_000 {
        if refused(redis, command).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 30 s: Redis refused `{command}` to the consumer");
}

/// The records of the group, by value prefix: (`done`, `lease`).
async fn records(redis: &RedisServer, group: &str) -> (usize, usize) {
    let mut conn = redis_connection(redis).await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("*:processed:{group}:*")).query_async(&mut conn).await.unwrap();
    let (mut done, mut leases) = (0, 0);
    for key in keys {
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        match value.as_deref() {
            Some(v) if v.starts_with("done ") => done += 1,
            Some(v) if v.starts_with("lease ") => leases += 1,
            _ => {}
        }
    }
    (done, leases)
}

/// Polls every 10 ms for up to 30 s until `events` records of `group` say done and
/// none of its entries is pending.
async fn until_all_done(redis: &RedisServer, group: &str, events: usize, what: impl Fn() -> String) {
    for _ in 0..3_000 {
        if records(redis, group).await.0 == events && pending_in_all(redis, group).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 30 s: {events} events recorded done and none pending ({})", what());
}

/// Pending entries of `group` over every stream (the main one and the key partitions).
async fn pending_in_all(redis: &RedisServer, group: &str) -> i64 {
    let mut conn = redis_connection(redis).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("intercall:events:*").query_async(&mut conn).await.unwrap();
    let mut total = 0;
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        if kind != "stream" {
            continue;
        }
        let summary: redis::RedisResult<redis::Value> =
            redis::cmd("XPENDING").arg(&key).arg(group).query_async(&mut conn).await;
        if let Ok(redis::Value::Array(fields)) = summary
            && let Some(redis::Value::Int(n)) = fields.first()
        {
            total += n;
        }
    }
    total
}

/// Logs each successful run; first applies the ACL rule `step` gives for the run's
/// (seq, attempt), if any, and fails the run when it says so.
struct Changes {
    url: String,
    log: Arc<Mutex<Vec<u64>>>,
    attempts: Mutex<HashMap<u64, u32>>,
    step: fn(u64, u32) -> Step,
}

/// What a run does: an ACL rule for the consumer's user, then fail or succeed.
struct Step {
    rule: Option<&'static str>,
    fail: bool,
}

const RUN: Step = Step { rule: None, fail: false };

impl Accounts for Changes {
    async fn changed(&self, _customer: String, seq: u64) -> Result<(), OrderError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(seq).or_default();
            *n += 1;
            *n
        };
        let step = (self.step)(seq, attempt);
        if let Some(rule) = step.rule {
            acl(&self.url, rule).await;
        }
        if step.fail {
            return Err(OrderError::Rejected("refused once".into()));
        }
        self.log.lock().unwrap().push(seq);
        Ok(())
    }
}

/// A `per_batch` consumer of `group`, as the ACL user, running in a task.
fn consume(consumer_url: String, admin_url: String, group: &str, step: fn(u64, u32) -> Step) -> Consuming {
    consume_with(DoneRecords::PerBatch, consumer_url, admin_url, group, step)
}

/// A consumer of `group` writing its records `done_records`, as the ACL user.
fn consume_with(
    done_records: DoneRecords,
    consumer_url: String,
    admin_url: String,
    group: &str,
    step: fn(u64, u32) -> Step,
) -> Consuming {
    let invoker = Invoker::builder()
        .events(consumer_url)
        .environment(false)
        .events_done_records(done_records)
        .events_claim_idle(Duration::from_millis(1_500))
        .events_retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let changes = Changes { url: admin_url, log: Arc::clone(&log), attempts: Mutex::default(), step };
    let consumer = AccountsConsumer::new(invoker, group, changes).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    Consuming { log, stop, task }
}

/// A running consumer: the seqs its handler ran, in order, and how to stop it.
struct Consuming {
    log: Arc<Mutex<Vec<u64>>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Consuming {
    fn runs(&self) -> Vec<u64> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `events` records of `group` say done and nothing is pending, stops
    /// the consumer, and returns every run it made.
    async fn finish_once_done(self, redis: &RedisServer, group: &str, events: usize) -> Vec<u64> {
        until_all_done(redis, group, events, || format!("runs {:?}", self.runs())).await;
        let _ = self.stop.send(());
        self.task.await.unwrap();
        self.log.lock().unwrap().clone()
    }
}

/// A Redis server with the consumer's ACL user, the user's URL, and a publisher.
async fn started(name: &str) -> Option<(RedisServer, String, AccountsPublisher)> {
    let redis = RedisServer::start(name)?;
    let consumer_url = consumer_user(&redis).await;
    let publisher = AccountsPublisher::new(builder(&redis).build().unwrap()).unwrap();
    Some((redis, consumer_url, publisher))
}

/// Seq 1 succeeds and its record is held; seq 2 (same key, same batch) fails once and
/// takes `XACK` away first, so the failure's flush of seq 1's record is refused; seq 2's
/// retry gives it back and succeeds. Seq 2 must not be recorded while seq 1 is not:
/// it is left pending, and runs again after seq 1's rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s_later_event_is_not_recorded_after_an_earlier_one_s_record_was_lost() {
    let Some((redis, consumer_url, publisher)) = started("events-lost-same-key").await else { return };
    publisher.changed("c".into(), 1).await.unwrap();
    publisher.changed("c".into(), 2).await.unwrap();
    let consuming = consume(consumer_url, redis.url(), "audit", |seq, attempt| match (seq, attempt) {
        (2, 1) => Step { rule: Some("-xack"), fail: true },
        (2, 2) => Step { rule: Some("+xack"), fail: false },
        _ => RUN,
    });
    eventually("seq 1 runs again", || consuming.runs().iter().filter(|s| **s == 1).count() >= 2).await;
    let log = consuming.finish_once_done(&redis, "audit", 2).await;
    assert!(refused(&redis, "xack").await, "the flush was refused");
    let (last_of_1, last_of_2) = (log.iter().rposition(|s| *s == 1), log.iter().rposition(|s| *s == 2));
    assert!(last_of_1 < last_of_2, "seq 1's last run comes before seq 2's: {log:?}");
}

/// Seq 1's batch ends and its flush is refused; seq 2 is published only then. The key
/// partition must be read no further until seq 1 has run again: every run of seq 2
/// comes after every run of seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_partition_whose_records_were_lost_is_stopped_and_recovered_in_order() {
    let Some((redis, consumer_url, publisher)) = started("events-lost-partition").await else { return };
    publisher.changed("c".into(), 1).await.unwrap();
    let consuming = consume(consumer_url, redis.url(), "audit", |seq, attempt| match (seq, attempt) {
        (1, 1) => Step { rule: Some("-xack"), fail: false },
        _ => RUN,
    });
    until_refused(&redis, "xack").await;
    publisher.changed("c".into(), 2).await.unwrap();
    acl(&redis.url(), "+xack").await;
    eventually("seq 1 runs again and seq 2 runs", || {
        let log = consuming.runs();
        log.iter().filter(|s| **s == 1).count() >= 2 && log.contains(&2)
    })
    .await;
    let log = consuming.finish_once_done(&redis, "audit", 2).await;
    let (last_of_1, first_of_2) = (log.iter().rposition(|s| *s == 1), log.iter().position(|s| *s == 2));
    assert!(last_of_1 < first_of_2, "every run of seq 1 comes before seq 2's: {log:?}");
}

/// A refused `SET done` refuses the whole flush: the batch's `XACK`s do not run
/// without their records. Seq 2, the batch's last, takes `SET` away as it succeeds, so
/// the batch's flush is refused; checked while it is (both entries stay pending, their
/// records still leases), then `SET` is given back and both run again and are recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_leaves_the_batch_unacknowledged() {
    let Some((redis, consumer_url, publisher)) = started("events-lost-atomic").await else { return };
    publisher.changed("c".into(), 1).await.unwrap();
    publisher.changed("c".into(), 2).await.unwrap();
    let consuming = consume(consumer_url, redis.url(), "audit", |seq, attempt| match (seq, attempt) {
        (2, 1) => Step { rule: Some("-set"), fail: false },
        _ => RUN,
    });
    until_refused(&redis, "set").await;
    assert_eq!(pending_in_all(&redis, "audit").await, 2, "nothing acknowledged without its record");
    assert_eq!(records(&redis, "audit").await, (0, 2), "(done, leases) while SET is refused");
    acl(&redis.url(), "+set").await;
    let log = consuming.finish_once_done(&redis, "audit", 2).await;
    assert_eq!(log, [1, 2, 1, 2], "both ran again, in order");
}

/// The same in `per_event`: the batch's last record goes in one transaction with the
/// batch's `XACK`s, its own included. Seq 2 takes `SET` away as it succeeds: seq 1 is
/// recorded (before seq 2 ran) but not acknowledged, seq 2 stays a lease and pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_last_record_leaves_the_batch_unacknowledged_per_event() {
    let Some((redis, consumer_url, publisher)) = started("events-lost-atomic-per-event").await else { return };
    publisher.changed("c".into(), 1).await.unwrap();
    publisher.changed("c".into(), 2).await.unwrap();
    let consuming =
        consume_with(DoneRecords::PerEvent, consumer_url, redis.url(), "audit", |seq, attempt| match (seq, attempt) {
            (2, 1) => Step { rule: Some("-set"), fail: false },
            _ => RUN,
        });
    until_refused(&redis, "set").await;
    assert_eq!(pending_in_all(&redis, "audit").await, 2, "nothing acknowledged with the refused record");
    assert_eq!(records(&redis, "audit").await, (1, 1), "(done, leases) while SET is refused");
    acl(&redis.url(), "+set").await;
    let log = consuming.finish_once_done(&redis, "audit", 2).await;
    assert_eq!(log, [1, 2, 2], "seq 1 recorded, only acknowledged; seq 2 ran again");
}
