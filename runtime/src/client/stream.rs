//! The client side of a stream method (PROTOCOL.md §4.3): what a `200` reply becomes
//! ([`Success`]: a decoded value, or a stream over the body), and the stream of items
//! a proxy gives its caller, read frame by frame as the caller asks for items.
//!
//! The body is read only when the caller polls for an item, so a caller that stops
//! reading stops the connection, and the server with it (backpressure). A body that
//! ends or breaks without a final frame is an `Err(E::from(CallError))` item with
//! [`is_connect`](crate::CallError::is_connect), never a clean end; a frame that does
//! not decode is an [`is_decode`](crate::CallError::is_decode) item. Either ends the
//! stream.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use hyper::body::Body;
use serde::de::DeserializeOwned;
use tokio::time::Sleep;

use super::endpoint::EndpointInner;
use super::http::ResponseBody;
use super::transport::chain;
use crate::error::CallError;
use crate::protocol::reply::{Decoded, error_type_name};
use crate::protocol::stream::{Frame, LineTooLong, Lines, decode_other, item_frame};
use crate::protocol::{ErrorKind, fast_json};
use crate::{ServiceError, Streaming};

/// What a method's `200` reply becomes.
pub(super) trait Success: Sized {
    /// Whether the method streams: its `200 application/x-ndjson` reply is not read whole.
    const STREAM: bool;

    /// A `200 application/json` reply's body; `Err` says why it is not this.
    fn from_json(json: &[u8]) -> Result<Self, String>;

    /// A streamed reply's body (only when [`STREAM`](Self::STREAM)).
    fn from_stream(body: ResponseBody, setup: StreamSetup) -> Self;
}

/// A unary method's result.
pub(super) struct Unary<T>(pub(super) T);

impl<T: DeserializeOwned> Success for Unary<T> {
    const STREAM: bool = false;

    fn from_json(json: &[u8]) -> Result<Self, String> {
        // The strict fast path first (as for the server's arguments, `protocol::args`);
        // serde_json for what it gives up on, and for the error.
        if let Some(value) = fast_json::from_json(json) {
            return Ok(Unary(value));
        }
        serde_json::from_slice(json).map(Unary).map_err(|e| format!("the reply is not a valid result: {e}"))
    }

    fn from_stream(_: ResponseBody, setup: StreamSetup) -> Self {
        unreachable!("{}.{} is not a stream method: its replies are read whole", setup.service, setup.method)
    }
}

impl<T: DeserializeOwned + Send + 'static, E: ServiceError> Success for Streaming<T, E> {
    const STREAM: bool = true;

    fn from_json(_: &[u8]) -> Result<Self, String> {
        Err("a stream method's reply is a single JSON result, not a stream (`application/x-ndjson`)".to_owned())
    }

    fn from_stream(body: ResponseBody, setup: StreamSetup) -> Self {
        let deadline = setup.deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline.into())));
        let lines = Lines::new(setup.max_frame_bytes);
        Streaming::new(RemoteItems {
            body,
            lines,
            fast: true,
            setup,
            deadline,
            ended: false,
            types: PhantomData::<fn() -> (T, E)>,
        })
    }
}

/// What a stream's reader needs to know besides the body.
pub(super) struct StreamSetup {
    pub(super) service: &'static str,
    pub(super) method: &'static str,
    /// The caller's deadline: the stream ends with a timeout there.
    pub(super) deadline: Option<Instant>,
    /// The longest frame accepted (the client's `max_reply_bytes`).
    pub(super) max_frame_bytes: usize,
    /// What records the call's end.
    pub(super) end: StreamEnd,
}

/// What a stream's call records when the stream ends, as a unary call does when its
/// reply comes: the outcome on the call's span and in the method's metrics.
pub(super) struct StreamEnd {
    pub(super) endpoint: Arc<EndpointInner>,
    pub(super) index: usize,
    pub(super) started: Instant,
    pub(super) span: tracing::Span,
}

/// How a stream ended, for its [`StreamEnd`].
enum Ended {
    Ok,
    /// The method's typed error, named as spans show it.
    Typed(String),
    Failed {
        kind: &'static str,
        status: Option<u16>,
    },
    /// Dropped by its caller before its end.
    Cancelled,
}

impl StreamEnd {
    fn record(&self, ended: Ended) {
        let span = &self.span;
        let outcome = match ended {
            Ended::Ok => "ok",
            Ended::Typed(name) => {
                span.record("error.type", name.as_str());
                "service_error"
            }
            Ended::Failed { kind, status } => {
                span.record("error.type", kind);
                if let Some(status) = status {
                    span.record("http.response.status_code", status);
                }
                kind
            }
            Ended::Cancelled => {
                span.record("error.type", "cancelled");
                "cancelled"
            }
        };
        span.record("outcome", outcome);
        let metrics = &self.endpoint.metrics[self.index];
        metrics.finished(outcome, self.started);
        metrics.stream_ended();
    }
}

/// The items of a streamed reply, read from its body.
struct RemoteItems<T, E> {
    body: ResponseBody,
    lines: Lines,
    /// Whether items are still read with the fast path (`item_frame`).
    fast: bool,
    setup: StreamSetup,
    deadline: Option<Pin<Box<Sleep>>>,
    ended: bool,
    types: PhantomData<fn() -> (T, E)>,
}

/// What one buffered line came to.
enum Read<T, E> {
    Item(T),
    Skip,
    End,
    Failed(E, Ended),
}

/// A failure that ends the stream, as its item and its outcome.
fn call_failed<E: From<CallError>>(error: CallError) -> (E, Ended) {
    let ended = Ended::Failed { kind: error.kind_name(), status: error.status_code() };
    (error.into(), ended)
}

impl<T: DeserializeOwned, E: ServiceError> RemoteItems<T, E> {
    /// The next whole frame already buffered, if any.
    fn buffered(&mut self) -> Option<Read<T, E>> {
        let StreamSetup { service, method, .. } = self.setup;
        let failed = |error: CallError| {
            let (error, ended) = call_failed(error);
            Read::Failed(error, ended)
        };
        let decode_failed = |message: String| failed(CallError::decode(service, method, 200, message));
        // Most frames are items the fast path reads straight from the chunk; any other
        // line is read below, whole.
        if let Some(item) = self.lines.next_item(self.fast) {
            return Some(Read::Item(item));
        }
        let line = match self.lines.next_line() {
            Ok(line) => line?,
            Err(LineTooLong { limit }) => {
                return Some(decode_failed(format!(
                    "a stream frame is longer than this client accepts ({limit} bytes, `max_reply_bytes`)"
                )));
            }
        };
        // An item frame first, straight to its item (no `Frame` in between).
        if let Some(item) = item_frame(line, &mut self.fast) {
            return Some(Read::Item(item));
        }
        Some(match decode_other(line.bytes) {
            Ok(Frame::Item(item)) => Read::Item(item),
            Ok(Frame::Skip) => Read::Skip,
            Ok(Frame::End) => Read::End,
            Ok(Frame::Error(error)) => match error {
                Decoded::Service { type_name, variant, value } => match serde_json::from_str::<E>(value.get()) {
                    Ok(error) => Read::Failed(error, Ended::Typed(error_type_name(&type_name, variant.as_deref()))),
                    Err(e) => decode_failed(format!(
                        "the server's `{type_name}` error does not decode as this method's error type: {e}"
                    )),
                },
                Decoded::Framework { kind: Some(ErrorKind::DeadlineExceeded), message, .. } => {
                    let status = ErrorKind::DeadlineExceeded.status();
                    failed(CallError::server_timeout(service, method, status, message.into_owned()))
                }
                Decoded::Framework { kind, kind_text, message } => {
                    let status = kind.map_or(200, ErrorKind::status);
                    failed(CallError::status(service, method, status, format!("{kind_text}: {message}")))
                }
                other => decode_failed(format!("the stream's final error frame is not an intercall error: {other:?}")),
            },
            Err(message) => decode_failed(message),
        })
    }

    fn cut(&self, why: String) -> (E, Ended) {
        call_failed(CallError::connect(self.setup.service, self.setup.method, why))
    }

    /// The stream ended: recorded once.
    fn end(&mut self, ended: Ended) {
        self.ended = true;
        self.setup.end.record(ended);
    }
}

impl<T: DeserializeOwned, E: ServiceError> Stream for RemoteItems<T, E> {
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T, E>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match this.buffered() {
                Some(Read::Item(item)) => return Poll::Ready(Some(Ok(item))),
                Some(Read::Skip) => continue,
                Some(Read::End) => {
                    this.end(Ended::Ok);
                    return Poll::Ready(None);
                }
                Some(Read::Failed(error, ended)) => {
                    this.end(ended);
                    return Poll::Ready(Some(Err(error)));
                }
                None => {}
            }
            if this.deadline.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready()) {
                let StreamSetup { service, method, .. } = this.setup;
                let message = "the stream reached the call's deadline".to_owned();
                let (error, ended) = call_failed(CallError::server_timeout(service, method, 504, message));
                this.end(ended);
                return Poll::Ready(Some(Err(error)));
            }
            let failure = match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.lines.push(data);
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => format!("the connection broke mid-stream: {}", chain(&e)),
                Poll::Ready(None) if this.lines.has_partial_line() => {
                    "the stream's body ended inside a frame: the connection was cut".to_owned()
                }
                Poll::Ready(None) => "the stream's body ended without a final frame: the connection was cut".to_owned(),
            };
            let (error, ended) = this.cut(failure);
            this.end(ended);
            return Poll::Ready(Some(Err(error)));
        }
    }
}

impl<T, E> Drop for RemoteItems<T, E> {
    /// A stream its caller dropped before its end: the call was cancelled.
    fn drop(&mut self) {
        if !self.ended {
            self.setup.end.record(Ended::Cancelled);
        }
    }
}
