//! Claims and leases (EVENTS.md §5, "Dead consumers"): a dead consumer's pending event
//! is claimed after the idle time, and an event claimed from a stalled but live
//! consumer is not run again while its lease lives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;
use tokio::sync::oneshot;

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
