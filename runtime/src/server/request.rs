//! Everything checked before the implementation runs, in PROTOCOL.md's order: content
//! type, call headers, body size, signature. The rules are `protocol`'s; this file
//! applies them to an axum request and reads its body.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;

use crate::body::{BodyError, read_limited};
use crate::protocol::headers::{self, CallHeaders};
use crate::protocol::signing::{SignedFields, body_sha256};
use crate::protocol::{ErrorKind, Refusal};
use crate::security::Security;

/// The checks before the body is read: content type (415), then the call headers (400).
pub(crate) fn check_headers(headers: &HeaderMap) -> Result<CallHeaders<'_>, Refusal> {
    headers::check_content_type(headers)?;
    CallHeaders::parse(headers)
}

/// Reads the whole body, refusing more than `limit` bytes, declared or not (413).
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    match read_limited(headers, body, limit as u64).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge { .. }) => {
            let message = format!("the request body is larger than this server's limit of {limit} bytes");
            Err(Refusal::new(ErrorKind::PayloadTooLarge, message))
        }
        Err(BodyError::Read(e)) => {
            Err(Refusal::new(ErrorKind::BadRequest, format!("cannot read the request body: {e}")))
        }
    }
}

/// Verifies the request's signature when `security` requires one (401).
pub(crate) fn verify(
    security: &Security,
    service: &str,
    method: &str,
    call: &CallHeaders<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    if !security.is_enabled() {
        return Ok(());
    }
    let body_sha256 = body_sha256(body);
    let user = call.user.as_ref();
    let fields = SignedFields {
        service,
        method,
        call_id: call.call_id_text,
        user_type: user.map(|u| u.user_type().as_str()),
        user_id: user.and_then(|u| u.user_id()),
        activity: call.activity_text,
        body_sha256: &body_sha256,
    };
    let (timestamp, signature) = headers::signature_headers(headers);
    security.verify(&fields, timestamp, signature).map_err(|reason| Refusal::new(ErrorKind::Unauthorized, reason))
}
