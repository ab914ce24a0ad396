//! §4 Response: the error kinds and their statuses, encoding a result, a typed error or
//! a framework error, and decoding a reply as a client reads it (§7).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::headers::json_charset;
use super::json_writer;
use super::type_info::type_info;

/// The `kind` of every error reply, each with its own HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 422: the implementation returned its typed error; `type`, `variant` and `value`
    /// carry it.
    Service,
    /// 400: the body is not JSON, not an object, an argument has the wrong type, or a
    /// call header is malformed or repeated.
    BadRequest,
    /// 409: the run of this call id has no result for this request: it is still
    /// running past this request's deadline, or it ended without a recorded result (it
    /// panicked, or its entry was evicted). Retryable: retry with the same call id.
    InProgress,
    /// 422: this call id was used before, for this method and user, with a different
    /// body; nothing ran. Not retryable: it is a client bug. (The same call id for
    /// another method or user is another call.)
    CallIdMismatch,
    /// 404: no service of that name on this node.
    UnknownService,
    /// 404: the service has no method of that name.
    UnknownMethod,
    /// 405: a method path was called with a method other than `POST`.
    MethodNotAllowed,
    /// 413: the body is larger than the server's limit.
    PayloadTooLarge,
    /// 415: the `content-type` is missing, not JSON, or names a charset other than UTF-8.
    UnsupportedMediaType,
    /// 500: the implementation panicked. The panic message is logged, never sent.
    Panic,
    /// 500: the server could not serialize the implementation's result or error; or,
    /// to a duplicate, the call ran but its reply was larger than the call-id store
    /// keeps.
    Internal,
    /// 503: the call-id store could not be reached; nothing ran. Retryable.
    StoreUnavailable,
    /// 401: the server requires signed calls and this one is unsigned, wrongly signed
    /// or too old; nothing ran.
    Unauthorized,
    /// 504: the caller's deadline had passed when the call arrived; nothing ran.
    DeadlineExceeded,
    /// 408: the request's body did not arrive within the server's body-read timeout;
    /// nothing ran, and the server closes the connection.
    RequestTimeout,
    /// 503: the server (or this method) already has as many calls in flight as it
    /// takes (`max_in_flight`); nothing was decoded or run, and the reply carries
    /// `Retry-After`. Retryable, best on another endpoint.
    Overloaded,
    /// 409: this call id already started a stream (§4.3); its items are not kept, so
    /// nothing can be replayed and nothing runs again. Not retryable: a new call needs a
    /// new call id.
    StreamStarted,
}

impl ErrorKind {
    /// Every kind, in the order of PROTOCOL.md's table (§4.2; a test checks the table
    /// against this list, the statuses and the retry decision).
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::Service,
        ErrorKind::BadRequest,
        ErrorKind::UnknownService,
        ErrorKind::UnknownMethod,
        ErrorKind::MethodNotAllowed,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Panic,
        ErrorKind::Internal,
        ErrorKind::InProgress,
        ErrorKind::CallIdMismatch,
        ErrorKind::StoreUnavailable,
        ErrorKind::Unauthorized,
        ErrorKind::DeadlineExceeded,
        ErrorKind::RequestTimeout,
        ErrorKind::Overloaded,
        ErrorKind::StreamStarted,
    ];

    /// The `kind` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Service => "service",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::InProgress => "in_progress",
            ErrorKind::CallIdMismatch => "call_id_mismatch",
            ErrorKind::UnknownService => "unknown_service",
            ErrorKind::UnknownMethod => "unknown_method",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Panic => "panic",
            ErrorKind::Internal => "internal",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::StreamStarted => "stream_started",
        }
    }

    /// The HTTP status that goes with this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Service | ErrorKind::CallIdMismatch => 422,
            ErrorKind::BadRequest => 400,
            ErrorKind::InProgress | ErrorKind::StreamStarted => 409,
            ErrorKind::UnknownService | ErrorKind::UnknownMethod => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Panic | ErrorKind::Internal => 500,
            ErrorKind::StoreUnavailable | ErrorKind::Overloaded => 503,
            ErrorKind::Unauthorized => 401,
            ErrorKind::DeadlineExceeded => 504,
            ErrorKind::RequestTimeout => 408,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `kind` string that is none of [`ErrorKind`]'s (a newer server's, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind;

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an intercall error kind")
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for ErrorKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Self, UnknownKind> {
        ErrorKind::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or(UnknownKind)
    }
}

/// The JSON body of every non-2xx reply an intercall server sends.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    /// `bad_request` only: the argument at fault, when one is.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    argument: Option<Cow<'a, str>>,
    /// `service` only: the error type's name.
    #[serde(default, borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    type_name: Option<Cow<'a, str>>,
    /// `service` only, and only for an enum: the variant's name.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    variant: Option<Cow<'a, str>>,
    /// `service` only: the error value as the error type serializes it.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    value: Option<&'a RawValue>,
}

/// A reply as a server sends it and a call-id store keeps it: status and JSON body
/// (always `content-type: application/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedReply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// Set when the reply is made, not read from its status: `call_id_mismatch`
    /// shares 422 with typed errors.
    pub(crate) outcome: ReplyOutcome,
}

/// How a reply ends its call, as spans and metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyOutcome {
    /// `200` with the result.
    Ok,
    /// The method's typed error: its type's name and, for an enum, its variant's.
    Service { type_name: &'static str, variant: Option<&'static str> },
    /// A typed error replayed from a call-id store (its names are in its body).
    StoredService,
    /// A framework error of this kind.
    Framework(ErrorKind),
    /// A stream its client dropped before the final frame (never a reply's: only a
    /// stream's end, §4.3).
    Cancelled,
}

impl ReplyOutcome {
    /// `ok`, `service_error` or `framework_error`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Service { .. } | Self::StoredService => "service_error",
            Self::Framework(_) => "framework_error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A typed error's name as spans show it: `CatalogError::NotFound`, or `CatalogError`
/// for an error that is not an enum.
pub(crate) fn error_type_name(type_name: &str, variant: Option<&str>) -> String {
    match variant {
        Some(variant) => format!("{type_name}::{variant}"),
        None => type_name.to_owned(),
    }
}

impl EncodedReply {
    /// A reply a call-id store kept (a result or a typed error), to send again.
    pub(crate) fn stored(status: u16, body: Bytes) -> Self {
        let outcome = if status == 200 { ReplyOutcome::Ok } else { ReplyOutcome::StoredService };
        Self { status, body, outcome }
    }

    /// Successes and typed errors are stored for duplicates; a panic, an internal
    /// failure or any other framework error is not, so that a retry can run again (§5).
    pub(crate) fn is_storable(&self) -> bool {
        matches!(self.outcome, ReplyOutcome::Ok | ReplyOutcome::Service { .. } | ReplyOutcome::StoredService)
    }
}

/// `200` with the result as JSON; `Err` with serde's reason when it does not serialize.
pub(crate) fn result<T: Serialize>(value: &T) -> Result<EncodedReply, String> {
    let body = to_json(value).map_err(|e| format!("cannot serialize the result: {e}"))?;
    Ok(EncodedReply { status: 200, body, outcome: ReplyOutcome::Ok })
}

/// `422` with the typed error: its value, its type's name and, for an enum, its
/// variant's, both read from its `Serialize` impl (`type_name` is the fallback name
/// when the impl names none).
pub(crate) fn service_error<E: Serialize>(
    service: &str,
    method: &str,
    error: &E,
    type_name: &'static str,
) -> Result<EncodedReply, String> {
    let value = serde_json::value::to_raw_value(error).map_err(|e| format!("cannot serialize the error: {e}"))?;
    let info = type_info(error);
    let type_name = info.name.unwrap_or(type_name);
    let message = match info.variant {
        Some(variant) => format!("{service}.{method} returned {type_name}::{variant}"),
        None => format!("{service}.{method} returned a {type_name}"),
    };
    let body = ErrorBody {
        kind: ErrorKind::Service.as_str().into(),
        message: message.into(),
        argument: None,
        type_name: Some(type_name.into()),
        variant: info.variant.map(Into::into),
        value: Some(&value),
    };
    let outcome = ReplyOutcome::Service { type_name, variant: info.variant };
    Ok(EncodedReply { outcome, ..encode(ErrorKind::Service, &body) })
}

/// A framework error reply: `{"kind": .., "message": .., "argument"?: ..}`.
pub(crate) fn framework_error(kind: ErrorKind, message: &str, argument: Option<&str>) -> EncodedReply {
    let body = ErrorBody {
        kind: kind.as_str().into(),
        message: message.into(),
        argument: argument.map(Into::into),
        type_name: None,
        variant: None,
        value: None,
    };
    encode(kind, &body)
}

fn encode(kind: ErrorKind, body: &ErrorBody<'_>) -> EncodedReply {
    let body = to_json(body).expect("an error body of strings and raw JSON always serializes");
    EncodedReply { status: kind.status(), body, outcome: ReplyOutcome::Framework(kind) }
}

/// A scratch buffer per thread larger than this is not kept for the next reply.
const SCRATCH_KEEP: usize = 256 << 10;

/// `value` as JSON, in a body of exactly its length: a call-id store keeps replies for
/// minutes and counts their length against its byte budget, so the length must be what
/// the memory costs. Serialized into the thread's scratch buffer (which keeps its
/// capacity, so a reply does not grow a `Vec` by doubling), then copied once into an
/// allocation of its exact size. Growing a `Vec` per reply and shrinking it instead
/// left a hole of up to its length beside every kept reply, and a kept doubled `Vec`
/// cost up to twice the length counted (docs/BENCHMARKS.md).
fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Bytes> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let body = json_writer::to_writer(&mut buffer, value).map(|()| Bytes::copy_from_slice(&buffer));
            if buffer.capacity() > SCRATCH_KEEP {
                *buffer = Vec::new();
            }
            body
        }
        // A `Serialize` impl that encodes a reply of its own meanwhile.
        Err(_) => json_writer::to_vec(value).map(|json| Bytes::from(json.into_boxed_slice())),
    })
}

/// A reply as a client reads it (§7).
#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    /// `200` with a JSON body: the result, still to be decoded as the method's type.
    Result(&'a [u8]),
    /// `200` whose `content-type` is not JSON: not a result (a decode failure).
    NotJson { content_type: String },
    /// `422 service`: the typed error's value, still to be decoded, and the names the
    /// server gave its type and variant.
    Service { type_name: Cow<'a, str>, variant: Option<Cow<'a, str>>, value: &'a RawValue },
    /// An intercall framework error: a known kind at its own status, or a kind this
    /// client does not know (`None`) at a non-2xx status.
    Framework { kind: Option<ErrorKind>, kind_text: Cow<'a, str>, message: Cow<'a, str> },
    /// `408` or `504` without an intercall error body: a gateway, a balancer or a
    /// server's timeout layer stopped waiting for the reply (§7). The method may have
    /// run, or may still be running: to the caller, a timeout.
    GatewayTimeout { description: String },
    /// Anything else: another 2xx, a body that is not an error body, a kind at a status
    /// that is not its own (a gateway's reply, not intercall's).
    Foreign { description: String },
}

/// The statuses gateways, balancers and middleware answer with on their own (§5, §7):
/// without an intercall error body, each is retried with the same call id.
pub(crate) const INTERMEDIARY_STATUSES: [u16; 5] = [408, 429, 502, 503, 504];

/// Reads a reply: its status, its `content-type` header and its body.
pub(crate) fn decode<'a>(status: u16, content_type: Option<&[u8]>, body: &'a [u8]) -> Decoded<'a> {
    if status == 200 {
        let content_type = content_type.and_then(|value| std::str::from_utf8(value).ok());
        return match content_type.and_then(json_charset) {
            Some(_) => Decoded::Result(body),
            None => Decoded::NotJson { content_type: content_type.unwrap_or("(none)").to_owned() },
        };
    }
    if (200..300).contains(&status) {
        return Decoded::Foreign {
            description: format!("status {status} is not an intercall reply (results are 200)"),
        };
    }
    let Ok(error) = serde_json::from_slice::<ErrorBody<'_>>(body) else {
        return foreign(status, describe_foreign_body(body));
    };
    let kind = error.kind.parse::<ErrorKind>().ok();
    match (kind, error.value) {
        (Some(kind), _) if kind.status() != status => foreign(
            status,
            format!(
                "a `{kind}` error body at status {status}, where intercall sends {}: not an intercall reply ({})",
                kind.status(),
                super::truncate(&error.message)
            ),
        ),
        (Some(ErrorKind::Service), Some(value)) => {
            let type_name = error.type_name.unwrap_or(Cow::Borrowed("?"));
            Decoded::Service { type_name, variant: error.variant, value }
        }
        (Some(ErrorKind::Service), None) => {
            Decoded::Foreign { description: "a `service` error body without a `value`".to_owned() }
        }
        (kind, _) => Decoded::Framework { kind, kind_text: error.kind, message: error.message },
    }
}

/// An error body read on its own, as a stream's final frame carries it (§4.3): there
/// is no status to check its kind against.
pub(crate) fn decode_error_body(body: &[u8]) -> Decoded<'_> {
    let Ok(error) = serde_json::from_slice::<ErrorBody<'_>>(body) else {
        return Decoded::Foreign { description: describe_foreign_body(body) };
    };
    match (error.kind.parse::<ErrorKind>().ok(), error.value) {
        (Some(ErrorKind::Service), Some(value)) => {
            let type_name = error.type_name.unwrap_or(Cow::Borrowed("?"));
            Decoded::Service { type_name, variant: error.variant, value }
        }
        (Some(ErrorKind::Service), None) => {
            Decoded::Foreign { description: "a `service` error body without a `value`".to_owned() }
        }
        (kind, _) => Decoded::Framework { kind, kind_text: error.kind, message: error.message },
    }
}

/// A reply that is not intercall's: a timeout when its status says a gateway (`504`)
/// or the server's own middleware (`408`) stopped waiting, else a foreign reply.
fn foreign(status: u16, description: String) -> Decoded<'static> {
    let who = match status {
        504 => "a gateway stopped waiting for the server",
        408 => "the server's middleware or a gateway stopped waiting for the reply",
        _ => return Decoded::Foreign { description },
    };
    Decoded::GatewayTimeout {
        description: format!("{who} (the method may have run, or may still be running); {description}"),
    }
}

/// A short, printable description of a reply body that is not intercall's.
fn describe_foreign_body(body: &[u8]) -> String {
    const SHOWN: usize = 200;
    if body.is_empty() {
        return "empty reply body (not an intercall server?)".to_owned();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let more = if body.len() > SHOWN { "..." } else { "" };
    format!("reply is not an intercall error body (not an intercall server?): {text}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&[u8]> = Some(b"application/json");

    #[test]
    fn every_row_of_the_status_table() {
        let table = [
            (422, "service"),
            (400, "bad_request"),
            (404, "unknown_service"),
            (404, "unknown_method"),
            (405, "method_not_allowed"),
            (413, "payload_too_large"),
            (415, "unsupported_media_type"),
            (500, "panic"),
            (500, "internal"),
            (409, "in_progress"),
            (422, "call_id_mismatch"),
            (503, "store_unavailable"),
            (401, "unauthorized"),
            (504, "deadline_exceeded"),
            (408, "request_timeout"),
            (503, "overloaded"),
            (409, "stream_started"),
        ];
        assert_eq!(table.len(), ErrorKind::ALL.len());
        for ((status, text), kind) in table.into_iter().zip(ErrorKind::ALL) {
            assert_eq!((kind.status(), kind.as_str()), (status, text));
            assert_eq!(text.parse::<ErrorKind>(), Ok(kind));
            if kind != ErrorKind::Service {
                let reply = framework_error(kind, "why", None);
                assert_eq!(reply.status, status);
                match decode(reply.status, JSON, &reply.body) {
                    Decoded::Framework { kind: Some(decoded), message, .. } => {
                        assert_eq!((decoded, &*message), (kind, "why"));
                    }
                    other => panic!("{text}: {other:?}"),
                }
            }
        }
        assert_eq!("Bad_Request".parse::<ErrorKind>(), Err(UnknownKind));
    }

    #[derive(Serialize)]
    enum CatalogError {
        NotFound { id: String },
    }

    #[test]
    fn a_typed_error_round_trips() {
        let error = CatalogError::NotFound { id: "p-1".into() };
        let reply = service_error("Catalog", "get", &error, "Fallback").unwrap();
        assert_eq!(reply.status, 422);
        assert!(reply.is_storable());
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"kind":"service","message":"Catalog.get returned CatalogError::NotFound",
                "type":"CatalogError","variant":"NotFound","value":{"NotFound":{"id":"p-1"}}})
        );
        match decode(422, JSON, &reply.body) {
            Decoded::Service { type_name, value, .. } => {
                assert_eq!((&*type_name, value.get()), ("CatalogError", r#"{"NotFound":{"id":"p-1"}}"#));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_argument_names_it() {
        let reply = framework_error(ErrorKind::BadRequest, "argument `id`: wrong", Some("id"));
        assert_eq!(&reply.body[..], br#"{"kind":"bad_request","message":"argument `id`: wrong","argument":"id"}"#);
        assert!(!reply.is_storable());
    }

    #[test]
    fn a_result_is_a_200_with_json_only() {
        let reply = result(&vec![1, 2]).unwrap();
        assert_eq!((reply.status, &reply.body[..]), (200, &b"[1,2]"[..]));
        assert!(matches!(decode(200, JSON, b"[1,2]"), Decoded::Result(b"[1,2]")));
        assert!(matches!(decode(200, Some(b"application/json; charset=utf-8"), b"1"), Decoded::Result(_)));
        assert!(matches!(decode(200, Some(b"text/plain"), b"1"), Decoded::NotJson { .. }));
        assert!(matches!(decode(200, None, b"1"), Decoded::NotJson { .. }));
        let odd = "applicatio€/x+json".as_bytes();
        assert!(matches!(decode(200, Some(odd), b"1"), Decoded::NotJson { .. }), "no panic on any UTF-8");
        for status in [201, 204, 299] {
            assert!(matches!(decode(status, JSON, b"1"), Decoded::Foreign { .. }), "{status}");
        }
    }

    #[test]
    fn a_kind_at_another_status_is_not_intercall_s() {
        let service = service_error("Catalog", "get", &CatalogError::NotFound { id: "x".into() }, "E").unwrap();
        for status in [400, 500] {
            assert!(matches!(decode(status, JSON, &service.body), Decoded::Foreign { .. }), "{status}");
        }
        let in_progress = framework_error(ErrorKind::InProgress, "later", None);
        assert!(matches!(decode(503, JSON, &in_progress.body), Decoded::Foreign { .. }));
        let no_value = br#"{"kind":"service","message":"m"}"#;
        assert!(matches!(decode(422, JSON, no_value), Decoded::Foreign { .. }));
    }

    #[test]
    fn unknown_kinds_and_foreign_bodies() {
        match decode(418, JSON, br#"{"kind":"teapot","message":"short and stout","extra":1}"#) {
            Decoded::Framework { kind: None, kind_text, .. } => assert_eq!(kind_text, "teapot"),
            other => panic!("{other:?}"),
        }
        match decode(502, None, b"<html>bad gateway</html>") {
            Decoded::Foreign { description } => assert!(description.contains("<html>bad gateway"), "{description}"),
            other => panic!("{other:?}"),
        }
        match decode(503, None, b"") {
            Decoded::Foreign { description } => assert!(description.contains("empty"), "{description}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_408_or_504_without_an_intercall_body_is_a_gateway_timeout() {
        for (status, body) in [(504, &b""[..]), (408, b""), (504, b"<html>upstream timed out</html>"), (408, b"{}")] {
            match decode(status, None, body) {
                Decoded::GatewayTimeout { description } => {
                    assert!(description.contains("may have run"), "{description}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        // A known kind at another kind's status is a gateway's too.
        let in_progress = framework_error(ErrorKind::InProgress, "later", None);
        assert!(matches!(decode(504, JSON, &in_progress.body), Decoded::GatewayTimeout { .. }));
        // intercall's own 504 is not: its caller's deadline had passed, nothing ran.
        let deadline = framework_error(ErrorKind::DeadlineExceeded, "late", None);
        assert!(matches!(
            decode(504, JSON, &deadline.body),
            Decoded::Framework { kind: Some(ErrorKind::DeadlineExceeded), .. }
        ));
        // A kind this client does not know is a framework failure at any status (§7).
        let newer = br#"{"kind":"some_newer_kind","message":"m"}"#;
        assert!(matches!(decode(504, JSON, newer), Decoded::Framework { kind: None, .. }));
        for status in [429, 502, 503, 500] {
            assert!(matches!(decode(status, None, b""), Decoded::Foreign { .. }), "{status}");
        }
    }

    #[test]
    fn only_results_and_typed_errors_are_stored() {
        assert!(result(&1).unwrap().is_storable());
        assert!(
            service_error("Catalog", "get", &CatalogError::NotFound { id: "x".into() }, "E").unwrap().is_storable()
        );
        // A run ends in a result, a typed error, a panic or an internal failure; the
        // other kinds are answered before anything runs.
        for kind in ErrorKind::ALL {
            assert!(!framework_error(kind, "m", None).is_storable(), "{kind}");
        }
    }

    /// Regression (issue 17): a reply's `Vec` became `Bytes` with its spare capacity,
    /// up to twice the length the call-id store counted (4 KiB replies cost 8 KiB).
    #[test]
    fn reply_bodies_have_no_spare_capacity() {
        let capacity = |body: Bytes| body.try_into_mut().expect("the only handle").capacity();
        for len in [0, 1, 100, 4_090, 4_100, 70_000] {
            let body = result(&"x".repeat(len)).unwrap().body;
            let len = body.len();
            assert_eq!(capacity(body), len, "a result of {len} bytes");
        }
        let error = service_error("Catalog", "get", &CatalogError::NotFound { id: "x".repeat(5_000) }, "E").unwrap();
        let len = error.body.len();
        assert_eq!(capacity(error.body), len, "a typed error");
    }
}
