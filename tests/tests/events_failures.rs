//! Failing handlers and bad entries (EVENTS.md §5 step 5, §6): a handler failing twice
//! then succeeding is processed once, one that always fails is a dead letter after the
//! limit, and undecodable or forged entries are dead letters at once while the consumer
//! keeps serving.

use std::sync::Arc;
use std::time::Duration;

use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;

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
