//! The calls of client mode: for each, what the client program is told to call, what
//! the suite's server answers to each of its arrivals, and what must have happened.

use serde_json::{Value, json};

use super::plan::{Outcome, PlanCall, PlanUser};
use super::server::Arrival;
use crate::report::{Check, equal};

/// What the server does with the `n`th arrival (from 0) of a scenario's calls.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// Answers as the conformance service does.
    Normal,
    /// Answers this; `{case}` in the body becomes the scenario's name.
    Respond {
        /// The status code.
        status: u16,
        /// Header lines (`content-length` is added).
        headers: &'static [(&'static str, &'static str)],
        /// The body.
        body: &'static str,
    },
    /// A stream's `200 application/x-ndjson` reply, chunked, one HTTP chunk per
    /// string; when `cut`, the connection closes after them, before the body's end.
    Stream {
        /// The body's chunks.
        chunks: &'static [&'static str],
        /// Whether the body is cut off.
        cut: bool,
    },
    /// Closes the connection after reading the request.
    Drop,
    /// Answers nothing until the client gives up.
    Hold,
}

/// What a check sees: the scenario's arrivals and the outcomes the client printed.
pub struct Seen<'a> {
    /// Requests that carried this scenario's name, in arrival order.
    pub arrivals: Vec<&'a Arrival>,
    /// Outcome lines printed for it.
    pub outcomes: Vec<&'a Outcome>,
    /// Item lines printed for it (a stream method's), in order.
    pub items: Vec<&'a Value>,
    /// Requests to paths outside the service (a followed redirect).
    pub strays: Vec<&'a Arrival>,
}

/// One scenario: its name is the case name, and the `text` (`echo`), `key` (`fail`)
/// or `end` (`stream`) its calls carry, so that every request is attributed to its scenario.
pub struct Scenario {
    /// Case name.
    pub name: &'static str,
    /// Where docs/PROTOCOL.md says it.
    pub section: &'static str,
    method: &'static str,
    variant: &'static str,
    user: Option<(&'static str, Option<&'static str>)>,
    activity: Option<&'static str>,
    calls: usize,
    /// The server's reply to each arrival.
    pub script: fn(usize) -> Reply,
    /// The verdict.
    pub check: fn(&Seen<'_>) -> Check,
}

impl Scenario {
    fn echo(name: &'static str, section: &'static str, check: fn(&Seen<'_>) -> Check) -> Self {
        Self {
            name,
            section,
            method: "echo",
            variant: "",
            user: None,
            activity: None,
            calls: 1,
            script: |_| Reply::Normal,
            check,
        }
    }

    fn fail(name: &'static str, section: &'static str, variant: &'static str, check: fn(&Seen<'_>) -> Check) -> Self {
        Self { method: "fail", variant, ..Self::echo(name, section, check) }
    }

    fn stream(
        name: &'static str,
        section: &'static str,
        script: fn(usize) -> Reply,
        check: fn(&Seen<'_>) -> Check,
    ) -> Self {
        Self { method: "stream", script, ..Self::echo(name, section, check) }
    }

    fn script(self, script: fn(usize) -> Reply) -> Self {
        Self { script, ..self }
    }

    /// The plan's calls for this scenario.
    pub fn plan_calls(&self) -> Vec<PlanCall> {
        let args = match self.method {
            "fail" => json!({ "variant": self.variant, "key": self.name }),
            "stream" => json!({ "count": 3, "end": self.name }),
            _ => json!({ "text": self.name }),
        };
        let user =
            self.user.map(|(user_type, id)| PlanUser { user_type: user_type.to_owned(), id: id.map(str::to_owned) });
        let call = PlanCall {
            case: self.name.to_owned(),
            method: self.method.to_owned(),
            args,
            user,
            activity: self.activity.map(str::to_owned),
        };
        vec![call; self.calls]
    }
}

const SERVICE_ERROR_EXTRA: &str = r#"{"kind":"service","message":"Conformance.fail returned ConformanceError::NotFound","type":"ConformanceError","variant":"NotFound","value":{"NotFound":{"id":"{case}"}},"retry":false,"details":[1,2]}"#;

/// Every scenario, in plan order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario::echo("result_is_decoded", "§7", |s| ok(s, json!({ "text": "result_is_decoded", "note": null }))),
        Scenario::fail("unit_result_is_decoded", "§4.1", "none", |s| ok(s, Value::Null)),
        Scenario::fail("service_error_unit_is_rebuilt", "§7", "Refused", |s| error(s, json!("Refused"))),
        Scenario::fail("service_error_struct_is_rebuilt", "§7", "NotFound", |s| {
            error(s, json!({ "NotFound": { "id": "service_error_struct_is_rebuilt" } }))
        }),
        Scenario::fail("service_error_newtype_is_rebuilt", "§7", "Invalid", |s| {
            error(s, json!({ "Invalid": "service_error_newtype_is_rebuilt" }))
        }),
        Scenario::fail("error_body_unknown_members_are_ignored", "§4.2", "NotFound", |s| {
            error(s, json!({ "NotFound": { "id": "error_body_unknown_members_are_ignored" } }))
        })
        .script(|_| json_reply(422, SERVICE_ERROR_EXTRA)),
        Scenario::fail("service_kind_counts_only_at_422", "§7", "NotFound", |s| failure(s, &["status"], Some(400)))
            .script(|_| json_reply(400, r#"{"kind":"service","message":"not at 422","type":"ConformanceError","variant":"NotFound","value":{"NotFound":{"id":"x"}}}"#)),
        Scenario::fail("undecodable_service_value_is_a_decode_failure", "§7", "NotFound", |s| failure(s, &["decode"], None))
            .script(|_| json_reply(422, r#"{"kind":"service","message":"m","type":"ConformanceError","variant":"Nope","value":{"Nope":1}}"#)),
        Scenario::echo("undecodable_result_is_a_decode_failure", "§7", |s| failure(s, &["decode"], None))
            .script(|_| json_reply(200, r#"{"unexpected":true}"#)),
        Scenario::echo("other_2xx_is_a_status_failure", "§7", |s| failure(s, &["status"], Some(201)))
            .script(|_| json_reply(201, r#"{"text":"other_2xx_is_a_status_failure","note":null}"#)),
        Scenario::echo("result_needs_json_content_type", "§7", |s| failure(s, &["decode"], None)).script(|_| Reply::Respond {
            status: 200,
            headers: &[("content-type", "text/plain")],
            body: r#"{"text":"result_needs_json_content_type","note":null}"#,
        }),
        Scenario::echo("foreign_error_body_is_a_status_failure", "§7", |s| failure(s, &["status"], Some(500))).script(|_| {
            Reply::Respond { status: 500, headers: &[("content-type", "text/html")], body: "<html>proxy error</html>" }
        }),
        Scenario::echo("bad_request_is_not_retried", "§5", |s| failure(s, &["status"], Some(400)))
            .script(|_| json_reply(400, r#"{"kind":"bad_request","message":"no"}"#)),
        Scenario::echo("call_id_mismatch_is_not_retried", "§5", |s| failure(s, &["status"], Some(422)))
            .script(|_| json_reply(422, r#"{"kind":"call_id_mismatch","message":"no"}"#)),
        Scenario::echo("panic_is_not_retried", "§5", |s| failure(s, &["status"], Some(500)))
            .script(|_| json_reply(500, r#"{"kind":"panic","message":"Conformance.echo panicked"}"#)),
        Scenario::echo("other_409_is_not_retried", "§5", |s| failure(s, &[], None))
            .script(|_| json_reply(409, r#"{"kind":"conflict","message":"not in_progress"}"#)),
        Scenario::echo("deadline_exceeded_is_not_retried", "§5", |s| failure(s, &[], None))
            .script(|_| json_reply(504, r#"{"kind":"deadline_exceeded","message":"late"}"#)),
        Scenario::echo("redirect_is_not_followed", "§7", redirect_not_followed).script(|_| Reply::Respond {
            status: 307,
            headers: &[("location", "/redirected/redirect_is_not_followed"), ("content-type", "application/json")],
            body: r#"{"kind":"moved","message":"try elsewhere"}"#,
        }),
        Scenario::echo("dropped_connection_is_retried", "§5", |s| retried(s, "dropped_connection_is_retried", false))
            .script(|n| if n == 0 { Reply::Drop } else { Reply::Normal }),
        Scenario::echo("timeout_is_retried", "§5", |s| retried(s, "timeout_is_retried", true))
            .script(|n| if n == 0 { Reply::Hold } else { Reply::Normal }),
        Scenario::echo("unavailable_503_is_retried", "§5", |s| retried(s, "unavailable_503_is_retried", true))
            .script(|n| if n == 0 { json_reply(503, r#"{"kind":"store_unavailable","message":"down"}"#) } else { Reply::Normal }),
        Scenario::echo("overloaded_503_is_retried", "§4.2, §5", |s| retried(s, "overloaded_503_is_retried", true))
            .script(|n| if n == 0 { json_reply(503, r#"{"kind":"overloaded","message":"shed"}"#) } else { Reply::Normal }),
        Scenario::echo("foreign_503_is_retried", "§7", |s| retried(s, "foreign_503_is_retried", true)).script(|n| {
            if n == 0 {
                Reply::Respond { status: 503, headers: &[("content-type", "text/html")], body: "<html>busy</html>" }
            } else {
                Reply::Normal
            }
        }),
        Scenario::echo("in_progress_409_is_retried", "§5", |s| retried(s, "in_progress_409_is_retried", true))
            .script(|n| if n == 0 { json_reply(409, r#"{"kind":"in_progress","message":"still running"}"#) } else { Reply::Normal }),
        Scenario::echo("retry_after_is_a_minimum", "§5", retry_after_waited).script(|n| {
            if n == 0 {
                Reply::Respond {
                    status: 503,
                    headers: &[("content-type", "application/json"), ("retry-after", "1")],
                    body: r#"{"kind":"store_unavailable","message":"come back in a second"}"#,
                }
            } else {
                Reply::Normal
            }
        }),
        Scenario::echo("gateway_timeout_504_is_retried", "§5, §7", |s| retried(s, "gateway_timeout_504_is_retried", true))
            .script(|n| if n == 0 { Reply::Respond { status: 504, headers: &[], body: "" } } else { Reply::Normal }),
        Scenario::echo("request_timeout_408_is_retried", "§5, §7", |s| retried(s, "request_timeout_408_is_retried", true))
            .script(|n| if n == 0 { Reply::Respond { status: 408, headers: &[], body: "" } } else { Reply::Normal }),
        Scenario::echo("bad_gateway_502_is_retried", "§5, §7", |s| retried(s, "bad_gateway_502_is_retried", true)).script(|n| {
            if n == 0 {
                Reply::Respond { status: 502, headers: &[("content-type", "text/html")], body: "<html>bad gateway</html>" }
            } else {
                Reply::Normal
            }
        }),
        Scenario::echo("too_many_requests_429_is_retried", "§5, §7", |s| retried(s, "too_many_requests_429_is_retried", true))
            .script(|n| {
                if n == 0 {
                    Reply::Respond { status: 429, headers: &[("content-type", "text/plain"), ("retry-after", "0")], body: "slow down" }
                } else {
                    Reply::Normal
                }
            }),
        Scenario::echo("gateway_timeout_504_is_a_timeout", "§7", gateway_timeout_reported)
            .script(|_| Reply::Respond { status: 504, headers: &[("content-type", "text/plain")], body: "upstream timed out" }),
        Scenario::echo("retries_are_bounded", "§5", retries_bounded)
            .script(|_| json_reply(503, r#"{"kind":"store_unavailable","message":"down for good"}"#)),
        Scenario { user: Some(("customer", Some("alice"))), ..Scenario::echo("user_is_sent", "§3", user_sent) },
        Scenario { user: Some(("guest", None)), ..Scenario::echo("user_without_id_is_sent", "§3", user_without_id) },
        Scenario::echo("no_user_sends_no_user_headers", "§3", no_user),
        Scenario { activity: Some("shared"), calls: 2, ..Scenario::echo("activity_is_kept_within_a_scope", "§3", activity_kept) },
        Scenario { calls: 2, ..Scenario::echo("each_call_has_its_own_call_id", "§5", own_call_ids) },
        Scenario { calls: 2, ..Scenario::echo("each_top_level_call_is_its_own_activity", "§3", own_activities) },
        // Streams (§4.3): the frames, the final frame's kinds, and a body that ends
        // without one.
        Scenario::stream("stream_items_then_end_ok_are_read", "§4.3", |_| stream(&["{\"item\":0}\n{\"item\":1}\n", "{\"ite", "m\":2}\n{\"end\":\"ok\"}\n"]), |s| {
            streamed(s, &[0, 1, 2], &Outcome::Ok(Value::Null))
        }),
        Scenario::stream("stream_keep_alive_and_unknown_frames_are_skipped", "§4.3", |_| stream(&["{\"item\":0}\n{}\n", "{}\n{\"progress\":\"half\"}\n{\"item\":1}\n{\"end\":\"ok\"}\n"]), |s| {
            streamed(s, &[0, 1], &Outcome::Ok(Value::Null))
        }),
        Scenario::stream("stream_error_frame_is_the_typed_error", "§4.3", |_| stream(&["{\"item\":0}\n", STREAM_REFUSED]), |s| {
            streamed(s, &[0], &Outcome::Error(json!("Refused")))
        }),
        Scenario::stream("stream_panic_frame_is_a_status_failure", "§4.3, §7", |_| stream(&["{\"item\":0}\n{\"end\":\"error\",\"error\":{\"kind\":\"panic\",\"message\":\"Conformance.stream panicked\"}}\n"]), |s| {
            streamed_failure(s, &[0], "status", |status| status == Some(500))
        }),
        Scenario::stream("stream_deadline_frame_is_a_timeout", "§4.3, §7", |_| stream(&["{\"item\":0}\n{\"end\":\"error\",\"error\":{\"kind\":\"deadline_exceeded\",\"message\":\"late\"}}\n"]), |s| {
            streamed_failure(s, &[0], "timeout", |status| matches!(status, None | Some(504)))
        }),
        Scenario::stream("stream_cut_connection_is_a_connect_failure", "§4.3, §5", |_| Reply::Stream { chunks: &["{\"item\":0}\n{\"item\":1}\n"], cut: true }, |s| {
            streamed_failure(s, &[0, 1], "connect", |_| true)
        }),
        Scenario::stream("stream_without_final_frame_is_a_connect_failure", "§4.3", |_| stream(&["{\"item\":0}\n"]), |s| {
            streamed_failure(s, &[0], "connect", |_| true)
        }),
        Scenario::stream("stream_ending_inside_a_frame_is_a_connect_failure", "§4.3", |_| stream(&["{\"item\":0}\n{\"item\":"]), |s| {
            streamed_failure(s, &[0], "connect", |_| true)
        }),
        Scenario::stream("stream_undecodable_item_is_a_decode_failure", "§4.3, §7", |_| stream(&["{\"item\":\"zero\"}\n{\"end\":\"ok\"}\n"]), |s| {
            streamed_failure(s, &[], "decode", |_| true)
        }),
        Scenario::stream("stream_error_before_the_first_item_is_the_typed_error", "§4.3, §7", |_| json_reply(422, REFUSED), |s| {
            streamed(s, &[], &Outcome::Error(json!("Refused")))
        }),
        Scenario::stream("stream_failure_before_the_reply_is_retried", "§4.3, §5", |n| if n == 0 { Reply::Drop } else { stream(&["{\"item\":0}\n{\"end\":\"ok\"}\n"]) }, |s| {
            if s.arrivals.len() < 2 {
                return Err(format!("{} request(s) arrived; a stream that failed before its reply must be retried", s.arrivals.len()));
            }
            attempts_of_one_call(s, false)?;
            equal("items", &s.items, &vec![&json!(0)])?;
            equal("outcome", outcome(s)?, &Outcome::Ok(Value::Null))
        }),
        Scenario::stream(
            "stream_started_409_is_a_status_failure_not_retried",
            "§4.3, §5",
            |_| json_reply(409, r#"{"kind":"stream_started","message":"this call id started a stream"}"#),
            |s| streamed_failure(s, &[], "status", |status| status == Some(409)),
        ),
    ]
}

const REFUSED: &str = r#"{"kind":"service","message":"Conformance.stream returned ConformanceError::Refused","type":"ConformanceError","variant":"Refused","value":"Refused"}"#;

const STREAM_REFUSED: &str = concat!(
    r#"{"end":"error","error":{"kind":"service","message":"Conformance.stream returned ConformanceError::Refused","type":"ConformanceError","variant":"Refused","value":"Refused"}}"#,
    "\n"
);

/// A whole stream reply of `chunks`.
fn stream(chunks: &'static [&'static str]) -> Reply {
    Reply::Stream { chunks, cut: false }
}

/// One request (a stream is not retried once its reply came), these items, then `end`.
fn streamed(seen: &Seen<'_>, items: &[u64], end: &Outcome) -> Check {
    once(seen)?;
    let items: Vec<Value> = items.iter().map(|&n| json!(n)).collect();
    equal("items", &seen.items, &items.iter().collect::<Vec<_>>())?;
    equal("outcome", outcome(seen)?, end)
}

/// As [`streamed`], ended by a failure of `category` whose status `status` accepts.
fn streamed_failure(seen: &Seen<'_>, items: &[u64], category: &str, status: fn(Option<u16>) -> bool) -> Check {
    once(seen)?;
    let items: Vec<Value> = items.iter().map(|&n| json!(n)).collect();
    equal("items", &seen.items, &items.iter().collect::<Vec<_>>())?;
    match outcome(seen)? {
        Outcome::Failure { category: got, status: code } if got == category && status(*code) => Ok(()),
        other => Err(format!("expected a `{category}` failure after the items, got {other:?}")),
    }
}

fn json_reply(status: u16, body: &'static str) -> Reply {
    Reply::Respond { status, headers: &[("content-type", "application/json")], body }
}

/// The one outcome line of a single-call scenario.
fn outcome<'a>(seen: &Seen<'a>) -> Result<&'a Outcome, String> {
    match seen.outcomes.as_slice() {
        [one] => Ok(one),
        [] => Err("the client printed no outcome line for it".to_owned()),
        many => Err(format!("the client printed {} outcome lines for one call", many.len())),
    }
}

/// Exactly one request arrived: nothing was retried.
fn once<'a>(seen: &Seen<'a>) -> Result<&'a Arrival, String> {
    match seen.arrivals.as_slice() {
        [one] => Ok(one),
        [] => Err("no request arrived".to_owned()),
        many => Err(format!("{} requests arrived; this reply must not be retried", many.len())),
    }
}

fn ok(seen: &Seen<'_>, want: Value) -> Check {
    once(seen)?;
    equal("outcome", outcome(seen)?, &Outcome::Ok(want))
}

fn error(seen: &Seen<'_>, want: Value) -> Check {
    once(seen)?;
    equal("outcome", outcome(seen)?, &Outcome::Error(want))
}

/// A failure (of one of `categories`, if any are given), after one request.
fn failure(seen: &Seen<'_>, categories: &[&str], status: Option<u16>) -> Check {
    once(seen)?;
    match outcome(seen)? {
        Outcome::Failure { category, status: got } => {
            if !categories.is_empty() && !categories.contains(&category.as_str()) {
                return Err(format!("failure `{category}`, expected one of {categories:?}"));
            }
            if status.is_some() && *got != status {
                return Err(format!("failure status {got:?}, expected {status:?}"));
            }
            Ok(())
        }
        other => Err(format!("expected a failure, got {other:?}")),
    }
}

/// All arrivals are attempts of one call: one call id, byte-identical bodies,
/// `x-call-attempt` from 1 and rising by at most one (a resend of a request lost on
/// a stale connection may repeat a number). `counted`: the retry follows a reply, so
/// the last attempt must be numbered 2 or more.
fn attempts_of_one_call(seen: &Seen<'_>, counted: bool) -> Check {
    let first = seen.arrivals.first().ok_or("no request arrived")?;
    let mut previous = 0;
    for arrival in &seen.arrivals {
        if arrival.head.get("x-call-id") != first.head.get("x-call-id") {
            return Err("the attempts of one call carry different x-call-ids".to_owned());
        }
        if arrival.body != first.body {
            return Err("the attempts of one call carry different body bytes".to_owned());
        }
        let attempt = arrival.attempt().ok_or("an attempt without a numeric x-call-attempt")?;
        if attempt != previous && attempt != previous + 1 || attempt == 0 {
            return Err(format!("x-call-attempt went from {previous} to {attempt}"));
        }
        previous = attempt;
    }
    if counted && previous < 2 {
        return Err(format!("the retry is numbered x-call-attempt: {previous}"));
    }
    Ok(())
}

fn retried(seen: &Seen<'_>, name: &str, counted: bool) -> Check {
    if seen.arrivals.len() < 2 {
        return Err(format!("{} request(s) arrived; this failure must be retried", seen.arrivals.len()));
    }
    attempts_of_one_call(seen, counted)?;
    equal("outcome", outcome(seen)?, &Outcome::Ok(json!({ "text": name, "note": null })))
}

fn redirect_not_followed(seen: &Seen<'_>) -> Check {
    if !seen.strays.is_empty() {
        return Err("the client followed the redirect".to_owned());
    }
    failure(seen, &["status"], Some(307))
}

fn retry_after_waited(seen: &Seen<'_>) -> Check {
    retried(seen, "retry_after_is_a_minimum", true)?;
    // A lower bound, measured on one clock: the reply was written before the client
    // read it, so a client that waited the full second can never fail this.
    let (first, second) = (seen.arrivals[0], seen.arrivals[1]);
    let replied = first.replied.ok_or("the first attempt has no reply time")?;
    let waited = second.arrived.saturating_duration_since(replied);
    if waited >= std::time::Duration::from_secs(1) {
        Ok(())
    } else {
        Err(format!("the retry came {waited:?} after a `Retry-After: 1` reply"))
    }
}

fn retries_bounded(seen: &Seen<'_>) -> Check {
    let n = seen.arrivals.len();
    if !(2..=10).contains(&n) {
        return Err(format!("{n} attempts for a call that always gets 503 (expected 2 to 10)"));
    }
    attempts_of_one_call(seen, true)?;
    match outcome(seen)? {
        Outcome::Failure { .. } => Ok(()),
        other => Err(format!("expected a failure, got {other:?}")),
    }
}

/// A gateway's `504` on every attempt: retried, then reported as a timeout (with
/// status 504 when the client prints one).
fn gateway_timeout_reported(seen: &Seen<'_>) -> Check {
    if seen.arrivals.len() < 2 {
        return Err(format!("{} request(s) arrived; a gateway's 504 must be retried", seen.arrivals.len()));
    }
    attempts_of_one_call(seen, true)?;
    match outcome(seen)? {
        Outcome::Failure { category, status } if category == "timeout" && matches!(status, None | Some(504)) => Ok(()),
        other => Err(format!("expected `failure timeout 504` (a gateway's timeout is a timeout), got {other:?}")),
    }
}

fn header<'a>(arrival: &'a Arrival, name: &str) -> Option<&'a [u8]> {
    arrival.head.get(name)
}

fn user_sent(seen: &Seen<'_>) -> Check {
    let arrival = once(seen)?;
    equal("x-user-type", header(arrival, "x-user-type"), Some(&b"customer"[..]))?;
    equal("x-user-id", header(arrival, "x-user-id"), Some(&b"alice"[..]))
}

fn user_without_id(seen: &Seen<'_>) -> Check {
    let arrival = once(seen)?;
    equal("x-user-type", header(arrival, "x-user-type"), Some(&b"guest"[..]))?;
    equal("x-user-id", header(arrival, "x-user-id"), None)
}

fn no_user(seen: &Seen<'_>) -> Check {
    let arrival = once(seen)?;
    equal("x-user-type", header(arrival, "x-user-type"), None)?;
    equal("x-user-id", header(arrival, "x-user-id"), None)
}

fn two_calls<'a>(seen: &Seen<'a>) -> Result<[&'a Arrival; 2], String> {
    match seen.arrivals.as_slice() {
        [a, b] => Ok([a, b]),
        other => Err(format!("{} requests arrived for two calls", other.len())),
    }
}

fn activity_kept(seen: &Seen<'_>) -> Check {
    let [a, b] = two_calls(seen)?;
    if header(a, "x-activity-id").is_none() || header(a, "x-activity-id") != header(b, "x-activity-id") {
        return Err("two calls in one activity carry different (or no) x-activity-ids".to_owned());
    }
    Ok(())
}

fn own_call_ids(seen: &Seen<'_>) -> Check {
    let [a, b] = two_calls(seen)?;
    if header(a, "x-call-id") == header(b, "x-call-id") {
        return Err("two logical calls share an x-call-id".to_owned());
    }
    equal("x-call-attempt of each", (a.attempt(), b.attempt()), (Some(1), Some(1)))
}

fn own_activities(seen: &Seen<'_>) -> Check {
    let [a, b] = two_calls(seen)?;
    if header(a, "x-activity-id") == header(b, "x-activity-id") {
        return Err("two calls outside any activity share an x-activity-id".to_owned());
    }
    Ok(())
}
