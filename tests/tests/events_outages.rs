//! Redis outages (EVENTS.md §2, §5 "Shutdown"): publishing fails fast with a clear
//! error, and a consumer waits an outage out and handles events when Redis returns.

use std::sync::Arc;
use std::time::Duration;

use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;

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
