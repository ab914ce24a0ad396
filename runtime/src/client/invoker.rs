//! The [`Invoker`] a node shares: the HTTP client, the service lookup and the retry
//! budget, from `services.toml` or a builder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::builder::InvokerBuilder;
use super::endpoint::{Endpoint, EndpointInner};
use super::retry::RetryBudget;
use super::transport::Transport;
use crate::config::{self, Config, Inputs, SERVICES_ENV, ServiceConfig, Source};
use crate::error::Error;
use crate::security::Security;
use crate::server::{ServerSettings, server_settings};

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
    shared: Arc<InvokerState>,
}

/// What every clone of one invoker shares.
struct InvokerState {
    http: Transport,
    config: Config,
    budget: Arc<RetryBudget>,
    /// Built on first use, so that every server of the node shares one store.
    server_settings: std::sync::OnceLock<ServerSettings>,
}

impl Invoker {
    /// Reads a `services.toml` file, with the environment's overrides over it
    /// (`INTERCALL_SERVICES__CATALOG__URL`, ...; docs/CONFIG.md). Every mistake is an
    /// [`Error`] that names the file, the line and the key, or the environment variable.
    /// Without the environment: `Invoker::builder().file(path).environment(false)`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = config::read(path)?;
        Config::load(Inputs { source: Source::File(path.to_owned()), text, ..Inputs::default() }).map(Self::with_config)
    }

    /// Parses `services.toml` text held in memory, with the environment's overrides
    /// over it, as [`from_file`](Self::from_file) does.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Config::load(Inputs { source: Source::Inline, text: text.to_owned(), ..Inputs::default() })
            .map(Self::with_config)
    }

    /// Reads the file named by `INTERCALL_SERVICES`, or `services.toml` in the current
    /// directory when the variable is unset, with the environment's overrides over it.
    pub fn from_env() -> Result<Self, Error> {
        let path = std::env::var_os(SERVICES_ENV).unwrap_or_else(|| "services.toml".into());
        Self::from_file(path)
    }

    /// Builds a configuration in code instead of a file.
    pub fn builder() -> InvokerBuilder {
        InvokerBuilder::default()
    }

    pub(super) fn with_config(config: Config) -> Self {
        // The transport follows no redirects (a redirected POST may not reach the same
        // method) and goes through no proxy.
        let http = Transport::new();
        let budget = Arc::new(RetryBudget::new(config.budget));
        let server_settings = std::sync::OnceLock::new();
        Self { shared: Arc::new(InvokerState { http, config, budget, server_settings }) }
    }

    /// The base URL configured for `service`, without a trailing slash.
    pub fn base_url(&self, service: &str) -> Option<&str> {
        self.shared.config.services.get(service).map(|s| s.base.as_str())
    }

    /// The per-attempt timeout configured for `service`.
    pub fn timeout(&self, service: &str) -> Option<Duration> {
        self.shared.config.services.get(service).map(|s| s.policy.timeout)
    }

    /// How calls are signed: from `[security]` in the file, else `INTERCALL_SECRET`,
    /// else none. Give it to the node's servers too (`XServer::security`), so that
    /// they verify what the node's proxies sign.
    pub fn security(&self) -> Security {
        self.shared.config.security.clone()
    }

    /// The settings of the servers this node runs, from `[security]` and `[server]`:
    /// apply them with `XServer::settings(invoker.server_settings())`.
    pub fn server_settings(&self) -> ServerSettings {
        self.shared.server_settings.get_or_init(|| server_settings(&self.shared.config.server)).clone()
    }

    /// How many attempts a call to `service` may make (1 when its retries are off).
    pub fn tries(&self, service: &str) -> Option<u32> {
        self.shared.config.services.get(service).map(|s| s.policy.tries)
    }
}

/// Resolves `service` once, so a proxy's calls never look anything up: what a generated
/// `XProxy::new` calls (through `__private`).
pub fn endpoint(invoker: &Invoker, service: &'static str, methods: &'static [&'static str]) -> Result<Endpoint, Error> {
    let shared = &invoker.shared;
    let config = &shared.config;
    let entry: &ServiceConfig = config.services.get(service).ok_or_else(|| {
        let fix = match config.source {
            Source::Builder => format!("call `.service(\"{service}\", \"http://host:port/\")` on the builder"),
            _ => format!("add a `[services.{service}]` table with `url = \"http://host:port/\"`"),
        };
        Error::lookup(format!("no URL for service `{service}` in `{}`; {fix}", config.source))
    })?;
    let urls = methods
        .iter()
        .map(|method| entry.base.method_uri(service, method))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::config(format!("service `{service}` in `{}`: {e}", config.source)))?;
    Ok(Endpoint::new(EndpointInner {
        http: shared.http.clone(),
        service,
        methods,
        urls,
        policy: entry.policy,
        budget: Arc::clone(&shared.budget),
        security: shared.config.security.clone(),
    }))
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<_> = self.shared.config.services.iter().map(|(name, s)| (name, s.base.as_str())).collect();
        f.debug_struct("Invoker").field("source", &self.shared.config.source).field("services", &services).finish()
    }
}
