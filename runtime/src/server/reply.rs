//! Running an implementation to its reply, with its panic caught, and sending replies.
//! What a reply's bytes are is `protocol::reply`'s.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::FutureExt;
use serde::Serialize;
use tracing::Span;

use super::ServedMethod;
use crate::calls::StoredReply;
use crate::protocol::reply::{self as encode, Decoded, EncodedReply, ReplyOutcome, error_type_name};
use crate::protocol::{ErrorKind, JSON, Refusal};

/// How many headers a response's map has room for. hyper keeps a written response's
/// emptied map for the connection's next request head: sized for the dozen headers an
/// intercall request carries, it is reused as it is, where the two a response needs
/// made hyper grow it again for every request (two more allocations and a rehash).
const HEAD_CAPACITY: usize = 12;

/// The HTTP response for an encoded reply. A reply that is not a result carries its
/// [`ReplyOutcome`] in the response's extensions, for the span and the metrics.
pub(crate) fn respond(reply: EncodedReply) -> Response {
    respond_in(HeaderMap::with_capacity(HEAD_CAPACITY), reply)
}

/// [`respond`], with the reply's headers put in `headers`, an empty map: a served call
/// passes its request's own. hyper keeps a written response's map for the connection's
/// next request head, so a connection's calls then allocate no header map at all; a
/// new one per reply (two allocations, one of 1.2 KiB) was 1.8 % of a small call's
/// server instructions.
pub(crate) fn respond_in(mut headers: HeaderMap, reply: EncodedReply) -> Response {
    debug_assert!(headers.is_empty(), "a reply's headers start empty");
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A replayed typed error's names are read from its body only if a span records them.
    let stored = (reply.outcome == ReplyOutcome::StoredService).then(|| StoredBody(reply.body.clone()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if reply.outcome != ReplyOutcome::Ok {
        response.extensions_mut().insert(reply.outcome);
    }
    if let Some(stored) = stored {
        response.extensions_mut().insert(stored);
    }
    response
}

/// The body of a typed error replayed from a call-id store.
#[derive(Clone)]
struct StoredBody(Bytes);

/// How `response` ended its call: `ok`, or the outcome [`respond`] attached.
pub(crate) fn outcome_of(response: &Response) -> ReplyOutcome {
    response.extensions().get::<ReplyOutcome>().copied().unwrap_or(ReplyOutcome::Ok)
}

/// Records on a request's span how its reply ended the call (`outcome`, `error.type`,
/// `http.response.status_code`), and logs a typed error at debug level.
pub(crate) fn record_outcome(served: ServedMethod, span: &Span, response: &Response) {
    if span.is_disabled() {
        return;
    }
    let stored = || response.extensions().get::<StoredBody>().map_or(&[][..], |body| &body.0[..]);
    record_ended(served, span, outcome_of(response), response.status().as_u16(), stored);
}

/// Records on `span` that its call ended with `outcome`, its reply's status being
/// `status`: a unary reply's, or a stream's when the stream ends (`stored` gives a
/// replayed typed error's body, whose names are read only here).
pub(crate) fn record_ended<'a>(
    served: ServedMethod,
    span: &Span,
    outcome: ReplyOutcome,
    status: u16,
    stored: impl FnOnce() -> &'a [u8],
) {
    if span.is_disabled() {
        return;
    }
    span.record("outcome", outcome.label());
    span.record("http.response.status_code", status);
    let error_type = match outcome {
        ReplyOutcome::Ok => return,
        ReplyOutcome::Framework(kind) => {
            span.record("error.type", kind.as_str());
            return;
        }
        ReplyOutcome::Cancelled => {
            span.record("error.type", "cancelled");
            return;
        }
        ReplyOutcome::Service { type_name, variant } => error_type_name(type_name, variant),
        // A replayed typed error: its names are in the stored body.
        ReplyOutcome::StoredService => match encode::decode(422, Some(JSON.as_bytes()), stored()) {
            Decoded::Service { type_name, variant, .. } => error_type_name(&type_name, variant.as_deref()),
            _ => "service".to_owned(),
        },
    };
    span.record("error.type", error_type.as_str());
    tracing::debug!(parent: span, "{}.{} returned {error_type}", served.service, served.method);
}

/// The HTTP response for a refusal.
pub(crate) fn refuse(refusal: &Refusal) -> Response {
    respond(refusal.encode())
}

impl From<StoredReply> for EncodedReply {
    fn from(stored: StoredReply) -> Self {
        Self::stored(stored.status, stored.body)
    }
}

impl From<EncodedReply> for StoredReply {
    fn from(reply: EncodedReply) -> Self {
        Self { status: reply.status, body: reply.body }
    }
}

/// Runs the implementation's future to a reply: its result, its typed error, or a
/// `panic` reply if it panicked (the panic message is logged, never sent).
///
/// Combinators, not an `async fn`: the run's future is held once, where an `async fn`
/// and its inner block each kept their own copy beside the one being awaited.
pub(crate) fn run<T, E, Fut>(served: ServedMethod, future: Fut) -> impl Future<Output = EncodedReply>
where
    T: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<T, E>>,
{
    // Serialization is inside the guard too: a `Serialize` impl can panic as well.
    let replied = AssertUnwindSafe(future.map(move |result| {
        let encoded = match result {
            Ok(value) => encode::result(&value),
            Err(error) => encode::service_error(served.service, served.method, &error, short_type_name::<E>()),
        };
        encoded.unwrap_or_else(|message| internal(served, &message))
    }));
    replied.catch_unwind().map(move |caught| match caught {
        Ok(reply) => reply,
        Err(panic) => panicked(served, panic_message(&*panic)),
    })
}

/// The reply to a run that panicked; `detail` goes to the log only.
pub(crate) fn panicked(served: ServedMethod, detail: &str) -> EncodedReply {
    let ServedMethod { service, method, .. } = served;
    tracing::error!(service, method, "implementation panicked: {detail}");
    let message = format!("{service}.{method} panicked; the server logged the panic message");
    encode::framework_error(ErrorKind::Panic, &message, None)
}

/// The name of `E` without its path, for an error whose `Serialize` impl names none.
pub(super) fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

pub(super) fn internal(served: ServedMethod, message: &str) -> EncodedReply {
    let ServedMethod { service, method, .. } = served;
    tracing::error!(service, method, "{message}");
    encode::framework_error(ErrorKind::Internal, &format!("{service}.{method}: {message}"), None)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
}
