//! §4: results, service errors, panics, the deadline, and the order of the checks.

use serde_json::{Value, json};

use super::{Case, Needs, case};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};
use crate::spec::PANIC_DETAIL;

pub fn cases() -> Vec<Case> {
    vec![
        case!("§4.1", unit_result_is_null),
        case!("§4.1", number_result),
        case!("§4.2", service_error_unit_variant),
        case!("§4.2", service_error_struct_variant),
        case!("§4.2", service_error_newtype_variant),
        case!("§4.2", panic_is_500_without_details),
        case!("§9", server_keeps_serving_after_panic),
        case!("§4.2", deadline_zero_is_504_and_runs_nothing),
        case!("§3", deadline_does_not_stop_a_run_without_call_id),
        case!("§4.2", order_verb_before_content_type),
        case!("§4.2", order_content_type_before_headers),
        case!("§4.2", order_headers_before_size),
        case!("§4.2", order_headers_before_deadline),
        case!("§4.2", order_deadline_before_body),
        case!("§4.2", order_size_before_signature, Needs::Secret),
        case!("§4.2", order_signature_before_deadline, Needs::Secret),
    ]
}

async fn unit_result_is_null(t: Target) -> Check {
    let call = t.call("fail").json(json!({ "variant": "none" }));
    expect::ok_eq(&call.send().await?, &Value::Null)
}

async fn number_result(t: Target) -> Check {
    let key = t.key("number_result");
    expect::ok_eq(&t.call("count").json(json!({ "key": key })).send().await?, &json!(1))
}

/// `fail(variant, key)` is a 422 service error of `variant` with `value`.
async fn service_error(t: &Target, variant: &str, value: Value) -> Check {
    let key = t.key("service_error");
    let response = t.call("fail").json(json!({ "variant": variant, "key": key })).send().await?;
    let body = expect::error(&response, 422, "service")?;
    let value = value_with_key(value, &key);
    expect::equal("type", body.get("type"), Some(&json!("ConformanceError")))?;
    expect::equal("variant", body.get("variant"), Some(&json!(variant)))?;
    expect::equal("value", body.get("value"), Some(&value))
}

/// Puts `key` where the `"KEY"` placeholder is.
fn value_with_key(value: Value, key: &str) -> Value {
    serde_json::from_str(&value.to_string().replace("KEY", key)).expect("JSON stays JSON")
}

async fn service_error_unit_variant(t: Target) -> Check {
    service_error(&t, "Refused", json!("Refused")).await
}

async fn service_error_struct_variant(t: Target) -> Check {
    service_error(&t, "NotFound", json!({ "NotFound": { "id": "KEY" } })).await
}

async fn service_error_newtype_variant(t: Target) -> Check {
    service_error(&t, "Invalid", json!({ "Invalid": "KEY" })).await
}

async fn panic_is_500_without_details(t: Target) -> Check {
    let response = t.call("panic").json(json!({ "key": t.key("panic") })).send().await?;
    expect::error(&response, 500, "panic")?;
    if response.body_text().contains(PANIC_DETAIL) {
        return Err(format!("the 500 carries the panic message: {}", response.body_text()));
    }
    Ok(())
}

async fn server_keeps_serving_after_panic(t: Target) -> Check {
    let key = t.key("keeps_serving");
    expect::error(&t.call("panic").json(json!({ "key": key })).send().await?, 500, "panic")?;
    expect::ok_eq(
        &t.call("echo").json(json!({ "text": "still here" })).send().await?,
        &json!({ "text": "still here", "note": null }),
    )
}

async fn deadline_zero_is_504_and_runs_nothing(t: Target) -> Check {
    let key = t.key("deadline_zero");
    let response = t.call("count").header("x-deadline-ms", "0").json(json!({ "key": key })).send().await?;
    expect::error(&response, 504, "deadline_exceeded")?;
    expect::equal("runs", t.counter(&key).await?, 0)
}

async fn deadline_does_not_stop_a_run_without_call_id(t: Target) -> Check {
    // The deadline bounds waits, not the method: the run ends and its reply is sent.
    let key = t.key("outlives_deadline");
    let call = t.call("count").header("x-deadline-ms", "50").json(json!({ "key": key, "sleep_ms": 300 }));
    expect::ok_eq(&call.send().await?, &json!(1))
}

async fn order_verb_before_content_type(t: Target) -> Check {
    let response = t.call("echo").verb("GET").content_type(Some("text/plain")).send().await?;
    expect::error(&response, 405, "method_not_allowed").map(drop)
}

async fn order_content_type_before_headers(t: Target) -> Check {
    let response = t.call("echo").content_type(Some("text/plain")).header("x-call-id", "bad").send().await?;
    expect::error(&response, 415, "unsupported_media_type").map(drop)
}

async fn order_headers_before_size(t: Target) -> Check {
    let body = vec![b' '; t.max_body_bytes + 1];
    let response = t.call("echo").header("x-call-attempt", "zero").body(body).send().await?;
    expect::bad_header(&response, "x-call-attempt")
}

async fn order_headers_before_deadline(t: Target) -> Check {
    let response = t.call("context").header("x-deadline-ms", "0").header("x-activity-id", "bad").send().await?;
    expect::bad_header(&response, "x-activity-id")
}

async fn order_deadline_before_body(t: Target) -> Check {
    let response = t.call("echo").header("x-deadline-ms", "0").body("[not json").send().await?;
    expect::error(&response, 504, "deadline_exceeded").map(drop)
}

async fn order_size_before_signature(t: Target) -> Check {
    let body = vec![b' '; t.max_body_bytes + 1];
    let response = t.call("echo").unsigned().body(body).send().await?;
    expect::error(&response, 413, "payload_too_large").map(drop)
}

async fn order_signature_before_deadline(t: Target) -> Check {
    let response = t.call("context").unsigned().header("x-deadline-ms", "0").send().await?;
    expect::error(&response, 401, "unauthorized").map(drop)
}
