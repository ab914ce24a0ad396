//! §3 Size: the body limit, declared or found while reading chunks.

use super::{Case, case};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§3", body_at_limit_is_accepted),
        case!("§3", chunked_body_is_accepted),
        case!("§3", declared_body_over_limit_is_413),
        case!("§3", chunked_body_over_limit_is_413),
    ]
}

/// An `echo` body of exactly `len` bytes: `{"text":"xx..."}`.
fn body_of(len: usize) -> Vec<u8> {
    let frame = br#"{"text":""}"#.len();
    format!(r#"{{"text":"{}"}}"#, "x".repeat(len.saturating_sub(frame))).into_bytes()
}

async fn body_at_limit_is_accepted(t: Target) -> Check {
    let body = body_of(t.max_body_bytes);
    let response = t.call("echo").body(&body).send().await?;
    let value = expect::ok(&response)?;
    let text = value.get("text").and_then(serde_json::Value::as_str).map_or(0, str::len);
    expect::equal("length of the echoed text", text, body.len() - br#"{"text":""}"#.len())
}

async fn chunked_body_is_accepted(t: Target) -> Check {
    let response = t.call("echo").body(body_of(200_000)).chunked().send().await?;
    expect::ok(&response).map(drop)
}

async fn declared_body_over_limit_is_413(t: Target) -> Check {
    let response = t.call("echo").body(body_of(t.max_body_bytes + 1)).send().await?;
    expect::error(&response, 413, "payload_too_large").map(drop)
}

async fn chunked_body_over_limit_is_413(t: Target) -> Check {
    let response = t.call("echo").body(body_of(t.max_body_bytes + 1)).chunked().send().await?;
    expect::error(&response, 413, "payload_too_large").map(drop)
}
