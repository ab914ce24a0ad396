//! §3 Headers: every header name intercall uses, the grammar of each call header, how a
//! server parses them and how a client writes them.
//!
//! The rules, exactly as PROTOCOL.md states them:
//! - a call header that appears more than once is a `400` naming it;
//! - UUID headers are the canonical form only: 36 characters, lowercase hex in groups
//!   8-4-4-4-12 separated by `-`, so that a value is forwarded and signed as received;
//! - integers are ASCII digits only (no sign), within the header's range;
//! - the content type is `application/json` or `application/*+json`, with any
//!   parameters except a `charset` other than `utf-8`.

use std::time::Duration;

use bytes::BytesMut;
use hyper::http::header::CONTENT_TYPE;
use hyper::http::{HeaderMap, HeaderValue};

use super::{Refusal, integer, truncate};
use crate::context::{ActivityId, UserContext, UserType};
use crate::protocol::ErrorKind;
use crate::protocol::trace::{TRACEPARENT, TraceContext};

/// The only media type intercall speaks, in both directions.
pub const JSON: &str = "application/json";

/// Request header: the UUID of one logical call, the same on every attempt. A server
/// with a call-id store runs the method at most once per call id.
pub const CALL_ID: &str = "x-call-id";

/// Request header: which attempt of the call this is, from 1.
pub const CALL_ATTEMPT: &str = "x-call-attempt";

/// Request header: how many milliseconds the caller still waits for this attempt. A
/// server does not start a call that arrives with 0, and the calls it makes on the
/// call's behalf give up by then too.
pub const DEADLINE_MS: &str = "x-deadline-ms";

/// Request header: the end user's type (`customer`, `admin`, ...).
pub const USER_TYPE: &str = "x-user-type";

/// Request header: the end user's id; only with [`USER_TYPE`].
pub const USER_ID: &str = "x-user-id";

/// Request header: the UUID of the activity the call belongs to, the same on every hop.
pub const ACTIVITY_ID: &str = "x-activity-id";

/// Request header: when the call was signed, in Unix milliseconds.
pub const TIMESTAMP: &str = "x-intercall-timestamp";

/// Request header: `v1=` and the hex HMAC-SHA256 of the canonical request.
pub const SIGNATURE: &str = "x-intercall-signature";

/// The header names as parsed names, built once rather than on every lookup.
pub(crate) mod names {
    use hyper::http::HeaderName;

    pub(crate) const CALL_ID: HeaderName = HeaderName::from_static(super::CALL_ID);
    pub(crate) const CALL_ATTEMPT: HeaderName = HeaderName::from_static(super::CALL_ATTEMPT);
    pub(crate) const DEADLINE_MS: HeaderName = HeaderName::from_static(super::DEADLINE_MS);
    pub(crate) const USER_TYPE: HeaderName = HeaderName::from_static(super::USER_TYPE);
    pub(crate) const USER_ID: HeaderName = HeaderName::from_static(super::USER_ID);
    pub(crate) const ACTIVITY_ID: HeaderName = HeaderName::from_static(super::ACTIVITY_ID);
    pub(crate) const TIMESTAMP: HeaderName = HeaderName::from_static(super::TIMESTAMP);
    pub(crate) const SIGNATURE: HeaderName = HeaderName::from_static(super::SIGNATURE);
}

/// The call headers of a request, validated (all optional: a plain HTTP client sends
/// none). Borrowed from the request: the raw texts are what the signature covers.
#[derive(Debug)]
pub(crate) struct CallHeaders<'a> {
    pub(crate) call_id: Option<uuid::Uuid>,
    /// `x-call-id` as received, which is also its canonical form.
    pub(crate) call_id_text: Option<&'a str>,
    pub(crate) attempt: Option<u32>,
    /// How long the caller waits for this attempt.
    pub(crate) deadline: Option<Duration>,
    pub(crate) user: Option<UserContext>,
    pub(crate) activity: Option<ActivityId>,
    /// `x-activity-id` as received.
    pub(crate) activity_text: Option<&'a str>,
}

impl<'a> CallHeaders<'a> {
    /// Parses and checks every call header; the first malformed or repeated one is a
    /// `400 bad_request` naming it. (The server reads them through [`RequestHead`].)
    #[cfg(any(fuzzing, test))]
    pub(crate) fn parse(headers: &'a HeaderMap) -> Result<Self, Refusal> {
        RequestHead::read(headers).call_headers()
    }

    fn from_found(found: &Found<'a>) -> Result<Self, Refusal> {
        let call_id_text = found.call_id.text(CALL_ID)?;
        let call_id = call_id_text.map(|text| uuid(CALL_ID, text)).transpose()?;
        let attempt = found
            .attempt
            .text(CALL_ATTEMPT)?
            .map(|text| match integer::<u32>(text) {
                Some(n @ 1..) => Ok(n),
                _ => Err(bad_header(CALL_ATTEMPT, text, "an attempt number from 1 to 4294967295, in digits")),
            })
            .transpose()?;
        let deadline = found
            .deadline
            .text(DEADLINE_MS)?
            .map(|text| {
                integer::<u64>(text).map(Duration::from_millis).ok_or_else(|| {
                    bad_header(DEADLINE_MS, text, "a number of milliseconds from 0 to 18446744073709551615, in digits")
                })
            })
            .transpose()?;
        let user_type = found.user_type.single(USER_TYPE)?.map(HeaderValue::as_bytes);
        let user_id = found.user_id.single(USER_ID)?.map(HeaderValue::as_bytes);
        let user = UserContext::from_headers(user_type, user_id)
            .map_err(|e| Refusal::new(ErrorKind::BadRequest, format!("invalid user context: {e}")))?;
        let activity_text = found.activity.text(ACTIVITY_ID)?;
        let activity = activity_text.map(|text| uuid(ACTIVITY_ID, text).map(ActivityId::from_uuid)).transpose()?;
        Ok(Self { call_id, call_id_text, attempt, deadline, user, activity, activity_text })
    }
}

/// Every header a server reads from a request, found in one pass over its headers: the
/// media type, the declared length, the call headers, the signature headers and
/// whether a trace context came. A lookup per name hashed every name again: a dozen
/// lookups cost more than reading the ten or so headers of a request once.
pub(crate) struct RequestHead<'a> {
    headers: &'a HeaderMap,
    found: Found<'a>,
}

impl<'a> RequestHead<'a> {
    /// Reads `headers` once; each check below then reads what was found.
    pub(crate) fn read(headers: &'a HeaderMap) -> Self {
        Self { headers, found: Found::collect(headers) }
    }

    /// The call headers, checked (see [`CallHeaders::parse`]).
    pub(crate) fn call_headers(&self) -> Result<CallHeaders<'a>, Refusal> {
        CallHeaders::from_found(&self.found)
    }

    /// `415 unsupported_media_type` unless the `content-type` is JSON in UTF-8 (see
    /// [`check_content_type`]).
    pub(crate) fn check_content_type(&self) -> Result<(), Refusal> {
        content_type(self.found.content_type.value)
    }

    /// The body length the head declares in `content-length` (its first value), if it
    /// is a number.
    pub(crate) fn content_length(&self) -> Option<u64> {
        let value = self.found.content_length.value?;
        value.to_str().ok()?.parse().ok()
    }

    /// The signature headers, as [`signature_headers`] reads them.
    pub(crate) fn signature(&self) -> (Option<&'a str>, Option<&'a str>) {
        (self.found.timestamp.only_text(), self.found.signature.only_text())
    }

    /// The request's trace context, if it carries a valid one. Only a request with a
    /// `traceparent` looks further (its `tracestate` may be several headers).
    pub(crate) fn trace(&self) -> Option<TraceContext> {
        self.found.traceparent.value?;
        TraceContext::from_headers(self.headers)
    }
}

/// The values of the headers a server reads, from one pass over a request's headers.
#[derive(Default)]
struct Found<'a> {
    call_id: Slot<'a>,
    attempt: Slot<'a>,
    deadline: Slot<'a>,
    user_type: Slot<'a>,
    user_id: Slot<'a>,
    activity: Slot<'a>,
    timestamp: Slot<'a>,
    signature: Slot<'a>,
    traceparent: Slot<'a>,
    /// The first value, as `HeaderMap::get` gives.
    content_type: Slot<'a>,
    /// The first value, as `HeaderMap::get` gives.
    content_length: Slot<'a>,
}

impl<'a> Found<'a> {
    fn collect(headers: &'a HeaderMap) -> Self {
        let mut found = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "content-type" => &mut found.content_type,
                "content-length" => &mut found.content_length,
                CALL_ID => &mut found.call_id,
                CALL_ATTEMPT => &mut found.attempt,
                DEADLINE_MS => &mut found.deadline,
                USER_TYPE => &mut found.user_type,
                USER_ID => &mut found.user_id,
                ACTIVITY_ID => &mut found.activity,
                TIMESTAMP => &mut found.timestamp,
                SIGNATURE => &mut found.signature,
                TRACEPARENT => &mut found.traceparent,
                _ => continue,
            };
            match slot.value {
                None => slot.value = Some(value),
                Some(_) => slot.repeated = true,
            }
        }
        found
    }
}

/// One call header's value, and whether it came more than once.
#[derive(Default)]
struct Slot<'a> {
    value: Option<&'a HeaderValue>,
    repeated: bool,
}

impl<'a> Slot<'a> {
    /// The one value as text; `None` when it is missing, repeated or not text.
    fn only_text(&self) -> Option<&'a str> {
        self.value.filter(|_| !self.repeated).and_then(|value| value.to_str().ok())
    }

    /// The one value, or a `400` if it is repeated.
    fn single(&self, name: &str) -> Result<Option<&'a HeaderValue>, Refusal> {
        if self.repeated {
            let message = format!("header `{name}` appears more than once; send it once");
            return Err(Refusal::new(ErrorKind::BadRequest, message));
        }
        Ok(self.value)
    }

    /// The one value as ASCII text, without the optional whitespace around it.
    fn text(&self, name: &str) -> Result<Option<&'a str>, Refusal> {
        let Some(value) = self.single(name)? else { return Ok(None) };
        let bytes = value.as_bytes();
        // The usual value, visible ASCII without a space or tab: `to_str` passes it and
        // there is nothing to trim. Checked with no branch per byte (`fold`, not `all`),
        // which the compiler makes vector compares: a UUID's 36 bytes in a few steps.
        if bytes.iter().fold(true, |visible, byte| visible & byte.is_ascii_graphic()) {
            // SAFETY: every byte is ASCII (checked just above), and ASCII is UTF-8.
            return Ok(Some(unsafe { std::str::from_utf8_unchecked(bytes) }));
        }
        value
            .to_str()
            .map(|text| Some(text.trim_matches(|c| c == ' ' || c == '\t')))
            .map_err(|_| Refusal::new(ErrorKind::BadRequest, format!("header `{name}` is not visible ASCII text")))
    }
}

/// The signature headers of a request, as a verifying server reads them: `None` when
/// missing, repeated or not text (any of which is a `401` there; a server without a
/// secret ignores both headers).
pub(crate) fn signature_headers(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    RequestHead::read(headers).signature()
}

/// Where each byte's two digits start in a hyphenated UUID.
const UUID_BYTE_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// A lowercase hexadecimal digit's value; 0xff for any other byte.
const LOWER_HEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

/// A UUID header: the canonical form only, so that the text forwarded and signed is
/// the text received.
fn uuid(name: &str, text: &str) -> Result<uuid::Uuid, Refusal> {
    // One pass: the canonical form is checked and its digits read together, a byte
    // at a time through a table (shifting a `u128` per digit cost ~20 instructions).
    let canonical = || {
        let bytes: &[u8; 36] = text.as_bytes().try_into().ok()?;
        if bytes[8] != b'-' || bytes[13] != b'-' || bytes[18] != b'-' || bytes[23] != b'-' {
            return None;
        }
        let mut value = [0u8; 16];
        let mut invalid = 0u8;
        for (byte, &at) in value.iter_mut().zip(UUID_BYTE_AT.iter()) {
            let (high, low) = (LOWER_HEX[usize::from(bytes[at])], LOWER_HEX[usize::from(bytes[at + 1])]);
            invalid |= high | low;
            *byte = high << 4 | low;
        }
        (invalid & 0xf0 == 0).then(|| uuid::Uuid::from_bytes(value))
    };
    let expected = "a UUID in lowercase hyphenated form, such as `67e55044-10b1-426f-9247-bb680e5fe0c8`";
    canonical().ok_or_else(|| bad_header(name, text, expected))
}

fn bad_header(name: &str, value: &str, expected: &str) -> Refusal {
    Refusal::new(ErrorKind::BadRequest, format!("header `{name}` must be {expected}; got `{}`", truncate(value)))
}

/// Checks the request's `content-type`: `415 unsupported_media_type` unless it is JSON
/// in UTF-8. (The server reads it through [`RequestHead`].)
#[cfg(any(fuzzing, test))]
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    content_type(headers.get(CONTENT_TYPE))
}

/// [`check_content_type`] of the request's first `content-type` value.
fn content_type(value: Option<&HeaderValue>) -> Result<(), Refusal> {
    let unsupported = |message: String| Err(Refusal::new(ErrorKind::UnsupportedMediaType, message));
    let Some(value) = value else {
        return unsupported(format!("missing `content-type` header; send `content-type: {JSON}`"));
    };
    // What intercall's clients send, accepted without parsing it.
    if value.as_bytes() == JSON.as_bytes() {
        return Ok(());
    }
    let shown = || truncate(&String::from_utf8_lossy(value.as_bytes())).to_owned();
    let Some(charset) = value.to_str().ok().and_then(json_charset) else {
        return unsupported(format!("`content-type: {}` is not supported; send `content-type: {JSON}`", shown()));
    };
    match charset {
        Some(charset) if !charset.eq_ignore_ascii_case("utf-8") => unsupported(format!(
            "`content-type: {}`: intercall bodies are UTF-8; send `content-type: {JSON}` and a UTF-8 body",
            shown()
        )),
        _ => Ok(()),
    }
}

/// Whether `value` is a JSON media type, and its `charset` parameter if it has one:
/// `None` for another media type, `Some(None)` for JSON without a charset.
pub(crate) fn json_charset(value: &str) -> Option<Option<&str>> {
    let mut parts = value.split(';');
    // Compared as bytes: a reply's header may hold any UTF-8, and slicing text at a
    // byte offset could split a character.
    let media_type = parts.next().unwrap_or("").trim().as_bytes();
    let is_json = media_type.eq_ignore_ascii_case(JSON.as_bytes())
        || media_type.len() > "application/+json".len()
            && media_type[..12].eq_ignore_ascii_case(b"application/")
            && media_type[media_type.len() - 5..].eq_ignore_ascii_case(b"+json");
    if !is_json {
        return None;
    }
    let charset = parts
        .filter_map(|parameter| parameter.split_once('='))
        .find_map(|(name, value)| name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches('"')));
    Some(charset)
}

/// The header values every attempt of one call sends, and the buffer its attempts'
/// deadlines are written into.
///
/// The values are carved from one buffer shared by reference count: copying one (the
/// built-in transport keeps a copy of a layered request, to resend it on a stale
/// connection) is a count, where a value of its own would be moved to a shared buffer,
/// an allocation, on its first copy. One buffer also costs two allocations (the bytes
/// and their count) where a buffer per value costs one each.
pub(crate) struct CallValues {
    call_id: HeaderValue,
    activity: HeaderValue,
    user_type: Option<HeaderValue>,
    user_id: Option<HeaderValue>,
    /// What is left of the buffer, for the attempts' deadlines.
    buffer: BytesMut,
}

/// Room for the first two attempts' deadlines; more are rare, and take another buffer.
const DEADLINE_ROOM: usize = 2 * 20;

impl CallValues {
    /// The values of the call `call_id`, in `activity`, for `user`.
    pub(crate) fn new(call_id: uuid::Uuid, activity: uuid::Uuid, user: Option<&UserContext>) -> Self {
        let user_type = user.map(UserContext::user_type);
        // The built-in types' names are static: nothing to copy.
        let static_type = user_type.and_then(UserType::static_name).map(HeaderValue::from_static);
        let copied_type = if static_type.is_some() { 0 } else { user_type.map_or(0, |t| t.as_str().len()) };
        let user_id = user.and_then(UserContext::user_id);
        let size = 2 * uuid::fmt::Hyphenated::LENGTH + copied_type + user_id.map_or(0, str::len) + DEADLINE_ROOM;
        let mut buffer = BytesMut::with_capacity(size);
        let mut encoded = uuid::Uuid::encode_buffer();
        let call_id = carve(&mut buffer, call_id.hyphenated().encode_lower(&mut encoded).as_bytes());
        let activity = carve(&mut buffer, activity.hyphenated().encode_lower(&mut encoded).as_bytes());
        // `UserContext` admits no control characters, so any of its values is a valid
        // header value (UTF-8 beyond ASCII travels as raw bytes).
        let user_type = static_type.or_else(|| user_type.map(|t| carve(&mut buffer, t.as_str().as_bytes())));
        let user_id = user_id.map(|id| carve(&mut buffer, id.as_bytes()));
        Self { call_id, activity, user_type, user_id, buffer }
    }

    /// `x-call-id`'s value.
    pub(crate) fn call_id(&self) -> &HeaderValue {
        &self.call_id
    }

    /// The headers every attempt of the call sends: media types, the call id, the
    /// activity and the user.
    pub(crate) fn headers(&self) -> HeaderMap {
        use hyper::http::header::ACCEPT;
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        headers.insert(ACCEPT, HeaderValue::from_static(JSON));
        headers.insert(names::CALL_ID, self.call_id.clone());
        headers.insert(names::ACTIVITY_ID, self.activity.clone());
        if let Some(user_type) = &self.user_type {
            headers.insert(names::USER_TYPE, user_type.clone());
        }
        if let Some(user_id) = &self.user_id {
            headers.insert(names::USER_ID, user_id.clone());
        }
        headers
    }

    /// An attempt's `x-deadline-ms` value, carved from the call's buffer.
    pub(crate) fn deadline(&mut self, deadline_ms: u64) -> HeaderValue {
        let mut digits = [0; 20];
        let mut at = digits.len();
        let mut left = deadline_ms;
        loop {
            at -= 1;
            digits[at] = b'0' + (left % 10) as u8;
            left /= 10;
            if left == 0 {
                break;
            }
        }
        carve(&mut self.buffer, &digits[at..])
    }
}

/// `bytes` as a header value carved from `buffer`: shared with the buffer's other
/// values, not copied again when cloned. Only ever given valid values: UUIDs, digits,
/// and `UserContext`'s fields, which admit no control characters.
fn carve(buffer: &mut BytesMut, bytes: &[u8]) -> HeaderValue {
    buffer.extend_from_slice(bytes);
    HeaderValue::from_maybe_shared(buffer.split().freeze()).expect("a UUID, digits or a validated user field")
}

/// The headers that differ per attempt: its number and the time the caller waits (a
/// value from [`CallValues::deadline`]).
pub(crate) fn write_attempt(headers: &mut HeaderMap, attempt: u32, deadline_ms: Option<HeaderValue>) {
    // The first attempts' numbers are static: no allocation for the common case.
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let number = match SMALL.get(attempt as usize) {
        Some(digits) => HeaderValue::from_static(digits),
        None => HeaderValue::from(attempt),
    };
    headers.insert(names::CALL_ATTEMPT, number);
    if let Some(deadline_ms) = deadline_ms {
        headers.insert(names::DEADLINE_MS, deadline_ms);
    }
}

/// The signature headers of one attempt.
pub(crate) fn write_signature(headers: &mut HeaderMap, timestamp: u64, signature: &str) {
    headers.insert(names::TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(names::SIGNATURE, HeaderValue::from_str(signature).expect("`v1=` and hex digits"));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hyper::http::HeaderName;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    /// Every string of up to `longest` bytes from `alphabet`, the empty one included.
    pub(crate) fn every_string(alphabet: &[u8], longest: u32) -> Vec<Vec<u8>> {
        let mut strings = Vec::new();
        for len in 0..=longest {
            for n in 0..alphabet.len().pow(len) {
                let mut rest = n;
                let mut string = Vec::new();
                for _ in 0..len {
                    string.push(alphabet[rest % alphabet.len()]);
                    rest /= alphabet.len();
                }
                strings.push(string);
            }
        }
        strings
    }

    /// A header's text read in one pass is what `to_str` and the trim give, for every
    /// value of up to three bytes from an alphabet of edge bytes (tab, space, the ends of
    /// visible ASCII, obs-text), and the same refusal for a value that is not text.
    #[test]
    fn a_header_s_text_is_read_in_one_pass_as_to_str_and_the_trim_read_it() {
        let mut values = every_string(&[b'\t', b' ', b'!', b'a', b'~', 0x80, 0xff], 3);
        values.push(b"67e55044-10b1-426f-9247-bb680e5fe0c8".to_vec());
        let mut read_in_one_pass = 0;
        for bytes in &values {
            // A value hyper would not hand over (none here) is skipped.
            let Ok(value) = HeaderValue::from_bytes(bytes) else { continue };
            let slot = Slot { value: Some(&value), repeated: false };
            let expected = value.to_str().map(|text| text.trim_matches(|c| c == ' ' || c == '\t'));
            match (slot.text("x-probe"), expected) {
                (Ok(got), Ok(text)) => assert_eq!(got, Some(text), "{bytes:?}"),
                (Err(refusal), Err(_)) => assert!(refusal.message.contains("x-probe"), "{bytes:?}"),
                (got, expected) => panic!("{bytes:?}: {got:?} against {expected:?}"),
            }
            read_in_one_pass += usize::from(bytes.iter().all(u8::is_ascii_graphic));
        }
        assert!(read_in_one_pass > 30, "{read_in_one_pass}");
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        let headers = map(pairs);
        let refusal = CallHeaders::parse(&headers).expect_err("refused");
        assert_eq!(refusal.kind, ErrorKind::BadRequest);
        refusal.message
    }

    const ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn no_call_headers_is_a_plain_request() {
        let headers = HeaderMap::new();
        let call = CallHeaders::parse(&headers).unwrap();
        assert!(call.call_id.is_none() && call.attempt.is_none() && call.deadline.is_none());
        assert!(call.user.is_none() && call.activity.is_none());
    }

    #[test]
    fn well_formed_call_headers_parse() {
        let headers = map(&[
            (CALL_ID, ID),
            (CALL_ATTEMPT, "2"),
            (DEADLINE_MS, " 1500\t"),
            (USER_TYPE, "customer"),
            (USER_ID, "alice"),
            (ACTIVITY_ID, ID),
        ]);
        let call = CallHeaders::parse(&headers).unwrap();
        assert_eq!(call.call_id.unwrap().to_string(), ID);
        assert_eq!(call.call_id_text, Some(ID));
        assert_eq!(call.attempt, Some(2));
        assert_eq!(call.deadline, Some(Duration::from_millis(1500)));
        assert_eq!(call.user.unwrap().user_id(), Some("alice"));
        assert_eq!(call.activity.unwrap().to_string(), ID);
    }

    #[test]
    fn only_the_canonical_uuid_form_is_accepted() {
        for spelling in [
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0cg",
            "67e55044_10b1-426f-9247-bb680e5fe0c8",
            "67e5504-410b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0c-",
        ] {
            for name in [CALL_ID, ACTIVITY_ID] {
                let message = refused(&[(name, spelling)]);
                assert!(message.contains(name) && message.contains("lowercase hyphenated"), "{message}");
            }
        }
    }

    #[test]
    fn every_byte_at_every_position_of_a_uuid_is_read_or_refused_as_canonical() {
        let good = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(uuid(CALL_ID, good).unwrap(), uuid::Uuid::parse_str(good).unwrap());
        for at in 0..good.len() {
            for byte in 0..=255u8 {
                let mut text = good.as_bytes().to_vec();
                text[at] = byte;
                let Ok(text) = String::from_utf8(text) else { continue };
                let hyphen = matches!(at, 8 | 13 | 18 | 23);
                let canonical = if hyphen { byte == b'-' } else { matches!(byte, b'0'..=b'9' | b'a'..=b'f') };
                match uuid(CALL_ID, &text) {
                    Ok(value) => {
                        assert!(canonical, "{text:?} accepted");
                        assert_eq!(value, uuid::Uuid::parse_str(&text).unwrap(), "{text:?}");
                    }
                    Err(_) => assert!(!canonical, "{text:?} refused"),
                }
            }
        }
    }

    #[test]
    fn integers_are_digits_only_within_range() {
        for bad in ["+5", "-1", "1.0", "", "0x10", "1 2", "18446744073709551616"] {
            assert!(refused(&[(DEADLINE_MS, bad)]).contains(DEADLINE_MS), "{bad}");
        }
        for bad in ["0", "+1", "4294967296"] {
            assert!(refused(&[(CALL_ATTEMPT, bad)]).contains(CALL_ATTEMPT), "{bad}");
        }
        let headers = map(&[(DEADLINE_MS, "0"), (CALL_ATTEMPT, "4294967295")]);
        let call = CallHeaders::parse(&headers).unwrap();
        assert_eq!((call.deadline, call.attempt), (Some(Duration::ZERO), Some(u32::MAX)));
        let headers = map(&[(DEADLINE_MS, "18446744073709551615"), (CALL_ATTEMPT, "007")]);
        let call = CallHeaders::parse(&headers).unwrap();
        assert_eq!((call.deadline, call.attempt), (Some(Duration::from_millis(u64::MAX)), Some(7)));
    }

    #[test]
    fn a_repeated_call_header_is_refused_by_name() {
        for name in [CALL_ID, CALL_ATTEMPT, DEADLINE_MS, USER_TYPE, USER_ID, ACTIVITY_ID] {
            let value = match name {
                CALL_ID | ACTIVITY_ID => ID,
                CALL_ATTEMPT | DEADLINE_MS => "1",
                _ => "x",
            };
            let mut pairs = vec![(name, value), (name, value)];
            if name == USER_ID {
                pairs.push((USER_TYPE, "customer"));
            }
            let message = refused(&pairs);
            assert!(message.contains(name) && message.contains("more than once"), "{message}");
        }
    }

    #[test]
    fn user_headers_follow_the_user_rules() {
        assert!(refused(&[(USER_ID, "alice")]).contains("without `x-user-type`"));
        let long = "x".repeat(257);
        assert!(refused(&[(USER_TYPE, &long)]).contains("256"));
        let headers = map(&[(USER_TYPE, "guest")]);
        assert_eq!(CallHeaders::parse(&headers).unwrap().user, Some(UserContext::guest()));
    }

    #[test]
    fn signature_headers_are_read_only_when_single() {
        let headers = map(&[(TIMESTAMP, "1"), (SIGNATURE, "v1=00")]);
        assert_eq!(signature_headers(&headers), (Some("1"), Some("v1=00")));
        let headers = map(&[(TIMESTAMP, "1"), (TIMESTAMP, "2"), (SIGNATURE, "v1=00")]);
        assert_eq!(signature_headers(&headers), (None, Some("v1=00")));
    }

    #[test]
    fn content_types() {
        let check = |value: Option<&str>| {
            let headers = value.map(|v| map(&[("content-type", v)])).unwrap_or_default();
            check_content_type(&headers).map_err(|refusal| {
                assert_eq!(refusal.kind, ErrorKind::UnsupportedMediaType);
                refusal.message
            })
        };
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/problem+json",
            "application/json; version=2",
        ] {
            assert_eq!(check(Some(accepted)), Ok(()), "{accepted}");
        }
        assert!(check(None).unwrap_err().contains("missing"));
        for refused in ["text/plain", "application/+json", "application/jsonx", "text/json"] {
            assert!(check(Some(refused)).unwrap_err().contains("not supported"), "{refused}");
        }
        assert!(check(Some("application/json; charset=latin1")).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn written_headers_parse_back() {
        let user = UserContext::new("customer", "alice").unwrap();
        let id = uuid::Uuid::parse_str(ID).unwrap();
        let mut values = CallValues::new(id, id, Some(&user));
        let mut headers = values.headers();
        write_attempt(&mut headers, 3, Some(values.deadline(450)));
        check_content_type(&headers).unwrap();
        let call = CallHeaders::parse(&headers).unwrap();
        assert_eq!(call.call_id_text, Some(ID));
        assert_eq!(call.activity_text, Some(ID));
        assert_eq!(call.attempt, Some(3));
        assert_eq!(call.deadline, Some(Duration::from_millis(450)));
        assert_eq!(call.user, Some(user));
    }

    #[test]
    fn call_values_outlive_their_buffer_running_out() {
        // A user type of its own and a long id are copied; attempts past the room left
        // for two deadlines take a buffer of their own, and every value stays right.
        let id = "u".repeat(crate::context::MAX_USER_FIELD_BYTES);
        let user = UserContext::new("auditor", &id).unwrap();
        let call = uuid::Uuid::parse_str(ID).unwrap();
        let mut values = CallValues::new(call, uuid::Uuid::nil(), Some(&user));
        let deadlines: Vec<_> = (0..10).map(|n| (n, values.deadline(u64::MAX - n))).collect();
        let headers = values.headers();
        let parsed = CallHeaders::parse(&headers).unwrap();
        assert_eq!((parsed.call_id_text, parsed.user), (Some(ID), Some(user)));
        assert_eq!(parsed.activity_text, Some("00000000-0000-0000-0000-000000000000"));
        for (n, value) in deadlines {
            assert_eq!(value.to_str().unwrap(), (u64::MAX - n).to_string());
        }
        assert_eq!(values.deadline(0), "0");
    }

    #[test]
    fn media_type_suffix_and_charset_name_are_case_insensitive() {
        let check =
            |value: &str| check_content_type(&map(&[("content-type", value)])).map_err(|refusal| refusal.message);
        assert_eq!(check("application/Problem+JSON"), Ok(()));
        assert!(check("application/json; CharSet=latin1").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn one_pass_reads_what_the_lookups_did() {
        // Each header's first value, as `HeaderMap::get` gives.
        let headers = map(&[
            ("content-length", "12"),
            ("content-length", "99"),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
            (TIMESTAMP, "1"),
            (TIMESTAMP, "2"),
            (SIGNATURE, "v1=00"),
        ]);
        let head = RequestHead::read(&headers);
        assert_eq!(head.content_length(), Some(12));
        assert_eq!(head.check_content_type(), Ok(()));
        assert_eq!(head.signature(), (None, Some("v1=00")), "a repeated signature header is none");
        assert_eq!(head.trace(), None);
        let headers = map(&[("content-length", "twelve"), ("content-type", "text/plain")]);
        let head = RequestHead::read(&headers);
        assert_eq!(head.content_length(), None);
        assert_eq!(head.check_content_type().unwrap_err().kind, ErrorKind::UnsupportedMediaType);
        // A trace context is read with all of its `tracestate` headers.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = map(&[("tracestate", "a=1"), ("traceparent", parent), ("tracestate", "b=2")]);
        let trace = RequestHead::read(&headers).trace().expect("a valid traceparent");
        assert_eq!(trace, TraceContext::parse(parent, Some("a=1,b=2")).unwrap());
    }
}
