//! §6 Signed calls: with the shared secret, only correctly signed calls run.

use serde_json::json;

use super::{Case, Needs, case, each};
use crate::server_mode::call::{Call, Target};
use crate::server_mode::expect::{self, Check};
use crate::spec::{SIGNATURE, TIMESTAMP};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§6", signed_call_is_accepted, Needs::Secret),
        case!("§6", unsigned_call_is_401, Needs::Secret),
        case!("§6", tampered_body_is_401, Needs::Secret),
        case!("§6", tampered_context_is_401, Needs::Secret),
        case!("§6", other_route_is_401, Needs::Secret),
        case!("§6", wrong_secret_is_401, Needs::Secret),
        case!("§6", timestamp_outside_window_is_401, Needs::Secret),
        case!("§6", malformed_signature_is_401, Needs::Secret),
        case!("§6", malformed_timestamp_is_401, Needs::Secret),
        case!("§6", half_signed_is_401, Needs::Secret),
        case!("§6", repeated_signature_headers_are_401, Needs::Secret),
        case!("§6", attempt_and_deadline_are_not_signed, Needs::Secret),
        case!("§6", signature_headers_are_ignored_without_secret, Needs::NoSecret),
    ]
}

fn secret(t: &Target) -> &[u8] {
    t.secret.as_deref().map_or(&[][..], Vec::as_slice)
}

/// A call with every signed field set.
fn full(t: &Target) -> Call {
    t.call("echo")
        .header("x-call-id", uuid::Uuid::new_v4().to_string())
        .header("x-activity-id", uuid::Uuid::new_v4().to_string())
        .header("x-user-type", "customer")
        .header("x-user-id", "alice")
        .json(json!({ "text": "signed" }))
}

/// `call` signed as it stands, then changed by `change`, is a 401.
async fn refused_after(call: Call, sign_with: &[u8], offset_ms: i64, change: impl FnOnce(Call) -> Call) -> Check {
    let (timestamp, signature) = call.signature(sign_with, offset_ms);
    let call = change(call.unsigned()).header(TIMESTAMP, timestamp).header(SIGNATURE, signature);
    expect::error(&call.send().await?, 401, "unauthorized").map(drop)
}

async fn signed_call_is_accepted(t: Target) -> Check {
    expect::ok_eq(&full(&t).send().await?, &json!({ "text": "signed", "note": null }))
}

async fn unsigned_call_is_401(t: Target) -> Check {
    expect::error(&full(&t).unsigned().send().await?, 401, "unauthorized").map(drop)
}

async fn tampered_body_is_401(t: Target) -> Check {
    refused_after(full(&t), secret(&t), 0, |call| call.json(json!({ "text": "tampered" }))).await
}

async fn tampered_context_is_401(t: Target) -> Check {
    // Built without the user, signed, then the user added: the signature covers it.
    let call = t.call("context").header("x-call-id", uuid::Uuid::new_v4().to_string());
    refused_after(call, secret(&t), 0, |call| call.header("x-user-type", "admin")).await
}

async fn other_route_is_401(t: Target) -> Check {
    // Signed for `echo`, sent to `context`: the route is part of the signature.
    let echo = t.call("echo");
    let (timestamp, signature) = echo.signature(secret(&t), 0);
    let call = t.call("context").unsigned().header(TIMESTAMP, timestamp).header(SIGNATURE, signature);
    expect::error(&call.send().await?, 401, "unauthorized").map(drop)
}

async fn wrong_secret_is_401(t: Target) -> Check {
    refused_after(full(&t), b"not the secret, but 16+ bytes long", 0, |call| call).await
}

async fn timestamp_outside_window_is_401(t: Target) -> Check {
    // The default window is 5 minutes either way; an hour is outside any sane one.
    each([-3_600_000i64, 3_600_000], |offset| {
        let t = t.clone();
        async move { refused_after(full(&t), secret(&t), offset, |call| call).await }
    })
    .await
}

async fn malformed_signature_is_401(t: Target) -> Check {
    let (timestamp, signature) = full(&t).signature(secret(&t), 0);
    let hex = signature.trim_start_matches("v1=").to_owned();
    let bad = [
        format!("v2={hex}"),
        hex.clone(),
        format!("v1={}", hex.to_ascii_uppercase()),
        "v1=zz".to_owned(),
        format!("v1={}", &hex[..62]),
        String::new(),
    ];
    each(bad, |signature| {
        let (t, timestamp) = (t.clone(), timestamp.clone());
        async move {
            let call = full(&t).unsigned().header(TIMESTAMP, &timestamp).header(SIGNATURE, signature);
            expect::error(&call.send().await?, 401, "unauthorized").map(drop)
        }
    })
    .await
}

async fn malformed_timestamp_is_401(t: Target) -> Check {
    // Each signed correctly over its own text: only the timestamp's form is wrong.
    let now = crate::signing::timestamp(0);
    each([format!("+{now}"), format!(" {now}x"), format!("{now}.0"), "soon".to_owned(), String::new()], |timestamp| {
        let t = t.clone();
        async move {
            let call = full(&t);
            let signature = call.signature_at(secret(&t), timestamp.trim());
            let call = call.unsigned().header(TIMESTAMP, &timestamp).header(SIGNATURE, signature);
            expect::error(&call.send().await?, 401, "unauthorized").map(drop)
        }
    })
    .await
}

async fn half_signed_is_401(t: Target) -> Check {
    let call = full(&t);
    let (timestamp, signature) = call.signature(secret(&t), 0);
    expect::error(&call.clone().unsigned().header(TIMESTAMP, &timestamp).send().await?, 401, "unauthorized")?;
    expect::error(&call.unsigned().header(SIGNATURE, &signature).send().await?, 401, "unauthorized").map(drop)
}

async fn repeated_signature_headers_are_401(t: Target) -> Check {
    let call = full(&t);
    let (timestamp, signature) = call.signature(secret(&t), 0);
    let twice = |name: &'static str| {
        let call = call.clone().unsigned().header(TIMESTAMP, &timestamp).header(SIGNATURE, &signature);
        let value = if name == TIMESTAMP { &timestamp } else { &signature };
        call.header(name, value)
    };
    expect::error(&twice(TIMESTAMP).send().await?, 401, "unauthorized")?;
    expect::error(&twice(SIGNATURE).send().await?, 401, "unauthorized").map(drop)
}

async fn attempt_and_deadline_are_not_signed(t: Target) -> Check {
    let call = full(&t);
    let (timestamp, signature) = call.signature(secret(&t), 0);
    let call = call
        .unsigned()
        .header("x-call-attempt", "3")
        .header("x-deadline-ms", "60000")
        .header(TIMESTAMP, timestamp)
        .header(SIGNATURE, signature);
    expect::ok(&call.send().await?).map(drop)
}

async fn signature_headers_are_ignored_without_secret(t: Target) -> Check {
    let call = t
        .call("echo")
        .header(TIMESTAMP, "not a time")
        .header(SIGNATURE, "v1=nonsense")
        .header(SIGNATURE, "again")
        .json(json!({ "text": "s" }));
    expect::ok_eq(&call.send().await?, &json!({ "text": "s", "note": null }))
}
