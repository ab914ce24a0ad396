//! [`CallOptions`]: a scope that changes, for the calls made inside it, what the
//! configuration says: the per-attempt timeout (longer or shorter), the tries, and
//! extra headers.

use std::future::Future;
use std::time::Duration;

use hyper::http::HeaderMap;
use hyper::http::header::{HeaderName, HeaderValue};

use crate::config::CallPolicy;
use crate::error::Error;

/// Options for every proxy call made inside [`scope`](Self::scope), whatever the
/// service: they win over `services.toml` and the builder.
///
/// Scopes nest: an inner scope's timeout and tries replace the outer one's, and its
/// headers are added to the outer one's (an inner header replaces an outer header of
/// the same name). A deadline ([`with_deadline`](crate::with_deadline), or the one a
/// served call carries) still bounds every attempt: a longer timeout never outlives it.
/// Options stay in the task that set them; they do not cross to the services called,
/// as the user and activity do.
///
/// ```
/// # async fn example(catalog: impl std::future::Future<Output = ()>) -> Result<(), intercall::Error> {
/// use std::time::Duration;
/// use intercall::CallOptions;
///
/// let export = CallOptions::new()
///     .timeout(Duration::from_secs(60)) // this call may take longer than configured
///     .tries(1)                         // and is not retried
///     .header("x-request-priority", "low")?;
/// export.scope(catalog).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    tries: Option<u32>,
    headers: HeaderMap,
}

tokio::task_local! {
    static OPTIONS: CallOptions;
}

impl CallOptions {
    /// No options: the configuration as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// The per-attempt timeout, longer or shorter than the configured one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Attempts in all (1: no retries; 0 counts as 1).
    pub fn tries(mut self, tries: u32) -> Self {
        self.tries = Some(tries.max(1));
        self
    }

    /// A header to send with every attempt, after the protocol's own. The protocol's
    /// headers (`x-call-*`, `x-user-*`, `x-activity-id`, `x-deadline-ms`,
    /// `x-intercall-*`) and those HTTP itself manages (`host`, `content-type`,
    /// `content-length`, `transfer-encoding`, `connection`) are refused. Extra headers
    /// are not signed.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let name = HeaderName::try_from(name)
            .map_err(|_| Error::config(format!("`{name}` is not a valid header name; use letters, digits and `-`")))?;
        if is_reserved(&name) {
            return Err(Error::config(format!(
                "header `{name}` is set by intercall or HTTP itself; the context, deadline and call id have their own APIs (`UserContext::scope`, `with_deadline`)"
            )));
        }
        let value = HeaderValue::try_from(value).map_err(|_| {
            Error::config(format!("the value of header `{name}` is not a valid header value (no control characters)"))
        })?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// Runs `future` with these options, combined with the enclosing scope's.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        let combined = match OPTIONS.try_with(Clone::clone) {
            Ok(outer) => outer.within(self),
            Err(_) => self,
        };
        OPTIONS.scope(combined, future)
    }

    /// `inner` nested in `self`.
    fn within(mut self, inner: CallOptions) -> CallOptions {
        self.timeout = inner.timeout.or(self.timeout);
        self.tries = inner.tries.or(self.tries);
        for (name, value) in inner.headers.iter() {
            self.headers.insert(name.clone(), value.clone());
        }
        self
    }

    /// The options in force (an empty set outside any scope), applied to `policy`;
    /// `None` when no scope is open, the common case, which costs one task-local read.
    pub(crate) fn apply(policy: CallPolicy) -> Option<(CallPolicy, HeaderMap)> {
        OPTIONS
            .try_with(|options| {
                let policy = CallPolicy {
                    timeout: options.timeout.unwrap_or(policy.timeout),
                    tries: options.tries.unwrap_or(policy.tries),
                    ..policy
                };
                (policy, options.headers.clone())
            })
            .ok()
    }
}

fn is_reserved(name: &HeaderName) -> bool {
    use hyper::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
    let text = name.as_str();
    [HOST, CONTENT_TYPE, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION].contains(name)
        || ["x-call-", "x-user-", "x-intercall-"].iter().any(|prefix| text.starts_with(prefix))
        || text == crate::protocol::headers::ACTIVITY_ID
        || text == crate::protocol::headers::DEADLINE_MS
}

/// Runs `future` with `options`: shorthand for [`CallOptions::scope`].
pub fn with_options<F: Future>(options: CallOptions, future: F) -> impl Future<Output = F::Output> {
    options.scope(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inner_scopes_replace_settings_and_add_headers() {
        let policy = CallPolicy::default();
        assert!(CallOptions::apply(policy).is_none(), "no scope, no options");
        let outer = CallOptions::new().timeout(Duration::from_secs(30)).header("x-a", "outer").unwrap();
        let inner = CallOptions::new().tries(1).header("x-a", "inner").unwrap().header("x-b", "b").unwrap();
        outer
            .scope(async {
                let (p, headers) = CallOptions::apply(policy).unwrap();
                assert_eq!((p.timeout, p.tries), (Duration::from_secs(30), policy.tries));
                assert_eq!(headers["x-a"], "outer");
                inner
                    .scope(async {
                        let (p, headers) = CallOptions::apply(policy).unwrap();
                        assert_eq!((p.timeout, p.tries), (Duration::from_secs(30), 1));
                        assert_eq!(
                            (&headers["x-a"], &headers["x-b"]),
                            (&"inner".parse::<HeaderValue>().unwrap(), &"b".parse::<HeaderValue>().unwrap())
                        );
                    })
                    .await;
                let (_, headers) = CallOptions::apply(policy).unwrap();
                assert!(headers.get("x-b").is_none(), "an inner scope ends with it");
            })
            .await;
    }

    #[test]
    fn protocol_and_malformed_headers_are_refused() {
        for name in [
            "x-call-id",
            "X-User-Id",
            "x-activity-id",
            "x-deadline-ms",
            "x-intercall-signature",
            "host",
            "content-type",
        ] {
            let error = CallOptions::new().header(name, "v").unwrap_err();
            assert!(error.to_string().contains("set by intercall"), "{name}: {error}");
        }
        assert!(
            CallOptions::new().header("bad name", "v").unwrap_err().to_string().contains("not a valid header name")
        );
        assert!(
            CallOptions::new().header("x-ok", "a\nb").unwrap_err().to_string().contains("not a valid header value")
        );
        assert_eq!(CallOptions::new().tries(0).tries, Some(1));
    }
}
