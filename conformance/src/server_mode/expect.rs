//! What cases expect of a response, each check saying what arrived instead. Every
//! one of them also checks §4's `content-type: application/json`.

use serde_json::{Map, Value};

use crate::http::Response;
use crate::spec;

pub use crate::report::{Check, equal};

/// An error body, as a JSON object.
pub type ErrorBody = Map<String, Value>;

fn json_content_type(response: &Response) -> Check {
    match response.head.get("content-type") {
        Some(value) if spec::is_json_media_type(value) => Ok(()),
        Some(value) => Err(format!(
            "status {} with content-type `{}`, not application/json (§4)",
            response.status,
            String::from_utf8_lossy(value)
        )),
        None => Err(format!("status {} without a content-type (§4 wants application/json)", response.status)),
    }
}

/// A `200` whose body is JSON; returns the value.
pub fn ok(response: &Response) -> Result<Value, String> {
    if response.status != 200 {
        return Err(format!("expected 200, got {} {}", response.status, response.body_text()));
    }
    json_content_type(response)?;
    serde_json::from_slice(&response.body).map_err(|e| format!("200 body is not JSON ({e}): {}", response.body_text()))
}

/// A `200` whose body is `want`.
pub fn ok_eq(response: &Response, want: &Value) -> Check {
    let got = ok(response)?;
    if &got == want { Ok(()) } else { Err(format!("expected result {want}, got {got}")) }
}

/// An error response of `status` and `kind` whose body has the shape of §4.2.
pub fn error(response: &Response, status: u16, kind: &str) -> Result<ErrorBody, String> {
    if response.status != status {
        return Err(format!("expected {status} {kind}, got {} {}", response.status, response.body_text()));
    }
    json_content_type(response)?;
    let body: ErrorBody = serde_json::from_slice(&response.body)
        .map_err(|_| format!("{status} body is not a JSON object: {}", response.body_text()))?;
    match body.get("kind") {
        Some(Value::String(got)) if got == kind => {}
        got => return Err(format!("expected kind `{kind}`, got {got:?} in {}", response.body_text())),
    }
    if !matches!(body.get("message"), Some(Value::String(_))) {
        return Err(format!("the error body has no string `message`: {}", response.body_text()));
    }
    let present = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    if let Some(argument) = body.get("argument").filter(|v| !v.is_null()) {
        if kind != "bad_request" || !argument.is_string() {
            return Err(format!("`argument` {argument} on a `{kind}` error (§4.2: bad_request only, a string)"));
        }
    }
    if kind == "service" {
        if !matches!(body.get("type"), Some(Value::String(_))) || !body.contains_key("value") {
            return Err(format!("a service error needs string `type` and `value` (§4.2): {}", response.body_text()));
        }
    } else if let Some(name) = ["type", "variant", "value"].into_iter().find(|name| present(name)) {
        return Err(format!("`{name}` on a `{kind}` error (§4.2: service errors only)"));
    }
    Ok(body)
}

/// A `400 bad_request` whose `argument` is `want` (`None`: absent).
pub fn bad_argument(response: &Response, want: Option<&str>) -> Check {
    let body = error(response, 400, "bad_request")?;
    let got = body.get("argument").and_then(Value::as_str);
    if got == want { Ok(()) } else { Err(format!("expected `argument` {want:?}, got {got:?}")) }
}

/// A `400 bad_request` whose message names `header`.
pub fn bad_header(response: &Response, header: &str) -> Check {
    let body = error(response, 400, "bad_request")?;
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    if message.to_ascii_lowercase().contains(header) {
        Ok(())
    } else {
        Err(format!("the 400's message does not name `{header}`: {message}"))
    }
}
