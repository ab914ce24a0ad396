//! The contract between client mode and the client program under test: the plan it
//! is given (env `INTERCALL_CONFORMANCE_PLAN`) and the line it prints per call.
//! docs/CONFORMANCE.md describes both for implementers in other languages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable with the conformance service's base URL.
pub const URL_ENV: &str = "INTERCALL_CONFORMANCE_URL";
/// The environment variable with the plan, as JSON.
pub const PLAN_ENV: &str = "INTERCALL_CONFORMANCE_PLAN";
/// The environment variable with the shared secret, when calls must be signed.
pub const SECRET_ENV: &str = "INTERCALL_CONFORMANCE_SECRET";

/// What the client program does: `calls`, one after another, each with a per-attempt
/// timeout of `timeout_ms` and at least 3 attempts for retryable failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The per-attempt timeout to configure, in milliseconds.
    pub timeout_ms: u64,
    /// The calls, in order.
    pub calls: Vec<PlanCall>,
}

/// One logical call of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCall {
    /// The name printed back on the outcome line.
    pub case: String,
    /// A method of the conformance service.
    pub method: String,
    /// Its arguments, by name.
    pub args: Value,
    /// The user to call as, if any.
    pub user: Option<PlanUser>,
    /// Calls with the same label share one activity id; `null`: the client's own.
    pub activity: Option<String>,
}

/// A user context for one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanUser {
    /// `x-user-type`.
    #[serde(rename = "type")]
    pub user_type: String,
    /// `x-user-id`; `null` for a user without one.
    pub id: Option<String>,
}

/// How one call ended, as the client program reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `CALL <case> ok <result JSON>`.
    Ok(Value),
    /// `CALL <case> error <error value JSON>`: the method's typed error, rebuilt.
    Error(Value),
    /// `CALL <case> failure <category> [<status>]`: anything else. Categories:
    /// `status` (with the HTTP status), `decode`, `timeout`, `connect`, `other`.
    Failure {
        /// One of the categories above.
        category: String,
        /// The HTTP status, for `status` (optional for the others).
        status: Option<u16>,
    },
}

impl Outcome {
    /// The output line for `case`.
    pub fn line(&self, case: &str) -> String {
        match self {
            Outcome::Ok(value) => format!("CALL {case} ok {value}"),
            Outcome::Error(value) => format!("CALL {case} error {value}"),
            Outcome::Failure { category, status: Some(status) } => format!("CALL {case} failure {category} {status}"),
            Outcome::Failure { category, status: None } => format!("CALL {case} failure {category}"),
        }
    }

    /// Reads an output line; `None` for any other line.
    pub fn parse(line: &str) -> Option<(String, Outcome)> {
        let mut parts = line.trim_end().splitn(4, ' ');
        if parts.next() != Some("CALL") {
            return None;
        }
        let case = parts.next()?.to_owned();
        let kind = parts.next()?;
        let rest = parts.next().unwrap_or("");
        let outcome = match kind {
            "ok" => Outcome::Ok(serde_json::from_str(rest).ok()?),
            "error" => Outcome::Error(serde_json::from_str(rest).ok()?),
            "failure" => {
                let mut words = rest.split_whitespace();
                let category = words.next()?.to_owned();
                Outcome::Failure { category, status: words.next().and_then(|s| s.parse().ok()) }
            }
            _ => return None,
        };
        Some((case, outcome))
    }
}

/// `ITEM <case> <item as compact JSON>`: one item of a stream method's call, printed
/// as it arrives, before the call's `CALL` line.
pub fn item_line(case: &str, item: &Value) -> String {
    format!("ITEM {case} {item}")
}

/// Reads an item line; `None` for any other line.
pub fn parse_item(line: &str) -> Option<(String, Value)> {
    let mut parts = line.trim_end().splitn(3, ' ');
    if parts.next() != Some("ITEM") {
        return None;
    }
    let case = parts.next()?.to_owned();
    Some((case, serde_json::from_str(parts.next()?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let outcomes = [
            Outcome::Ok(serde_json::json!({ "text": "a b", "note": null })),
            Outcome::Error(serde_json::json!("Refused")),
            Outcome::Failure { category: "status".into(), status: Some(503) },
            Outcome::Failure { category: "timeout".into(), status: None },
        ];
        for outcome in outcomes {
            assert_eq!(Outcome::parse(&outcome.line("c")), Some(("c".to_owned(), outcome)));
        }
        let item = serde_json::json!({ "n": 1 });
        assert_eq!(parse_item(&item_line("c", &item)), Some(("c".to_owned(), item)));
        assert_eq!(Outcome::parse(&item_line("c", &Value::Null)), None);
    }
}
