//! The [`Invoker`] a node shares: the HTTP client, the service lookup and the retry
//! budget, from `services.toml` or a builder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::endpoint::{Endpoint, EndpointInner};
use super::retry::RetryBudget;
use super::transport::Transport;
use crate::config::{self, BudgetConfig, CallPolicy, Config, ServiceConfig, Source};
use crate::error::Error;
use crate::security::Security;

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
    http: Transport,
    config: Config,
    budget: Arc<RetryBudget>,
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
        // No proxy and no redirects: a redirect of a POST would silently change what is
        // called.
        let http = Transport::new();
        let budget = Arc::new(RetryBudget::new(config.budget));
        Self { shared: Arc::new(Shared { http, config, budget }) }
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
    pub fn server_settings(&self) -> crate::ServerSettings {
        self.shared.config.server.clone()
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
    let urls = methods.iter().map(|method| entry.method_url(service, method)).collect();
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
        let services: Vec<_> = self.shared.config.services.iter().map(|(name, s)| (name, &s.base)).collect();
        f.debug_struct("Invoker").field("source", &self.shared.config.source).field("services", &services).finish()
    }
}

/// Builds an [`Invoker`] in code; [`build`](Self::build) validates it as strictly as a
/// file. Settings without a service name are the defaults every service inherits.
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
///     .build()?;
/// assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"));
/// assert_eq!(invoker.tries("Catalog"), Some(4));
/// assert_eq!(invoker.tries("Payments"), Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct InvokerBuilder {
    defaults: CallPolicyBuilder,
    budget: Option<BudgetConfig>,
    security: Option<Security>,
    services: Vec<(String, String)>,
    overrides: Vec<(String, Override)>,
}

#[derive(Debug, Default)]
struct CallPolicyBuilder {
    timeout: Option<Duration>,
    tries: Option<u32>,
    backoff: Option<(Duration, Duration)>,
    retries: Option<bool>,
}

#[derive(Debug)]
enum Override {
    Timeout(Duration),
    Retries(bool),
}

impl InvokerBuilder {
    /// The per-attempt timeout of every service that does not set its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.defaults.timeout = Some(timeout);
        self
    }

    /// Attempts in all for a retryable failure (default 3; 1 means no retries).
    pub fn tries(mut self, tries: u32) -> Self {
        self.defaults.tries = Some(tries);
        self
    }

    /// The first backoff and its maximum (defaults 50 ms and 1 s).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.defaults.backoff = Some((first, max));
        self
    }

    /// `false`: every call makes one attempt, for services behind a retrying mesh.
    pub fn retries(mut self, enabled: bool) -> Self {
        self.defaults.retries = Some(enabled);
        self
    }

    /// The retry budget: retries may add at most `ratio` x calls, plus `burst`
    /// (defaults 0.2 and 10).
    pub fn retry_budget(mut self, ratio: f64, burst: u32) -> Self {
        self.budget = Some(BudgetConfig { ratio, burst: f64::from(burst) });
        self
    }

    /// How calls are signed (default: `INTERCALL_SECRET`, else none).
    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    /// Where `service` lives: a base URL, optionally with a path prefix.
    pub fn service(mut self, service: impl Into<String>, base_url: impl Into<String>) -> Self {
        self.services.push((service.into(), base_url.into()));
        self
    }

    /// A per-attempt timeout for one service.
    pub fn service_timeout(mut self, service: impl Into<String>, timeout: Duration) -> Self {
        self.overrides.push((service.into(), Override::Timeout(timeout)));
        self
    }

    /// Turns retries off (or on) for one service.
    pub fn service_retries(mut self, service: impl Into<String>, enabled: bool) -> Self {
        self.overrides.push((service.into(), Override::Retries(enabled)));
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
        let builtin = CallPolicy::default();
        let d = &self.defaults;
        let (backoff, max_backoff) = d.backoff.unwrap_or((builtin.backoff, builtin.max_backoff));
        if backoff > max_backoff {
            return Err(invalid(format!("the backoff ({backoff:?}) is above its maximum ({max_backoff:?})")));
        }
        let tries = match d.tries.unwrap_or(builtin.tries) {
            0 => return Err(invalid("`tries` is 0; write at least 1 (1 means no retries)".to_owned())),
            n => n,
        };
        let defaults = CallPolicy {
            timeout: nonzero("the default timeout", d.timeout.unwrap_or(builtin.timeout))?,
            tries: if d.retries.unwrap_or(true) { tries } else { 1 },
            backoff,
            max_backoff,
            max_reply_bytes: builtin.max_reply_bytes,
        };
        let budget = self.budget.unwrap_or_default();
        if !(budget.ratio.is_finite() && budget.ratio >= 0.0) {
            return Err(invalid(format!("the retry budget ratio is {}; write a number of 0 or more", budget.ratio)));
        }
        let mut services = std::collections::BTreeMap::new();
        for (name, url) in self.services {
            config::check_service_name(&name).map_err(|m| invalid(format!("service `{name}`: {m}")))?;
            let base = config::base_url(&url).map_err(|m| invalid(format!("service `{name}` URL {m}")))?;
            services.insert(name, ServiceConfig { base, policy: defaults });
        }
        for (name, setting) in self.overrides {
            let entry = services.get_mut(&name).ok_or_else(|| {
                invalid(format!(
                    "a setting is given for service `{name}`, which has no URL; call `.service(\"{name}\", url)`"
                ))
            })?;
            match setting {
                Override::Timeout(timeout) => {
                    entry.policy.timeout = nonzero(&format!("the timeout of service `{name}`"), timeout)?;
                }
                Override::Retries(enabled) => entry.policy.tries = if enabled { tries } else { 1 },
            }
        }
        let security = match self.security {
            Some(security) => security,
            None => Security::from_env()?,
        };
        let server = crate::ServerSettings { security: security.clone(), ..Default::default() };
        Ok(Invoker::with_config(Config { source: Source::Builder, services, budget, security, server }))
    }
}
