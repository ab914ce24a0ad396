//! Events on real `redis-server`s started by the harness: every group gets every event
//! once, failures are redelivered then dead-lettered, bad entries never stop a
//! consumer, a dead consumer's event is claimed, and the publisher's user and activity
//! reach the handler. Conditions are polled with a bound; nothing sleeps to synchronise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::{ActivityId, CallError, Invoker, InvokerBuilder, UserContext, UserType};
use intercall_tests::redis_server::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderError {
    Rejected(String),
    Unavailable(CallError),
}

impl From<CallError> for OrderError {
    fn from(error: CallError) -> Self {
        OrderError::Unavailable(error)
    }
}

/// What happens to orders.
#[intercall::events]
pub trait Orders {
    /// An order was placed.
    async fn placed(&self, order_id: String, total_cents: u64) -> Result<(), OrderError>;
}

/// A subscriber that records what it handles, and fails or blocks when told to.
#[derive(Default)]
struct Recorder {
    /// Successful handlings per order id.
    done: Mutex<HashMap<String, u32>>,
    /// Calls per order id, successful or not.
    attempts: Mutex<HashMap<String, u32>>,
    /// Fail this many times per order before succeeding (`u32::MAX`: always).
    failures: u32,
    /// The user and activity each handling saw.
    contexts: Mutex<Vec<(Option<UserContext>, Option<ActivityId>)>>,
    /// Never finish (a consumer that dies mid-handler).
    hang: bool,
    /// Told when a handler starts; the handler then waits for `release`.
    started: Mutex<Option<oneshot::Sender<()>>>,
    release: tokio::sync::Notify,
}

impl Orders for Arc<Recorder> {
    async fn placed(&self, order_id: String, _total_cents: u64) -> Result<(), OrderError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(order_id.clone()).or_default();
            *n += 1;
            *n
        };
        self.contexts.lock().unwrap().push((UserContext::current(), ActivityId::current()));
        if self.hang {
            std::future::pending::<()>().await;
        }
        let started = self.started.lock().unwrap().take();
        if let Some(started) = started {
            let _ = started.send(());
            self.release.notified().await;
        }
        if attempt <= self.failures {
            return Err(OrderError::Rejected(format!("attempt {attempt} refused")));
        }
        *self.done.lock().unwrap().entry(order_id).or_default() += 1;
        Ok(())
    }
}

fn builder(redis: &RedisServer) -> InvokerBuilder {
    Invoker::builder().events(redis.url()).environment(false)
}

/// A consumer running in a task until the returned sender is dropped or used.
fn spawn(consumer: OrdersConsumer<Arc<Recorder>>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// Polls `condition` every 10 ms for up to 30 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..3_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 30 s: {what}");
}

async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The dead-letter stream's entries, each as a field map.
async fn dead_letters(redis: &RedisServer) -> Vec<HashMap<String, String>> {
    let mut connection = redis_connection(redis).await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("intercall:events:Orders:dead")
        .arg("-")
        .arg("+")
        .query_async::<redis::Value>(&mut connection)
        .await
        .map(|value| parse_entries(&value))
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields.into_iter().collect()).collect()
}

fn parse_entries(value: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    };
    let redis::Value::Array(entries) = value else { return Vec::new() };
    entries
        .iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(pair) => match pair.as_slice() {
                [id, redis::Value::Array(flat)] => {
                    Some((text(id), flat.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// How many entries `group` has delivered and not acknowledged.
async fn pending(redis: &RedisServer, group: &str) -> i64 {
    let mut connection = redis_connection(redis).await;
    let summary: redis::Value =
        redis::cmd("XPENDING").arg("intercall:events:Orders").arg(group).query_async(&mut connection).await.unwrap();
    match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_group_processes_every_event_once_with_two_publishers_and_three_consumers_per_group() {
    let Some(redis) = RedisServer::start("events-once") else { return };
    const EVENTS: usize = 10_000;
    let groups = [("mailer", Arc::new(Recorder::default())), ("ledger", Arc::new(Recorder::default()))];
    let mut running = Vec::new();
    for (group, recorder) in &groups {
        for replica in 0..3 {
            let consumer = OrdersConsumer::new(builder(&redis).build().unwrap(), *group, Arc::clone(recorder))
                .unwrap()
                .consumer_name(format!("{group}-{replica}"));
            running.push(spawn(consumer));
        }
    }
    let publishers = [
        OrdersPublisher::new(builder(&redis).build().unwrap()).unwrap(),
        OrdersPublisher::new(builder(&redis).build().unwrap()).unwrap(),
    ];
    let mut publishing = Vec::new();
    for (p, publisher) in publishers.into_iter().enumerate() {
        publishing.push(tokio::spawn(async move {
            for i in 0..EVENTS / 2 {
                publisher.placed(format!("o-{p}-{i}"), i as u64).await.unwrap();
            }
        }));
    }
    for task in publishing {
        task.await.unwrap();
    }
    for (group, recorder) in &groups {
        eventually(&format!("{group} handled {EVENTS} orders"), || recorder.done.lock().unwrap().len() == EVENTS).await;
    }
    for (stop, task) in running {
        let _ = stop.send(());
        task.await.unwrap();
    }
    for (group, recorder) in &groups {
        let done = recorder.done.lock().unwrap().clone();
        for p in 0..2 {
            for i in 0..EVENTS / 2 {
                assert_eq!(done.get(&format!("o-{p}-{i}")), Some(&1), "{group}: o-{p}-{i}");
            }
        }
        let twice: Vec<_> =
            recorder.attempts.lock().unwrap().iter().filter(|(_, n)| **n != 1).map(|(id, _)| id.clone()).collect();
        assert!(twice.is_empty(), "{group} ran handlers more than once: {twice:?}");
        assert_eq!(pending(&redis, group).await, 0, "{group} left events unacknowledged");
    }
}

#[tokio::test]
async fn a_handler_failing_twice_then_succeeding_is_processed_once() {
    let Some(redis) = RedisServer::start("events-retry") else { return };
    let recorder = Arc::new(Recorder { failures: 2, ..Recorder::default() });
    let invoker = builder(&redis).events_retry_backoff(Duration::from_millis(5)).build().unwrap();
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    OrdersPublisher::new(invoker).unwrap().placed("o-1".into(), 100).await.unwrap();
    eventually("the third attempt succeeded", || recorder.done.lock().unwrap().contains_key("o-1")).await;
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(recorder.attempts.lock().unwrap()["o-1"], 3);
    assert_eq!(recorder.done.lock().unwrap()["o-1"], 1);
    assert!(dead_letters(&redis).await.is_empty());
    assert_eq!(pending(&redis, "mailer").await, 0);
}

#[tokio::test]
async fn a_handler_that_always_fails_reaches_the_dead_letter_stream_after_the_limit() {
    let Some(redis) = RedisServer::start("events-dead") else { return };
    let recorder = Arc::new(Recorder { failures: u32::MAX, ..Recorder::default() });
    // The limit from the environment, as a deployment would set it.
    let invoker = builder(&redis)
        .events_retry_backoff(Duration::from_millis(5))
        .environment_vars([("INTERCALL_EVENTS__MAX_DELIVERIES", "3")])
        .build()
        .unwrap();
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    OrdersPublisher::new(invoker).unwrap().placed("o-1".into(), 100).await.unwrap();
    let mut dead = Vec::new();
    for _ in 0..3_000 {
        dead = dead_letters(&redis).await;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(letter["method"], "placed");
    assert_eq!(letter["dead_group"], "mailer");
    assert_eq!(letter["dead_deliveries"], "3");
    assert!(letter["dead_reason"].contains("attempt 3 refused"), "{letter:?}");
    assert!(letter["payload"].contains("\"o-1\""), "{letter:?}");
    assert_eq!(recorder.attempts.lock().unwrap()["o-1"], 3);
    assert!(recorder.done.lock().unwrap().is_empty());
    assert_eq!(pending(&redis, "mailer").await, 0);
}

#[tokio::test]
async fn undecodable_and_forged_entries_are_dead_letters_at_once_and_the_consumer_keeps_serving() {
    let Some(redis) = RedisServer::start("events-bad") else { return };
    let secret = intercall::Security::shared_secret("events-test-secret-0123456789").unwrap();
    let invoker = builder(&redis).security(secret).build().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    let mut connection = redis_connection(&redis).await;
    let stream = "intercall:events:Orders";
    let well_formed = |payload: &str, signature: &str| {
        vec![
            ("id", uuid::Uuid::new_v4().to_string()),
            ("method", "placed".to_owned()),
            ("payload", payload.to_owned()),
            ("published_ms", "1700000000000".to_owned()),
            ("signature", signature.to_owned()),
        ]
    };
    let entries = [
        vec![("garbage", "\u{1f4a5}".to_owned())],
        well_formed(r#"{"order_id":"o-forged","total_cents":1}"#, &format!("v1={}", "ab".repeat(32))),
        well_formed(r#"{"order_id":"o-unsigned","total_cents":1}"#, "")
            .into_iter()
            .filter(|(name, _)| *name != "signature")
            .collect(),
    ];
    for fields in &entries {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("*");
        for (name, value) in fields {
            xadd.arg(*name).arg(value);
        }
        xadd.query_async::<String>(&mut connection).await.unwrap();
    }
    OrdersPublisher::new(invoker).unwrap().placed("o-good".into(), 1).await.unwrap();
    eventually("the good event is handled", || recorder.done.lock().unwrap().contains_key("o-good")).await;
    let _ = stop.send(());
    task.await.unwrap();
    let dead = dead_letters(&redis).await;
    let reasons: Vec<&str> = dead.iter().map(|letter| letter["dead_reason"].as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("undecodable entry: field `id` is missing"), "{reasons:?}");
    assert!(reasons[1].contains("bad signature") && reasons[1].contains("does not match"), "{reasons:?}");
    assert!(reasons[2].contains("bad signature") && reasons[2].contains("not signed"), "{reasons:?}");
    assert!(dead.iter().all(|letter| letter["dead_deliveries"] == "1"), "{dead:?}");
    assert_eq!(dead[0]["garbage"], "\u{1f4a5}", "the original fields are kept");
    let attempts: Vec<String> = recorder.attempts.lock().unwrap().keys().cloned().collect();
    assert_eq!(attempts, ["o-good"], "no handler ran for a bad entry");
    assert_eq!(pending(&redis, "mailer").await, 0);
}

#[tokio::test]
async fn a_pending_event_of_a_dead_consumer_is_claimed_by_another_after_the_idle_time() {
    let Some(redis) = RedisServer::start("events-claim") else { return };
    let invoker = builder(&redis).events_claim_idle(Duration::from_millis(300)).build().unwrap();
    let dying = Arc::new(Recorder { hang: true, ..Recorder::default() });
    let (_stop, task) =
        spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&dying)).unwrap().consumer_name("dying"));
    OrdersPublisher::new(invoker.clone()).unwrap().placed("o-1".into(), 1).await.unwrap();
    eventually("the dying consumer has the event", || dying.attempts.lock().unwrap().contains_key("o-1")).await;
    task.abort(); // dies mid-handler: the event was read, never acknowledged
    let _ = task.await;
    assert_eq!(pending(&redis, "mailer").await, 1);
    let survivor = Arc::new(Recorder::default());
    let (stop, task) =
        spawn(OrdersConsumer::new(invoker, "mailer", Arc::clone(&survivor)).unwrap().consumer_name("survivor"));
    eventually("the survivor handled the event", || survivor.done.lock().unwrap().contains_key("o-1")).await;
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(survivor.done.lock().unwrap()["o-1"], 1);
    assert_eq!(pending(&redis, "mailer").await, 0);
}

/// The group's pending entries: (owner, delivery count) each.
async fn pending_owners(redis: &RedisServer, group: &str) -> Vec<(String, i64)> {
    let mut connection = redis_connection(redis).await;
    let detail: redis::Value = redis::cmd("XPENDING")
        .arg("intercall:events:Orders")
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut connection)
        .await
        .unwrap();
    let redis::Value::Array(entries) = detail else { return Vec::new() };
    entries
        .iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(fields) => match fields.as_slice() {
                [_, redis::Value::BulkString(owner), _, redis::Value::Int(count)] => {
                    Some((String::from_utf8_lossy(owner).into_owned(), *count))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_event_claimed_from_a_stalled_consumer_is_not_run_again_while_its_lease_lives() {
    let Some(redis) = RedisServer::start("events-lease") else { return };
    // The stalled consumer renews its lease every 20 s; the eager one claims whatever
    // has been idle for 100 ms, so it takes the stalled consumer's entry.
    let slow = builder(&redis).events_claim_idle(Duration::from_secs(60)).build().unwrap();
    let eager = builder(&redis).events_claim_idle(Duration::from_millis(100)).build().unwrap();
    let (started_tx, started) = oneshot::channel();
    let stalled = Arc::new(Recorder { started: Mutex::new(Some(started_tx)), ..Recorder::default() });
    let (stop_stalled, stalled_task) =
        spawn(OrdersConsumer::new(slow.clone(), "mailer", Arc::clone(&stalled)).unwrap().consumer_name("stalled"));
    OrdersPublisher::new(slow).unwrap().placed("o-1".into(), 1).await.unwrap();
    started.await.unwrap(); // the stalled handler now waits for `release`
    let other = Arc::new(Recorder::default());
    let (stop_eager, eager_task) =
        spawn(OrdersConsumer::new(eager, "mailer", Arc::clone(&other)).unwrap().consumer_name("eager"));
    // Claimed twice by the eager consumer (delivery 3): the first claim was handled.
    for _ in 0..3_000 {
        if pending_owners(&redis, "mailer").await.iter().any(|(owner, count)| owner == "eager" && *count >= 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let owners = pending_owners(&redis, "mailer").await;
    assert!(owners.iter().any(|(owner, count)| owner == "eager" && *count >= 3), "{owners:?}");
    assert!(other.attempts.lock().unwrap().is_empty(), "the eager consumer ran an event another consumer holds");
    stalled.release.notify_one();
    eventually("the stalled consumer finished", || stalled.done.lock().unwrap().contains_key("o-1")).await;
    for _ in 0..3_000 {
        if pending(&redis, "mailer").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (stop, task) in [(stop_stalled, stalled_task), (stop_eager, eager_task)] {
        let _ = stop.send(());
        task.await.unwrap();
    }
    assert_eq!(pending(&redis, "mailer").await, 0, "the holder acknowledged the entry");
    assert_eq!(stalled.done.lock().unwrap()["o-1"], 1);
    assert!(other.attempts.lock().unwrap().is_empty(), "run once in all: {:?}", other.attempts.lock().unwrap());
}

#[tokio::test]
async fn the_publishers_user_and_activity_arrive_in_the_handler() {
    let Some(redis) = RedisServer::start("events-context") else { return };
    let invoker = builder(&redis).build().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    let publisher = OrdersPublisher::new(invoker).unwrap();
    let alice = UserContext::new(UserType::Customer, "alice").unwrap();
    let activity = ActivityId::new();
    let context = intercall::CallContext { user: Some(alice.clone()), activity: Some(activity), ..Default::default() };
    context.scope(publisher.placed("o-1".into(), 1)).await.unwrap();
    publisher.placed("o-2".into(), 1).await.unwrap(); // no user: an activity of its own
    eventually("both handled", || recorder.done.lock().unwrap().len() == 2).await;
    let _ = stop.send(());
    task.await.unwrap();
    let contexts = recorder.contexts.lock().unwrap();
    assert_eq!(contexts[0], (Some(alice), Some(activity)));
    assert_eq!(contexts[1].0, None);
    assert!(contexts[1].1.is_some_and(|other| other != activity), "{contexts:?}");
}

#[tokio::test]
async fn shutdown_finishes_the_event_in_hand_and_acknowledges_it() {
    let Some(redis) = RedisServer::start("events-shutdown") else { return };
    let invoker = builder(&redis).build().unwrap();
    let (started_tx, started) = oneshot::channel();
    let recorder = Arc::new(Recorder { started: Mutex::new(Some(started_tx)), ..Recorder::default() });
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    OrdersPublisher::new(invoker).unwrap().placed("o-1".into(), 1).await.unwrap();
    started.await.unwrap();
    let _ = stop.send(()); // while the handler runs
    assert!(!task.is_finished());
    recorder.release.notify_one();
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("the consumer stops").unwrap();
    assert_eq!(recorder.done.lock().unwrap()["o-1"], 1);
    assert_eq!(pending(&redis, "mailer").await, 0, "the event in hand was acknowledged");
}

#[tokio::test]
async fn with_redis_stopped_publishing_fails_fast_with_a_clear_error() {
    let Some(mut redis) = RedisServer::start("events-down") else { return };
    let publisher = OrdersPublisher::new(builder(&redis).build().unwrap()).unwrap();
    publisher.placed("o-1".into(), 1).await.unwrap();
    redis.stop();
    let failed = tokio::time::timeout(Duration::from_secs(30), publisher.placed("o-2".into(), 1))
        .await
        .expect("a publish does not hang");
    let Err(OrderError::Unavailable(error)) = failed else { panic!("expected a transport failure: {failed:?}") };
    assert!(error.is_connect() || error.is_timeout(), "{error}");
    let message = error.to_string();
    assert!(message.contains("Orders.placed") && message.contains(&format!("127.0.0.1:{}", redis.port)), "{message}");
}

/// A customer's account changes, in order per customer.
#[intercall::events]
pub trait Accounts {
    /// The `seq`-th change of `customer`'s account.
    async fn changed(&self, #[ordering_key] customer: String, seq: u64) -> Result<(), OrderError>;
}

/// Per customer, the changes in the order handled, and by which consumer.
type AccountLog = Arc<Mutex<HashMap<String, Vec<(u64, String)>>>>;

struct AccountsTracker {
    consumer: String,
    log: AccountLog,
    /// Fail these (customer, seq) once each: a retry must not let later changes pass.
    fail_once: Arc<Mutex<std::collections::HashSet<(String, u64)>>>,
}

impl Accounts for AccountsTracker {
    async fn changed(&self, customer: String, seq: u64) -> Result<(), OrderError> {
        if self.fail_once.lock().unwrap().remove(&(customer.clone(), seq)) {
            return Err(OrderError::Rejected("once".into()));
        }
        self.log.lock().unwrap().entry(customer).or_default().push((seq, self.consumer.clone()));
        Ok(())
    }
}

/// How many key partitions of `group` each consumer holds now.
async fn partition_owners(redis: &RedisServer, group: &str) -> HashMap<String, usize> {
    let mut connection = redis_connection(redis).await;
    let mut owners = HashMap::new();
    for partition in 0..16 {
        let key = format!("intercall:events:Accounts:keyed:{partition}:owner:{group}");
        let owner: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
        if let Some(owner) = owner {
            *owners.entry(owner.split(' ').next().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_with_one_ordering_key_are_handled_in_publish_order_by_one_of_four_consumers() {
    let Some(redis) = RedisServer::start("events-ordering") else { return };
    const CUSTOMERS: usize = 32;
    const CHANGES: u64 = 30;
    let invoker = builder(&redis)
        .events_claim_idle(Duration::from_millis(1_500))
        .events_retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let log = AccountLog::default();
    let fail_once = Arc::new(Mutex::new(
        [("c-3".to_owned(), 5), ("c-3".to_owned(), 6), ("c-17".to_owned(), 0)].into_iter().collect(),
    ));
    let mut running = Vec::new();
    for replica in 0..4 {
        let tracker = AccountsTracker {
            consumer: format!("a-{replica}"),
            log: Arc::clone(&log),
            fail_once: Arc::clone(&fail_once),
        };
        let consumer =
            AccountsConsumer::new(invoker.clone(), "audit", tracker).unwrap().consumer_name(format!("a-{replica}"));
        let (stop, stopped) = oneshot::channel::<()>();
        running.push((
            stop,
            tokio::spawn(consumer.run(async move {
                let _ = stopped.await;
            })),
        ));
    }
    // The four have shared the 16 partitions out, 4 each, before anything is published.
    let settled = |owners: &HashMap<String, usize>| owners.len() == 4 && owners.values().all(|n| *n == 4);
    for _ in 0..3_000 {
        if settled(&partition_owners(&redis, "audit").await) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let owners = partition_owners(&redis, "audit").await;
    assert!(settled(&owners), "every consumer holds its share of the partitions: {owners:?}");
    let publisher = AccountsPublisher::new(invoker).unwrap();
    let mut publishing = Vec::new();
    for customer in 0..CUSTOMERS {
        let publisher = publisher.clone();
        publishing.push(tokio::spawn(async move {
            for seq in 0..CHANGES {
                publisher.changed(format!("c-{customer}"), seq).await.unwrap();
            }
        }));
    }
    for task in publishing {
        task.await.unwrap();
    }
    let total = CUSTOMERS * CHANGES as usize;
    eventually("every change handled", || log.lock().unwrap().values().map(Vec::len).sum::<usize>() == total).await;
    for (stop, task) in running {
        let _ = stop.send(());
        task.await.unwrap();
    }
    let log = log.lock().unwrap();
    let mut consumers_used = std::collections::HashSet::new();
    for customer in 0..CUSTOMERS {
        let changes = &log[&format!("c-{customer}")];
        let order: Vec<u64> = changes.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(order, (0..CHANGES).collect::<Vec<_>>(), "c-{customer} out of order");
        let by: std::collections::HashSet<&String> = changes.iter().map(|(_, consumer)| consumer).collect();
        assert_eq!(by.len(), 1, "c-{customer} went through one consumer: {by:?}");
        consumers_used.extend(by.into_iter().cloned());
    }
    assert!(consumers_used.len() >= 2, "different keys spread across consumers: {consumers_used:?}");
    assert!(fail_once.lock().unwrap().is_empty(), "the failures happened and were retried in place");
}

#[tokio::test]
async fn a_consumer_waits_out_a_redis_outage_and_handles_events_when_it_returns() {
    let Some(mut redis) = RedisServer::start("events-outage") else { return };
    let invoker = builder(&redis).events_op_timeout(Duration::from_millis(300)).build().unwrap();
    let recorder = Arc::new(Recorder::default());
    let (stop, task) = spawn(OrdersConsumer::new(invoker.clone(), "mailer", Arc::clone(&recorder)).unwrap());
    let publisher = OrdersPublisher::new(invoker).unwrap();
    publisher.placed("o-before".into(), 1).await.unwrap();
    eventually("the event before the outage", || recorder.done.lock().unwrap().contains_key("o-before")).await;
    redis.stop();
    assert!(publisher.placed("o-lost".into(), 1).await.is_err(), "nothing takes an event while Redis is down");
    assert!(!task.is_finished(), "the consumer waits the outage out");
    // Back, empty (no persistence): the consumer makes its group again, and the
    // publisher reconnects (its first attempt may still meet the old connection).
    redis.restart();
    let mut published = false;
    for _ in 0..50 {
        if publisher.placed("o-after".into(), 2).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "the publisher recovers when Redis returns");
    eventually("the event after the outage", || recorder.done.lock().unwrap().contains_key("o-after")).await;
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(recorder.done.lock().unwrap()["o-after"], 1);
    assert!(!recorder.attempts.lock().unwrap().contains_key("o-lost"));
}

#[test]
fn publishing_without_an_events_table_is_a_setup_error() {
    let invoker = Invoker::builder().environment(false).build().unwrap();
    let error = OrdersPublisher::new(invoker.clone()).unwrap_err();
    assert!(error.is_config(), "{error}");
    assert!(error.to_string().contains("`[events]`") && error.to_string().contains(".events("), "{error}");
    let consumer = OrdersConsumer::new(invoker, "mailer", Arc::new(Recorder::default()));
    assert!(consumer.is_err_and(|e| e.to_string().contains("`[events]`")));
}

#[test]
fn the_events_table_is_validated_strictly() {
    let cases = [
        ("[events]\nurl = \"redis://127.0.0.1:6379/0\"\nmax_lenn = 5\n", "line 3", "unknown field `max_lenn`"),
        (
            "[events]\nurl = \"redis://127.0.0.1:6379/0\"\nmax_deliveries = 0\n",
            "line 3",
            "`events.max_deliveries` is 0",
        ),
        (
            "[events]\nurl = \"redis://127.0.0.1:6379/0\"\nclaim_idle_ms = -5\n",
            "line 3",
            "`events.claim_idle_ms` is -5",
        ),
        ("[events]\nurl = \"http://127.0.0.1:6379/0\"\n", "line 2", "`events.url` must be a redis:// URL"),
        ("[events]\nurl = \"redis://:secret@[::1/0\"\n", "line 2", "`events.url` is not a valid Redis URL"),
        ("[events]\nmax_len = 5\n", "line 1", "missing field `url`"),
    ];
    for (text, line, expected) in cases {
        let error = Invoker::builder().file(write_temp(text)).environment(false).build().unwrap_err().to_string();
        assert!(error.contains(line) && error.contains(expected), "{text:?}: {error}");
        assert!(!error.contains("secret@"), "a URL is never echoed: {error}");
    }
    let from_env = Invoker::builder()
        .environment_vars([
            ("INTERCALL_EVENTS__URL", "redis://127.0.0.1:6379/0"),
            ("INTERCALL_EVENTS__BATCH_SIZE", "0"),
        ])
        .build()
        .unwrap_err()
        .to_string();
    assert!(from_env.contains("INTERCALL_EVENTS__BATCH_SIZE") && from_env.contains("is 0"), "{from_env}");
    let built = Invoker::builder().events("redis://127.0.0.1:6379/0").events_max_len(0).environment(false).build();
    assert!(built.is_err_and(|e| e.to_string().contains("`events.max_len` is 0")));
}

fn write_temp(text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("intercall-events-{}-{}.toml", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}
