//! Everything checked before the implementation runs, in PROTOCOL.md's order: content
//! type, call headers, the signature headers' form and window (before the body is
//! read), body size and read time, the signature. The rules are `protocol`'s; this file
//! applies them to an axum request and reads its body.

use std::time::Duration;

use axum::body::{Body, Bytes};

use crate::body::{BodyError, read_declared};
use crate::protocol::headers::{CallHeaders, RequestHead};
use crate::protocol::signing::{SignedFields, body_sha256};
use crate::protocol::{ErrorKind, Refusal};
use crate::security::Security;

/// The checks before the body is read: content type (415), then the call headers (400).
pub(crate) fn check_headers<'a>(head: &RequestHead<'a>) -> Result<CallHeaders<'a>, Refusal> {
    head.check_content_type()?;
    head.call_headers()
}

/// Refuses a body whose `content-length` is over `limit` (413) before anything is read.
pub(crate) fn check_declared_size(declared: Option<u64>, limit: usize) -> Result<(), Refusal> {
    match declared {
        Some(declared) if declared > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> Refusal {
    let message = format!("the request body is larger than this server's limit of {limit} bytes");
    Refusal::new(ErrorKind::PayloadTooLarge, message)
}

/// When `security` requires signatures: refuses a request whose signature headers are
/// missing, malformed or out of the window (401) before its body is read, so that an
/// unsigned client cannot make the server buffer a body it will refuse anyway.
pub(crate) fn check_signature_headers(security: &Security, head: &RequestHead<'_>) -> Result<(), Refusal> {
    if !security.is_enabled() {
        return Ok(());
    }
    let (timestamp, signature) = head.signature();
    security.check_headers(timestamp, signature).map_err(|reason| Refusal::new(ErrorKind::Unauthorized, reason))
}

/// Reads the whole body, refusing more than `limit` bytes, declared or not (413), and a
/// body that has not arrived whole within `timeout` (408; `None`: no limit).
pub(crate) async fn read_body(
    declared: Option<u64>,
    body: Body,
    limit: usize,
    timeout: Option<Duration>,
) -> Result<Bytes, Refusal> {
    let read = read_declared(declared, body, limit as u64);
    let read = match timeout {
        None => read.await,
        Some(timeout) => match tokio::time::timeout(timeout, read).await {
            Ok(read) => read,
            Err(_) => {
                let message = format!(
                    "the request body did not arrive within this server's body-read timeout of {} ms; the call did not run",
                    timeout.as_millis()
                );
                return Err(Refusal::new(ErrorKind::RequestTimeout, message));
            }
        },
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge { .. }) => Err(too_large(limit)),
        Err(BodyError::Read(e)) => {
            Err(Refusal::new(ErrorKind::BadRequest, format!("cannot read the request body: {e}")))
        }
    }
}

/// Verifies the request's signature (its head's `RequestHead::signature`) when
/// `security` requires one (401).
pub(crate) fn verify(
    security: &Security,
    service: &str,
    method: &str,
    call: &CallHeaders<'_>,
    (timestamp, signature): (Option<&str>, Option<&str>),
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
    security.verify(&fields, timestamp, signature).map_err(|reason| Refusal::new(ErrorKind::Unauthorized, reason))
}
