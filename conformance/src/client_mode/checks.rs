//! The rules every request of a client must keep (§3, §5, §6), checked on all of
//! them at once, whatever scenario they belong to.

use super::server::Arrival;
use crate::report::Check;
use crate::signing::{self, Canonical};
use crate::spec::{self, CALL_HEADERS, SERVICE, SIGNATURE, TIMESTAMP};

/// A rule over all requests.
pub struct Rule {
    /// Case name.
    pub name: &'static str,
    /// Where docs/PROTOCOL.md says it.
    pub section: &'static str,
    /// Only with the shared secret.
    pub needs_secret: bool,
    check: fn(&Arrival, &Context) -> Check,
}

/// What the rules need besides the request.
pub struct Context {
    /// The per-attempt timeout the plan set.
    pub timeout_ms: u64,
    /// The shared secret, if any.
    pub secret: Option<Vec<u8>>,
}

impl Rule {
    /// Runs the rule over every request; the first that breaks it is named.
    pub fn check(&self, arrivals: &[Arrival], context: &Context) -> Check {
        if arrivals.is_empty() {
            return Err("no request arrived".to_owned());
        }
        for arrival in arrivals {
            (self.check)(arrival, context).map_err(|e| format!("{} {}: {e}", arrival.verb, arrival.target))?;
        }
        Ok(())
    }
}

/// Every rule.
pub fn all() -> Vec<Rule> {
    let rule = |name, section, check| Rule { name, section, needs_secret: false, check };
    vec![
        rule("requests_are_post", "§3", |a, _| expect(a.verb == "POST", || format!("verb {}", a.verb))),
        rule("requests_use_the_method_path", "§3", |a, _| {
            expect(a.method().is_some(), || format!("expected {}/{SERVICE}/{{method}}", super::server::PREFIX))
        }),
        rule("requests_have_json_content_type", "§3", |a, _| {
            expect(a.head.get("content-type").is_some_and(spec::is_json_media_type), || {
                format!("content-type {:?}", a.head.text("content-type"))
            })
        }),
        rule("requests_accept_json", "§3", |a, _| {
            let accept = a.head.text("accept").unwrap_or_default();
            expect(accept.contains("application/json"), || format!("accept `{accept}`"))
        }),
        rule("requests_carry_a_json_object", "§3", |a, _| {
            let body: Result<serde_json::Value, _> = serde_json::from_slice(&a.body);
            expect(body.is_ok_and(|b| b.is_object()), || "the body is not a JSON object".to_owned())
        }),
        rule("requests_carry_a_canonical_call_id", "§5", |a, _| uuid_header(a, "x-call-id")),
        rule("requests_carry_a_canonical_activity_id", "§3", |a, _| uuid_header(a, "x-activity-id")),
        rule("requests_number_their_attempts", "§5", |a, _| {
            expect(a.attempt().is_some_and(|n| (1..=u64::from(u32::MAX)).contains(&n)), || {
                format!("x-call-attempt {:?}", a.head.text("x-call-attempt"))
            })
        }),
        rule("requests_carry_a_bounded_deadline", "§5", |a, c| {
            let deadline = a.head.text("x-deadline-ms");
            // A stream's deadline bounds the whole stream, not an attempt: sent only when
            // the call has one of its own (§4.3), and the plan gives none.
            if deadline.is_none() && a.method() == Some("stream") {
                return Ok(());
            }
            let ms = deadline
                .as_deref()
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok());
            expect(ms.is_some_and(|ms| ms <= c.timeout_ms), || {
                format!("x-deadline-ms {deadline:?}; expected an integer up to the {} ms timeout", c.timeout_ms)
            })
        }),
        rule("requests_repeat_no_call_header", "§3", |a, _| {
            match CALL_HEADERS.iter().find(|name| a.head.all(name).count() > 1) {
                Some(name) => Err(format!("`{name}` appears more than once")),
                None => Ok(()),
            }
        }),
        Rule { name: "requests_are_signed", section: "§6", needs_secret: true, check: signed },
    ]
}

fn expect(ok: bool, otherwise: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(otherwise()) }
}

fn uuid_header(arrival: &Arrival, name: &str) -> Check {
    match arrival.head.get(name) {
        Some(value) if spec::is_canonical_uuid(value) => Ok(()),
        Some(value) => Err(format!("{name} `{}` is not a lowercase hyphenated UUID", String::from_utf8_lossy(value))),
        None => Err(format!("no {name}")),
    }
}

fn signed(arrival: &Arrival, context: &Context) -> Check {
    let secret = context.secret.as_deref().unwrap_or_default();
    let timestamp = arrival.head.text(TIMESTAMP).ok_or("no x-intercall-timestamp")?;
    let sent: i64 = timestamp.parse().map_err(|_| format!("x-intercall-timestamp `{timestamp}`"))?;
    let now: i64 = signing::timestamp(0).parse().unwrap_or(0);
    if (now - sent).abs() > 5 * 60 * 1000 {
        return Err(format!("x-intercall-timestamp {timestamp} is over 5 minutes from now"));
    }
    let header = |name: &str| arrival.head.get(name).unwrap_or_default();
    let route = format!("{SERVICE}/{}", arrival.method().unwrap_or(""));
    let canonical = Canonical {
        route: &route,
        timestamp: &timestamp,
        call_id: header("x-call-id"),
        user_type: header("x-user-type"),
        user_id: header("x-user-id"),
        activity: header("x-activity-id"),
        body: &arrival.body,
    };
    let want = signing::signature(secret, &canonical);
    let got = arrival.head.text(SIGNATURE).unwrap_or_default();
    expect(got == want, || format!("x-intercall-signature `{got}` does not match the request"))
}
