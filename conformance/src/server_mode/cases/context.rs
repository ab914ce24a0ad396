//! §3 Context propagation: the method runs with the user, activity and deadline its
//! request carried (read back through `context`).

use serde_json::{Value, json};

use super::{Case, case};
use crate::server_mode::call::{Call, Target};
use crate::server_mode::expect::{self, Check};
use crate::spec::is_canonical_uuid;

pub fn cases() -> Vec<Case> {
    vec![
        case!("§3", context_user_is_seen),
        case!("§3", context_user_without_id_is_seen),
        case!("§3", context_user_fields_at_limits_are_seen),
        case!("§3", context_no_user_is_seen_as_none),
        case!("§3", context_activity_is_seen),
        case!("§3", context_activity_is_minted_when_absent),
        case!("§3", context_deadline_is_seen),
    ]
}

async fn seen(call: Call) -> Result<Value, String> {
    let value = expect::ok(&call.send().await?)?;
    if value.is_object() { Ok(value) } else { Err(format!("context returned {value}, not an object")) }
}

fn field<'a>(seen: &'a Value, name: &str) -> &'a Value {
    seen.get(name).unwrap_or(&Value::Null)
}

async fn context_user_is_seen(t: Target) -> Check {
    let seen = seen(t.call("context").header("x-user-type", "customer").header("x-user-id", "alice")).await?;
    expect::equal("user_type", field(&seen, "user_type"), &json!("customer"))?;
    expect::equal("user_id", field(&seen, "user_id"), &json!("alice"))
}

async fn context_user_without_id_is_seen(t: Target) -> Check {
    let seen = seen(t.call("context").header("x-user-type", "guest")).await?;
    expect::equal("user_type", field(&seen, "user_type"), &json!("guest"))?;
    expect::equal("user_id", field(&seen, "user_id"), &Value::Null)
}

async fn context_user_fields_at_limits_are_seen(t: Target) -> Check {
    // UTF-8 beyond ASCII travels as raw bytes; 256 bytes is the longest allowed.
    let long = "é".repeat(128);
    let seen = seen(t.call("context").header("x-user-type", "partner").header("x-user-id", &long)).await?;
    expect::equal("user_type", field(&seen, "user_type"), &json!("partner"))?;
    expect::equal("user_id", field(&seen, "user_id"), &json!(long))
}

async fn context_no_user_is_seen_as_none(t: Target) -> Check {
    let seen = seen(t.call("context")).await?;
    expect::equal("user_type", field(&seen, "user_type"), &Value::Null)?;
    expect::equal("user_id", field(&seen, "user_id"), &Value::Null)
}

async fn context_activity_is_seen(t: Target) -> Check {
    let activity = uuid::Uuid::new_v4().to_string();
    let seen = seen(t.call("context").header("x-activity-id", &activity)).await?;
    expect::equal("activity_id", field(&seen, "activity_id"), &json!(activity))
}

async fn context_activity_is_minted_when_absent(t: Target) -> Check {
    let seen = seen(t.call("context")).await?;
    match field(&seen, "activity_id") {
        Value::String(id) if is_canonical_uuid(id.as_bytes()) => Ok(()),
        other => Err(format!("activity_id {other}: expected a minted UUID in canonical form")),
    }
}

async fn context_deadline_is_seen(t: Target) -> Check {
    let with = seen(t.call("context").header("x-deadline-ms", "60000")).await?;
    match field(&with, "deadline_ms").as_u64() {
        Some(1..=60_000) => {}
        _ => return Err(format!("deadline_ms {} for x-deadline-ms: 60000", field(&with, "deadline_ms"))),
    }
    let without = seen(t.call("context")).await?;
    expect::equal("deadline_ms without x-deadline-ms", field(&without, "deadline_ms"), &Value::Null)
}
