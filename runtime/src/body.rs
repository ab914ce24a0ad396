//! Reading a whole HTTP body within a size limit, for requests (server) and replies
//! (client) alike: a body that declares or streams more than the limit is refused, not
//! buffered whole.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::http::HeaderMap;
use hyper::http::header::CONTENT_LENGTH;

/// Why a body was not read.
pub(crate) enum BodyError {
    /// Larger than the limit: `declared` by its `content-length`, or found so while
    /// streaming (`None`).
    TooLarge { declared: Option<u64> },
    /// The connection failed while the body came.
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// The body length a head declares in `content-length`, if it does.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// Reads all of `body` (whose head had `headers`), at most `limit` bytes.
pub(crate) async fn read_limited<B>(headers: &HeaderMap, body: B, limit: u64) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_declared(declared_length(headers), body, limit).await
}

/// [`read_limited`] for a caller that has read the head's `content-length` already.
pub(crate) async fn read_declared<B>(declared: Option<u64>, body: B, limit: u64) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(declared) = declared.filter(|&len| len > limit) {
        return Err(BodyError::TooLarge { declared: Some(declared) });
    }
    match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge { declared: None }),
        Err(e) => Err(BodyError::Read(e)),
    }
}
