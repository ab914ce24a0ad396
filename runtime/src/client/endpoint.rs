//! One service as a generated proxy sees it, and the call loop: one call id, one body,
//! as many attempts as the policy, the deadline and the retry budget allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::http::Uri;
use hyper::http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::retry::{RetryBudget, backoff};
use super::transport::{Failure, Transport};
use crate::config::CallPolicy;
use crate::context::{CallContext, UserContext};
use crate::error::CallError;
use crate::security::{self, Signed};
use crate::wire::names::{ACTIVITY_ID, CALL_ATTEMPT, CALL_ID, DEADLINE_MS, SIGNATURE, TIMESTAMP, USER_ID, USER_TYPE};
use crate::wire::{self, ErrorKind, ErrorReply};

/// One service as a generated proxy sees it: the method URLs resolved once, the shared
/// HTTP client, the call policy and the invoker's retry budget. Cloning is one
/// reference count.
#[doc(hidden)]
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointInner>);

pub(super) struct EndpointInner {
    pub(super) http: Transport,
    pub(super) service: &'static str,
    pub(super) methods: &'static [&'static str],
    pub(super) urls: Vec<Uri>,
    pub(super) policy: CallPolicy,
    pub(super) budget: Arc<RetryBudget>,
    pub(super) security: crate::Security,
}

/// What one attempt came to.
enum Attempt<T, E> {
    Ok(T),
    /// The service's typed error: the answer, never retried.
    Typed(E),
    /// Any other failure; `retryable` for those a retry may fix (timeout, connection,
    /// 503, in progress), with the server's `Retry-After` when it sent one.
    Failed {
        error: CallError,
        retryable: bool,
        retry_after: Option<Duration>,
    },
}

impl<T, E> Attempt<T, E> {
    fn failed(error: CallError) -> Self {
        Attempt::Failed { error, retryable: false, retry_after: None }
    }

    fn retryable(error: CallError, retry_after: Option<Duration>) -> Self {
        Attempt::Failed { error, retryable: true, retry_after }
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
    call_id: String,
    activity: String,
    user: Option<UserContext>,
    /// Set when calls are signed.
    body_sha256: Option<String>,
    /// The headers that are the same on every attempt.
    headers: HeaderMap,
}

impl Outgoing {
    fn new(body: Bytes, context: &CallContext, signed: bool) -> Self {
        let call_id = uuid::Uuid::new_v4().hyphenated().to_string();
        // The first hop of an activity mints its id; every later hop forwards it.
        let activity = context.activity.unwrap_or_default().to_string();
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(wire::JSON));
        headers.insert(ACCEPT, HeaderValue::from_static(wire::JSON));
        headers.insert(CALL_ID, HeaderValue::from_str(&call_id).expect("a UUID is a header value"));
        headers.insert(ACTIVITY_ID, HeaderValue::from_str(&activity).expect("a UUID is a header value"));
        if let Some(user) = &context.user {
            // `UserContext` admits no control characters, so any of its values is a
            // valid header value (UTF-8 beyond ASCII travels as raw bytes).
            let value = |text: &str| HeaderValue::from_bytes(text.as_bytes()).expect("validated user field");
            headers.insert(USER_TYPE, value(user.user_type().as_str()));
            if let Some(id) = user.user_id() {
                headers.insert(USER_ID, value(id));
            }
        }
        let body_sha256 = signed.then(|| security::body_sha256(&body));
        Self { body, call_id, activity, user: context.user.clone(), body_sha256, headers }
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
        let this = &*self.0;
        let method = this.methods[index];
        let body = serde_json::to_vec(args).map_err(|e| CallError::encode(this.service, method, e.to_string()))?;
        let context = CallContext::current();
        let policy = this.policy;
        let now = Instant::now();
        // A timeout too large to add to the clock means no deadline of our own.
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        let mut deadline = now.checked_add(policy.timeout.saturating_mul(policy.tries).min(far)).unwrap_or(now);
        if let Some(callers) = context.deadline {
            if callers <= now {
                return Err(CallError::deadline_passed(this.service, method).into());
            }
            // A nested call never outlives the call it is made for.
            deadline = deadline.min(callers);
        }
        let outgoing = Outgoing::new(Bytes::from(body), &context, this.security.is_enabled());
        let span = tracing::info_span!(
            "intercall.call",
            service = this.service,
            method,
            call_id = %outgoing.call_id,
            activity_id = %outgoing.activity,
        );
        self.attempts::<T, E>(index, &outgoing, deadline).instrument(span).await
    }

    /// The attempts of one call, within `deadline`, the policy and the retry budget.
    async fn attempts<T, E>(&self, index: usize, outgoing: &Outgoing, deadline: Instant) -> Result<T, E>
    where
        T: DeserializeOwned,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let policy = this.policy;
        this.budget.deposit();
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = policy.timeout.min(remaining);
            let (error, retryable, retry_after) = match self.attempt(index, outgoing, attempt, timeout).await {
                Attempt::Ok(value) => return Ok(value),
                Attempt::Typed(error) => return Err(error),
                Attempt::Failed { error, retryable, retry_after } => {
                    (error.after_attempts(attempt), retryable, retry_after)
                }
            };
            tracing::debug!(attempt, retryable, "attempt failed: {error}");
            if !retryable || attempt >= policy.tries {
                return Err(error.into());
            }
            let delay = backoff(&policy, attempt).max(retry_after.unwrap_or_default());
            // The next attempt needs time of its own, or it could only time out.
            if delay >= deadline.saturating_duration_since(Instant::now()) {
                return Err(error.into());
            }
            if !this.budget.try_withdraw() {
                return Err(error.retry_budget_exhausted().into());
            }
            tokio::time::sleep(delay).await;
            if Instant::now() >= deadline {
                // The sleep overshot: report the failure we have, not an empty timeout.
                return Err(error.into());
            }
            attempt += 1;
        }
    }

    async fn attempt<T, E>(&self, index: usize, outgoing: &Outgoing, attempt: u32, timeout: Duration) -> Attempt<T, E>
    where
        T: DeserializeOwned,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        // A closure: the transport builds the headers again if it has to resend.
        let headers = || {
            let mut headers = outgoing.headers.clone();
            headers.insert(CALL_ATTEMPT, HeaderValue::from(attempt));
            let server_deadline = u64::try_from(server_deadline(timeout).as_millis()).unwrap_or(u64::MAX);
            headers.insert(DEADLINE_MS, HeaderValue::from(server_deadline));
            if let Some(body_sha256) = &outgoing.body_sha256 {
                let user = outgoing.user.as_ref();
                let signed = Signed {
                    service: this.service,
                    method,
                    call_id: Some(&outgoing.call_id),
                    user_type: user.map(|u| u.user_type().as_str()),
                    user_id: user.and_then(UserContext::user_id),
                    activity: Some(&outgoing.activity),
                    body_sha256,
                };
                if let Some((timestamp, signature)) = this.security.sign(&signed) {
                    headers.insert(TIMESTAMP, HeaderValue::from_str(&timestamp).expect("digits"));
                    headers.insert(SIGNATURE, HeaderValue::from_str(&signature).expect("hex"));
                }
            }
            headers
        };
        let limit = this.policy.max_reply_bytes;
        let exchange = this.http.post(&this.urls[index], headers, &outgoing.body, limit);
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(Failure::Transport(message))) => {
                return Attempt::retryable(CallError::connect(this.service, method, message), None);
            }
            // Refused, not buffered whole.
            Ok(Err(Failure::TooLarge { status, size })) => {
                let message =
                    format!("the reply is {size} bytes; this client accepts at most {limit} (`max_reply_bytes`)");
                return Attempt::failed(CallError::decode(this.service, method, status.as_u16(), message));
            }
            Err(_) => {
                return Attempt::retryable(
                    CallError::timeout(this.service, method, timeout, this.policy.timeout),
                    None,
                );
            }
        };
        let status = reply.status.as_u16();
        let retry_after = reply
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = reply.body;
        if (200..300).contains(&status) {
            return match serde_json::from_slice(&bytes) {
                Ok(value) => Attempt::Ok(value),
                Err(e) => {
                    let message = format!("the reply is not a valid result: {e}");
                    Attempt::failed(CallError::decode(this.service, method, status, message))
                }
            };
        }
        let (error, in_progress) = match wire::parse_error_reply(&bytes) {
            Some(ErrorReply::Service { type_name, value }) => {
                return match serde_json::from_str::<E>(value.get()) {
                    Ok(error) => Attempt::Typed(error),
                    Err(e) => {
                        let message = format!(
                            "the server's `{type_name}` error does not decode as this method's error type: {e}"
                        );
                        Attempt::failed(CallError::decode(this.service, method, status, message))
                    }
                };
            }
            Some(ErrorReply::Framework { kind, .. }) if kind == ErrorKind::InProgress.as_str() => {
                let message = format!(
                    "no reply within {} ms: the server is still running the call",
                    this.policy.timeout.as_millis()
                );
                (CallError::server_timeout(this.service, method, status, message), true)
            }
            Some(ErrorReply::Framework { kind, message }) if kind == ErrorKind::DeadlineExceeded.as_str() => {
                (CallError::server_timeout(this.service, method, status, message.into_owned()), false)
            }
            Some(ErrorReply::Framework { kind, message }) => {
                (CallError::status(this.service, method, status, format!("{kind}: {message}")), false)
            }
            None => (CallError::status(this.service, method, status, wire::describe_foreign_body(&bytes)), false),
        };
        // Retry only what a retry can fix: an unavailable server, or the first run of
        // this call id still in progress. Never a typed error or another 4xx.
        if status == 503 || in_progress { Attempt::retryable(error, retry_after) } else { Attempt::failed(error) }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("service", &self.0.service)
            .field("urls", &self.0.urls.iter().map(Uri::to_string).collect::<Vec<_>>())
            .field("policy", &self.0.policy)
            .finish()
    }
}
