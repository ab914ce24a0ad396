//! Everything checked before the implementation runs: content type, call headers,
//! body size, argument decoding. Each failure is a [`Rejection`].

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_TYPE, HeaderMap, HeaderName};
use serde::de::DeserializeOwned;

use super::reply::{self, Reply, truncate};
use crate::body::{BodyError, read_limited};
use crate::context::{ActivityId, UserContext};
use crate::security::{self, Security, Signed};
use crate::wire::{self, ErrorKind, names};

/// Why a request was turned away before the implementation ran.
pub(crate) struct Rejection {
    kind: ErrorKind,
    message: String,
    argument: Option<String>,
}

impl Rejection {
    fn new(kind: ErrorKind, message: String) -> Self {
        Self { kind, message, argument: None }
    }

    pub(crate) fn into_reply(self) -> Reply {
        reply::error(self.kind, &self.message, self.argument.as_deref())
    }
}

/// The call headers of a request (all optional: a plain HTTP client sends none).
pub(crate) struct CallHeaders {
    pub(crate) call_id: Option<uuid::Uuid>,
    pub(crate) attempt: Option<u32>,
    /// How long the caller waits for this attempt.
    pub(crate) deadline: Option<Duration>,
    pub(crate) user: Option<UserContext>,
    pub(crate) activity: Option<ActivityId>,
}

impl CallHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> Result<Self, Rejection> {
        let call_id = header(headers, &names::CALL_ID)?
            .map(|text| {
                uuid::Uuid::try_parse(text).map_err(|_| {
                    bad_header(wire::CALL_ID, text, "a UUID such as `67e55044-10b1-426f-9247-bb680e5fe0c8`")
                })
            })
            .transpose()?;
        let attempt = header(headers, &names::CALL_ATTEMPT)?
            .map(|text| match text.parse::<u32>() {
                Ok(n @ 1..) => Ok(n),
                _ => Err(bad_header(wire::CALL_ATTEMPT, text, "an attempt number from 1")),
            })
            .transpose()?;
        let deadline = header(headers, &names::DEADLINE_MS)?
            .map(|text| {
                text.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad_header(wire::DEADLINE_MS, text, "a number of milliseconds"))
            })
            .transpose()?;
        let user_type = headers.get(names::USER_TYPE).map(|v| v.as_bytes());
        let user_id = headers.get(names::USER_ID).map(|v| v.as_bytes());
        let user = UserContext::from_headers(user_type, user_id)
            .map_err(|e| Rejection::new(ErrorKind::BadRequest, format!("invalid user context: {e}")))?;
        let activity = header(headers, &names::ACTIVITY_ID)?
            .map(|text| ActivityId::parse(text).ok_or_else(|| bad_header(wire::ACTIVITY_ID, text, "a UUID")))
            .transpose()?;
        Ok(Self { call_id, attempt, deadline, user, activity })
    }

    /// Verifies the request's signature, when `security` requires one.
    pub(crate) fn verify(
        &self,
        security: &Security,
        service: &str,
        method: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Rejection> {
        if !security.is_enabled() {
            return Ok(());
        }
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let body_sha256 = security::body_sha256(body);
        let user = self.user.as_ref();
        let signed = Signed {
            service,
            method,
            call_id: text(&names::CALL_ID),
            user_type: user.map(|u| u.user_type().as_str()),
            user_id: user.and_then(UserContext::user_id),
            activity: text(&names::ACTIVITY_ID),
            body_sha256: &body_sha256,
        };
        security
            .verify(&signed, text(&names::TIMESTAMP), text(&names::SIGNATURE))
            .map_err(|reason| Rejection::new(ErrorKind::Unauthorized, reason))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Rejection> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map(str::trim).map_err(|_| {
                Rejection::new(ErrorKind::BadRequest, format!("header `{name}` is not visible ASCII text"))
            })
        })
        .transpose()
}

fn bad_header(name: &str, value: &str, expected: &str) -> Rejection {
    Rejection::new(ErrorKind::BadRequest, format!("header `{name}` must be {expected}; got `{}`", truncate(value)))
}

pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let unsupported = |message: String| Err(Rejection::new(ErrorKind::UnsupportedMediaType, message));
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return unsupported(format!("missing `content-type` header; send `content-type: {}`", wire::JSON));
    };
    let media_type = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim();
    let is_json = media_type.eq_ignore_ascii_case(wire::JSON)
        || media_type.get(media_type.len().saturating_sub(5)..).is_some_and(|s| s.eq_ignore_ascii_case("+json"));
    if is_json {
        Ok(())
    } else {
        unsupported(format!(
            "`content-type: {}` is not supported; send `content-type: {}`",
            String::from_utf8_lossy(value.as_bytes()),
            wire::JSON
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes, declared or not.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Rejection> {
    match read_limited(headers, body, limit as u64).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge { .. }) => {
            let message = format!("the request body is larger than this server's limit of {limit} bytes");
            Err(Rejection::new(ErrorKind::PayloadTooLarge, message))
        }
        Err(BodyError::Read(e)) => {
            Err(Rejection::new(ErrorKind::BadRequest, format!("cannot read the request body: {e}")))
        }
    }
}

/// Decodes the JSON object of named arguments; an empty body means no arguments.
pub(crate) fn decode_args<A: DeserializeOwned>(body: &[u8]) -> Result<A, Rejection> {
    let bad = |message: String, argument: Option<String>| Rejection { kind: ErrorKind::BadRequest, message, argument };
    let body: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        Some(_) => return Err(bad("the request body must be a JSON object of named arguments".to_owned(), None)),
    };
    // The fast path: plain serde_json. Only a body it refuses is decoded again with
    // path tracking, to say which argument is wrong and where.
    if let Ok(args) = serde_json::from_slice(body) {
        return Ok(args);
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let args = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let argument = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => missing_field(&e.inner().to_string()),
        };
        let message = match (&argument, e.path().iter().count()) {
            (Some(name), 0) => format!("missing argument `{name}`"),
            (Some(name), 1) => format!("argument `{name}`: {}", e.inner()),
            (Some(name), _) => format!("argument `{name}` is invalid at `{}`: {}", e.path(), e.inner()),
            (None, _) => format!("malformed JSON: {}", e.inner()),
        };
        bad(message, argument)
    })?;
    json.end().map_err(|e| bad(format!("malformed JSON: {e}"), None))?;
    Ok(args)
}

/// serde reports a missing field only in its message: "missing field `id` at ...".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}
