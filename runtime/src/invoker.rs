//! The client side: the [`Invoker`] a node shares, and the per-service [`Endpoint`] a
//! generated proxy calls through.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{self, Config, ServiceConfig, Source};
use crate::error::{CallError, Error};
use crate::wire::{self, ErrorReply};

/// The environment variable [`Invoker::from_env`] reads the config path from.
pub const SERVICES_ENV: &str = "INTERCALL_SERVICES";

/// The one client object a node shares: a pooled HTTP client plus the service lookup.
///
/// Cloning is cheap (one reference count), and every proxy built from an invoker and
/// its clones shares one connection pool.
///
/// ```no_run
/// # fn main() -> Result<(), intercall::Error> {
/// let invoker = intercall::Invoker::from_file("services.toml")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Invoker {
    shared: Arc<Shared>,
}

struct Shared {
    http: reqwest::Client,
    config: Config,
}

impl Invoker {
    /// Reads a `services.toml` file. Every mistake in it is an [`Error`] that names the
    /// file, the line and the key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Config::from_file(path.as_ref()).map(Self::with_config)
    }

    /// Parses `services.toml` text held in memory.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Config::parse(text, Source::Inline).map(Self::with_config)
    }

    /// Reads the file named by `INTERCALL_SERVICES`, or `services.toml` in the current
    /// directory when the variable is unset.
    pub fn from_env() -> Result<Self, Error> {
        let path = std::env::var_os(SERVICES_ENV).unwrap_or_else(|| "services.toml".into());
        Self::from_file(path)
    }

    /// Builds a configuration in code instead of a file.
    pub fn builder() -> InvokerBuilder {
        InvokerBuilder::default()
    }

    fn with_config(config: Config) -> Self {
        // No system proxy (the `system-proxy` feature is off) and no redirects: a
        // redirect of a POST would silently change what is called.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client without TLS or proxies always builds");
        Self { shared: Arc::new(Shared { http, config }) }
    }

    /// The base URL configured for `service`, without a trailing slash.
    pub fn base_url(&self, service: &str) -> Option<&str> {
        self.shared.config.services.get(service).map(|s| s.base.as_str())
    }

    /// The per-call timeout configured for `service`.
    pub fn timeout(&self, service: &str) -> Option<Duration> {
        self.shared.config.services.get(service).map(|s| s.timeout)
    }

    /// Resolves `service` once, so a proxy's calls never look anything up.
    #[doc(hidden)]
    pub fn endpoint(&self, service: &'static str, methods: &'static [&'static str]) -> Result<Endpoint, Error> {
        let config = &self.shared.config;
        let entry: &ServiceConfig = config.services.get(service).ok_or_else(|| {
            let fix = match config.source {
                Source::Builder => format!("call `.service(\"{service}\", \"http://host:port/\")` on the builder"),
                _ => format!("add a `[services.{service}]` table with `url = \"http://host:port/\"`"),
            };
            Error::lookup(format!("no URL for service `{service}` in `{}`; {fix}", config.source))
        })?;
        let urls = methods.iter().map(|method| entry.method_url(service, method)).collect();
        Ok(Endpoint(Arc::new(EndpointInner {
            http: self.shared.http.clone(),
            service,
            methods,
            urls,
            timeout: entry.timeout,
        })))
    }
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<_> = self.shared.config.services.iter().map(|(name, s)| (name, &s.base)).collect();
        f.debug_struct("Invoker").field("source", &self.shared.config.source).field("services", &services).finish()
    }
}

/// Builds an [`Invoker`] in code; [`build`](Self::build) validates it as strictly as a
/// file.
///
/// ```
/// # fn main() -> Result<(), intercall::Error> {
/// use std::time::Duration;
/// let invoker = intercall::Invoker::builder()
///     .timeout(Duration::from_secs(2))
///     .service("Catalog", "http://127.0.0.1:8081/")
///     .service_timeout("Catalog", Duration::from_millis(500))
///     .build()?;
/// assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct InvokerBuilder {
    timeout: Option<Duration>,
    services: Vec<(String, String)>,
    timeouts: Vec<(String, Duration)>,
}

impl InvokerBuilder {
    /// The per-call timeout of every service that does not set its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where `service` lives: a base URL, optionally with a path prefix.
    pub fn service(mut self, service: impl Into<String>, base_url: impl Into<String>) -> Self {
        self.services.push((service.into(), base_url.into()));
        self
    }

    /// A per-call timeout for one service.
    pub fn service_timeout(mut self, service: impl Into<String>, timeout: Duration) -> Self {
        self.timeouts.push((service.into(), timeout));
        self
    }

    /// Validates the settings and builds the invoker.
    pub fn build(self) -> Result<Invoker, Error> {
        let invalid = |message: String| Error::config(format!("invalid services config in `<builder>`: {message}"));
        let nonzero = |key: &str, timeout: Duration| {
            if timeout.is_zero() {
                Err(invalid(format!("{key} is 0; write a timeout of at least 1 millisecond")))
            } else {
                Ok(timeout)
            }
        };
        let default_timeout = nonzero("the default timeout", self.timeout.unwrap_or(config::DEFAULT_TIMEOUT))?;
        let mut services = std::collections::BTreeMap::new();
        for (name, url) in self.services {
            config::check_service_name(&name).map_err(|m| invalid(format!("service `{name}`: {m}")))?;
            let base = config::base_url(&url).map_err(|m| invalid(format!("service `{name}` URL {m}")))?;
            services.insert(name, ServiceConfig { base, timeout: default_timeout });
        }
        for (name, timeout) in self.timeouts {
            let timeout = nonzero(&format!("the timeout of service `{name}`"), timeout)?;
            let entry = services.get_mut(&name).ok_or_else(|| {
                invalid(format!(
                    "a timeout is set for service `{name}`, which has no URL; call `.service(\"{name}\", url)`"
                ))
            })?;
            entry.timeout = timeout;
        }
        Ok(Invoker::with_config(Config { source: Source::Builder, services }))
    }
}

/// One service as a generated proxy sees it: the method URLs resolved once, the shared
/// HTTP client and the timeout. Cloning is one reference count.
#[doc(hidden)]
#[derive(Clone)]
pub struct Endpoint(Arc<EndpointInner>);

struct EndpointInner {
    http: reqwest::Client,
    service: &'static str,
    methods: &'static [&'static str],
    urls: Vec<Url>,
    timeout: Duration,
}

static JSON: HeaderValue = HeaderValue::from_static(wire::JSON);

impl Endpoint {
    /// The base URL of the method `index`'s service, for `Debug` output.
    pub fn url(&self, index: usize) -> &Url {
        &self.0.urls[index]
    }

    /// Calls method `index` with `args` (a struct of the named arguments) and decodes
    /// the reply: `Ok(T)` on success, `Err(E)` for the service's typed error and for
    /// every other failure, through `E: From<CallError>`.
    pub async fn call<A, T, E>(&self, index: usize, args: &A) -> Result<T, E>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
        E: crate::ServiceError,
    {
        let this = &*self.0;
        let method = this.methods[index];
        let body = serde_json::to_vec(args).map_err(|e| CallError::encode(this.service, method, e.to_string()))?;
        let reply = this
            .http
            .post(this.urls[index].clone())
            .header(CONTENT_TYPE, JSON.clone())
            .header(ACCEPT, JSON.clone())
            .timeout(this.timeout)
            .body(body)
            .send()
            .await;
        let transport = |err: reqwest::Error| self.transport_error(method, &err);
        let response = reply.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;

        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| {
                CallError::decode(this.service, method, status, format!("the reply is not a valid result: {e}")).into()
            });
        }
        Err(match wire::parse_error_reply(&bytes) {
            Some(ErrorReply::Service { type_name, value }) => {
                serde_json::from_str::<E>(value.get()).unwrap_or_else(|e| {
                    let message =
                        format!("the server's `{type_name}` error does not decode as this method's error type: {e}");
                    CallError::decode(this.service, method, status, message).into()
                })
            }
            Some(ErrorReply::Framework { kind, message }) => {
                CallError::status(this.service, method, status, format!("{kind}: {message}")).into()
            }
            None => CallError::status(this.service, method, status, wire::describe_foreign_body(&bytes)).into(),
        })
    }

    fn transport_error(&self, method: &str, err: &reqwest::Error) -> CallError {
        let service = self.0.service;
        if err.is_timeout() {
            return CallError::timeout(service, method, self.0.timeout);
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
            .field("timeout", &self.0.timeout)
            .finish()
    }
}
