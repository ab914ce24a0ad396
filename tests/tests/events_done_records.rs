//! `[events] done_records` (EVENTS.md §5 step 4) on a real `redis-server`: where each
//! mode writes a successful handler's `done` record, read from Redis while the next
//! handler of the same batch is in hand. `per_event` writes it before the next handler
//! runs; `per_batch` holds it for the batch's pipeline, and writes it earlier when a
//! handler fails (before the backoff) or is slow (the heartbeat), and on shutdown
//! with the batch in hand, and before the next handler once the batch's leases are a
//! third old; `MONITOR` shows each record before its `XACK`. Every test publishes two
//! events before its consumer starts, so one read takes both: `o-1` finishes, then
//! `o-2`. Refused writes: `events_done_records_lost.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::{DoneRecords, InvokerBuilder};
use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;
use tokio::sync::{Notify, oneshot};

const STREAM: &str = "intercall:events:Orders";
const GROUP: &str = "mailer";

/// Runs `o-1` at once; holds `o-2` (from the attempt `hold_on`) until released, after
/// failing the attempts before it.
struct Gate {
    hold_on: u32,
    attempts: Mutex<HashMap<String, u32>>,
    /// Told when `o-2`'s held attempt starts.
    held: Mutex<Option<oneshot::Sender<()>>>,
    release: Notify,
}

impl Gate {
    fn new(hold_on: u32) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (held_tx, held) = oneshot::channel();
        let gate =
            Gate { hold_on, attempts: Mutex::default(), held: Mutex::new(Some(held_tx)), release: Notify::new() };
        (Arc::new(gate), held)
    }

    fn attempts(&self, order_id: &str) -> u32 {
        self.attempts.lock().unwrap().get(order_id).copied().unwrap_or(0)
    }
}

impl Orders for Gate {
    async fn placed(&self, order_id: String, _total_cents: u64) -> Result<(), OrderError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(order_id.clone()).or_default();
            *n += 1;
            *n
        };
        if order_id != "o-2" {
            return Ok(());
        }
        if attempt < self.hold_on {
            return Err(OrderError::Rejected(format!("attempt {attempt} refused")));
        }
        let held = self.held.lock().unwrap().take();
        if let Some(held) = held {
            let _ = held.send(());
            self.release.notified().await;
        }
        Ok(())
    }
}

/// Publishes `o-1` and `o-2`, then starts a consumer of `GROUP` built by `configured`.
async fn consuming(
    redis: &RedisServer,
    configured: InvokerBuilder,
    gate: &Arc<Gate>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let publisher = OrdersPublisher::new(builder(redis).build().unwrap()).unwrap();
    publisher.placed("o-1".into(), 1).await.unwrap();
    publisher.placed("o-2".into(), 2).await.unwrap();
    let consumer = OrdersConsumer::from_arc(configured.build().unwrap(), GROUP, Arc::clone(gate)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// The key of the record of the event published for `order_id`.
async fn record_key(conn: &mut redis::aio::MultiplexedConnection, order_id: &str) -> String {
    let entries: redis::Value = redis::cmd("XRANGE").arg(STREAM).arg("-").arg("+").query_async(conn).await.unwrap();
    let needle = format!("\"order_id\":\"{order_id}\"");
    let (_, fields) = parse_entries(&entries)
        .into_iter()
        .find(|(_, fields)| fields.iter().any(|(name, value)| name == "payload" && value.contains(&needle)))
        .unwrap_or_else(|| panic!("no entry for {order_id}"));
    let id = &fields.iter().find(|(name, _)| name == "id").expect("an event id").1;
    format!("{STREAM}:processed:{GROUP}:{id}")
}

/// The value of the record of the event published for `order_id`, read from Redis.
async fn record_of(redis: &RedisServer, order_id: &str) -> Option<String> {
    let mut conn = redis_connection(redis).await;
    let key = record_key(&mut conn, order_id).await;
    redis::cmd("GET").arg(key).query_async(&mut conn).await.unwrap()
}

fn is_done(record: &Option<String>) -> bool {
    record.as_deref().is_some_and(|value| value.starts_with("done "))
}

/// Polls Redis every 10 ms for up to 30 s until `o-1` is recorded done and acknowledged
/// (only `o-2` pending).
async fn until_o1_recorded_and_acknowledged(redis: &RedisServer) {
    for _ in 0..3_000 {
        if is_done(&record_of(redis, "o-1").await) && pending(redis, GROUP).await == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 30 s: o-1 recorded as done and acknowledged while o-2 is in hand");
}

/// A claim idle time long enough that no heartbeat ticks during a test, unless it sets
/// its own.
fn configured(redis: &RedisServer) -> InvokerBuilder {
    builder(redis).events_claim_idle(Duration::from_secs(3_600))
}

#[tokio::test]
async fn per_event_writes_each_record_before_the_next_handler_runs() {
    let Some(redis) = RedisServer::start("events-records-per-event") else { return };
    let (gate, held) = Gate::new(1);
    let (stop, task) = consuming(&redis, configured(&redis), &gate).await;
    held.await.unwrap();
    let record = record_of(&redis, "o-1").await;
    assert!(is_done(&record), "o-1's record while o-2 runs: {record:?}");
    gate.release.notify_one();
    let _ = stop.send(());
    task.await.unwrap();
    assert!(is_done(&record_of(&redis, "o-2").await));
    assert_eq!(pending(&redis, GROUP).await, 0);
}

/// Set through the environment override, which this test checks too.
#[tokio::test]
async fn per_batch_holds_the_records_until_the_batch_ends_and_a_shutdown_writes_them() {
    let Some(redis) = RedisServer::start("events-records-per-batch") else { return };
    let (gate, held) = Gate::new(1);
    let per_batch = configured(&redis).environment_vars([("INTERCALL_EVENTS__DONE_RECORDS", "per_batch")]);
    let (stop, task) = consuming(&redis, per_batch, &gate).await;
    held.await.unwrap();
    let record = record_of(&redis, "o-1").await;
    assert!(
        record.as_deref().is_some_and(|value| value.starts_with("lease ")),
        "o-1's record while o-2 runs is still its lease: {record:?}"
    );
    assert_eq!(pending(&redis, GROUP).await, 2, "nothing acknowledged before its record");
    // A shutdown with the batch in hand: the batch finishes and its records are written.
    let _ = stop.send(());
    assert!(!task.is_finished());
    gate.release.notify_one();
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("the consumer stops").unwrap();
    assert!(is_done(&record_of(&redis, "o-1").await));
    assert!(is_done(&record_of(&redis, "o-2").await));
    assert_eq!(pending(&redis, GROUP).await, 0, "the batch was acknowledged");
    assert_eq!((gate.attempts("o-1"), gate.attempts("o-2")), (1, 1));
}

#[tokio::test]
async fn per_batch_writes_the_held_records_when_a_handler_fails_before_its_backoff() {
    let Some(redis) = RedisServer::start("events-records-failure") else { return };
    // o-2 fails once, and is held on its redelivery.
    let (gate, held) = Gate::new(2);
    let per_batch = configured(&redis).events_done_records(DoneRecords::PerBatch);
    let (_stop, task) = consuming(&redis, per_batch, &gate).await;
    held.await.unwrap();
    // Written (and acknowledged) between the failure and the redelivery, awaited.
    assert!(is_done(&record_of(&redis, "o-1").await), "o-1's record after o-2 failed once");
    assert_eq!(pending(&redis, GROUP).await, 1, "only o-2 is pending");
    assert_eq!(gate.attempts("o-2"), 2);
    task.abort();
}

#[tokio::test]
async fn per_batch_writes_the_held_records_on_a_slow_handler_s_heartbeat() {
    let Some(redis) = RedisServer::start("events-records-heartbeat") else { return };
    let (gate, held) = Gate::new(1);
    // The heartbeat ticks every 300 ms; o-2 is held until the records are written.
    let per_batch =
        builder(&redis).events_claim_idle(Duration::from_millis(900)).events_done_records(DoneRecords::PerBatch);
    let (stop, task) = consuming(&redis, per_batch, &gate).await;
    held.await.unwrap();
    until_o1_recorded_and_acknowledged(&redis).await;
    assert_eq!(gate.attempts("o-2"), 1, "o-2 is still in its first run");
    gate.release.notify_one();
    let _ = stop.send(());
    task.await.unwrap();
    assert!(is_done(&record_of(&redis, "o-2").await));
    assert_eq!(pending(&redis, GROUP).await, 0);
    assert_eq!((gate.attempts("o-1"), gate.attempts("o-2")), (1, 1));
}

/// `o-1` runs until its lease has been renewed once (the heartbeat: the batch is then
/// more than `claim_idle / 3` old); `o-2` reads `o-1`'s record as it starts, before it
/// first waits (a blocking read), so before any heartbeat of its own.
struct Aged {
    url: String,
    o1_record: Mutex<Option<String>>,
    seen_by_o2: Mutex<Option<Option<String>>>,
}

impl Orders for Aged {
    async fn placed(&self, order_id: String, _total_cents: u64) -> Result<(), OrderError> {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        if order_id == "o-2" {
            let key = self.o1_record.lock().unwrap().clone().expect("o-1 ran first");
            let mut blocking = client.get_connection().unwrap();
            let value: Option<String> = redis::cmd("GET").arg(key).query(&mut blocking).unwrap();
            *self.seen_by_o2.lock().unwrap() = Some(value);
            return Ok(());
        }
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = record_key(&mut conn, &order_id).await;
        let ttl = |mut conn: redis::aio::MultiplexedConnection, key: String| async move {
            redis::cmd("PTTL").arg(key).query_async::<i64>(&mut conn).await.unwrap()
        };
        // Renewed: back up by far more than a millisecond's jitter from its lowest.
        let mut lowest = i64::MAX;
        for _ in 0..3_000 {
            let left = ttl(conn.clone(), key.clone()).await;
            lowest = lowest.min(left);
            if left > lowest + 200 {
                *self.o1_record.lock().unwrap() = Some(key);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("o-1's lease was not renewed within 30 s");
    }
}

/// The held records are written before the next handler once their leases are a third
/// of their life old, even when that handler never waits (so has no heartbeat).
#[tokio::test]
async fn per_batch_writes_aged_records_before_the_next_handler() {
    let Some(redis) = RedisServer::start("events-records-aged") else { return };
    let aged = Arc::new(Aged { url: redis.url(), o1_record: Mutex::default(), seen_by_o2: Mutex::default() });
    let publisher = OrdersPublisher::new(builder(&redis).build().unwrap()).unwrap();
    publisher.placed("o-1".into(), 1).await.unwrap();
    publisher.placed("o-2".into(), 2).await.unwrap();
    let per_batch =
        builder(&redis).events_claim_idle(Duration::from_millis(1_500)).events_done_records(DoneRecords::PerBatch);
    let consumer = OrdersConsumer::from_arc(per_batch.build().unwrap(), GROUP, Arc::clone(&aged)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    eventually("o-2 ran", || aged.seen_by_o2.lock().unwrap().is_some()).await;
    let _ = stop.send(());
    task.await.unwrap();
    let seen = aged.seen_by_o2.lock().unwrap().clone().unwrap();
    assert!(is_done(&seen), "o-1's record as o-2 starts: {seen:?}");
    assert_eq!(pending(&redis, GROUP).await, 0);
}

/// Every Redis command, in the order Redis ran them, from `MONITOR`, until `stop` is
/// told; the caller then sends `ECHO monitor-end`, the last line read.
async fn monitor(redis: &RedisServer) -> tokio::task::JoinHandle<Vec<String>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let address = redis.url().trim_start_matches("redis://").trim_end_matches("/0").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"MONITOR\r\n").await.unwrap();
    let mut lines = tokio::io::BufReader::new(stream).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("\"ECHO\" \"monitor-end\"") {
                break;
            }
            seen.push(line);
        }
        seen
    })
}

/// The position of the first line that runs `command` (as `MONITOR` quotes it) with
/// `arg` among its arguments, outside a script.
fn position(lines: &[String], command: &str, arg: &str) -> Option<usize> {
    let (command, arg) = (format!("] \"{command}\""), format!("\"{arg}\""));
    lines.iter().position(|line| !line.contains(" lua]") && line.contains(&command) && line.contains(&arg))
}

/// Seen by `MONITOR`: each record is written (in the flush's `MULTI`) before the
/// `XACK` of its entry, and a slow handler's heartbeat writes the held records before
/// it renews the lease in hand.
#[tokio::test]
async fn per_batch_writes_records_before_their_xacks_and_before_the_heartbeat_s_renewal() {
    let Some(redis) = RedisServer::start("events-records-order") else { return };
    let monitoring = monitor(&redis).await;
    let (gate, held) = Gate::new(1);
    let per_batch =
        builder(&redis).events_claim_idle(Duration::from_millis(900)).events_done_records(DoneRecords::PerBatch);
    let (stop, task) = consuming(&redis, per_batch, &gate).await;
    held.await.unwrap();
    until_o1_recorded_and_acknowledged(&redis).await;
    gate.release.notify_one();
    let _ = stop.send(());
    task.await.unwrap();
    let mut conn = redis_connection(&redis).await;
    let _: String = redis::cmd("ECHO").arg("monitor-end").query_async(&mut conn).await.unwrap();
    let lines = monitoring.await.unwrap();
    let entries: redis::Value =
        redis::cmd("XRANGE").arg(STREAM).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let entries = parse_entries(&entries);
    let o2_record = record_key(&mut conn, "o-2").await;
    for (order_id, (entry_id, _)) in ["o-1", "o-2"].iter().zip(&entries) {
        let record = record_key(&mut conn, order_id).await;
        let recorded = lines
            .iter()
            .position(|line| line.contains("] \"SET\"") && line.contains(&record) && line.contains("\"done "))
            .unwrap_or_else(|| panic!("{order_id}'s record written"));
        let acked = position(&lines, "XACK", entry_id).unwrap_or_else(|| panic!("{order_id} acknowledged"));
        assert!(recorded < acked, "{order_id}: record at line {recorded}, XACK at {acked}");
        if *order_id == "o-1" {
            let renewed = position(&lines, "EVALSHA", &o2_record)
                .or_else(|| position(&lines, "EVAL", &o2_record))
                .expect("o-2's lease renewed by its heartbeat");
            assert!(recorded < renewed, "o-1 recorded at line {recorded}, o-2's lease renewed at {renewed}");
        }
    }
}
