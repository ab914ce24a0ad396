//! §5 Call ids: at most once per call key, replays byte for byte, mismatches, waits.

use std::time::Duration;

use serde_json::json;

use super::{Case, case};
use crate::http::Response;
use crate::server_mode::call::{Call, Target};
use crate::server_mode::expect::{self, Check};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§5", duplicate_replays_byte_for_byte),
        case!("§5", duplicate_service_error_replays),
        case!("§5", different_body_is_call_id_mismatch),
        case!("§5", concurrent_duplicates_run_once),
        case!("§5", duplicate_of_running_call_is_409_after_its_deadline),
        case!("§5", run_outlasting_its_deadline_is_409_and_goes_on),
        case!("§5", deadline_zero_records_nothing),
        case!("§5", panic_is_not_recorded),
        case!("§5", no_call_id_always_runs),
        case!("§5", call_key_includes_the_user),
        case!("§5", call_key_includes_the_method),
        case!("§5", undecodable_body_releases_the_call_id),
    ]
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `count(key, sleep_ms)` under `call_id`.
fn count(t: &Target, key: &str, sleep_ms: u64, call_id: &str) -> Call {
    t.call("count").header("x-call-id", call_id).json(json!({ "key": key, "sleep_ms": sleep_ms }))
}

fn same_reply(first: &Response, again: &Response) -> Check {
    expect::equal("replayed status", again.status, first.status)?;
    if again.body != first.body {
        return Err(format!("the replay's body differs: first {}, then {}", first.body_text(), again.body_text()));
    }
    Ok(())
}

/// Waits (bounded) until counter `key` reaches `n`: the run has started.
async fn started(t: &Target, key: &str, n: u64) -> Check {
    for _ in 0..250 {
        if t.counter(key).await? >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("counter `{key}` never reached {n}: the first run did not start"))
}

async fn duplicate_replays_byte_for_byte(t: Target) -> Check {
    let (key, call_id) = (t.key("replay"), id());
    let first = count(&t, &key, 0, &call_id).header("x-call-attempt", "1").send().await?;
    expect::ok_eq(&first, &json!(1))?;
    // A retry: the attempt and the deadline change, the call id and body do not.
    let again =
        count(&t, &key, 0, &call_id).header("x-call-attempt", "2").header("x-deadline-ms", "60000").send().await?;
    same_reply(&first, &again)?;
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn duplicate_service_error_replays(t: Target) -> Check {
    let (key, call_id) = (t.key("replay_error"), id());
    let call = t.call("fail").header("x-call-id", &call_id).json(json!({ "variant": "NotFound", "key": key }));
    let first = call.send().await?;
    expect::error(&first, 422, "service")?;
    same_reply(&first, &call.send().await?)?;
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn different_body_is_call_id_mismatch(t: Target) -> Check {
    let (key, call_id) = (t.key("mismatch"), id());
    expect::ok(&count(&t, &key, 0, &call_id).send().await?)?;
    let other = count(&t, &key, 1, &call_id).send().await?;
    expect::error(&other, 422, "call_id_mismatch")?;
    // The same JSON, spelt differently, is a different body: fingerprints are of bytes.
    let spaced =
        t.call("count").header("x-call-id", &call_id).body(format!("{{ \"key\": \"{key}\", \"sleep_ms\": 0 }}"));
    expect::error(&spaced.send().await?, 422, "call_id_mismatch")?;
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn concurrent_duplicates_run_once(t: Target) -> Check {
    let (key, call_id) = (t.key("concurrent"), id());
    let call = count(&t, &key, 300, &call_id).header("x-deadline-ms", "10000");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move { call.send().await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.map_err(|e| e.to_string())??);
    }
    for reply in &replies {
        expect::ok_eq(reply, &json!(1))?;
        same_reply(&replies[0], reply)?;
    }
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn duplicate_of_running_call_is_409_after_its_deadline(t: Target) -> Check {
    let (key, call_id) = (t.key("in_progress"), id());
    let first = count(&t, &key, 2000, &call_id).header("x-deadline-ms", "10000");
    let running = tokio::spawn(async move { first.send().await });
    started(&t, &key, 1).await?;
    let duplicate = count(&t, &key, 2000, &call_id).header("x-deadline-ms", "100").send().await?;
    expect::error(&duplicate, 409, "in_progress")?;
    let first = running.await.map_err(|e| e.to_string())??;
    expect::ok_eq(&first, &json!(1))?;
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn run_outlasting_its_deadline_is_409_and_goes_on(t: Target) -> Check {
    let (key, call_id) = (t.key("outlasts"), id());
    let first = count(&t, &key, 2000, &call_id).header("x-deadline-ms", "100").send().await?;
    expect::error(&first, 409, "in_progress")?;
    // The retry waits for the run that went on, or gets its record.
    let retry = count(&t, &key, 2000, &call_id).header("x-deadline-ms", "10000").send().await?;
    expect::ok_eq(&retry, &json!(1))?;
    expect::equal("runs", t.counter(&key).await?, 1)
}

async fn deadline_zero_records_nothing(t: Target) -> Check {
    let (key, call_id) = (t.key("deadline_zero_id"), id());
    expect::error(&count(&t, &key, 0, &call_id).header("x-deadline-ms", "0").send().await?, 504, "deadline_exceeded")?;
    expect::equal("runs after the 504", t.counter(&key).await?, 0)?;
    expect::ok_eq(&count(&t, &key, 0, &call_id).send().await?, &json!(1))
}

async fn panic_is_not_recorded(t: Target) -> Check {
    let (key, call_id) = (t.key("panic_again"), id());
    let call = t.call("panic").header("x-call-id", &call_id).json(json!({ "key": key }));
    expect::error(&call.send().await?, 500, "panic")?;
    expect::error(&call.send().await?, 500, "panic")?;
    expect::equal("runs (a panic is released, so the same call id runs again)", t.counter(&key).await?, 2)
}

async fn no_call_id_always_runs(t: Target) -> Check {
    let key = t.key("no_id");
    let call = t.call("count").json(json!({ "key": key }));
    expect::ok_eq(&call.send().await?, &json!(1))?;
    expect::ok_eq(&call.send().await?, &json!(2))
}

async fn call_key_includes_the_user(t: Target) -> Check {
    let (key, call_id) = (t.key("by_user"), id());
    let as_user = |id: &str| count(&t, &key, 0, &call_id).header("x-user-type", "customer").header("x-user-id", id);
    expect::ok_eq(&as_user("a").send().await?, &json!(1))?;
    expect::ok_eq(&as_user("b").send().await?, &json!(2))?;
    expect::ok_eq(&count(&t, &key, 0, &call_id).send().await?, &json!(3))?;
    // And each user's own call is still recorded.
    expect::ok_eq(&as_user("a").send().await?, &json!(1))
}

async fn call_key_includes_the_method(t: Target) -> Check {
    let (key, call_id) = (t.key("by_method"), id());
    expect::ok_eq(&count(&t, &key, 0, &call_id).send().await?, &json!(1))?;
    let fail = t.call("fail").header("x-call-id", &call_id).json(json!({ "variant": "Refused", "key": key }));
    expect::error(&fail.send().await?, 422, "service")?;
    expect::equal("runs", t.counter(&key).await?, 2)
}

async fn undecodable_body_releases_the_call_id(t: Target) -> Check {
    let (key, call_id) = (t.key("undecodable"), id());
    let bad = t.call("count").header("x-call-id", &call_id).json(json!({ "key": 5 }));
    expect::bad_argument(&bad.send().await?, Some("key"))?;
    // The same request again meets the same 400, not a 409 or a mismatch.
    expect::bad_argument(&bad.send().await?, Some("key"))?;
    expect::ok_eq(&count(&t, &key, 0, &call_id).send().await?, &json!(1))
}
