//! §5 "What a client does": the one decision of whether an attempt's outcome is worth
//! another attempt, in the role of tower's `retry::Policy::retry`. The loop that applies
//! it (backoff, deadline, retry budget) is `client/call.rs`.

use std::time::Duration;

use super::ErrorKind;

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

/// Retry only what a retry can fix: no reply, an unavailable server (`503`, whatever
/// its body), or the first run of this call id still in progress (`409 in_progress`).
/// Never a typed error, another status, or an unusable reply.
pub(crate) fn decide(outcome: Outcome<'_>) -> Decision {
    match outcome {
        Outcome::NoReply => Decision::Retry { at_least: Duration::ZERO },
        Outcome::Replied { status: 503, retry_after, .. }
        | Outcome::Replied { status: 409, kind: Some(ErrorKind::InProgress), retry_after } => {
            Decision::Retry { at_least: retry_after.and_then(parse_retry_after).unwrap_or_default() }
        }
        Outcome::Replied { .. } | Outcome::Unusable => Decision::Stop,
    }
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
        assert_eq!(replied(503, None), NOW, "a balancer's 503 is retried too");
        assert_eq!(replied(409, Some(ErrorKind::InProgress)), NOW);
        assert_eq!(replied(409, None), Decision::Stop, "a 409 that is not intercall's");
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::InProgress | ErrorKind::StoreUnavailable => NOW,
                _ => Decision::Stop,
            };
            assert_eq!(replied(kind.status(), Some(kind)), expected, "{kind}");
        }
        assert_eq!(decide(Outcome::Unusable), Decision::Stop);
        for status in [400, 404, 408, 429, 500, 502, 504] {
            assert_eq!(replied(status, None), Decision::Stop, "{status}");
        }
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
