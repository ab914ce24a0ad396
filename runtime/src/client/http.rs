//! The HTTP exchange of one attempt, as client layers and transports see it: the
//! request and response types, the boxed client they compose into, and [`CallInfo`],
//! which every layered request carries in its extensions.

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Any error a layer or a transport fails an exchange with.
///
/// A layer that returns a [`CallError`](crate::CallError) refuses the call: the caller
/// gets exactly that error and the attempt is not retried. Any other error counts as
/// a failed connection, which is retried like one.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of an attempt's request: the call's JSON arguments, whole.
pub type RequestBody = http_body_util::Full<Bytes>;

/// The request of one attempt: `POST {base}/{service}/{method}` with the protocol's
/// headers, and, when the invoker has layers, a [`CallInfo`] in its extensions.
pub type HttpRequest = hyper::http::Request<RequestBody>;

/// The body of a reply, as the client reads it (within `max_reply_bytes`).
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a reply's body could not be read: the transport's or a layer's error.
///
/// A named type rather than a [`BoxError`], so that the futures that read a body stay
/// `Send` for the compiler's higher-ranked lifetime check.
#[derive(Debug)]
pub struct BodyError(BoxError);

impl BodyError {
    /// Wraps any error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The reply of one attempt.
pub type HttpResponse = hyper::http::Response<ResponseBody>;

/// A transport with every layer applied: what carries one attempt. Cloning it is
/// cheap; each attempt calls a clone.
pub type HttpClient = tower::util::BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>;

/// What a layered request is: carried in the extensions of every request that goes
/// through the invoker's layers, for layers that time, count or route by method.
///
/// ```
/// # use intercall::client::{CallInfo, HttpRequest};
/// fn method_of(request: &HttpRequest) -> Option<&'static str> {
///     request.extensions().get::<CallInfo>().map(CallInfo::method)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub(crate) service: &'static str,
    pub(crate) method: &'static str,
    /// The request's own `x-call-id` value: shared, not copied.
    pub(crate) call_id: hyper::http::HeaderValue,
    pub(crate) attempt: u32,
}

impl CallInfo {
    /// The service's name, as in the URL and `services.toml`.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The method's name, as in the URL.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The call id every attempt of this call carries (`x-call-id`).
    pub fn call_id(&self) -> &str {
        // A hyphenated UUID: always text.
        self.call_id.to_str().unwrap_or_default()
    }

    /// Which attempt this is, from 1 (`x-call-attempt`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Boxes any response body whose chunks are [`Bytes`] into a [`ResponseBody`].
pub(crate) fn box_body<B>(body: B) -> ResponseBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // A body that already is one (every layer's, under the built-in transport) is not
    // boxed again: one allocation less per layer and call.
    let mut slot = Some(body);
    if let Some(boxed) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<ResponseBody>>() {
        return boxed.take().expect("the slot was just filled");
    }
    slot.expect("the slot was not taken").map_err(BodyError::new).boxed_unsync()
}
