//! Serving a stream method (PROTOCOL.md §4.3): the opening (the implementation's
//! `Result<Streaming<T, E>, E>`) goes through the same checks and call-id flow as a
//! unary call; then the items leave as newline-delimited JSON frames, written only as
//! fast as the client reads them.
//!
//! - **Backpressure.** The frame body is a stream that hyper polls only when the
//!   connection can take more, so the implementation's stream is polled at that pace:
//!   what waits is at most one batch of frames, hyper's write buffer and the
//!   socket's buffers.
//! - **Cancellation.** When the client goes away, hyper drops the body, and with it
//!   the implementation's stream: it is not polled again.
//! - **Call ids.** The claim covers the opening only. A typed error before the first
//!   item is recorded as for a unary call; a stream that started is recorded as
//!   `409 stream_started` (its items are not kept), so a duplicate is answered at once
//!   whether the stream is running, stalled or finished, and no stream holds a claim.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::Response;
use futures_util::{FutureExt, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Sleep;
use tracing::Instrument;

use super::dedup::{self, ClaimGuard, Outcome};
use super::detach::Detachable;
use super::reply::{self, respond_in};
use super::shed::InFlight;
use super::{Admitted, ServedMethod, ServiceRouter, ServiceState, admit};
use crate::Streaming;
use crate::calls::{CallKey, CallStore, OnStoreError};
use crate::context::CallContext;
use crate::protocol::ErrorKind;
use crate::protocol::reply::{self as encode, EncodedReply, ReplyOutcome, framework_error};
use crate::protocol::stream::{self as frames, KEEPALIVE_INTERVAL, NDJSON};
use crate::telemetry;

/// Frames are gathered up to about this many bytes per chunk written: small items go
/// out many to a write, and what waits for a slow reader stays bounded (this, plus
/// hyper's write buffer of ~400 KiB, plus the sockets'). 256 KiB rather than 64: each
/// chunk is one hand-over from the reader's connection task to its body (hyper's body
/// channel holds one chunk), so half the reader's context switches for 1M small items;
/// and chunk buffers over glibc's 128 KiB mmap threshold raise it, where 64 KiB ones
/// were given back to the kernel at the top of the heap and faulted in again (22,000
/// page faults of the server per 1M items, ~800 now; BENCHMARKS.md, fourth round).
const BATCH_BYTES: usize = 256 << 10;

/// The most a chunk's buffer is given up front: one huge item does not make every
/// later chunk allocate as much.
const MAX_CHUNK_CAPACITY: usize = 1 << 20;

impl<S: Send + Sync + 'static> ServiceRouter<S> {
    /// Adds `POST /{service}/{method}` for a stream method: decodes the arguments as
    /// `A`, runs `call`, and streams the items of the `Streaming` it returns.
    pub fn stream_method<A, T, E, F, Fut>(self, method: &'static str, call: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize + Send + 'static,
        E: Serialize + Send + 'static,
        F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Streaming<T, E>, E>> + Send + 'static,
    {
        self.route(method, move |served, state, request, span, in_flight| {
            handle_stream(served, state, call.clone(), request, span, in_flight)
        })
    }
}

async fn handle_stream<S, A, T, E, F, Fut>(
    served: ServedMethod,
    state: ServiceState<S>,
    call: F,
    request: Request,
    span: tracing::Span,
    in_flight: InFlight,
) -> Response
where
    A: DeserializeOwned,
    T: Serialize + Send + 'static,
    E: Serialize + Send + 'static,
    F: FnOnce(Arc<S>, A) -> Fut,
    Fut: Future<Output = Result<Streaming<T, E>, E>> + Send + 'static,
{
    let keepalive =
        request.extensions().get::<super::ServeTimings>().map_or(KEEPALIVE_INTERVAL, |t| t.stream_keepalive);
    let Admitted { args, context, span, deadline, dedup, reply_headers } =
        match admit(served, &state, request, span).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
    // The opening, and then the stream until its end, hold the call's place under
    // `max_in_flight`: a running stream is a running call.
    let opening =
        in_flight.clone().during(context.clone().scope(call(state.implementation, args)).instrument(span.clone()));
    let opened = match dedup {
        // As a unary run, the opening is not cut short by a client that goes away.
        None => Detachable::new(open(served, opening)).await,
        Some((key, fingerprint, claimed)) => {
            open_once(served, state.store, key, fingerprint, deadline, claimed, opening).instrument(span.clone()).await
        }
    };
    match opened {
        Ok(items) => {
            let end = StreamReply::default();
            let body = FrameBody::new(served, items, context, span, keepalive, end.clone(), in_flight);
            stream_response(reply_headers, body, end)
        }
        Err(reply) => respond_in(reply_headers, reply),
    }
}

/// Runs the opening: the stream, or the reply to send instead (the typed error, or
/// `500 panic` with the panic logged).
async fn open<T, E, Fut>(served: ServedMethod, opening: Fut) -> Result<Streaming<T, E>, EncodedReply>
where
    E: Serialize,
    Fut: Future<Output = Result<Streaming<T, E>, E>>,
{
    match AssertUnwindSafe(opening).catch_unwind().await {
        Ok(Ok(items)) => Ok(items),
        Ok(Err(error)) => Err(typed_error(served, &error)),
        Err(panic) => Err(reply::panicked(served, reply::panic_message(&*panic))),
    }
}

fn typed_error<E: Serialize>(served: ServedMethod, error: &E) -> EncodedReply {
    encode::service_error(served.service, served.method, error, reply::short_type_name::<E>())
        .unwrap_or_else(|message| reply::internal(served, &message))
}

/// What the detached part of [`open_once`] came to.
enum Opening<T, E> {
    Opened(Result<Streaming<T, E>, EncodedReply>),
    /// The claim said not to run: the store's answer.
    Answer(Outcome),
}

/// The opening under a call id: claimed (now, or by `claimed`), run once, and
/// recorded: the typed error, or `stream_started` for a stream that started.
async fn open_once<T, E, Fut>(
    served: ServedMethod,
    store: Arc<dyn CallStore>,
    key: CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
    claimed: Option<ClaimGuard>,
    opening: Fut,
) -> Result<Streaming<T, E>, EncodedReply>
where
    T: Send + 'static,
    E: Serialize + Send + 'static,
    Fut: Future<Output = Result<Streaming<T, E>, E>> + Send + 'static,
{
    let started = std::time::Instant::now();
    let (run_store, run_key) = (Arc::clone(&store), key.clone());
    let run = Detachable::new(async move {
        let guard = match claimed {
            Some(guard) => guard,
            None => match dedup::settle(run_store.claim(&run_key, fingerprint).await) {
                Ok(ticket) => ClaimGuard::new(run_store, run_key.clone(), ticket),
                Err(Outcome::StoreFailed(error)) if served.on_store_error == OnStoreError::Run => {
                    telemetry::store_event(served.service, served.method, "store_error");
                    tracing::warn!(
                        service = served.service,
                        method = served.method,
                        "call-id store unavailable ({error}); running without deduplication"
                    );
                    return Opening::Opened(open(served, opening).await);
                }
                Err(outcome) => return Opening::Answer(outcome),
            },
        };
        let opened = open(served, opening).await;
        let record = match &opened {
            Ok(_) => stream_started(served, &run_key),
            Err(reply) => reply.clone(),
        };
        guard.finish(&record).await;
        Opening::Opened(opened)
    });
    let outcome = match dedup::join(served, deadline, run).await {
        Ok(Opening::Opened(opened)) => return opened,
        Ok(Opening::Answer(outcome)) => Ok(outcome),
        Err(joined) => Err(joined),
    };
    Err(dedup::answer(served, &*store, &key, fingerprint, deadline, started, outcome).await)
}

/// What a call id's record says once its stream has started: a duplicate gets it,
/// since the items are not kept.
fn stream_started(served: ServedMethod, key: &CallKey) -> EncodedReply {
    let message = format!(
        "call id `{}` already started a stream of {}.{}; its items are not kept, so they cannot be sent again and nothing runs again; a new call needs a new call id",
        key.call_id(),
        served.service,
        served.method
    );
    let reply = framework_error(ErrorKind::StreamStarted, &message, None);
    EncodedReply::stored(reply.status, reply.body)
}

/// Marks a stream's reply, so that the connection counts it in flight until its body
/// ends (`serve.rs`), and carries how the stream ended to the span and the metrics,
/// which record a stream's outcome when it ends, not when its head leaves (`route`).
#[derive(Clone, Default)]
pub(super) struct StreamReply(Arc<Mutex<Ending>>);

/// Where a stream's end and the recording of it meet, whichever comes first.
#[derive(Default)]
enum Ending {
    #[default]
    Running,
    /// What records the end, waiting for it.
    Recorder(Box<dyn FnOnce(ReplyOutcome) + Send>),
    /// The end, waiting for its recorder.
    Ended(ReplyOutcome),
    /// Recorded.
    Done,
}

impl StreamReply {
    /// Calls `record` with the stream's outcome when it ends (at once if it has).
    pub(super) fn on_end(&self, record: impl FnOnce(ReplyOutcome) + Send + 'static) {
        let mut ending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *ending, Ending::Done) {
            Ending::Ended(outcome) => {
                drop(ending);
                record(outcome);
            }
            _ => *ending = Ending::Recorder(Box::new(record)),
        }
    }

    /// The stream ended with `outcome` (only its first end counts).
    fn ended(&self, outcome: ReplyOutcome) {
        let mut ending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *ending, Ending::Done) {
            Ending::Recorder(record) => {
                drop(ending);
                record(outcome);
            }
            Ending::Running => *ending = Ending::Ended(outcome),
            earlier @ (Ending::Ended(_) | Ending::Done) => *ending = earlier,
        }
    }
}

/// `headers`: an empty map for the reply's headers (the request's own, emptied).
fn stream_response<T, E>(mut headers: HeaderMap, body: FrameBody<T, E>, end: StreamReply) -> Response
where
    T: Serialize + Send + 'static,
    E: Serialize + Send + 'static,
{
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    // Intermediaries must pass each frame on as it comes, not keep or buffer the reply.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = Response::new(Body::from_stream(body));
    *response.headers_mut() = headers;
    response.extensions_mut().insert(end);
    response
}

/// The frames of one stream: polls the implementation's items inside the request's
/// context and span, ends at the first error, a panic or the deadline with the final
/// frame that says so, and sends a keep-alive when the stream is idle.
struct FrameBody<T, E> {
    served: ServedMethod,
    /// `None` once the final frame has been made: the items are dropped then.
    items: Option<Streaming<T, E>>,
    context: CallContext,
    span: tracing::Span,
    deadline: Option<Pin<Box<Sleep>>>,
    keepalive: Pin<Box<Sleep>>,
    /// How long the stream may stay silent before a keep-alive frame.
    interval: Duration,
    /// The capacity to give the next chunk: a little over the last one's length, so
    /// that gathering a batch (or one large item) does not grow its buffer by doubling.
    chunk_capacity: usize,
    /// Told how the stream ended, for its span and metrics.
    end: StreamReply,
    /// The call's place under `max_in_flight`, freed when the stream ends.
    in_flight: InFlight,
}

impl<T, E> FrameBody<T, E> {
    fn new(
        served: ServedMethod,
        items: Streaming<T, E>,
        context: CallContext,
        span: tracing::Span,
        keepalive: Duration,
        end: StreamReply,
        in_flight: InFlight,
    ) -> Self {
        let deadline = context.deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline.into())));
        let (interval, keepalive) = (keepalive, Box::pin(tokio::time::sleep(keepalive)));
        let chunk_capacity = 1024;
        Self {
            served,
            items: Some(items),
            context,
            span,
            deadline,
            keepalive,
            interval,
            chunk_capacity,
            end,
            in_flight,
        }
    }

    /// The final frame is made: the items are dropped, the call's place is freed, and
    /// its span and metrics are told `outcome`.
    fn ended(&mut self, outcome: ReplyOutcome) {
        self.items = None;
        self.in_flight = InFlight::default();
        self.end.ended(outcome);
    }
}

impl<T: Serialize, E: Serialize> FrameBody<T, E> {
    /// Adds ready items' frames to `out`, up to a batch, and the final frame when the
    /// stream ends.
    fn gather(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) {
        let served = self.served;
        let Some(items) = self.items.as_mut() else { return };
        let _entered = self.span.enter();
        let ended = self.context.clone().in_scope(|| {
            loop {
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *items).poll_next(cx)));
                match polled {
                    Ok(Poll::Ready(Some(Ok(item)))) => {
                        if let Err(message) = frames::write_item(out, &item) {
                            return Some(write_error(out, reply::internal(served, &message)));
                        }
                        if out.len() >= BATCH_BYTES {
                            return None;
                        }
                    }
                    Ok(Poll::Ready(Some(Err(error)))) => return Some(write_error(out, typed_error(served, &error))),
                    Ok(Poll::Ready(None)) => {
                        out.extend_from_slice(frames::END_OK);
                        return Some(ReplyOutcome::Ok);
                    }
                    Ok(Poll::Pending) => return None,
                    Err(panic) => {
                        return Some(write_error(out, reply::panicked(served, reply::panic_message(&*panic))));
                    }
                }
            }
        });
        if let Some(outcome) = ended {
            // Field by field: the span is still entered.
            self.items = None;
            self.in_flight = InFlight::default();
            self.end.ended(outcome);
        }
    }
}

impl<T: Serialize, E: Serialize> Stream for FrameBody<T, E> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.items.is_none() {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        if this.deadline.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready()) {
            let ServedMethod { service, method, .. } = this.served;
            let message = format!("{service}.{method}: the stream reached its caller's deadline and was ended");
            let mut out = Vec::new();
            let outcome = write_error(&mut out, framework_error(ErrorKind::DeadlineExceeded, &message, None));
            this.ended(outcome);
            return Poll::Ready(Some(Ok(Bytes::from(out))));
        }
        let mut out = Vec::with_capacity(this.chunk_capacity);
        this.gather(cx, &mut out);
        if !out.is_empty() {
            this.chunk_capacity = (out.len() + out.len() / 8 + 64).min(MAX_CHUNK_CAPACITY);
            this.keepalive.as_mut().reset(tokio::time::Instant::now() + this.interval);
            return Poll::Ready(Some(Ok(Bytes::from(out))));
        }
        if this.keepalive.as_mut().poll(cx).is_ready() {
            this.keepalive.as_mut().reset(tokio::time::Instant::now() + this.interval);
            return Poll::Ready(Some(Ok(Bytes::from_static(frames::KEEPALIVE))));
        }
        Poll::Pending
    }
}

/// Appends the final frame of an error end; the outcome it records.
fn write_error(out: &mut Vec<u8>, reply: EncodedReply) -> ReplyOutcome {
    frames::write_error(out, &reply);
    reply.outcome
}

impl<T, E> Drop for FrameBody<T, E> {
    /// A stream dropped before its final frame was made: its client went away.
    fn drop(&mut self) {
        if self.items.is_some() {
            self.end.ended(ReplyOutcome::Cancelled);
        }
    }
}
