//! One service as a generated proxy sees it, and the call loop: one call id, one body,
//! as many attempts as the policy, the deadline and the retry budget allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use hyper::http::{Request, Response, StatusCode, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tracing::Instrument;

use super::balance::{Backends, Picked};
use super::ejection::{Verdict, verdict};
use super::http::{BoxError, CallInfo};
use super::http::{ResponseBody, box_body};
use super::options::CallOptions;
use super::retry::{RetryBudget, backoff};
use super::stack::{BodyDigest, Carrier, sign};
use super::stream::{StreamEnd, StreamSetup, Success, Unary};
use super::transport::{CertificateRejected, ConnectionRefused, chain};
use crate::body::{BodyError, read_limited};
use crate::config::CallPolicy;
use crate::context::{ActivityId, CallContext};
use crate::error::CallError;
use crate::protocol::reply::{self, Decoded};
use crate::protocol::retry::{self as policy, Decision, Outcome};
use crate::protocol::signing::body_sha256;
use crate::protocol::trace::TraceContext;
use crate::protocol::{ErrorKind, headers, json_writer};
use crate::telemetry::{self, ClientMetrics};

/// One service as a generated proxy sees it: the method URLs resolved once, the shared
/// HTTP client, the call policy and the invoker's retry budget. Cloning is one
/// reference count.
#[doc(hidden)]
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointInner>);

pub(super) struct EndpointInner {
    pub(super) carrier: Carrier,
    pub(super) service: &'static str,
    pub(super) methods: &'static [&'static str],
    pub(super) targets: Targets,
    pub(super) policy: CallPolicy,
    pub(super) budget: Arc<RetryBudget>,
    pub(super) security: crate::Security,
    /// One per method, by index.
    pub(super) metrics: Box<[ClientMetrics]>,
}

/// Where a service's attempts go.
pub(super) enum Targets {
    /// One URL, and nothing configured that needs a balancer: each method's URI, built
    /// once. What a service with one endpoint pays: nothing more than before.
    One(Vec<Uri>),
    /// The service's endpoints (several, or one with ejection or `dns_refresh_ms`),
    /// and each method's path under each of their prefixes.
    Balanced { backends: Arc<Backends>, paths: Vec<Vec<hyper::http::uri::PathAndQuery>> },
}

/// Where one attempt goes.
enum Target<'a> {
    Fixed(&'a Uri),
    Balanced(Picked),
}

/// What one attempt came to.
enum Attempt<S, E> {
    Ok(S),
    /// The service's typed error: the answer, never retried; with its type's name and
    /// variant's as the server sent them (`CatalogError::NotFound`), for the span.
    Typed(E, String),
    /// Any other failure, whether `protocol::retry` says another attempt may fix it,
    /// and what it says about the endpoint.
    Failed {
        error: CallError,
        decision: Decision,
        verdict: Verdict,
        /// The reply's `Retry-After` was honoured in `decision`.
        waits: bool,
        /// The call ran nowhere: the server shed it (`503 overloaded`: nothing of it
        /// was read or run), or refused its connection (nothing of it was sent).
        unrun: bool,
    },
}

impl<T, E> Attempt<T, E> {
    fn failed(error: CallError, outcome: Outcome<'_>) -> Self {
        let waits = matches!(outcome, Outcome::Replied { retry_after: Some(_), .. });
        let unrun = matches!(outcome, Outcome::Replied { kind: Some(ErrorKind::Overloaded), .. });
        Attempt::Failed { error, decision: policy::decide(outcome), verdict: verdict(&outcome), waits, unrun }
    }
}

/// How much earlier than the client the server should give up waiting for a running
/// duplicate, so that its `409 in_progress` arrives before the client's own timeout.
fn server_deadline(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 5).min(Duration::from_millis(50)))
}

/// What every attempt of one call sends: the body, the call id, the context.
struct Outgoing {
    body: Bytes,
    call_id: uuid::Uuid,
    activity: ActivityId,
    /// The header values of the call id, the activity and the user, and the buffer
    /// the attempts' deadlines are written into.
    values: headers::CallValues,
    /// Set when calls are signed.
    body_sha256: Option<Arc<str>>,
    /// The caller's deadline, which bounds a whole stream (`None`: none).
    callers_deadline: Option<Instant>,
    /// The trace context of the request being served, as it arrived (§3.3).
    trace: Option<TraceContext>,
    /// Headers from [`CallOptions`], which refuses the protocol's names.
    extra: Option<HeaderMap>,
    /// A stream method's call: its start and span, recorded when the stream ends.
    stream_call: Option<(Instant, tracing::Span)>,
}

impl Outgoing {
    fn new(body: Bytes, context: CallContext, signed: bool, extra: Option<HeaderMap>) -> Self {
        let body_sha256 = signed.then(|| Arc::from(body_sha256(&body)));
        let call_id = uuid::Uuid::new_v4();
        // A call made outside any activity starts one of its own; a call made inside
        // one (an implementation serving a request, a scope) forwards its id.
        let activity = context.activity.unwrap_or_default();
        Self {
            body,
            call_id,
            activity,
            values: headers::CallValues::new(call_id, activity.as_uuid(), context.user.as_ref()),
            body_sha256,
            callers_deadline: context.deadline,
            trace: context.trace,
            extra,
            stream_call: None,
        }
    }

    /// The headers of one attempt but its number and deadline, built anew each time:
    /// a call that needs one attempt (nearly all) builds them once, where keeping a
    /// map to clone per attempt built them and copied them.
    fn headers(&self) -> HeaderMap {
        let mut headers = self.values.headers();
        if let Some(trace) = &self.trace {
            trace.write(&mut headers);
        }
        if let Some(extra) = &self.extra {
            headers.extend(extra.clone());
        }
        headers
    }
}

impl Endpoint {
    pub(super) fn new(inner: EndpointInner) -> Self {
        Self(Arc::new(inner))
    }

    /// Calls method `index` with `args` (a struct of the named arguments) and decodes
    /// the reply: `Ok(T)` on success, `Err(E)` for the service's typed error and for
    /// every other failure, through `E: From<CallError>`.
    ///
    /// Every attempt sends the same `x-call-id` and the same body bytes, so a server
    /// with a call-id store runs the method at most once however often it is retried.
    pub async fn call<A, T, E>(&self, index: usize, args: &A) -> Result<T, E>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
        E: crate::ServiceError,
    {
        self.call_for::<A, Unary<T>, E>(index, args).await.map(|Unary(value)| value)
    }

    /// Calls stream method `index` (PROTOCOL.md §4.3): attempts as [`call`](Self::call)
    /// until the reply's head arrives, then the items as they come, never retried.
    pub async fn call_stream<A, T, E>(&self, index: usize, args: &A) -> Result<crate::Streaming<T, E>, E>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned + Send + 'static,
        E: crate::ServiceError,
    {
        self.call_for::<A, crate::Streaming<T, E>, E>(index, args).await
    }

    async fn call_for<A, S, E>(&self, index: usize, args: &A) -> Result<S, E>
    where
        A: Serialize + ?Sized,
        S: Success,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        let started = Instant::now();
        let metrics = &this.metrics[index];
        let _in_flight = metrics.started();
        let failed = |error: CallError| -> E {
            metrics.finished(error.kind_name(), started);
            error.into()
        };
        let body =
            json_writer::to_vec(args).map_err(|e| failed(CallError::encode(this.service, method, e.to_string())))?;
        let context = CallContext::current();
        let (policy, extra) = match CallOptions::apply(this.policy) {
            Some((policy, headers)) => (policy, Some(headers)),
            None => (this.policy, None),
        };
        let now = started;
        // A timeout too large to add to the clock means no deadline of our own.
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        let mut deadline = now.checked_add(policy.timeout.saturating_mul(policy.tries).min(far)).unwrap_or(now);
        if let Some(callers) = context.deadline {
            if callers <= now {
                return Err(failed(CallError::deadline_passed(this.service, method)));
            }
            // A nested call never outlives the call it is made for.
            deadline = deadline.min(callers);
        }
        let outgoing = Outgoing::new(Bytes::from(body), context, this.security.is_enabled(), extra);
        // Field names of the OpenTelemetry RPC conventions; `outcome` is recorded at the end.
        let span = tracing::info_span!(
            "intercall.call",
            "otel.kind" = "client",
            "rpc.system" = "intercall",
            "rpc.service" = this.service,
            "rpc.method" = method,
            "server.address" = this.targets.host(index),
            call_id = %outgoing.call_id,
            activity_id = %outgoing.activity,
            outcome = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
        );
        // Only a stream's call needs them after its attempts, for its end.
        let mut outgoing = Outgoing { stream_call: S::STREAM.then(|| (started, span.clone())), ..outgoing };
        self.attempts::<S, E>(index, &mut outgoing, &policy, started, deadline).instrument(span).await
    }

    /// The attempts of one call, within `deadline`, the policy and the retry budget.
    async fn attempts<S, E>(
        &self,
        index: usize,
        outgoing: &mut Outgoing,
        policy: &CallPolicy,
        started: Instant,
        deadline: Instant,
    ) -> Result<S, E>
    where
        S: Success,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        let finished = |outcome| {
            tracing::Span::current().record("outcome", outcome);
            this.metrics[index].finished(outcome, started);
        };
        let failed = |error: CallError| -> E {
            let span = tracing::Span::current();
            span.record("error.type", error.kind_name());
            if let Some(status) = error.status_code() {
                span.record("http.response.status_code", status);
            }
            finished(error.kind_name());
            error.into()
        };
        // Balanced: the first endpoint is chosen before anything else, so that an open
        // circuit fails the call at once, before the budget or the network.
        let mut tried = Vec::new();
        let mut target = match &this.targets {
            Targets::One(urls) => Target::Fixed(&urls[index]),
            Targets::Balanced { backends, .. } => {
                if let Err(message) = backends.ready().await {
                    return Err(failed(CallError::connect(this.service, method, message)));
                }
                match backends.pick(&tried) {
                    Some(picked) => Target::Balanced(picked),
                    None => return Err(failed(self.circuit_open(method, None).after_attempts(0))),
                }
            }
        };
        this.budget.deposit();
        // A call's first move to another endpoint after a shed or a refused connection
        // takes no token from the budget: the call ran nowhere (as gRPC's transparent
        // retries; RELIABILITY.md, "Shed calls and the retry budget").
        let mut free_move = true;
        let mut attempt = 1;
        loop {
            this.metrics[index].attempt(attempt);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = policy.timeout.min(remaining);
            let span = tracing::info_span!("intercall.attempt", attempt, activity_id = %outgoing.activity);
            let attempted = self.attempt(index, outgoing, policy, attempt, timeout, &target).instrument(span).await;
            if let Target::Balanced(picked) = &target {
                let verdict = match &attempted {
                    Attempt::Ok(_) | Attempt::Typed(..) => Verdict::Answered,
                    Attempt::Failed { verdict, .. } => *verdict,
                };
                if let Targets::Balanced { backends, .. } = &this.targets {
                    backends.report(picked, verdict);
                }
            }
            let (error, mut at_least, waits, unrun) = match attempted {
                // A stream's call ends with the stream (its `StreamEnd`), in flight till then.
                Attempt::Ok(value) if S::STREAM => {
                    this.metrics[index].stream_started();
                    return Ok(value);
                }
                Attempt::Ok(value) => {
                    finished("ok");
                    return Ok(value);
                }
                Attempt::Typed(error, named) => {
                    let span = tracing::Span::current();
                    span.record("error.type", named.as_str());
                    span.record("http.response.status_code", ErrorKind::Service.status());
                    tracing::debug!("{}.{method} returned {named}", this.service);
                    finished("service_error");
                    return Err(error);
                }
                Attempt::Failed { error, decision, waits, unrun, .. } => {
                    let error = error.after_attempts(attempt);
                    tracing::debug!(attempt, retryable = decision != Decision::Stop, "attempt failed: {error}");
                    match decision {
                        Decision::Retry { at_least } if attempt < policy.tries => (error, at_least, waits, unrun),
                        _ => return Err(failed(error)),
                    }
                }
            };
            // Whether the next attempt is that free move.
            let mut requeue = false;
            // The next attempt's endpoint: another one than those tried, when one is
            // available. None left: the circuit opened, and no budget is spent on it.
            if let (Target::Balanced(picked), Targets::Balanced { backends, .. }) = (&target, &this.targets) {
                let failed_on = Arc::clone(&picked.backend);
                tried.push(Arc::clone(&failed_on));
                match backends.pick(&tried) {
                    Some(next) => {
                        let moved = !Arc::ptr_eq(&next.backend, &failed_on);
                        // `Retry-After` is the failed endpoint's word about itself.
                        if waits && moved {
                            at_least = Duration::ZERO;
                        }
                        requeue = unrun && moved && free_move;
                        target = Target::Balanced(next);
                    }
                    None => return Err(failed(self.circuit_open(method, Some(&error)).after_attempts(attempt))),
                }
            }
            let delay = backoff(policy, attempt).max(at_least);
            // The next attempt needs time of its own, or it could only time out.
            if delay >= deadline.saturating_duration_since(Instant::now()) {
                return Err(failed(error));
            }
            if requeue {
                free_move = false;
            } else if !this.budget.try_withdraw() {
                this.metrics[index].budget_exhausted();
                return Err(failed(error.retry_budget_exhausted()));
            }
            tokio::time::sleep(delay).await;
            if Instant::now() >= deadline {
                // The sleep overshot: report the failure we have, not an empty timeout.
                return Err(failed(error));
            }
            attempt += 1;
        }
    }

    async fn attempt<S, E>(
        &self,
        index: usize,
        outgoing: &mut Outgoing,
        policy: &CallPolicy,
        attempt: u32,
        timeout: Duration,
        target: &Target<'_>,
    ) -> Attempt<S, E>
    where
        S: Success,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        let limit = policy.max_reply_bytes;
        // A unary call's server waits no longer than this attempt; a stream's whole
        // run is bounded by the caller's deadline only (§4.3).
        let server_deadline = match S::STREAM {
            false => Some(server_deadline(timeout)),
            true => outgoing.callers_deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())),
        };
        let server_deadline = server_deadline.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        // The caller's deadline leaves this attempt less than `timeout_ms`: if it times
        // out, its endpoint did not get the time it is allowed.
        let cut_short = outgoing
            .callers_deadline
            .is_some_and(|callers| callers.saturating_duration_since(Instant::now()) < policy.timeout);
        let exchange =
            self.exchange(index, outgoing, attempt, server_deadline, ReadAs { limit, stream: S::STREAM }, target);
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Received::Whole(reply))) => reply,
            Ok(Ok(Received::Stream(body))) => {
                let (started, span) =
                    outgoing.stream_call.clone().unwrap_or_else(|| (Instant::now(), tracing::Span::none()));
                let end = StreamEnd { endpoint: Arc::clone(&self.0), index, started, span };
                let setup = StreamSetup {
                    service: this.service,
                    method,
                    deadline: outgoing.callers_deadline,
                    max_frame_bytes: usize::try_from(limit).unwrap_or(usize::MAX),
                    end,
                };
                return Attempt::Ok(S::from_stream(body, setup));
            }
            Ok(Err(Failure::Transport { message, refused })) => {
                let mut failed = Attempt::failed(CallError::connect(this.service, method, message), Outcome::NoReply);
                if let Attempt::Failed { unrun, .. } = &mut failed {
                    *unrun = refused;
                }
                return failed;
            }
            // A layer's own refusal: the caller gets it as it is, and nothing retries it.
            Ok(Err(Failure::Refused(error))) => {
                let decision = policy::decide(Outcome::Unusable);
                return Attempt::Failed { error, decision, verdict: Verdict::Neutral, waits: false, unrun: false };
            }
            // The same certificate would be met again.
            Ok(Err(Failure::Certificate(message))) => {
                return Attempt::failed(CallError::connect(this.service, method, message), Outcome::Unusable);
            }
            // Refused, not buffered whole.
            Ok(Err(Failure::TooLarge { status, size })) => {
                let message =
                    format!("the reply is {size} bytes; this client accepts at most {limit} (`max_reply_bytes`)");
                let error = CallError::decode(this.service, method, status.as_u16(), message);
                return Attempt::failed(error, Outcome::Unusable);
            }
            Err(_) => {
                let error = CallError::timeout(this.service, method, timeout, policy.timeout);
                // Cut short by the caller's deadline, no reply says nothing about the
                // endpoint's health: callers with short deadlines would otherwise eject
                // healthy endpoints. (The call's own `timeout_ms x tries` is the
                // policy's: an attempt it shortens had most of its time.)
                let verdict = if cut_short { Verdict::Neutral } else { Verdict::Failed };
                let decision = policy::decide(Outcome::NoReply);
                return Attempt::Failed { error, decision, verdict, waits: false, unrun: false };
            }
        };
        let status = reply.status.as_u16();
        let content_type = reply.headers.get(CONTENT_TYPE).map(|v| v.as_bytes());
        let (service, timeout_ms) = (this.service, policy.timeout.as_millis());
        // A reply this client cannot use: the same request would get it again.
        let unusable =
            |message| Attempt::failed(CallError::decode(service, method, status, message), Outcome::Unusable);
        let (error, kind) = match reply::decode(status, content_type, &reply.body) {
            Decoded::Result(json) => {
                return match S::from_json(json) {
                    Ok(value) => Attempt::Ok(value),
                    Err(message) => unusable(message),
                };
            }
            Decoded::NotJson { content_type } => {
                return unusable(format!("a 200 reply with `content-type: {content_type}` is not an intercall result"));
            }
            Decoded::Service { type_name, variant, value } => {
                return match serde_json::from_str::<E>(value.get()) {
                    Ok(error) => Attempt::Typed(error, reply::error_type_name(&type_name, variant.as_deref())),
                    Err(e) => unusable(format!(
                        "the server's `{type_name}` error does not decode as this method's error type: {e}"
                    )),
                };
            }
            Decoded::Framework { kind: Some(ErrorKind::InProgress), .. } => {
                let message = format!("no reply within {timeout_ms} ms: the server is still running the call");
                (CallError::server_timeout(service, method, status, message), Some(ErrorKind::InProgress))
            }
            Decoded::Framework { kind: Some(ErrorKind::DeadlineExceeded), message, .. } => {
                let error = CallError::server_timeout(service, method, status, message.into_owned());
                (error, Some(ErrorKind::DeadlineExceeded))
            }
            Decoded::Framework { kind, kind_text, message } => {
                (CallError::status(service, method, status, format!("{kind_text}: {message}")), kind)
            }
            Decoded::GatewayTimeout { description } => {
                (CallError::server_timeout(service, method, status, description), None)
            }
            Decoded::Foreign { description } => (CallError::status(service, method, status, description), None),
        };
        let retry_after = reply.headers.get(RETRY_AFTER).map(|v| v.as_bytes());
        Attempt::failed(error, Outcome::Replied { status, kind, retry_after })
    }
}

impl Endpoint {
    /// One HTTP exchange: the request of attempt `attempt`, through the carrier, and
    /// its reply read whole within `limit` bytes.
    async fn exchange(
        &self,
        index: usize,
        outgoing: &mut Outgoing,
        attempt: u32,
        server_deadline: Option<u64>,
        read: ReadAs,
        target: &Target<'_>,
    ) -> Result<Received, Failure> {
        let this = &*self.0;
        let method = this.methods[index];
        // Counted in the endpoint's load while the exchange lasts.
        let balanced_uri;
        let (uri, host, _outstanding) = match (target, &this.targets) {
            (Target::Fixed(uri), _) => (*uri, None, None),
            (Target::Balanced(picked), Targets::Balanced { paths, .. }) => {
                let backend = &picked.backend;
                balanced_uri = backend.uri(paths, index);
                (&balanced_uri, backend.host_header(), Some(backend.start()))
            }
            (Target::Balanced(_), Targets::One(_)) => unreachable!("a balanced target comes from balanced targets"),
        };
        let server_deadline = server_deadline.map(|ms| outgoing.values.deadline(ms));
        let outgoing = &*outgoing;
        let request = || {
            let mut headers = outgoing.headers();
            headers::write_attempt(&mut headers, attempt, server_deadline.clone());
            // This attempt's span is the parent of the server's (replacing a forwarded one).
            #[cfg(feature = "otel")]
            if let Some(trace) = crate::otel::current() {
                trace.write(&mut headers);
            }
            let mut request = Request::new(Full::new(outgoing.body.clone()));
            *request.method_mut() = hyper::http::Method::POST;
            *request.uri_mut() = uri.clone();
            if let Some(host) = host {
                headers.insert(hyper::http::header::HOST, host.clone());
            }
            *request.headers_mut() = headers;
            request
        };
        match &this.carrier {
            Carrier::Direct(transport) => {
                // Signed here, per request: a resend on a stale connection is the same
                // attempt (same `x-call-attempt`), signed anew.
                let signed = || {
                    let mut request = request();
                    if let Some(digest) = &outgoing.body_sha256 {
                        sign(&this.security, request.headers_mut(), this.service, method, digest);
                    }
                    request
                };
                let response = transport.send(signed(), signed).await.map_err(Failure::from_transport)?;
                read_reply(response, read.limit, read.stream).await
            }
            Carrier::Layered(client) => {
                let mut request = request();
                let call_id = outgoing.values.call_id().clone();
                let info = CallInfo { service: this.service, method, call_id, attempt };
                request.extensions_mut().insert(info);
                if let Some(digest) = &outgoing.body_sha256 {
                    request.extensions_mut().insert(BodyDigest(Arc::clone(digest)));
                }
                let response = client.clone().oneshot(request).await.map_err(Failure::from_layers)?;
                read_reply(response, read.limit, read.stream).await
            }
        }
    }
}

/// How an attempt's reply is read: whole, within `limit` bytes, or as a stream (whose
/// frames are each held to `limit`).
#[derive(Clone, Copy)]
struct ReadAs {
    limit: u64,
    stream: bool,
}

/// A reply as received: read whole, or the body of a stream, left to be read as it comes.
enum Received {
    Whole(ReceivedReply),
    Stream(ResponseBody),
}

/// A reply as received, its body read whole within the size limit.
struct ReceivedReply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Why an exchange failed before a whole reply arrived.
enum Failure {
    /// No connection, or it broke before or while the reply came: a retry may help.
    /// `refused`: the endpoint refused the connection, so nothing was sent.
    Transport { message: String, refused: bool },
    /// A layer refused the call with a `CallError` of its own.
    Refused(CallError),
    /// A TLS handshake failed over a certificate: no retry can help.
    Certificate(String),
    /// The reply's body is larger than the limit (`size` says how large, as known).
    TooLarge { status: StatusCode, size: String },
}

impl Failure {
    /// A layer's or a transport's error: a `CallError` is a refusal, anything else a
    /// failed connection.
    fn from_layers(error: BoxError) -> Self {
        match error.downcast::<CallError>() {
            Ok(refusal) => Failure::Refused(*refusal),
            Err(other) => Failure::from_transport(chain_unless_ours(other)),
        }
    }

    /// The built-in transport's error: a rejected certificate, or a failed connection.
    fn from_transport(error: BoxError) -> Self {
        let error = match error.downcast::<CertificateRejected>() {
            Ok(rejected) => return Failure::Certificate(rejected.0),
            Err(other) => other,
        };
        match error.downcast::<ConnectionRefused>() {
            Ok(refused) => Failure::Transport { message: refused.0, refused: true },
            Err(other) => Failure::Transport { message: other.to_string(), refused: false },
        }
    }
}

/// A layer's or a transport's error as one message with its causes; the built-in
/// transport's own errors already are.
fn chain_unless_ours(error: BoxError) -> BoxError {
    if error.is::<CertificateRejected>() || error.is::<ConnectionRefused>() { error } else { chain(&*error) }
}

/// Reads the body of `response` whole, at most `limit` bytes: refused, not buffered,
/// when it declares or streams more. With `stream`, a stream's `200` is left unread.
async fn read_reply<B>(response: Response<B>, limit: u64, stream: bool) -> Result<Received, Failure>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    if stream
        && crate::protocol::stream::is_stream(
            parts.status.as_u16(),
            parts.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        )
    {
        return Ok(Received::Stream(box_body(body)));
    }
    match read_limited(&parts.headers, body, limit).await {
        Ok(body) => Ok(Received::Whole(ReceivedReply { status: parts.status, headers: parts.headers, body })),
        Err(BodyError::TooLarge { declared }) => {
            let size = declared.map_or_else(|| format!("more than {limit}"), |n| n.to_string());
            Err(Failure::TooLarge { status: parts.status, size })
        }
        Err(BodyError::Read(e)) => Err(Failure::Transport { message: chain(&*e).to_string(), refused: false }),
    }
}

impl Endpoint {
    /// The error of a call that finds every endpoint ejected; `last` is the failure of
    /// its previous attempt, if it made one.
    fn circuit_open(&self, method: &'static str, last: Option<&CallError>) -> CallError {
        let this = &*self.0;
        telemetry::client_circuit_open(this.service, method);
        let mut message = match &this.targets {
            Targets::Balanced { backends, .. } => format!(
                "every endpoint is ejected ({}); nothing was sent. The first whose ejection ends gets the next call as a probe",
                backends.endpoints().join(", ")
            ),
            Targets::One(_) => "every endpoint is ejected; nothing was sent".to_owned(),
        };
        if let Some(last) = last {
            message.push_str(&format!("; the last attempt: {}", last.message()));
        }
        CallError::circuit_open(this.service, method, message)
    }
}

impl Targets {
    /// The host a call's span names.
    fn host(&self, index: usize) -> &str {
        match self {
            Targets::One(urls) => urls[index].host().unwrap_or_default(),
            Targets::Balanced { backends, .. } => backends.host(),
        }
    }
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Targets::One(urls) => {
                f.debug_tuple("One").field(&urls.iter().map(Uri::to_string).collect::<Vec<_>>()).finish()
            }
            Targets::Balanced { backends, .. } => f.debug_tuple("Balanced").field(backends).finish(),
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("service", &self.0.service)
            .field("targets", &self.0.targets)
            .field("policy", &self.0.policy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Invoker;

    /// An endpoint that takes connections (the kernel's backlog does) and never answers,
    /// ejected after one failure for a minute; one attempt per call.
    async fn stalled() -> (tokio::net::TcpListener, Endpoint) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let invoker = Invoker::builder()
            .service("Work", format!("http://{}/", listener.local_addr().unwrap()))
            .service_timeout("Work", Duration::from_secs(10))
            .service_tries("Work", 1)
            .service_ejection("Work", 1, Duration::from_secs(60), Duration::from_secs(60))
            .environment(false)
            .build()
            .unwrap();
        let endpoint = crate::client::invoker::endpoint(&invoker, "Work", &["run"]).unwrap();
        (listener, endpoint)
    }

    async fn call(endpoint: &Endpoint, deadline: Option<Duration>) -> CallError {
        let context = CallContext { deadline: deadline.map(|left| Instant::now() + left), ..CallContext::default() };
        context.scope(endpoint.call::<_, (), CallError>(0, &())).await.expect_err("nothing answers")
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_cut_short_by_the_callers_deadline_does_not_count_against_its_endpoint() {
        let (_listener, endpoint) = stalled().await;
        // Callers with 100 ms left, far under the endpoint's 10 s: their attempts time
        // out, and the endpoint, which might have answered in its own time, stays in.
        for _ in 0..5 {
            let error = call(&endpoint, Some(Duration::from_millis(100))).await;
            assert!(error.is_timeout() && !error.is_circuit_open(), "{error}");
        }
        // An attempt that had its whole `timeout_ms` and no reply is a failure: one
        // ejects it (`eject_after = 1`), and the next call finds the circuit open.
        let error = call(&endpoint, None).await;
        assert!(!error.is_circuit_open(), "{error}");
        let error = call(&endpoint, Some(Duration::from_millis(100))).await;
        assert!(error.is_circuit_open(), "{error}");
    }
}
