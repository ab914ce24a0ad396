//! Events on real `redis-server`s started by the harness (EVENTS.md §5): every group
//! gets every event once, the publisher's user and activity reach the handler, and a
//! shutdown finishes the event in hand. Failures: `events_failures.rs`; claims and
//! leases: `events_claims.rs`; ordering keys: `events_ordering.rs`; outages:
//! `events_outages.rs`; `[events]`: `events_config.rs`; publishing under concurrency:
//! `events_publishing.rs`; a killed consumer process: `events_kills.rs`; when `done`
//! records are written (`done_records`): `events_done_records.rs`, and when they cannot
//! be: `events_done_records_lost.rs`. Conditions are polled with a bound; nothing
//! sleeps to synchronise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::{ActivityId, DoneRecords, UserContext, UserType};
use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_group_processes_every_event_once_with_two_publishers_and_three_consumers_per_group() {
    every_event_once("events-once", 10_000, DoneRecords::PerEvent).await;
}

/// The same with `done_records = "per_batch"` (fewer events: the mode changes when
/// records are written, not how events are shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_group_processes_every_event_once_with_the_records_written_per_batch() {
    every_event_once("events-once-per-batch", 2_000, DoneRecords::PerBatch).await;
}

async fn every_event_once(test: &str, events: usize, done_records: DoneRecords) {
    let Some(redis) = RedisServer::start(test) else { return };
    let configured = || builder(&redis).events_done_records(done_records);
    let groups = [("mailer", Arc::new(Recorder::default())), ("ledger", Arc::new(Recorder::default()))];
    let mut running = Vec::new();
    for (group, recorder) in &groups {
        for replica in 0..3 {
            let consumer = OrdersConsumer::new(configured().build().unwrap(), *group, Arc::clone(recorder))
                .unwrap()
                .consumer_name(format!("{group}-{replica}"));
            running.push(spawn(consumer));
        }
    }
    let publishers = [
        OrdersPublisher::new(configured().build().unwrap()).unwrap(),
        OrdersPublisher::new(configured().build().unwrap()).unwrap(),
    ];
    let mut publishing = Vec::new();
    for (p, publisher) in publishers.into_iter().enumerate() {
        publishing.push(tokio::spawn(async move {
            for i in 0..events / 2 {
                publisher.placed(format!("o-{p}-{i}"), i as u64).await.unwrap();
            }
        }));
    }
    for task in publishing {
        task.await.unwrap();
    }
    for (group, recorder) in &groups {
        eventually(&format!("{group} handled {events} orders"), || recorder.done.lock().unwrap().len() == events).await;
    }
    for (stop, task) in running {
        let _ = stop.send(());
        task.await.unwrap();
    }
    for (group, recorder) in &groups {
        let done = recorder.done.lock().unwrap().clone();
        for p in 0..2 {
            for i in 0..events / 2 {
                assert_eq!(done.get(&format!("o-{p}-{i}")), Some(&1), "{group}: o-{p}-{i}");
            }
        }
        let twice: Vec<_> =
            recorder.attempts.lock().unwrap().iter().filter(|(_, n)| **n != 1).map(|(id, _)| id.clone()).collect();
        assert!(twice.is_empty(), "{group} ran handlers more than once: {twice:?}");
        assert_eq!(pending(&redis, group).await, 0, "{group} left events unacknowledged");
        assert_eq!(records_done(&redis, group).await, events, "{group}: every event's record says done");
    }
}

/// How many of `group`'s records say `done`.
async fn records_done(redis: &RedisServer, group: &str) -> usize {
    let mut conn = redis_connection(redis).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("intercall:events:Orders:processed:{group}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut done = 0;
    for chunk in keys.chunks(500) {
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query_async(&mut conn).await.unwrap();
        done += values.iter().filter(|v| v.as_deref().is_some_and(|v| v.starts_with("done "))).count();
    }
    done
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
