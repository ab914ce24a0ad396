//! Publishing under concurrency (EVENTS.md §2): concurrent publishes share pipelines,
//! each returns only once Redis has stored its own entry, and a publish dropped while
//! it waits neither loses the others' events nor stalls the publisher. On a real
//! `redis-server` started by the harness; nothing sleeps to synchronise.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::FutureExt;
use intercall::{CallError, Invoker};
use intercall_tests::redis_server::RedisServer;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum NoteError {
    Unavailable(CallError),
}

impl From<CallError> for NoteError {
    fn from(error: CallError) -> Self {
        NoteError::Unavailable(error)
    }
}

#[intercall::events]
pub trait Notes {
    async fn noted(&self, text: String) -> Result<(), NoteError>;
}

/// The `text` argument of every entry in the stream.
async fn texts(connection: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("intercall:events:Notes").arg("-").arg("+").query_async(connection).await.unwrap();
    entries
        .into_iter()
        .filter_map(|(_, fields)| fields.into_iter().find(|(name, _)| name == "payload"))
        .map(|(_, payload)| {
            let args: serde_json::Value = serde_json::from_str(&payload).unwrap();
            args["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_return_once_stored_and_dropped_ones_stall_nobody() {
    let Some(redis) = RedisServer::start("events-publishing") else { return };
    let invoker = Invoker::builder().events(redis.url()).environment(false).build().unwrap();
    let publisher = NotesPublisher::new(invoker).unwrap();
    let mut connection = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Polled once, so queued (the first one sending), then dropped while waiting.
    for i in 0..20 {
        drop(publisher.noted(format!("dropped-{i}")).now_or_never());
    }
    let publishing: Vec<_> = (0..200)
        .map(|i| {
            let publisher = publisher.clone();
            tokio::spawn(async move { publisher.noted(format!("kept-{i}")).await })
        })
        .collect();
    for task in publishing {
        let published = tokio::time::timeout(Duration::from_secs(30), task).await.expect("no publish hangs");
        published.unwrap().unwrap();
    }
    // Every publish that returned has its entry stored.
    let stored: HashSet<String> = texts(&mut connection).await.into_iter().collect();
    let missing: Vec<usize> = (0..200).filter(|i| !stored.contains(&format!("kept-{i}"))).collect();
    assert!(missing.is_empty(), "returned before their entries were stored: {missing:?}");
    // The dropped publishes' events go out all the same, and the publisher still works.
    let after = tokio::time::timeout(Duration::from_secs(30), publisher.noted("after".to_owned()));
    after.await.expect("the publisher does not stall").unwrap();
    for _ in 0..3_000 {
        if texts(&mut connection).await.len() >= 221 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = texts(&mut connection).await;
    assert_eq!(all.len(), 221, "200 kept, 20 dropped while waiting, 1 after");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 221, "each event once");
}
