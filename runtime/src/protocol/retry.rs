//! §5 "What a client does": the one decision of whether an attempt's outcome is worth
//! another attempt, in the role of tower's `retry::Policy::retry`. The loop that applies
//! it (backoff, deadline, retry budget) is `client/endpoint.rs`.

use std::time::Duration;

use super::ErrorKind;
use super::reply::INTERMEDIARY_STATUSES;

/// What one attempt came to, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    /// No reply: refused or broken connection, or no reply within the attempt's time.
    NoReply,
    /// A whole reply that was not a result: its status, the error kind its body named
    /// at that status (`None` for a body that is not an intercall error body), and its
    /// `Retry-After` header.
    Replied { status: u16, kind: Option<ErrorKind>, retry_after: Option<&'a [u8]> },
    /// A reply the client could not use: too large, or not decodable as the method's
    /// types. The same request would get the same reply.
    Unusable,
}

/// Whether to send another attempt of the same call (same call id, same body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Never: the answer would be the same.
    Stop,
    /// Yes, after at least this long (the server's `Retry-After`, or zero).
    Retry { at_least: Duration },
}

/// Retry only what a retry can fix, and what the call id makes safe to send again:
/// - no reply;
/// - a kind that says so: `409 in_progress` (the first run of this call id is still
///   going), `503 store_unavailable` and `503 overloaded` (shed before anything ran);
/// - an intermediary's reply: `408`, `429`, `502`, `503` or `504` without an intercall
///   kind (a gateway, a balancer or a timeout layer answered, not the method; a body of
///   a kind this client does not know counts as none, as it cannot tell otherwise).
///
/// Never a typed error, another status or kind (`504 deadline_exceeded` among them:
/// the caller's own deadline has passed), or an unusable reply. A retry waits at least
/// the reply's `Retry-After`.
pub(crate) fn decide(outcome: Outcome<'_>) -> Decision {
    match outcome {
        Outcome::NoReply => Decision::Retry { at_least: Duration::ZERO },
        Outcome::Replied { status: 409, kind: Some(ErrorKind::InProgress), retry_after }
        | Outcome::Replied { status: 503, kind: Some(ErrorKind::StoreUnavailable), retry_after }
        | Outcome::Replied { status: 503, kind: Some(ErrorKind::Overloaded), retry_after } => after(retry_after),
        Outcome::Replied { status, kind: None, retry_after } if INTERMEDIARY_STATUSES.contains(&status) => {
            after(retry_after)
        }
        Outcome::Replied { .. } | Outcome::Unusable => Decision::Stop,
    }
}

fn after(retry_after: Option<&[u8]>) -> Decision {
    Decision::Retry { at_least: retry_after.and_then(parse_retry_after).unwrap_or_default() }
}

/// `Retry-After` as an integer number of seconds (the HTTP-date form is ignored).
fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    super::integer(text).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replied(status: u16, kind: Option<ErrorKind>) -> Decision {
        decide(Outcome::Replied { status, kind, retry_after: None })
    }

    const NOW: Decision = Decision::Retry { at_least: Duration::ZERO };

    #[test]
    fn retries_no_reply_503_and_in_progress_only() {
        assert_eq!(decide(Outcome::NoReply), NOW);
        assert_eq!(replied(503, Some(ErrorKind::StoreUnavailable)), NOW);
        assert_eq!(replied(503, Some(ErrorKind::Overloaded)), NOW);
        assert_eq!(replied(409, Some(ErrorKind::InProgress)), NOW);
        assert_eq!(replied(409, None), Decision::Stop, "a 409 that is not intercall's");
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::InProgress | ErrorKind::StoreUnavailable | ErrorKind::Overloaded => NOW,
                _ => Decision::Stop,
            };
            assert_eq!(replied(kind.status(), Some(kind)), expected, "{kind}");
        }
        assert_eq!(decide(Outcome::Unusable), Decision::Stop);
        for status in [400, 401, 404, 405, 413, 415, 418, 422, 500, 501, 505] {
            assert_eq!(replied(status, None), Decision::Stop, "{status}");
        }
    }

    #[test]
    fn an_intermediary_s_408_429_502_503_and_504_are_retried() {
        for status in [408, 429, 502, 503, 504] {
            assert_eq!(replied(status, None), NOW, "{status}");
            let retry_after = decide(Outcome::Replied { status, kind: None, retry_after: Some(b"7") });
            assert_eq!(retry_after, Decision::Retry { at_least: Duration::from_secs(7) }, "{status}");
        }
        // intercall's own 504: the caller's deadline has passed, a retry cannot help.
        assert_eq!(replied(504, Some(ErrorKind::DeadlineExceeded)), Decision::Stop);
    }

    #[test]
    fn retry_after_is_a_minimum_in_seconds() {
        let with =
            |value: &'static [u8]| decide(Outcome::Replied { status: 503, kind: None, retry_after: Some(value) });
        assert_eq!(with(b"2"), Decision::Retry { at_least: Duration::from_secs(2) });
        assert_eq!(with(b" 3 "), Decision::Retry { at_least: Duration::from_secs(3) });
        for ignored in [&b"+2"[..], b"-1", b"1.5", b"Wed, 21 Oct 2015 07:28:00 GMT", b""] {
            assert_eq!(with(ignored), NOW, "{:?}", String::from_utf8_lossy(ignored));
        }
    }

    #[test]
    fn a_409_is_retried_only_when_its_kind_is_in_progress() {
        for kind in ErrorKind::ALL {
            let expected = if kind == ErrorKind::InProgress { NOW } else { Decision::Stop };
            assert_eq!(replied(409, Some(kind)), expected, "{kind}");
        }
    }
}
