//! `services.toml`: where each service lives and how to call it.
//!
//! ```toml
//! [defaults]                 # every service inherits these
//! timeout_ms = 2000          # per attempt
//! tries = 3                  # attempts in all, for retryable failures
//! backoff_ms = 50            # first backoff; doubles per retry, with full jitter
//! max_backoff_ms = 1000
//! retries = true             # false: one attempt; a mesh or balancer retries
//! max_reply_bytes = 16777216 # larger replies are refused (a decode failure)
//!
//! [services.Catalog]
//! url = "http://127.0.0.1:8081/"
//! timeout_ms = 500           # overrides the default for this service
//!
//! [services.Search]          # several endpoints: balanced, a retry goes to another
//! urls = ["http://10.0.0.7:8081/", "http://10.0.0.8:8081/"]
//! eject_after = 5            # failures in a row that eject an endpoint (0: never)
//! eject_ms = 1000            # the first ejection; doubles per ejection in a row
//! max_eject_ms = 30000       # the longest ejection
//!
//! [services.Inventory]       # each address of the name is an endpoint (http only)
//! url = "http://inventory.internal:8082/"
//! dns_refresh_ms = 5000      # resolved again this often
//!
//! [retry_budget]             # per invoker: retries may add at most
//! ratio = 0.2                # `ratio` x calls made,
//! burst = 10                 # plus a reserve of `burst` retries
//!
//! [security]                 # sign every call (else INTERCALL_SECRET, else none)
//! secret = "..."             # at least 16 bytes
//! accepted_secret = "..."    # still accepted while rotating
//! max_age_ms = 300000        # signed requests older than this get 401
//!
//! [server]                   # for the services this node serves
//! call_store = "redis://127.0.0.1:6379/0"   # or "memory" (the default)
//! call_store_prefix = "intercall:"          # Redis key prefix
//! call_ttl_ms = 300000       # how long a finished call is kept
//! call_lease_ms = 10000      # Redis: how long a running call survives its owner
//! call_store_capacity = 100000              # memory: entries kept
//! call_store_max_bytes = 268435456          # memory: reply bytes kept
//! on_store_error = "fail"    # or "run": without deduplication when the store fails
//! header_read_timeout_ms = 30000  # a request head must arrive within this
//! body_read_timeout_ms = 30000    # a request body must arrive within this (else 408)
//! idle_timeout_ms = 90000         # a connection without a request this long is closed
//! max_connections = 768           # over it, new connections wait in the backlog
//!                                 # (default: from the file-descriptor limit)
//! max_in_flight = 1000            # runs at once (streams too); over it, 503 overloaded
//!
//! [events]                   # event streams (feature `events`; docs/EVENTS.md)
//! url = "redis://127.0.0.1:6379/0"
//! prefix = "intercall:"      # streams are {prefix}events:{Trait}
//! max_len = 100000           # entries kept per stream (XADD MAXLEN ~)
//! claim_idle_ms = 30000      # a pending event idle this long is claimed by another consumer
//! max_deliveries = 5         # a failing event goes to {stream}:dead after this many
//! processed_ttl_ms = 86400000  # how long a group remembers a processed event id
//! retry_backoff_ms = 100     # first wait before redelivering a failed event (doubling)
//! op_timeout_ms = 1000       # bound on one Redis operation, a publish included
//! batch_size = 10            # events a consumer reads at once
//! done_records = "per_event" # or "per_batch": a batch's done records in one round trip
//! ```
//!
//! Every mistake is a start-up [`Error`] naming the source, the line, the column and the
//! key: unknown keys, a missing or malformed URL, a scheme other than http(s), a zero
//! timeout or `tries`, a backoff above its maximum, a service name that cannot be a URL
//! path segment, a `${VAR}` placeholder.
//!
//! The validator reads one document: the file's, with a builder's settings merged over
//! it and the environment's overrides over both (`document.rs`, `env.rs`). A value
//! set by the builder or a variable is named as such in messages, not by a line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use toml::de::DeTable;

use self::document::{Origin, Origins};
pub(crate) use self::env::Environment;
use crate::calls::OnStoreError;
use crate::client::{ConnectionSettings, PemFiles, TlsKey};
use crate::error::Error;
use crate::protocol::path::{self, BaseUrl};
use crate::security::{MIN_SECRET_BYTES, Security};
use crate::server::ServeOptions;

mod balance;
mod document;
mod env;
mod events;

pub(crate) use self::balance::{BalanceConfig, EjectionConfig};
pub use self::balance::{DEFAULT_EJECT, DEFAULT_EJECT_AFTER, DEFAULT_MAX_EJECT};

pub(crate) use self::events::EventsConfig;
pub use self::events::{
    DEFAULT_BATCH_SIZE, DEFAULT_CLAIM_IDLE, DEFAULT_MAX_DELIVERIES, DEFAULT_MAX_LEN, DEFAULT_OP_TIMEOUT,
    DEFAULT_PREFIX as DEFAULT_EVENTS_PREFIX, DEFAULT_PROCESSED_TTL, DEFAULT_RETRY_BACKOFF, DoneRecords,
};

/// The environment variable [`Invoker::from_env`](crate::Invoker::from_env) reads the
/// config path from.
pub const SERVICES_ENV: &str = "INTERCALL_SERVICES";

/// The per-attempt timeout a service gets when neither its entry nor `[defaults]` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How one service is called: per-attempt timeout and retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CallPolicy {
    pub(crate) timeout: Duration,
    /// Attempts in all; 1 when retries are off.
    pub(crate) tries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    /// The largest reply body accepted; a larger one is a decode failure.
    pub(crate) max_reply_bytes: u64,
}

/// The largest reply body a client accepts unless configured: 16 MiB.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            tries: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

/// The invoker's retry budget: retries may add at most `ratio` x calls, plus `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BudgetConfig {
    pub(crate) ratio: f64,
    pub(crate) burst: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self { ratio: 0.2, burst: 10.0 }
    }
}

/// Where a configuration came from; every error message names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Source {
    File(PathBuf),
    Inline,
    #[default]
    Builder,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Inline => f.write_str("<inline TOML>"),
            Source::Builder => f.write_str("<builder>"),
        }
    }
}

/// A validated configuration: one entry per service.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) source: Source,
    pub(crate) services: BTreeMap<String, ServiceConfig>,
    pub(crate) budget: BudgetConfig,
    pub(crate) security: Security,
    pub(crate) server: ServerConfig,
    /// `[events]`, when the node publishes or consumes events.
    #[cfg_attr(not(feature = "events"), allow(dead_code))]
    pub(crate) events: Option<EventsConfig>,
}

/// How to reach one service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    /// Its base URLs (`url`, or each of `urls`), in the order written; at least one.
    pub(crate) bases: Vec<BaseUrl>,
    /// How calls are spread over its endpoints and when one is ejected.
    pub(crate) balance: BalanceConfig,
    pub(crate) policy: CallPolicy,
    /// How the built-in transport connects to it.
    pub(crate) connection: ConnectionSettings,
    /// The first connection key the configuration sets for it, quoted, if any: a
    /// transport of the user's cannot honour these keys.
    pub(crate) connection_key: Option<String>,
}

/// `[server]`, validated: what the server side builds its settings and store from.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerConfig {
    pub(crate) security: Security,
    pub(crate) store: StoreConfig,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) serve_options: ServeOptions,
    /// `max_in_flight`: the node's limit on calls in flight.
    pub(crate) max_in_flight: Option<usize>,
}

/// Which call-id store `[server]` asks for.
#[derive(Debug, Clone, Default)]
pub(crate) enum StoreConfig {
    /// No store setting: the process-wide default store.
    #[default]
    Default,
    /// An in-process store of its own.
    Memory { capacity: u64, ttl: Duration, max_bytes: u64 },
    /// A Redis store (the URL parsed, nothing connected).
    #[cfg(feature = "redis")]
    Redis { client: redis::Client, prefix: Option<String>, ttl: Duration, lease: Option<Duration> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
    #[serde(default)]
    retry_budget: RawBudget,
    security: Option<Spanned<RawSecurity>>,
    #[serde(default)]
    server: RawServer,
    events: Option<Spanned<events::RawEvents>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    call_store: Option<Spanned<String>>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    call_store_prefix: Option<Spanned<String>>,
    call_ttl_ms: Option<Spanned<u64>>,
    call_lease_ms: Option<Spanned<u64>>,
    call_store_capacity: Option<Spanned<u64>>,
    call_store_max_bytes: Option<Spanned<u64>>,
    on_store_error: Option<Spanned<String>>,
    header_read_timeout_ms: Option<Spanned<i64>>,
    body_read_timeout_ms: Option<Spanned<i64>>,
    idle_timeout_ms: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    max_in_flight: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    secret: Spanned<String>,
    accepted_secret: Option<Spanned<String>>,
    max_age_ms: Option<Spanned<u64>>,
}

/// The call settings `[defaults]` and each service share.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout_ms: Option<Spanned<u64>>,
    tries: Option<Spanned<u32>>,
    backoff_ms: Option<Spanned<u64>>,
    max_backoff_ms: Option<Spanned<u64>>,
    max_reply_bytes: Option<Spanned<u64>>,
    retries: Option<bool>,
    http2: Option<Spanned<bool>>,
    pool_idle_timeout_ms: Option<Spanned<u64>>,
    pool_max_idle_per_host: Option<Spanned<u64>>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    eject_after: Option<Spanned<u32>>,
    eject_ms: Option<Spanned<u64>>,
    max_eject_ms: Option<Spanned<u64>>,
    dns_refresh_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    url: Option<Spanned<String>>,
    urls: Option<Spanned<Vec<Spanned<String>>>>,
    timeout_ms: Option<Spanned<u64>>,
    tries: Option<Spanned<u32>>,
    backoff_ms: Option<Spanned<u64>>,
    max_backoff_ms: Option<Spanned<u64>>,
    max_reply_bytes: Option<Spanned<u64>>,
    retries: Option<bool>,
    http2: Option<Spanned<bool>>,
    pool_idle_timeout_ms: Option<Spanned<u64>>,
    pool_max_idle_per_host: Option<Spanned<u64>>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    eject_after: Option<Spanned<u32>>,
    eject_ms: Option<Spanned<u64>>,
    max_eject_ms: Option<Spanned<u64>>,
    dns_refresh_ms: Option<Spanned<u64>>,
}

/// A service's `url` or `urls`, as written.
enum RawUrls {
    One(Spanned<String>),
    Many(Spanned<Vec<Spanned<String>>>),
}

impl RawService {
    /// Its URLs, and its other settings as the table `[defaults]` holds them.
    fn split(self) -> (Option<RawUrls>, Result<(), Range<usize>>, RawDefaults) {
        let settings = RawDefaults {
            timeout_ms: self.timeout_ms,
            tries: self.tries,
            backoff_ms: self.backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
            max_reply_bytes: self.max_reply_bytes,
            retries: self.retries,
            http2: self.http2,
            pool_idle_timeout_ms: self.pool_idle_timeout_ms,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
            ca_file: self.ca_file,
            client_cert: self.client_cert,
            client_key: self.client_key,
            eject_after: self.eject_after,
            eject_ms: self.eject_ms,
            max_eject_ms: self.max_eject_ms,
            dns_refresh_ms: self.dns_refresh_ms,
        };
        let (urls, both) = match (self.url, self.urls) {
            (Some(_), Some(urls)) => (None, Err(urls.span())),
            (Some(url), None) => (Some(RawUrls::One(url)), Ok(())),
            (None, Some(urls)) => (Some(RawUrls::Many(urls)), Ok(())),
            (None, None) => (None, Ok(())),
        };
        (urls, both, settings)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    ratio: Option<Spanned<f64>>,
    burst: Option<Spanned<u32>>,
}

/// What a configuration is built from, lowest precedence first: the file's (or
/// inline) text, the builder's document, the environment's overrides.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    /// What messages name: the file, `<inline TOML>`, or `<builder>` when there is no text.
    pub(crate) source: Source,
    /// The file's or inline text; empty for a builder without a file.
    pub(crate) text: String,
    /// The builder's settings, as a services.toml document.
    pub(crate) builder: Option<String>,
    /// The builder's `security(..)`: stands for `[security]` and `INTERCALL_SECRET`.
    pub(crate) security: Option<Security>,
    pub(crate) environment: Environment,
}

/// Reads a file's text, with a hint when a relative path was not found.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))
}

impl Config {
    /// Merges the inputs into one document and validates it.
    pub(crate) fn load(inputs: Inputs) -> Result<Self, Error> {
        let Inputs { source, text, builder, security, environment } = inputs;
        let origins = Origins::new(source, text.len());
        let at = |origins: &Origins, span: Option<Range<usize>>, message: &str| {
            Error::config(format!("invalid services config {}: {message}", origins.locate(&text, span)))
        };
        // The file's document with the builder's over it; parsed twice (a few
        // microseconds), once to learn the services the overrides match against.
        let layered = |origins: &Origins| -> Result<DeTable<'_>, Error> {
            let mut document = DeTable::parse(&text).map_err(|e| at(origins, e.span(), e.message().trim_end()))?;
            if let Some(builder) = &builder {
                let layer =
                    DeTable::parse(builder).map_err(|e| Error::config(format!("<builder>: {}", e.message())))?;
                document::merge(document.get_mut(), document::builder_layer(layer.into_inner(), origins));
            }
            Ok(document.into_inner())
        };
        let services = document::service_names(&layered(&origins)?);
        let overrides = env::overrides(&environment, &services, &origins.source.to_string())?;
        let origins = origins.with_variables(&overrides);
        let mut document = layered(&origins)?;
        if let Some(name) = document::builder_service_without_url(&document, &origins) {
            return Err(Error::config(format!(
                "invalid services config in `{}`: a setting is given for service `{name}`, which has no URL; call `.service(\"{name}\", url)`",
                Source::Builder
            )));
        }
        document::apply(&mut document, &overrides, &origins).map_err(|m| at(&origins, None, &m))?;
        if let Some((span, message)) = document::placeholder(&document) {
            return Err(at(&origins, Some(span), &message));
        }
        let raw: RawFile = deserialize(document, text.len()).map_err(|(e, key)| {
            let span = e.span();
            let hint = match origins.of(span.as_ref()) {
                Origin::Variable(_) if e.message().starts_with("invalid ") => ENV_VALUE_HINT,
                _ => "",
            };
            match key {
                // serde's message quotes the value ("invalid type: integer `1234`"): never
                // for a secret, whatever its type.
                Some(key) if SECRET_KEYS.contains(&key.as_str()) => at(
                    &origins,
                    span,
                    &format!("`{key}` must be a string of at least {MIN_SECRET_BYTES} bytes (the value is not shown)"),
                ),
                Some(key) => at(&origins, span, &format!("`{key}`: {}{hint}", e.message().trim_end())),
                None => at(&origins, span, &format!("{}{hint}", e.message().trim_end())),
            }
        })?;
        let at = |span: Option<Range<usize>>, message: &str| at(&origins, span, message);
        let source = origins.source.clone();
        let defaults = TableCallSettings { key: "defaults".to_owned(), settings: raw.defaults };
        let none = TableCallSettings { key: "defaults".to_owned(), settings: RawDefaults::default() };
        // Relative TLS file paths start at the file's directory; each file is read once.
        let mut pem = PemFiles::new(match &source {
            Source::File(path) => path.parent(),
            Source::Inline | Source::Builder => None,
        });
        // Validates `[defaults]` even when no service uses it.
        defaults.policy(&none).map_err(|(span, m)| at(Some(span), &m))?;
        defaults.connection(&none, &mut pem).map_err(|(span, m)| at(Some(span), &m))?;
        defaults.balance(&none, &[]).map_err(|(span, m)| at(Some(span), &m))?;
        let mut services = BTreeMap::new();
        for (name, entry) in raw.services {
            let key = format!("services.{name}");
            path::check_segment(&name).map_err(|m| at(Some(entry.span()), &format!("`{key}`: {m}")))?;
            let table_span = entry.span();
            let (urls, both, settings) = entry.into_inner().split();
            if let Err(span) = both {
                return Err(at(
                    Some(span),
                    &format!("`{key}` sets both `url` and `urls`; keep one (`urls` may list one URL)"),
                ));
            }
            let bases = match urls {
                None => {
                    let message = format!(
                        "`{key}` has no `url`; write `url = \"http://host:port/\"` or `urls = [\"http://a:port/\", \"http://b:port/\"]`"
                    );
                    return Err(at(Some(table_span), &message));
                }
                Some(RawUrls::One(url)) => {
                    vec![BaseUrl::parse(url.get_ref()).map_err(|m| at(Some(url.span()), &format!("`{key}.url` {m}")))?]
                }
                Some(RawUrls::Many(urls)) => {
                    if urls.get_ref().is_empty() {
                        let message = format!(
                            "`{key}.urls` is empty; list at least one URL, such as [\"http://127.0.0.1:8081/\"]"
                        );
                        return Err(at(Some(urls.span()), &message));
                    }
                    let mut bases: Vec<BaseUrl> = Vec::new();
                    for (i, url) in urls.into_inner().into_iter().enumerate() {
                        let base = BaseUrl::parse(url.get_ref())
                            .map_err(|m| at(Some(url.span()), &format!("`{key}.urls[{i}]` {m}")))?;
                        if bases.contains(&base) {
                            let message =
                                format!("`{key}.urls[{i}]` repeats `{}`; list each endpoint once", base.as_str());
                            return Err(at(Some(url.span()), &message));
                        }
                        bases.push(base);
                    }
                    bases
                }
            };
            let own = TableCallSettings { key, settings };
            let policy = own.policy(&defaults).map_err(|(span, m)| at(Some(span), &m))?;
            let (connection, connection_key) =
                own.connection(&defaults, &mut pem).map_err(|(span, m)| at(Some(span), &m))?;
            let balance = own.balance(&defaults, &bases).map_err(|(span, m)| at(Some(span), &m))?;
            services.insert(name, ServiceConfig { bases, policy, connection, connection_key, balance });
        }
        let budget = budget(&raw.retry_budget).map_err(|(span, m)| at(Some(span), &m))?;
        let security = match (raw.security, security) {
            (Some(table), _) => self::security(table.into_inner()).map_err(|(span, m)| at(Some(span), &m))?,
            (None, Some(given)) => given,
            (None, None) => Security::from_vars(|name| environment.var(name))?,
        };
        let server = server(&raw.server, security.clone()).map_err(|(span, m)| at(Some(span), &m))?;
        let events = raw.events.map(events::events).transpose().map_err(|(span, m)| at(Some(span), &m))?;
        Ok(Config { source, services, budget, security, server, events })
    }
}

/// A file that cannot be read, with a hint when a relative path was not found.
fn unreadable(path: &Path, err: &std::io::Error) -> Error {
    let hint = match err.kind() {
        std::io::ErrorKind::NotFound if path.is_relative() => format!(
            "; the path is relative to the current directory ({}), or set {SERVICES_ENV} to the file's path",
            std::env::current_dir().map_or_else(|_| "unknown".to_owned(), |d| d.display().to_string()),
        ),
        _ => String::new(),
    };
    Error::config(format!("cannot read services config `{}`: {err}{hint}", path.display()))
}

/// The call settings of one table (`[defaults]` or a service), with the table's key
/// for messages; its fields are read through `Deref`.
struct TableCallSettings {
    key: String,
    settings: RawDefaults,
}

impl std::ops::Deref for TableCallSettings {
    type Target = RawDefaults;

    fn deref(&self) -> &RawDefaults {
        &self.settings
    }
}

type Located = (Range<usize>, String);

impl TableCallSettings {
    /// How the built-in transport connects, from this table over `defaults`, and the
    /// first of these keys either sets (quoted), if any. The TLS files are read here
    /// (through `pem`, once each), so a bad file is an error at its key's line.
    fn connection(
        &self,
        defaults: &TableCallSettings,
        pem: &mut PemFiles,
    ) -> Result<(ConnectionSettings, Option<String>), Located> {
        let mut first_key = None;
        let mut pick = |own: &Option<Spanned<u64>>, default: &Option<Spanned<u64>>, field: &str| {
            let (value, table) = match (own, default) {
                (Some(v), _) => (v, &self.key),
                (None, Some(v)) => (v, &defaults.key),
                (None, None) => return Ok(None),
            };
            let key = format!("`{table}.{field}`");
            first_key.get_or_insert_with(|| key.clone());
            match *value.get_ref() {
                0 => Err((value.span(), format!("{key} is 0; write a positive number"))),
                n => Ok(Some(n)),
            }
        };
        let builtin = ConnectionSettings::default();
        let idle = pick(&self.pool_idle_timeout_ms, &defaults.pool_idle_timeout_ms, "pool_idle_timeout_ms")?;
        let max_idle = pick(&self.pool_max_idle_per_host, &defaults.pool_max_idle_per_host, "pool_max_idle_per_host")?;
        let http2 = match (&self.http2, &defaults.http2) {
            (Some(v), _) => Some((*v.get_ref(), &self.key)),
            (None, Some(v)) => Some((*v.get_ref(), &defaults.key)),
            (None, None) => None,
        };
        if let Some((_, table)) = http2 {
            first_key.get_or_insert_with(|| format!("`{table}.http2`"));
        }
        let tls = self.tls(defaults, pem)?;
        if let Some((key, _)) = &tls {
            first_key.get_or_insert_with(|| key.clone());
        }
        let settings = ConnectionSettings {
            http2: http2.is_some_and(|(on, _)| on),
            pool_idle_timeout: idle.map_or(builtin.pool_idle_timeout, Duration::from_millis),
            pool_max_idle_per_host: max_idle
                .map_or(builtin.pool_max_idle_per_host, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            tls: tls.map(|(_, tls)| tls).unwrap_or_default(),
        };
        Ok((settings, first_key))
    }

    /// `ca_file`, `client_cert` and `client_key`, each from this table over `defaults`,
    /// with their files read, and the first of the keys set (quoted); `None` when none is.
    fn tls(
        &self,
        defaults: &TableCallSettings,
        pem: &mut PemFiles,
    ) -> Result<Option<(String, crate::client::TlsSettings)>, Located> {
        let pick = |own: &Option<Spanned<String>>, default: &Option<Spanned<String>>, field: &str| {
            let (value, table) = match (own, default) {
                (Some(v), _) => (v, &self.key),
                (None, Some(v)) => (v, &defaults.key),
                (None, None) => return Ok(None),
            };
            let key = format!("`{table}.{field}`");
            match value.get_ref().trim() {
                "" => Err((value.span(), format!("{key} is empty; write the path of a PEM file"))),
                _ => Ok(Some((pem.resolve(value.get_ref()), value.span(), key))),
            }
        };
        let ca_file = pick(&self.ca_file, &defaults.ca_file, "ca_file")?;
        let cert = pick(&self.client_cert, &defaults.client_cert, "client_cert")?;
        let key = pick(&self.client_key, &defaults.client_key, "client_key")?;
        match (&cert, &key) {
            (Some((_, span, set)), None) => {
                return Err((
                    span.clone(),
                    format!("{set} is set without `client_key`; a client certificate needs its key"),
                ));
            }
            (None, Some((_, span, set))) => {
                return Err((
                    span.clone(),
                    format!("{set} is set without `client_cert`; a client key needs its certificate"),
                ));
            }
            _ => {}
        }
        let first = [&ca_file, &cert, &key].into_iter().flatten().next().map(|(_, _, key)| key.clone());
        let Some(first) = first else { return Ok(None) };
        let paths = cert.as_ref().zip(key.as_ref()).map(|(c, k)| (c.0.clone(), k.0.clone()));
        let tls = pem.settings(ca_file.as_ref().map(|c| c.0.clone()), paths).map_err(|(which, message)| {
            let (_, span, key) = match which {
                TlsKey::CaFile => ca_file.as_ref(),
                TlsKey::ClientCert => cert.as_ref(),
                TlsKey::ClientKey => key.as_ref(),
            }
            .expect("an error about a key that is set");
            (span.clone(), format!("{key}: {message}"))
        })?;
        Ok(Some((first, tls)))
    }

    /// This table's settings over `defaults`' over the built-in ones, validated; an
    /// error names the table the offending value came from.
    fn policy(&self, defaults: &TableCallSettings) -> Result<CallPolicy, Located> {
        let builtin = CallPolicy::default();
        let pick = |own: &Option<Spanned<u64>>, default: &Option<Spanned<u64>>, field: &str| {
            let (value, table, own) = match (own, default) {
                (Some(v), _) => (v, &self.key, true),
                (None, Some(v)) => (v, &defaults.key, false),
                (None, None) => return None,
            };
            Some(Picked { value: *value.get_ref(), span: value.span(), key: format!("`{table}.{field}`"), own })
        };
        let timeout = match pick(&self.timeout_ms, &defaults.timeout_ms, "timeout_ms") {
            Some(p) if p.value == 0 => return Err(p.error("is 0; write a timeout of at least 1 millisecond")),
            Some(p) => Duration::from_millis(p.value),
            None => builtin.timeout,
        };
        let widen = |v: &Option<Spanned<u32>>| v.as_ref().map(|t| Spanned::new(t.span(), u64::from(*t.get_ref())));
        let tries = match pick(&widen(&self.tries), &widen(&defaults.tries), "tries") {
            Some(p) if p.value == 0 => return Err(p.error("is 0; write at least 1 (1 means no retries)")),
            Some(p) => u32::try_from(p.value).expect("widened from u32"),
            None => builtin.tries,
        };
        let backoff = pick(&self.backoff_ms, &defaults.backoff_ms, "backoff_ms");
        let max_backoff = pick(&self.max_backoff_ms, &defaults.max_backoff_ms, "max_backoff_ms");
        let backoff_ms = backoff.as_ref().map_or(builtin.backoff.as_millis() as u64, |p| p.value);
        let max_backoff_ms = max_backoff.as_ref().map_or(builtin.max_backoff.as_millis() as u64, |p| p.value);
        if backoff_ms > max_backoff_ms {
            // Blame this table's own value when it has one: `[defaults]` alone may be
            // fine, and the override is what the reader must change.
            let blamed = match (&backoff, &max_backoff) {
                (_, Some(m)) if m.own => m,
                (Some(b), _) if b.own => b,
                (_, Some(m)) => m,
                (Some(b), None) => b,
                (None, None) => unreachable!("the built-in backoff is below the built-in maximum"),
            };
            let message = format!(
                "is {}: the backoff ({backoff_ms} ms) is above its maximum ({max_backoff_ms} ms)",
                blamed.value
            );
            return Err(blamed.error(&message));
        }
        let max_reply_bytes = match pick(&self.max_reply_bytes, &defaults.max_reply_bytes, "max_reply_bytes") {
            Some(p) if p.value == 0 => return Err(p.error("is 0; write a limit in bytes, such as 16777216")),
            Some(p) => p.value,
            None => builtin.max_reply_bytes,
        };
        let retries = self.retries.or(defaults.retries).unwrap_or(true);
        Ok(CallPolicy {
            timeout,
            tries: if retries { tries } else { 1 },
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_backoff_ms),
            max_reply_bytes,
        })
    }
}

/// A setting's value and where it was written.
struct Picked {
    value: u64,
    span: Range<usize>,
    /// The dotted key, quoted: `` `services.Catalog.tries` ``.
    key: String,
    /// Written in the table being resolved, not inherited from `[defaults]`.
    own: bool,
}

impl Picked {
    fn error(&self, problem: &str) -> Located {
        (self.span.clone(), format!("{} {problem}", self.key))
    }
}

fn security(raw: RawSecurity) -> Result<Security, Located> {
    // The messages never quote a secret: `Security` reports lengths only.
    let located = |span: Range<usize>, key: &'static str| move |e: Error| (span, format!("`security.{key}`: {e}"));
    let secret = &raw.secret;
    let mut security = Security::shared_secret(secret.get_ref()).map_err(located(secret.span(), "secret"))?;
    if let Some(accepted) = &raw.accepted_secret {
        security =
            security.with_accepted_secret(accepted.get_ref()).map_err(located(accepted.span(), "accepted_secret"))?;
    }
    if let Some(ms) = &raw.max_age_ms {
        if *ms.get_ref() == 0 {
            return Err((
                ms.span(),
                "`security.max_age_ms` is 0; write at least 1000 (the default is 300000)".to_owned(),
            ));
        }
        security = security.max_age(Duration::from_millis(*ms.get_ref()));
    }
    Ok(security)
}

fn server(raw: &RawServer, security: Security) -> Result<ServerConfig, Located> {
    let positive = |value: &Option<Spanned<u64>>, key: &str| match value {
        Some(v) if *v.get_ref() == 0 => Err((v.span(), format!("`server.{key}` is 0; write a positive number"))),
        Some(v) => Ok(Some(*v.get_ref())),
        None => Ok(None),
    };
    let ttl = positive(&raw.call_ttl_ms, "call_ttl_ms")?.map_or(crate::calls::DEFAULT_TTL, Duration::from_millis);
    let lease = positive(&raw.call_lease_ms, "call_lease_ms")?;
    let capacity = positive(&raw.call_store_capacity, "call_store_capacity")?;
    let max_bytes = positive(&raw.call_store_max_bytes, "call_store_max_bytes")?;
    let on_store_error = match &raw.on_store_error {
        None => OnStoreError::Fail,
        Some(v) => match v.get_ref().as_str() {
            "fail" => OnStoreError::Fail,
            "run" => OnStoreError::Run,
            other => {
                return Err((v.span(), format!("`server.on_store_error` is `{other}`; write \"fail\" or \"run\"")));
            }
        },
    };
    let serve_options = serve_options(raw)?;
    let max_in_flight = match &raw.max_in_flight {
        Some(v) if *v.get_ref() <= 0 => {
            return Err((
                v.span(),
                format!("`server.max_in_flight` is {}; write a positive number, such as 1000", v.get_ref()),
            ));
        }
        Some(v) if *v.get_ref() as u64 > tokio::sync::Semaphore::MAX_PERMITS as u64 => {
            return Err((
                v.span(),
                format!(
                    "`server.max_in_flight` is {}; write at most {}",
                    v.get_ref(),
                    tokio::sync::Semaphore::MAX_PERMITS
                ),
            ));
        }
        Some(v) => Some(usize::try_from(*v.get_ref()).expect("positive and under the maximum")),
        None => None,
    };
    let kind = raw.call_store.as_ref().map(|s| (s.get_ref().as_str(), s.span()));
    let is_redis = matches!(kind, Some((url, _)) if url.starts_with("redis://"));
    // A setting of the other kind of store would be silently ignored.
    for (value, key, for_redis) in [
        (raw.call_store_prefix.as_ref().map(Spanned::span), "call_store_prefix", true),
        (raw.call_lease_ms.as_ref().map(Spanned::span), "call_lease_ms", true),
        (raw.call_store_capacity.as_ref().map(Spanned::span), "call_store_capacity", false),
        (raw.call_store_max_bytes.as_ref().map(Spanned::span), "call_store_max_bytes", false),
    ] {
        if let (Some(span), true) = (value, for_redis != is_redis) {
            let message = match for_redis {
                true => format!("`server.{key}` applies only to a Redis store; set `call_store = \"redis://...\"`"),
                false => format!("`server.{key}` applies only to the memory store; Redis keeps its own limits"),
            };
            return Err((span, message));
        }
    }
    if let (Some(lease), Some(v)) = (lease, &raw.call_lease_ms) {
        let minimum = 3 * crate::calls::DEFAULT_REDIS_OP_TIMEOUT.as_millis() as u64;
        if lease < minimum {
            return Err((
                v.span(),
                format!(
                    "`server.call_lease_ms` is {lease}; write at least {minimum} (three Redis operation timeouts), or one slow renewal loses the lease"
                ),
            ));
        }
    }
    let store = match kind {
        None if raw.call_ttl_ms.is_none() && capacity.is_none() && max_bytes.is_none() => StoreConfig::Default,
        None | Some(("memory", _)) => StoreConfig::Memory {
            capacity: capacity.unwrap_or(crate::calls::DEFAULT_CAPACITY),
            ttl,
            max_bytes: max_bytes.unwrap_or(crate::calls::DEFAULT_MAX_BYTES),
        },
        Some((url, span)) if is_redis => redis_store(url, raw, ttl, lease).map_err(|m| (span, m))?,
        // The value may hold a password: never echo it.
        Some((url, span)) if url.starts_with("rediss://") => {
            return Err((
                span,
                "`server.call_store`: TLS to Redis (rediss://) is not supported; use redis:// on a private network"
                    .to_owned(),
            ));
        }
        Some((_, span)) => {
            return Err((span, "`server.call_store` must be \"memory\" or a redis:// URL".to_owned()));
        }
    };
    Ok(ServerConfig { security, store, on_store_error, serve_options, max_in_flight })
}

/// The connection settings of `[server]`: each a positive integer. (Read as signed
/// integers, so that a negative value gets this message rather than serde's.)
fn serve_options(raw: &RawServer) -> Result<ServeOptions, Located> {
    let positive = |value: &Option<Spanned<i64>>, key: &str, example: &str| match value {
        Some(v) if *v.get_ref() <= 0 => {
            Err((v.span(), format!("`server.{key}` is {}; write a positive number, such as {example}", v.get_ref())))
        }
        Some(v) => Ok(Some(u64::try_from(*v.get_ref()).expect("positive"))),
        None => Ok(None),
    };
    let mut options = ServeOptions::default();
    if let Some(ms) = positive(&raw.header_read_timeout_ms, "header_read_timeout_ms", "30000")? {
        options = options.header_read_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = positive(&raw.body_read_timeout_ms, "body_read_timeout_ms", "30000")? {
        options = options.body_read_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = positive(&raw.idle_timeout_ms, "idle_timeout_ms", "90000")? {
        options = options.idle_timeout(Duration::from_millis(ms));
    }
    if let Some(n) = positive(&raw.max_connections, "max_connections", "10000")? {
        options = options.max_connections(Some(usize::try_from(n).unwrap_or(usize::MAX)));
    }
    Ok(options)
}

#[cfg(feature = "redis")]
fn redis_store(url: &str, raw: &RawServer, ttl: Duration, lease: Option<u64>) -> Result<StoreConfig, String> {
    let client = crate::calls::parse_redis_url(url).map_err(|e| format!("`server.call_store`: {e}"))?;
    let prefix = raw.call_store_prefix.as_ref().map(|prefix| prefix.get_ref().clone());
    Ok(StoreConfig::Redis { client, prefix, ttl, lease: lease.map(Duration::from_millis) })
}

#[cfg(not(feature = "redis"))]
fn redis_store(_: &str, _: &RawServer, _: Duration, _: Option<u64>) -> Result<StoreConfig, String> {
    Err("`server.call_store` is a Redis URL, which needs intercall's `redis` feature; enable it or use \"memory\""
        .to_owned())
}

fn budget(raw: &RawBudget) -> Result<BudgetConfig, Located> {
    let builtin = BudgetConfig::default();
    let ratio = match &raw.ratio {
        Some(r) if !(r.get_ref().is_finite() && *r.get_ref() >= 0.0) => {
            return Err((
                r.span(),
                format!("`retry_budget.ratio` is {}; write a number of 0 or more, such as 0.2", r.get_ref()),
            ));
        }
        Some(r) => *r.get_ref(),
        None => builtin.ratio,
    };
    let burst = raw.burst.as_ref().map_or(builtin.burst, |b| f64::from(*b.get_ref()));
    Ok(BudgetConfig { ratio, burst })
}

/// What an override's type error adds: how an environment value is read.
const ENV_VALUE_HINT: &str =
    "; an environment value is read as TOML: digits for a number, `true` or `false`, text as it is (no quotes)";

/// The keys whose values are secrets: an error about one never quotes its value.
const SECRET_KEYS: [&str; 2] = ["security.secret", "security.accepted_secret"];

/// Deserializes the merged document, and on a type error also returns the dotted key
/// it concerns (toml's own message names only the position).
fn deserialize(document: DeTable<'_>, text_len: usize) -> Result<RawFile, (toml::de::Error, Option<String>)> {
    let document = toml::Deserializer::from(Spanned::new(0..text_len, document));
    serde_path_to_error::deserialize(document).map_err(|e| {
        // `Spanned` shows up in the path as a private field; the user never wrote it.
        let key = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let key = (key != ".").then_some(key);
        (e.into_inner(), key)
    })
}
