//! [`InvokerBuilder`]: a configuration in code, optionally over a file. It writes the
//! same document a `services.toml` holds, merged over the file's, and hands it to the
//! same validator, so the builder and the file accept exactly the same settings, with
//! the same messages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::invoker::Invoker;
use crate::calls::OnStoreError;
use crate::config::{self, Config, Environment, Inputs, Source};
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
    file: Option<PathBuf>,
    environment: Environment,
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
    /// Starts from a `services.toml` file: the builder's settings override the file's,
    /// key by key (and the environment overrides both). The file is read by
    /// [`build`](Self::build), and its mistakes still name its lines.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), intercall::Error> {
    /// let invoker = intercall::Invoker::builder()
    ///     .file("services.toml")
    ///     .service_timeout("Catalog", std::time::Duration::from_millis(200)) // over the file's
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Whether the process environment's overrides (`INTERCALL_DEFAULTS__TIMEOUT_MS`,
    /// `INTERCALL_SERVICES__CATALOG__URL`, ...; docs/CONFIG.md) and `INTERCALL_SECRET`
    /// apply: on by default, and they win over the file and the builder. `false`: the
    /// file and the builder alone.
    pub fn environment(mut self, enabled: bool) -> Self {
        self.environment = if enabled { Environment::Process } else { Environment::Off };
        self
    }

    /// Reads the overrides (and `INTERCALL_SECRET`) from these variables instead of the
    /// process environment: for tests, or settings kept elsewhere. Only names that
    /// start with `INTERCALL_` and hold a `__` are overrides; others are ignored.
    ///
    /// ```
    /// # fn main() -> Result<(), intercall::Error> {
    /// let invoker = intercall::Invoker::builder()
    ///     .service("Catalog", "http://127.0.0.1:8081/")
    ///     .environment_vars([("INTERCALL_SERVICES__CATALOG__TRIES", "5")])
    ///     .build()?;
    /// assert_eq!(invoker.tries("Catalog"), Some(5));
    /// # Ok(()) }
    /// ```
    pub fn environment_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.environment = Environment::Given(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

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

    fn for_service(mut self, service: impl Into<String>, key: &'static str, value: Value) -> Self {
        self.services.entry(service.into()).or_default().insert(key, value);
        self
    }

    /// Validates the settings, exactly as a file's, and builds the invoker: the file's
    /// settings (if any), the builder's over them, the environment's over both.
    pub fn build(self) -> Result<Invoker, Error> {
        let (source, text) = match &self.file {
            Some(path) => (Source::File(path.clone()), config::read(path)?),
            None => (Source::Builder, String::new()),
        };
        let builder = Some(self.document());
        let inputs = Inputs { source, text, builder, security: self.security, environment: self.environment };
        Config::load(inputs).map(Invoker::with_config)
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
        // A service with settings and no URL is written too: the file may give its URL.
        let names: std::collections::BTreeSet<&String> = self.urls.keys().chain(self.services.keys()).collect();
        for name in names {
            let url = self.urls.get(name).map(|url| Value::Text(url.clone()));
            let own = self.services.get(name).into_iter().flatten().map(|(k, v)| (*k, v));
            table(&format!("services.{}", quoted(name)), &mut url.iter().map(|url| ("url", url)).chain(own));
        }
        out
    }
}
