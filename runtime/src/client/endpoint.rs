//! One service as a generated proxy sees it, and the call loop: one call id, one body,
//! as many attempts as the policy, the deadline and the retry budget allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::retry::{RetryBudget, backoff};
use crate::config::CallPolicy;
use crate::error::CallError;
use crate::wire::{self, ErrorKind, ErrorReply};

/// One service as a generated proxy sees it: the method URLs resolved once, the shared
/// HTTP client, the call policy and the invoker's retry budget. Cloning is one
/// reference count.
#[doc(hidden)]
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointInner>);

pub(super) struct EndpointInner {
    pub(super) http: reqwest::Client,
    pub(super) service: &'static str,
    pub(super) methods: &'static [&'static str],
    pub(super) urls: Vec<Url>,
    pub(super) policy: CallPolicy,
    pub(super) budget: Arc<RetryBudget>,
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
        let body = Bytes::from(body);
        let call_id = uuid::Uuid::new_v4();
        let call_id = HeaderValue::from_str(call_id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()))
            .expect("a UUID is a valid header value");
        let policy = this.policy;
        let deadline = Instant::now() + policy.timeout.saturating_mul(policy.tries);
        this.budget.deposit();

        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = policy.timeout.min(remaining);
            let (error, retryable, retry_after) = match self.attempt(index, &body, &call_id, attempt, timeout).await {
                Attempt::Ok(value) => return Ok(value),
                Attempt::Typed(error) => return Err(error),
                Attempt::Failed { error, retryable, retry_after } => {
                    (error.after_attempts(attempt), retryable, retry_after)
                }
            };
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

    async fn attempt<T, E>(
        &self,
        index: usize,
        body: &Bytes,
        call_id: &HeaderValue,
        attempt: u32,
        timeout: Duration,
    ) -> Attempt<T, E>
    where
        T: DeserializeOwned,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(wire::JSON));
        headers.insert(ACCEPT, HeaderValue::from_static(wire::JSON));
        headers.insert(wire::CALL_ID, call_id.clone());
        headers.insert(wire::CALL_ATTEMPT, HeaderValue::from(attempt));
        let server_deadline = u64::try_from(server_deadline(timeout).as_millis()).unwrap_or(u64::MAX);
        headers.insert(wire::DEADLINE_MS, HeaderValue::from(server_deadline));
        let sent =
            this.http.post(this.urls[index].clone()).headers(headers).timeout(timeout).body(body.clone()).send().await;
        let transport = |err: reqwest::Error| self.transport_error(method, &err);
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Attempt::retryable(transport(e), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::retryable(transport(e), None),
        };
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
                (CallError::in_progress(this.service, method, this.policy.timeout, status), true)
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

    fn transport_error(&self, method: &str, err: &reqwest::Error) -> CallError {
        let service = self.0.service;
        if err.is_timeout() {
            // The configured timeout; the last attempt may have had less, the rest of
            // the call's deadline.
            return CallError::timeout(service, method, self.0.policy.timeout);
        }
        // reqwest's Display stops at the outermost layer; the cause (refused, reset)
        // is further down the source chain, and it is what the reader needs.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        CallError::connect(service, method, message)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("service", &self.0.service)
            .field("urls", &self.0.urls.iter().map(Url::as_str).collect::<Vec<_>>())
            .field("policy", &self.0.policy)
            .finish()
    }
}
