//! The [`Invoker`] a node shares: the HTTP client, the service lookup and the retry
//! budget, from `services.toml` or a builder.

use crate::telemetry::ClientMetrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use super::balance::Backends;
use super::builder::InvokerBuilder;
use super::endpoint::{Endpoint, EndpointInner, Targets};
use super::resolve::Resolver;
use super::retry::RetryBudget;
use super::stack::{BoxLayer, Carrier, Transport};
use super::transport::HyperTransport;
use std::collections::BTreeMap;

use super::http::HttpClient;
use super::transport::ConnectionSettings;
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
    config: Config,
    /// What carries each service's attempts, under the layers: the user's transport,
    /// or a built-in one per distinct connection setting (one pool each).
    transports: BTreeMap<String, Transport>,
    /// The endpoints of each service that has a balancer (several URLs, ejection or
    /// `dns_refresh_ms`), shared by all its proxies: one load count and health each.
    backends: BTreeMap<String, Arc<Backends>>,
    layers: ClientLayers,
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
        Config::load(Inputs { source: Source::File(path.to_owned()), text, ..Inputs::default() })
            .and_then(|config| Self::with_config(config, ClientParts::default()))
    }

    /// Parses `services.toml` text held in memory, with the environment's overrides
    /// over it, as [`from_file`](Self::from_file) does.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Config::load(Inputs { source: Source::Inline, text: text.to_owned(), ..Inputs::default() })
            .and_then(|config| Self::with_config(config, ClientParts::default()))
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

    pub(super) fn with_config(config: Config, parts: ClientParts) -> Result<Self, Error> {
        // The built-in transport follows no redirects (a redirected POST may not reach
        // the same method) and goes through no proxy. Services with the same connection
        // settings share one pool.
        let mut pools: HashMap<&ConnectionSettings, HyperTransport> = HashMap::new();
        let mut transports = BTreeMap::new();
        for (name, service) in &config.services {
            let transport = match &parts.transport {
                Some(_) if service.connection_key.is_some() => {
                    let key = service.connection_key.as_deref().unwrap_or_default();
                    return Err(Error::config(format!(
                        "invalid services config in `{}`: {key} configures the built-in transport, and this invoker has a transport of its own (`InvokerBuilder::transport`); configure that client instead, or remove the key",
                        config.source
                    )));
                }
                Some(custom) => Transport::Custom(custom.clone()),
                None => match pools.get(&service.connection) {
                    Some(pool) => Transport::Builtin(pool.clone()),
                    None => {
                        let pool = HyperTransport::with_settings(&service.connection)
                            .map_err(|e| Error::config(format!("service `{name}` in `{}`: {e}", config.source)))?;
                        pools.insert(&service.connection, pool.clone());
                        Transport::Builtin(pool)
                    }
                },
            };
            transports.insert(name.clone(), transport);
        }
        let mut backends = BTreeMap::new();
        for (name, service) in &config.services {
            if service.balance.balanced(service.bases.len()) {
                let set = Backends::new(name, &service.bases, &service.balance, parts.resolver.clone())
                    .map_err(|e| Error::config(format!("service `{name}` in `{}`: {e}", config.source)))?;
                backends.insert(name.clone(), Arc::new(set));
            }
        }
        let budget = Arc::new(RetryBudget::new(config.budget));
        let server_settings = std::sync::OnceLock::new();
        let layers = parts.layers;
        Ok(Self { shared: Arc::new(InvokerState { config, transports, backends, layers, budget, server_settings }) })
    }

    /// The base URL configured for `service`, without a trailing slash (the first, when
    /// it has several).
    pub fn base_url(&self, service: &str) -> Option<&str> {
        self.shared.config.services.get(service).map(|s| s.bases[0].as_str())
    }

    /// Every base URL configured for `service` (`url`, or each of `urls`), without
    /// trailing slashes.
    pub fn base_urls(&self, service: &str) -> Option<Vec<&str>> {
        self.shared.config.services.get(service).map(|s| s.bases.iter().map(|base| base.as_str()).collect())
    }

    /// The endpoints calls to `service` go to now, `scheme://host:port` each: its URLs,
    /// with the host names of a service with `dns_refresh_ms` replaced by the
    /// addresses they last resolved to (none before its first call). `None` for a
    /// service with one URL and no balancer, or no entry.
    pub fn endpoints(&self, service: &str) -> Option<Vec<String>> {
        self.shared.backends.get(service).map(|backends| backends.endpoints())
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

    /// `[events]`, if the configuration has it.
    #[cfg(feature = "events")]
    pub(crate) fn events_config(&self) -> Option<&crate::config::EventsConfig> {
        self.shared.config.events.as_ref()
    }

    /// What the configuration was read from, for messages.
    #[cfg(feature = "events")]
    pub(crate) fn source(&self) -> &Source {
        &self.shared.config.source
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
    let invalid = |e: String| Error::config(format!("service `{service}` in `{}`: {e}", config.source));
    let targets = match shared.backends.get(service) {
        None => Targets::One(
            methods
                .iter()
                .map(|method| entry.bases[0].method_uri(service, method))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
        ),
        Some(backends) => Targets::Balanced {
            backends: Arc::clone(backends),
            paths: backends.paths(service, methods).map_err(invalid)?,
        },
    };
    let transport = shared.transports.get(service).expect("a transport per configured service").clone();
    let layers = shared.layers.for_service(service);
    let carrier = Carrier::new(transport, &layers, &config.security);
    Ok(Endpoint::new(EndpointInner {
        carrier,
        service,
        methods,
        targets,
        policy: entry.policy,
        budget: Arc::clone(&shared.budget),
        security: shared.config.security.clone(),
        metrics: methods.iter().map(|method| ClientMetrics::new(service, method)).collect(),
    }))
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<_> = self
            .shared
            .config
            .services
            .iter()
            .map(|(name, s)| (name, s.bases.iter().map(|b| b.as_str()).collect::<Vec<_>>()))
            .collect();
        f.debug_struct("Invoker").field("source", &self.shared.config.source).field("services", &services).finish()
    }
}

/// What a builder gives an invoker beside its configuration: layers, and a transport
/// of the user's.
#[derive(Default)]
pub(super) struct ClientParts {
    pub(super) layers: ClientLayers,
    pub(super) transport: Option<HttpClient>,
    /// How host names of services with `dns_refresh_ms` resolve (default: the system's).
    pub(super) resolver: Option<Resolver>,
}

/// The client layers of an invoker: for every service, and per service.
#[derive(Default, Clone)]
pub(super) struct ClientLayers {
    pub(super) all: Vec<BoxLayer>,
    pub(super) per_service: BTreeMap<String, Vec<BoxLayer>>,
}

impl ClientLayers {
    /// `service`'s layers, outermost first: the invoker's, then its own.
    fn for_service(&self, service: &str) -> Vec<BoxLayer> {
        let own = self.per_service.get(service).into_iter().flatten();
        self.all.iter().chain(own).cloned().collect()
    }
}
