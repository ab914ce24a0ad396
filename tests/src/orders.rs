//! The `Orders` events and the recording subscriber that `tests/events*.rs` share,
//! with the helpers that read a group's state straight from Redis (pending entries and
//! their owners, dead letters), as another language's client would see it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use intercall::{ActivityId, CallError, Invoker, InvokerBuilder, UserContext};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::redis_server::RedisServer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
pub struct Recorder {
    /// Successful handlings per order id.
    pub done: Mutex<HashMap<String, u32>>,
    /// Calls per order id, successful or not.
    pub attempts: Mutex<HashMap<String, u32>>,
    /// Fail this many times per order before succeeding (`u32::MAX`: always).
    pub failures: u32,
    /// The user and activity each handling saw.
    pub contexts: Mutex<Vec<(Option<UserContext>, Option<ActivityId>)>>,
    /// Never finish (a consumer that dies mid-handler).
    pub hang: bool,
    /// Told when a handler starts; the handler then waits for `release`.
    pub started: Mutex<Option<oneshot::Sender<()>>>,
    pub release: tokio::sync::Notify,
}

impl Orders for std::sync::Arc<Recorder> {
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

pub fn builder(redis: &RedisServer) -> InvokerBuilder {
    Invoker::builder().events(redis.url()).environment(false)
}

/// A consumer running in a task until the returned sender is dropped or used.
pub fn spawn(consumer: OrdersConsumer<std::sync::Arc<Recorder>>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// Polls `condition` every 10 ms for up to 30 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..3_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 30 s: {what}");
}

pub async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// The dead-letter stream's entries, each as a field map.
pub async fn dead_letters(redis: &RedisServer) -> Vec<HashMap<String, String>> {
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

pub fn parse_entries(value: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
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
pub async fn pending(redis: &RedisServer, group: &str) -> i64 {
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

/// The group's pending entries: (owner, delivery count) each.
pub async fn pending_owners(redis: &RedisServer, group: &str) -> Vec<(String, i64)> {
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
