//! §3.3 Trace context: the W3C `traceparent` and `tracestate` headers, which a server
//! forwards unchanged to the calls it makes on a request's behalf, so that a mesh's
//! traces stay whole across intercall hops.
//!
//! Only the W3C grammar is checked (<https://www.w3.org/TR/trace-context/>): a
//! `traceparent` that does not follow it, or that appears more than once, is ignored
//! (as the recommendation says a receiver does), never refused: tracing must not fail
//! a call.

use hyper::http::{HeaderMap, HeaderName, HeaderValue};

/// Request header: the W3C trace context's `traceparent`.
pub const TRACEPARENT: &str = "traceparent";

/// Request header: the W3C trace context's `tracestate`.
pub const TRACESTATE: &str = "tracestate";

const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
const TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);

/// The longest `tracestate` forwarded: the recommendation's 32 list members of at
/// most 256 characters each, and their commas. A longer one is dropped.
pub const MAX_TRACESTATE_BYTES: usize = 32 * 257;

/// The W3C trace context a request carried: its `traceparent` and, if any, its
/// `tracestate`, forwarded as received to every call made on the request's behalf.
///
/// ```
/// let trace = intercall::TraceContext::parse(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///     Some("congo=t61rcWkgMzE"),
/// )
/// .expect("a valid traceparent");
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: HeaderValue,
    tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// A trace context from its two header values; `None` when `traceparent` does not
    /// follow the W3C grammar. A `tracestate` that is not a valid header value or is
    /// longer than [`MAX_TRACESTATE_BYTES`] is dropped.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        if !is_traceparent(traceparent.as_bytes()) {
            return None;
        }
        let traceparent = HeaderValue::from_str(traceparent).ok()?;
        let tracestate = tracestate
            .filter(|state| state.len() <= MAX_TRACESTATE_BYTES)
            .and_then(|state| HeaderValue::from_str(state).ok());
        Some(Self { traceparent, tracestate })
    }

    /// The trace context of a request's headers, if it carries a valid one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut parents = headers.get_all(TRACEPARENT_NAME).iter();
        let (Some(parent), None) = (parents.next(), parents.next()) else { return None };
        if !is_traceparent(parent.as_bytes()) {
            return None;
        }
        // Several `tracestate` headers are one list (RFC 9110 §5.3).
        let mut states = headers.get_all(TRACESTATE_NAME).iter();
        let tracestate = match (states.next(), states.next()) {
            (None, _) => None,
            (Some(one), None) => Some(one.clone()),
            (Some(first), Some(second)) => {
                let mut joined = first.as_bytes().to_vec();
                for next in std::iter::once(second).chain(states) {
                    joined.push(b',');
                    joined.extend_from_slice(next.as_bytes());
                }
                HeaderValue::from_bytes(&joined).ok()
            }
        }
        .filter(|state| state.len() <= MAX_TRACESTATE_BYTES);
        Some(Self { traceparent: parent.clone(), tracestate })
    }

    /// Writes both headers, as received.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT_NAME, self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            headers.insert(TRACESTATE_NAME, state.clone());
        }
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> &str {
        self.traceparent.to_str().expect("checked ASCII")
    }

    /// The `tracestate` value, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_ref().and_then(|state| state.to_str().ok())
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent()[3..35]
    }
}

/// The W3C `traceparent` grammar: `version-traceid-parentid-flags`, lowercase hex, with
/// a version other than `ff` and ids that are not all zeros. A version above `00` may
/// append fields after a `-`.
fn is_traceparent(value: &[u8]) -> bool {
    let hex = |part: &[u8]| part.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let nonzero = |part: &[u8]| part.iter().any(|&b| b != b'0');
    if value.len() < 55 || !(value[2] == b'-' && value[35] == b'-' && value[52] == b'-') {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&value[..2], &value[3..35], &value[36..52], &value[53..55]);
    let fields_ok = hex(version) && hex(trace_id) && hex(parent_id) && hex(flags);
    let rest_ok = match (version, value.len()) {
        (b"00", len) => len == 55,
        (_, 55) => true,
        (_, _) => value[55] == b'-',
    };
    fields_ok && version != b"ff" && nonzero(trace_id) && nonzero(parent_id) && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_grammar_is_checked() {
        assert!(is_traceparent(VALID.as_bytes()));
        assert!(is_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has no more fields
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert!(!is_traceparent(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn headers_are_read_once_and_tracestates_joined() {
        let mut headers = HeaderMap::new();
        assert_eq!(TraceContext::from_headers(&headers), None);
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACESTATE, HeaderValue::from_static("a=1"));
        headers.append(TRACESTATE, HeaderValue::from_static("b=2"));
        let trace = TraceContext::from_headers(&headers).unwrap();
        assert_eq!((trace.traceparent(), trace.tracestate()), (VALID, Some("a=1,b=2")));
        let mut out = HeaderMap::new();
        trace.write(&mut out);
        assert_eq!(out[TRACEPARENT], VALID);
        assert_eq!(out[TRACESTATE], "a=1,b=2");

        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceContext::from_headers(&headers), None, "two traceparents: ignored");
        let long = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE_BYTES);
        assert_eq!(TraceContext::parse(VALID, Some(&long)).unwrap().tracestate(), None, "too long: dropped");
    }
}
