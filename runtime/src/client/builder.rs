//! [`InvokerBuilder`]: a configuration in code, optionally over a file. It writes the
//! same document a `services.toml` holds, merged over the file's, and hands it to the
//! same validator, so the builder and the file accept exactly the same settings, with
//! the same messages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use hyper::http::Response;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use super::http::{BoxError, HttpClient, HttpRequest, box_body};
use super::invoker::{ClientParts, Invoker};
use super::stack::BoxLayer;
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
#[derive(Default)]
pub struct InvokerBuilder {
    file: Option<PathBuf>,
    environment: Environment,
    defaults: Table,
    budget: Table,
    server: Table,
    events: Table,
    /// Each service's `url` (a text) or `urls` (a list).
    urls: BTreeMap<String, Value>,
    services: BTreeMap<String, Table>,
    security: Option<Security>,
    parts: ClientParts,
}

impl std::fmt::Debug for InvokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layers = &self.parts.layers;
        let per_service: BTreeMap<_, _> = layers.per_service.iter().map(|(name, l)| (name, l.len())).collect();
        f.debug_struct("InvokerBuilder")
            .field("document", &self.document())
            .field("security", &self.security)
            .field("layers", &layers.all.len())
            .field("service_layers", &per_service)
            .field("custom_transport", &self.parts.transport.is_some())
            .finish()
    }
}

/// One TOML table: key to value, the last setting of a key winning.
type Table = BTreeMap<&'static str, Value>;

#[derive(Debug, Clone)]
enum Value {
    Integer(u64),
    Float(f64),
    Bool(bool),
    Text(String),
    List(Vec<String>),
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
            Value::List(items) => {
                write!(out, "[{}]", items.iter().map(|item| quoted(item)).collect::<Vec<_>>().join(", "))
            }
        }
        .expect("writing to a String");
    }
}

/// A path as a TOML string. The document is text: a path that is not UTF-8 is written
/// lossily, and then names no file, which the validator reports with the path.
fn path_value(path: &Path) -> Value {
    Value::Text(path.to_string_lossy().into_owned())
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
        self.urls.insert(service.into(), Value::Text(base_url.into()));
        self
    }

    /// Where `service` lives, as several endpoints (`urls = [...]`): each call goes to
    /// the less loaded of two picked at random, a retry to another one, and one that
    /// keeps failing is ejected for a while (docs/CONFIG.md, "Several endpoints").
    ///
    /// ```
    /// # fn main() -> Result<(), intercall::Error> {
    /// let invoker = intercall::Invoker::builder()
    ///     .service_urls("Catalog", ["http://10.0.0.1:8081/", "http://10.0.0.2:8081/"])
    ///     .build()?;
    /// assert_eq!(invoker.base_urls("Catalog"), Some(vec!["http://10.0.0.1:8081", "http://10.0.0.2:8081"]));
    /// # Ok(()) }
    /// ```
    pub fn service_urls<I, U>(mut self, service: impl Into<String>, base_urls: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.urls.insert(service.into(), Value::List(base_urls.into_iter().map(Into::into).collect()));
        self
    }

    /// Outlier ejection for every service that does not set its own: an endpoint that
    /// fails `after` times in a row (no connection, no reply in time, a 5xx reply) is
    /// ejected for `first`, doubled for each ejection in a row up to `max`, then one
    /// call probes it. `after = 0` turns ejection off. (Defaults: 5, 1 s, 30 s, on for
    /// services with several endpoints.)
    pub fn ejection(mut self, after: u32, first: Duration, max: Duration) -> Self {
        self.defaults.insert("eject_after", Value::Integer(u64::from(after)));
        self.defaults.insert("eject_ms", Value::millis(first));
        self.defaults.insert("max_eject_ms", Value::millis(max));
        self
    }

    /// Outlier ejection for one service (see [`ejection`](Self::ejection)); on a
    /// service with one URL it makes a circuit breaker.
    pub fn service_ejection(self, service: impl Into<String>, after: u32, first: Duration, max: Duration) -> Self {
        let service = service.into();
        self.for_service(service.clone(), "eject_after", Value::Integer(u64::from(after)))
            .for_service(service.clone(), "eject_ms", Value::millis(first))
            .for_service(service, "max_eject_ms", Value::millis(max))
    }

    /// `dns_refresh_ms` for one service: its host names are resolved by intercall
    /// (through [`resolver`](Self::resolver)), each address one endpoint, again every
    /// `every` (a Kubernetes headless service). http:// URLs only.
    pub fn service_dns_refresh(self, service: impl Into<String>, every: Duration) -> Self {
        self.for_service(service, "dns_refresh_ms", Value::millis(every))
    }

    /// How host names are resolved for services with `dns_refresh_ms` (default: the
    /// system's resolver, `tokio::net::lookup_host`). Tests give one they can change.
    ///
    /// ```
    /// # fn main() -> Result<(), intercall::Error> {
    /// use std::net::SocketAddr;
    /// let invoker = intercall::Invoker::builder()
    ///     .service("Catalog", "http://catalog.internal:8081/")
    ///     .service_dns_refresh("Catalog", std::time::Duration::from_secs(5))
    ///     .resolver(|_host: &str, port: u16| async move {
    ///         Ok(vec![SocketAddr::from(([10, 0, 0, 1], port)), SocketAddr::from(([10, 0, 0, 2], port))])
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn resolver<F, Fut>(mut self, resolver: F) -> Self
    where
        F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::io::Result<Vec<std::net::SocketAddr>>> + Send + 'static,
    {
        self.parts.resolver = Some(super::resolve::Resolver::new(resolver));
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

    /// Speak HTTP/2 to every service that does not say otherwise: prior knowledge over
    /// `http://` (h2c; servers started by [`intercall::serve`](crate::serve) accept
    /// it), offered by ALPN over `https://`.
    pub fn http2(mut self, enabled: bool) -> Self {
        self.defaults.insert("http2", Value::Bool(enabled));
        self
    }

    /// HTTP/2 (or not) for one service.
    pub fn service_http2(self, service: impl Into<String>, enabled: bool) -> Self {
        self.for_service(service, "http2", Value::Bool(enabled))
    }

    /// How long an idle pooled connection is kept (default 20 s).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.defaults.insert("pool_idle_timeout_ms", Value::millis(timeout));
        self
    }

    /// How many idle connections per host the pool keeps (default: no limit).
    pub fn pool_max_idle_per_host(mut self, connections: u64) -> Self {
        self.defaults.insert("pool_max_idle_per_host", Value::Integer(connections));
        self
    }

    /// `ca_file`: a PEM file of CA certificates every service's server certificate may
    /// chain to, beside the platform's roots (feature `tls`): for services behind a
    /// private CA. A relative path starts at the current directory. The file is read
    /// by [`build`](Self::build), and a missing file, or one without a certificate, is
    /// an error there.
    ///
    /// ```
    /// # fn main() {
    /// let built = intercall::Invoker::builder()
    ///     .service("Catalog", "https://catalog.internal/")
    ///     .ca_file("/etc/ssl/private-ca.pem")
    ///     .build();
    /// // Here the file does not exist (or the `tls` feature is off): a start-up error.
    /// assert!(built.unwrap_err().to_string().contains("defaults.ca_file"));
    /// # }
    /// ```
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.defaults.insert("ca_file", path_value(path.as_ref()));
        self
    }

    /// `client_cert` and `client_key`: the certificate chain and private key (both
    /// PEM) every service is shown when its server asks for one (mutual TLS; feature
    /// `tls`). Relative paths start at the current directory.
    pub fn client_identity(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.defaults.insert("client_cert", path_value(cert.as_ref()));
        self.defaults.insert("client_key", path_value(key.as_ref()));
        self
    }

    /// `ca_file` for one service, instead of the default one.
    pub fn service_ca_file(self, service: impl Into<String>, path: impl AsRef<Path>) -> Self {
        self.for_service(service, "ca_file", path_value(path.as_ref()))
    }

    /// `client_cert` and `client_key` for one service, instead of the default ones.
    pub fn service_client_identity(
        self,
        service: impl Into<String>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        let service = service.into();
        self.for_service(service.clone(), "client_cert", path_value(cert.as_ref())).for_service(
            service,
            "client_key",
            path_value(key.as_ref()),
        )
    }

    /// Adds a tower layer around the HTTP exchange of every attempt, for every service.
    ///
    /// Layers see each attempt's [`HttpRequest`] with a [`CallInfo`](super::CallInfo)
    /// in its extensions (service, method, call id, attempt), and may add headers, time,
    /// count, rate-limit, or refuse the call by failing with a
    /// [`CallError`](crate::CallError), which the caller then gets as it is, with no
    /// retry. Any other error counts as a failed connection and is retried like one.
    ///
    /// The first layer added is the outermost; the invoker's layers wrap each service's
    /// own ([`service_layer`](Self::service_layer)). Calls are signed after every layer,
    /// so headers a layer adds are sent but not signed. A layer may answer with any
    /// response body whose chunks are [`Bytes`].
    ///
    /// The stack is built once per proxy and cloned for each attempt, as tower services
    /// are: state a layer keeps must be shared between clones. `ConcurrencyLimitLayer`
    /// shares its semaphore; a `RateLimitLayer` keeps its count per clone, so put it
    /// behind a `tower::buffer::BufferLayer` to make one limit for every call.
    ///
    /// ```
    /// # fn main() -> Result<(), intercall::Error> {
    /// use intercall::client::HttpRequest;
    ///
    /// // An API key for the gateway in front of every service.
    /// let auth = tower::util::MapRequestLayer::new(|mut request: HttpRequest| {
    ///     request.headers_mut().insert("authorization", "Bearer s3cr3t".parse().unwrap());
    ///     request
    /// });
    /// let invoker = intercall::Invoker::builder()
    ///     .service("Catalog", "http://127.0.0.1:8081/")
    ///     .layer(auth)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn layer<L, B>(mut self, layer: L) -> Self
    where
        L: Layer<HttpClient> + Send + Sync + 'static,
        L::Service: Service<HttpRequest, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<HttpRequest>>::Error: Into<BoxError>,
        <L::Service as Service<HttpRequest>>::Future: Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.parts.layers.all.push(boxed_layer(layer));
        self
    }

    /// Adds a tower layer for one service's calls only, inside the invoker's layers.
    pub fn service_layer<L, B>(mut self, service: impl Into<String>, layer: L) -> Self
    where
        L: Layer<HttpClient> + Send + Sync + 'static,
        L::Service: Service<HttpRequest, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<HttpRequest>>::Error: Into<BoxError>,
        <L::Service as Service<HttpRequest>>::Future: Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.parts.layers.per_service.entry(service.into()).or_default().push(boxed_layer(layer));
        self
    }

    /// Carries every call with `transport` instead of the built-in
    /// [`HyperTransport`](super::HyperTransport): any tower service from an
    /// [`HttpRequest`] to an HTTP response, such as a client of your own with its
    /// proxies, DNS and middleware (with the `reqwest` feature, `ReqwestTransport`
    /// adapts a `reqwest::Client`).
    ///
    /// Its response body is read within `max_reply_bytes`; the connection keys of
    /// `services.toml` (`http2`, the pool and TLS settings) configure the built-in
    /// transport only, and are refused beside this one.
    pub fn transport<S, B>(mut self, transport: S) -> Self
    where
        S: Service<HttpRequest, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.parts.transport = Some(boxed(transport));
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

    /// `[server] max_in_flight`: the most calls the node's servers run at once; a
    /// call over it gets `503 overloaded` with `Retry-After`, before anything is
    /// decoded or run (see [`ServerSettings::max_in_flight`](crate::ServerSettings::max_in_flight)).
    pub fn max_in_flight(mut self, limit: u64) -> Self {
        self.server.insert("max_in_flight", Value::Integer(limit));
        self
    }

    /// `[events] url`: the Redis holding the node's event streams (feature `events`;
    /// docs/EVENTS.md). Publishers and consumers need it.
    pub fn events(mut self, url: impl Into<String>) -> Self {
        self.events.insert("url", Value::Text(url.into()));
        self
    }

    /// `[events] prefix`: the prefix of every events key (default `intercall:`).
    pub fn events_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.events.insert("prefix", Value::Text(prefix.into()));
        self
    }

    /// `[events] max_len`: entries kept per stream, approximately (`XADD MAXLEN ~`).
    pub fn events_max_len(mut self, entries: u64) -> Self {
        self.events.insert("max_len", Value::Integer(entries));
        self
    }

    /// `[events] claim_idle_ms`: how long an event may stay unacknowledged with one
    /// consumer before another claims it (a consumer that died with it in hand).
    pub fn events_claim_idle(mut self, idle: Duration) -> Self {
        self.events.insert("claim_idle_ms", Value::millis(idle));
        self
    }

    /// `[events] max_deliveries`: deliveries of a failing event before it goes to the
    /// dead-letter stream.
    pub fn events_max_deliveries(mut self, deliveries: u64) -> Self {
        self.events.insert("max_deliveries", Value::Integer(deliveries));
        self
    }

    /// `[events] processed_ttl_ms`: how long a group remembers that it processed an event.
    pub fn events_processed_ttl(mut self, ttl: Duration) -> Self {
        self.events.insert("processed_ttl_ms", Value::millis(ttl));
        self
    }

    /// `[events] retry_backoff_ms`: the wait before the first redelivery of a failed
    /// event; it doubles per delivery, up to 5 s.
    pub fn events_retry_backoff(mut self, backoff: Duration) -> Self {
        self.events.insert("retry_backoff_ms", Value::millis(backoff));
        self
    }

    /// `[events] op_timeout_ms`: the bound on one Redis operation, a publish included.
    pub fn events_op_timeout(mut self, timeout: Duration) -> Self {
        self.events.insert("op_timeout_ms", Value::millis(timeout));
        self
    }

    /// `[events] batch_size`: events a consumer reads at once.
    pub fn events_batch_size(mut self, events: u64) -> Self {
        self.events.insert("batch_size", Value::Integer(events));
        self
    }

    /// `[events] done_records`: whether a consumer writes each event's `done` record
    /// before the next handler runs ([`DoneRecords::PerEvent`], the default) or a
    /// batch's records together after its handlers ([`DoneRecords::PerBatch`]: one
    /// round trip per batch, and a consumer killed mid-batch reruns the batch's
    /// finished handlers; EVENTS.md §5).
    ///
    /// [`DoneRecords::PerEvent`]: crate::DoneRecords::PerEvent
    /// [`DoneRecords::PerBatch`]: crate::DoneRecords::PerBatch
    pub fn events_done_records(mut self, when: crate::DoneRecords) -> Self {
        self.events.insert("done_records", Value::Text(when.as_str().to_owned()));
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
        let config = Config::load(inputs)?;
        Invoker::with_config(config, self.parts)
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
        // Only when set: an `[events]` table, even empty, says the node has events.
        if !self.events.is_empty() {
            table("events", &mut self.events.iter().map(|(k, v)| (*k, v)));
        }
        // A service with settings and no URL is written too: the file may give its URL.
        let names: std::collections::BTreeSet<&String> = self.urls.keys().chain(self.services.keys()).collect();
        for name in names {
            let url = self.urls.get(name).map(|url| match url {
                Value::List(_) => ("urls", url),
                _ => ("url", url),
            });
            let own = self.services.get(name).into_iter().flatten().map(|(k, v)| (*k, v));
            table(&format!("services.{}", quoted(name)), &mut url.into_iter().chain(own));
        }
        out
    }
}

/// A layer as the invoker keeps it: applied once per service, when a proxy is built.
fn boxed_layer<L, B>(layer: L) -> BoxLayer
where
    L: Layer<HttpClient> + Send + Sync + 'static,
    L::Service: Service<HttpRequest, Response = Response<B>> + Clone + Send + Sync + 'static,
    <L::Service as Service<HttpRequest>>::Error: Into<BoxError>,
    <L::Service as Service<HttpRequest>>::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Arc::new(move |inner: HttpClient| boxed(layer.layer(inner)))
}

/// Any HTTP service as an [`HttpClient`]: its body boxed, its error a [`BoxError`].
fn boxed<S, B>(service: S) -> HttpClient
where
    S: Service<HttpRequest, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // A service that already is an `HttpClient` (the `Identity` layer's, or a layer that
    // boxes its own) is kept as it is: boxing it again would cost allocations per call.
    let mut slot = Some(service);
    if let Some(client) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<HttpClient>>() {
        return client.take().expect("the slot was just filled");
    }
    let service = slot.expect("the slot was not taken");
    HttpClient::new(service.map_response(|response| response.map(box_body)).map_err(Into::into))
}
