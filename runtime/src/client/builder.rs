//! [`InvokerBuilder`]: a configuration in code. It writes the same document a
//! `services.toml` holds and hands it to the same validator, so the builder and the
//! file accept exactly the same settings, with the same messages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::invoker::Invoker;
use crate::calls::OnStoreError;
use crate::config::{Config, Source};
use crate::error::Error;
use crate::security::Security;

/// Builds an [`Invoker`] in code; [`build`](Self::build) validates it exactly as a file
/// is validated. Settings without a service name are the defaults every service
/// inherits. Durations are whole milliseconds, as in the file.
///
/// ```
/// # fn main() -> Result<(), intercall::Error> {
/// use std::time::Duration;
/// let invoker = intercall::Invoker::builder()
///     .timeout(Duration::from_secs(2))
///     .tries(4)
///     .service("Catalog", "http://127.0.0.1:8081/")
///     .service_timeout("Catalog", Duration::from_millis(500))
///     .service("Payments", "http://mesh.local/payments/")
///     .service_retries("Payments", false) // the mesh retries
///     .call_store("memory")
///     .call_ttl(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"));
/// assert_eq!(invoker.tries("Catalog"), Some(4));
/// assert_eq!(invoker.tries("Payments"), Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct InvokerBuilder {
    defaults: Table,
    budget: Table,
    server: Table,
    urls: BTreeMap<String, String>,
    services: BTreeMap<String, Table>,
    security: Option<Security>,
}

/// One TOML table: key to value, the last setting of a key winning.
type Table = BTreeMap<&'static str, Value>;

#[derive(Debug, Clone)]
enum Value {
    Integer(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    fn millis(duration: Duration) -> Self {
        Value::Integer(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    fn write(&self, out: &mut String) {
        match self {
            Value::Integer(n) => write!(out, "{n}"),
            Value::Float(x) if x.is_nan() => write!(out, "nan"),
            Value::Float(x) if x.is_infinite() => write!(out, "{}inf", if *x < 0.0 { "-" } else { "" }),
            Value::Float(x) => write!(out, "{x:?}"),
            Value::Bool(b) => write!(out, "{b}"),
            Value::Text(text) => write!(out, "{}", quoted(text)),
        }
        .expect("writing to a String");
    }
}

/// A TOML basic string: JSON's string escapes are a subset of TOML's, and JSON leaves
/// only DEL unescaped of the control characters TOML refuses raw.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes").replace('\u{7f}', "\\u007F")
}

impl InvokerBuilder {
    /// The per-attempt timeout of every service that does not set its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.defaults.insert("timeout_ms", Value::millis(timeout));
        self
    }

    /// Attempts in all for a retryable failure (default 3; 1 means no retries).
    pub fn tries(mut self, tries: u32) -> Self {
        self.defaults.insert("tries", Value::Integer(u64::from(tries)));
        self
    }

    /// The first backoff and its maximum (defaults 50 ms and 1 s).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.defaults.insert("backoff_ms", Value::millis(first));
        self.defaults.insert("max_backoff_ms", Value::millis(max));
        self
    }

    /// `false`: every call makes one attempt, for services behind a retrying mesh.
    pub fn retries(mut self, enabled: bool) -> Self {
        self.defaults.insert("retries", Value::Bool(enabled));
        self
    }

    /// The largest reply body accepted, in bytes (default 16 MiB); a larger one is a
    /// decode failure.
    pub fn max_reply_bytes(mut self, limit: u64) -> Self {
        self.defaults.insert("max_reply_bytes", Value::Integer(limit));
        self
    }

    /// The retry budget: retries may add at most `ratio` x calls, plus `burst`
    /// (defaults 0.2 and 10).
    pub fn retry_budget(mut self, ratio: f64, burst: u32) -> Self {
        self.budget.insert("ratio", Value::Float(ratio));
        self.budget.insert("burst", Value::Integer(u64::from(burst)));
        self
    }

    /// How calls are signed (default: `INTERCALL_SECRET`, else none).
    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    /// Where `service` lives: a base URL, optionally with a path prefix.
    pub fn service(mut self, service: impl Into<String>, base_url: impl Into<String>) -> Self {
        self.urls.insert(service.into(), base_url.into());
        self
    }

    /// A per-attempt timeout for one service.
    pub fn service_timeout(self, service: impl Into<String>, timeout: Duration) -> Self {
        self.for_service(service, "timeout_ms", Value::millis(timeout))
    }

    /// Turns retries off (or on) for one service.
    pub fn service_retries(self, service: impl Into<String>, enabled: bool) -> Self {
        self.for_service(service, "retries", Value::Bool(enabled))
    }

    /// Attempts in all for one service.
    pub fn service_tries(self, service: impl Into<String>, tries: u32) -> Self {
        self.for_service(service, "tries", Value::Integer(u64::from(tries)))
    }

    /// The first backoff and its maximum for one service.
    pub fn service_backoff(self, service: impl Into<String>, first: Duration, max: Duration) -> Self {
        let service = service.into();
        self.for_service(service.clone(), "backoff_ms", Value::millis(first)).for_service(
            service,
            "max_backoff_ms",
            Value::millis(max),
        )
    }

    /// The largest reply body accepted from one service, in bytes.
    pub fn service_max_reply_bytes(self, service: impl Into<String>, limit: u64) -> Self {
        self.for_service(service, "max_reply_bytes", Value::Integer(limit))
    }

    /// `[server] call_store`: `"memory"` (a store of the node's own) or a `redis://`
    /// URL (feature `redis`); unset, servers share the process-wide default store.
    pub fn call_store(mut self, store: impl Into<String>) -> Self {
        self.server.insert("call_store", Value::Text(store.into()));
        self
    }

    /// `[server] call_store_prefix`: the Redis key prefix.
    pub fn call_store_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.server.insert("call_store_prefix", Value::Text(prefix.into()));
        self
    }

    /// `[server] call_ttl_ms`: how long a finished call is kept.
    pub fn call_ttl(mut self, ttl: Duration) -> Self {
        self.server.insert("call_ttl_ms", Value::millis(ttl));
        self
    }

    /// `[server] call_lease_ms`: how long a running call survives its owner (Redis).
    pub fn call_lease(mut self, lease: Duration) -> Self {
        self.server.insert("call_lease_ms", Value::millis(lease));
        self
    }

    /// `[server] call_store_capacity`: entries the memory store keeps.
    pub fn call_store_capacity(mut self, entries: u64) -> Self {
        self.server.insert("call_store_capacity", Value::Integer(entries));
        self
    }

    /// `[server] call_store_max_bytes`: reply bytes the memory store keeps.
    pub fn call_store_max_bytes(mut self, bytes: u64) -> Self {
        self.server.insert("call_store_max_bytes", Value::Integer(bytes));
        self
    }

    /// `[server] on_store_error`: what servers do when the store fails.
    pub fn on_store_error(mut self, on_error: OnStoreError) -> Self {
        let text = match on_error {
            OnStoreError::Fail => "fail",
            OnStoreError::Run => "run",
        };
        self.server.insert("on_store_error", Value::Text(text.to_owned()));
        self
    }

    /// `[server] header_read_timeout_ms`: how long a client may take to send a request
    /// head (see [`ServeOptions::header_read_timeout`](crate::ServeOptions::header_read_timeout)).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.server.insert("header_read_timeout_ms", Value::millis(timeout));
        self
    }

    /// `[server] body_read_timeout_ms`: how long a request body may take to arrive
    /// (see [`ServeOptions::body_read_timeout`](crate::ServeOptions::body_read_timeout)).
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.server.insert("body_read_timeout_ms", Value::millis(timeout));
        self
    }

    /// `[server] idle_timeout_ms`: how long a connection may go without a request
    /// (see [`ServeOptions::idle_timeout`](crate::ServeOptions::idle_timeout)).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.server.insert("idle_timeout_ms", Value::millis(timeout));
        self
    }

    /// `[server] max_connections`: the most connections served at once
    /// (see [`ServeOptions::max_connections`](crate::ServeOptions::max_connections)).
    pub fn max_connections(mut self, limit: u64) -> Self {
        self.server.insert("max_connections", Value::Integer(limit));
        self
    }

    fn for_service(mut self, service: impl Into<String>, key: &'static str, value: Value) -> Self {
        self.services.entry(service.into()).or_default().insert(key, value);
        self
    }

    /// Validates the settings, exactly as a file's, and builds the invoker.
    pub fn build(self) -> Result<Invoker, Error> {
        if let Some(name) = self.services.keys().find(|name| !self.urls.contains_key(*name)) {
            return Err(Error::config(format!(
                "invalid services config in `{}`: a setting is given for service `{name}`, which has no URL; call `.service(\"{name}\", url)`",
                Source::Builder
            )));
        }
        let document = self.document();
        Config::parse_with(&document, Source::Builder, self.security).map(Invoker::with_config)
    }

    /// The settings as a services.toml document.
    fn document(&self) -> String {
        let mut out = String::new();
        let mut table = |header: &str, entries: &mut dyn Iterator<Item = (&str, &Value)>| {
            let _ = writeln!(out, "[{header}]");
            for (key, value) in entries {
                let _ = write!(out, "{key} = ");
                value.write(&mut out);
                out.push('\n');
            }
        };
        table("defaults", &mut self.defaults.iter().map(|(k, v)| (*k, v)));
        table("retry_budget", &mut self.budget.iter().map(|(k, v)| (*k, v)));
        table("server", &mut self.server.iter().map(|(k, v)| (*k, v)));
        for (name, url) in &self.urls {
            let url = Value::Text(url.clone());
            let own = self.services.get(name).into_iter().flatten().map(|(k, v)| (*k, v));
            table(&format!("services.{}", quoted(name)), &mut std::iter::once(("url", &url)).chain(own));
        }
        out
    }
}
