//! §4.3 Streamed replies: the frames, the final frame, errors before and during a
//! stream, and a call id's answer once a stream has started (§5).

use serde_json::{Value, json};

use super::{Case, case};
use crate::http::Response;
use crate::server_mode::call::{Call, Target};
use crate::server_mode::expect::{self, Check};
use crate::spec::PANIC_DETAIL;

pub fn cases() -> Vec<Case> {
    vec![
        case!("§4.3", stream_is_ndjson_items_then_end_ok),
        case!("§4.3", stream_of_no_items_is_only_the_final_frame),
        case!("§4.3", stream_error_before_the_first_item_is_an_error_reply),
        case!("§4.3", stream_typed_error_is_the_final_frame),
        case!("§4.3", stream_panic_is_a_panic_final_frame_and_the_server_keeps_serving),
        case!("§5", stream_duplicate_call_id_is_409_stream_started),
    ]
}

fn stream(t: &Target, count: u64, end: &str) -> Call {
    t.call("stream").json(json!({ "count": count, "end": end }))
}

/// The frames of a `200 application/x-ndjson` reply: one JSON object per line, each
/// line ended by `\n`.
fn frames(response: &Response) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    if response.status != 200 {
        return Err(format!("expected a 200 stream, got {} {}", response.status, response.body_text()));
    }
    let content_type = response.head.get("content-type").map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
    let media_type = content_type.as_deref().and_then(|v| v.split(';').next()).map(str::trim);
    if media_type != Some("application/x-ndjson") {
        return Err(format!("a stream's content-type must be application/x-ndjson (§4.3), got {content_type:?}"));
    }
    let body = std::str::from_utf8(&response.body).map_err(|_| "the stream is not UTF-8".to_owned())?;
    let Some(body) = body.strip_suffix('\n') else {
        return Err(format!("the last frame does not end with a newline: {}", response.body_text()));
    };
    body.split('\n')
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(frame)) => Ok(frame),
            _ => Err(format!("a frame is not one JSON object on one line: {line}")),
        })
        .collect()
}

/// The items before the final frame (skipping frames with no known member), and the
/// final frame; nothing may follow it.
fn split(frames: Vec<serde_json::Map<String, Value>>) -> Result<(Vec<Value>, serde_json::Map<String, Value>), String> {
    let mut items = Vec::new();
    let mut frames = frames.into_iter();
    for frame in frames.by_ref() {
        if frame.contains_key("end") {
            if let Some(extra) = frames.next() {
                return Err(format!("a frame after the final frame: {}", Value::Object(extra)));
            }
            return Ok((items, frame));
        }
        if let Some(item) = frame.get("item") {
            items.push(item.clone());
        }
    }
    Err("the stream has no final frame (`end`)".to_owned())
}

async fn stream_is_ndjson_items_then_end_ok(t: Target) -> Check {
    let (items, end) = split(frames(&stream(&t, 3, "ok").send().await?)?)?;
    expect::equal("items", items, vec![json!(0), json!(1), json!(2)])?;
    expect::equal("final frame", Value::Object(end), json!({ "end": "ok" }))
}

async fn stream_of_no_items_is_only_the_final_frame(t: Target) -> Check {
    let (items, end) = split(frames(&stream(&t, 0, "ok").send().await?)?)?;
    expect::equal("items", items.len(), 0)?;
    expect::equal("final frame", Value::Object(end), json!({ "end": "ok" }))
}

async fn stream_error_before_the_first_item_is_an_error_reply(t: Target) -> Check {
    let body = expect::error(&stream(&t, 3, "before").send().await?, 422, "service")?;
    expect::equal("value", body.get("value"), Some(&json!("Refused")))
}

async fn stream_typed_error_is_the_final_frame(t: Target) -> Check {
    let (items, end) = split(frames(&stream(&t, 2, "Refused").send().await?)?)?;
    expect::equal("items", items, vec![json!(0), json!(1)])?;
    expect::equal("end", end.get("end"), Some(&json!("error")))?;
    let error = end.get("error").and_then(Value::as_object).ok_or("an error end without its `error` body")?;
    expect::equal("kind", error.get("kind"), Some(&json!("service")))?;
    expect::equal("type", error.get("type"), Some(&json!("ConformanceError")))?;
    expect::equal("value", error.get("value"), Some(&json!("Refused")))
}

async fn stream_panic_is_a_panic_final_frame_and_the_server_keeps_serving(t: Target) -> Check {
    let response = stream(&t, 2, "panic").send().await?;
    if response.body_text().contains(PANIC_DETAIL) {
        return Err("the panic's message was sent".to_owned());
    }
    let (items, end) = split(frames(&response)?)?;
    expect::equal("items", items, vec![json!(0), json!(1)])?;
    let kind = end.get("error").and_then(|error| error.get("kind"));
    expect::equal("final frame's kind", kind, Some(&json!("panic")))?;
    let (items, _) = split(frames(&stream(&t, 1, "ok").send().await?)?)?;
    expect::equal("items after the panic", items, vec![json!(0)])
}

async fn stream_duplicate_call_id_is_409_stream_started(t: Target) -> Check {
    let call_id = uuid::Uuid::new_v4().to_string();
    let first = stream(&t, 2, "ok").header("x-call-id", &call_id).send().await?;
    split(frames(&first)?)?;
    let again = stream(&t, 2, "ok").header("x-call-id", &call_id).header("x-call-attempt", "2").send().await?;
    expect::error(&again, 409, "stream_started")?;
    Ok(())
}
