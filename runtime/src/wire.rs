//! What travels on the wire besides the user's own JSON: the media type and the error
//! reply. `docs/PROTOCOL.md` is the normative description; this module is its code.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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

pub use crate::security::{SIGNATURE, TIMESTAMP};

/// The call headers as parsed names, built once rather than on every lookup.
pub(crate) mod names {
    use axum::http::HeaderName;

    pub(crate) const CALL_ID: HeaderName = HeaderName::from_static(super::CALL_ID);
    pub(crate) const CALL_ATTEMPT: HeaderName = HeaderName::from_static(super::CALL_ATTEMPT);
    pub(crate) const DEADLINE_MS: HeaderName = HeaderName::from_static(super::DEADLINE_MS);
    pub(crate) const USER_TYPE: HeaderName = HeaderName::from_static(super::USER_TYPE);
    pub(crate) const USER_ID: HeaderName = HeaderName::from_static(super::USER_ID);
    pub(crate) const ACTIVITY_ID: HeaderName = HeaderName::from_static(super::ACTIVITY_ID);
    pub(crate) const TIMESTAMP: HeaderName = HeaderName::from_static(super::TIMESTAMP);
    pub(crate) const SIGNATURE: HeaderName = HeaderName::from_static(super::SIGNATURE);
}

/// The `kind` of every error reply, each with its own HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 422: the implementation returned its typed error; `type`, `variant` and `value`
    /// carry it.
    Service,
    /// 400: the body is not JSON, not an object, an argument has the wrong type, or a
    /// call header is malformed.
    BadRequest,
    /// 409: another request with this call id is still running and did not finish
    /// within this request's deadline. Retryable: retry with the same call id.
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
    /// 415: the `content-type` is missing or not JSON.
    UnsupportedMediaType,
    /// 500: the implementation panicked. The panic message is logged, never sent.
    Panic,
    /// 500: the server could not serialize the implementation's result.
    Internal,
    /// 503: the call-id store could not be reached; nothing ran. Retryable.
    StoreUnavailable,
    /// 401: the server requires signed calls and this one is unsigned, wrongly signed
    /// or too old; nothing ran.
    Unauthorized,
    /// 504: the caller's deadline had passed when the call arrived; nothing ran.
    DeadlineExceeded,
}

impl ErrorKind {
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
        }
    }

    /// The HTTP status that goes with this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Service | ErrorKind::CallIdMismatch => 422,
            ErrorKind::BadRequest => 400,
            ErrorKind::InProgress => 409,
            ErrorKind::UnknownService | ErrorKind::UnknownMethod => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Panic | ErrorKind::Internal => 500,
            ErrorKind::StoreUnavailable => 503,
            ErrorKind::Unauthorized => 401,
            ErrorKind::DeadlineExceeded => 504,
        }
    }
}

/// The JSON body of every non-2xx reply an intercall server sends.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) message: Cow<'a, str>,
    /// `bad_request` only: the argument that failed to decode, when known.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub(crate) argument: Option<Cow<'a, str>>,
    /// `service` only: the error type's name.
    #[serde(default, borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) type_name: Option<Cow<'a, str>>,
    /// `service` only, and only for an enum: the variant's name.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<Cow<'a, str>>,
    /// `service` only: the error value as the error type serializes it.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<&'a RawValue>,
}

/// An error reply as the client reads it.
pub(crate) enum ErrorReply<'a> {
    Service { type_name: Cow<'a, str>, value: &'a RawValue },
    Framework { kind: Cow<'a, str>, message: Cow<'a, str> },
}

/// Reads an error reply; `None` when the body is not one (a balancer's HTML page, say).
pub(crate) fn parse_error_reply(body: &[u8]) -> Option<ErrorReply<'_>> {
    let body: ErrorBody<'_> = serde_json::from_slice(body).ok()?;
    match body.value {
        Some(value) if body.kind == ErrorKind::Service.as_str() => {
            Some(ErrorReply::Service { type_name: body.type_name.unwrap_or(Cow::Borrowed("?")), value })
        }
        _ => Some(ErrorReply::Framework { kind: body.kind, message: body.message }),
    }
}

/// A short, printable description of a reply body that is not intercall's.
pub(crate) fn describe_foreign_body(body: &[u8]) -> String {
    const SHOWN: usize = 200;
    if body.is_empty() {
        return "empty reply body (not an intercall server?)".to_owned();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let more = if body.len() > SHOWN { "..." } else { "" };
    format!("reply is not an intercall error body (not an intercall server?): {text}{more}")
}
