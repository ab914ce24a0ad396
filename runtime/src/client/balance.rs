//! A service's endpoints, shared by every proxy of one invoker: which endpoint each
//! attempt goes to, how many calls each has outstanding, which are ejected, and (with
//! `dns_refresh_ms`) the addresses its host names resolve to now.
//!
//! The policy is power of two choices on outstanding requests (Mitzenmacher; what
//! Finagle and Linkerd use): two endpoints picked at random, the one with fewer calls
//! in flight wins. A slow endpoint holds its calls longer, so it wins less often,
//! without any timing. A retry avoids the endpoints the call has tried, whenever
//! another is available; an ejected endpoint whose time is up gets the next call as
//! its probe (`ejection.rs`); when every endpoint is ejected, the circuit is open.
//!
//! Not `tower::balance::p2c`: it balances inside `poll_ready` over a `Discover` stream
//! and cannot be told to avoid the endpoint an attempt just failed on, nor say that
//! every endpoint is ejected without waiting; the whole policy here is a few lines
//! over one shared list (docs/RELIABILITY.md, "Why not tower's balancer").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::http::{HeaderValue, Uri};
use tokio::time::Instant;

use super::ejection::{Change, Health, Verdict};
use super::resolve::Resolver;
use crate::config::{BalanceConfig, EjectionConfig};
use crate::protocol::path::{BaseUrl, route};

/// One endpoint: where its attempts go, its load and its health.
#[derive(Debug)]
pub(crate) struct Backend {
    scheme: Scheme,
    authority: Authority,
    /// Index of its URL's path prefix in [`Backends::prefixes`].
    prefix: usize,
    /// For an address a host name resolved to: the `Host` header to send (the name).
    host: Option<HeaderValue>,
    outstanding: AtomicUsize,
    health: Health,
}

impl Backend {
    fn new(scheme: Scheme, authority: Authority, prefix: usize, host: Option<HeaderValue>) -> Self {
        Self { scheme, authority, prefix, host, outstanding: AtomicUsize::new(0), health: Health::default() }
    }

    /// The URI of method `method` on this endpoint; `paths` are a proxy's method paths
    /// per prefix ([`Backends::paths`]).
    pub(crate) fn uri(&self, paths: &[Vec<PathAndQuery>], method: usize) -> Uri {
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(paths[self.prefix][method].clone());
        Uri::from_parts(parts).expect("a scheme, an authority and a path make a URI")
    }

    /// The `Host` header its requests carry, when it is not the URI's authority.
    pub(crate) fn host_header(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }

    /// `scheme://authority`, for messages and metrics.
    pub(crate) fn label(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Counts one call in flight on it until the guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> Outstanding {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(Arc::clone(self))
    }

    fn load(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    fn same_place(&self, other: &Backend) -> bool {
        self.scheme == other.scheme && self.authority == other.authority && self.prefix == other.prefix
    }
}

/// One call in flight on a backend.
pub(crate) struct Outstanding(Arc<Backend>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoint an attempt goes to, and whether it is that endpoint's probe.
pub(crate) struct Picked {
    pub(crate) backend: Arc<Backend>,
    pub(crate) probe: bool,
    /// Its outcome was reported.
    reported: AtomicBool,
}

impl Picked {
    fn new(backend: &Arc<Backend>, probe: bool) -> Self {
        Self { backend: Arc::clone(backend), probe, reported: AtomicBool::new(false) }
    }
}

/// A probe that never ran (the call stopped before it: its deadline, the budget, or
/// the caller dropped it) frees its place, or the endpoint would never be probed again.
impl Drop for Picked {
    fn drop(&mut self) {
        if self.probe && !self.reported.load(Ordering::Relaxed) {
            self.backend.health.release_probe();
        }
    }
}

/// A service's endpoints and how attempts are spread over them.
pub(crate) struct Backends {
    service: String,
    /// The distinct path prefixes of the service's URLs (`""` for none).
    prefixes: Vec<String>,
    set: RwLock<Arc<[Arc<Backend>]>>,
    ejection: Option<EjectionConfig>,
    /// How many endpoints are ejected now.
    ejected: AtomicUsize,
    dns: Option<Dns>,
    /// The first URL's host, for spans.
    host: String,
}

/// Host names resolved into endpoints, again every `every`.
struct Dns {
    every: Duration,
    resolver: Resolver,
    sources: Vec<Source>,
    /// One resolution at a time.
    resolving: tokio::sync::Mutex<()>,
    resolved: AtomicBool,
    next: Mutex<Option<Instant>>,
    refreshing: AtomicBool,
}

/// One configured URL, as the resolver sees it.
enum Source {
    /// An IP address: one endpoint, never resolved.
    Fixed(Arc<Backend>),
    /// A host name: as many endpoints as it has addresses.
    Name { scheme: Scheme, name: String, port: u16, prefix: usize, host: HeaderValue },
}

impl Backends {
    /// The endpoints of `service` at `bases`; with `dns_refresh`, the host names among
    /// them are resolved on the first call, and then every `dns_refresh`.
    pub(crate) fn new(
        service: &str,
        bases: &[BaseUrl],
        balance: &BalanceConfig,
        resolver: Option<Resolver>,
    ) -> Result<Self, String> {
        let mut prefixes: Vec<String> = Vec::new();
        let mut sources = Vec::new();
        for base in bases {
            let uri: Uri = base.as_str().parse().map_err(|e| format!("`{}`: {e}", base.as_str()))?;
            let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
                return Err(format!("`{}` has no scheme or host", base.as_str()));
            };
            let path = uri.path().trim_end_matches('/').to_owned();
            let prefix = prefixes.iter().position(|p| *p == path).unwrap_or_else(|| {
                prefixes.push(path);
                prefixes.len() - 1
            });
            let name = authority.host().trim_start_matches('[').trim_end_matches(']');
            let literal = name.parse::<std::net::IpAddr>().is_ok();
            sources.push(match (balance.dns_refresh, literal) {
                (Some(_), false) => {
                    let port = authority.port_u16().unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
                    let host = HeaderValue::from_str(authority.as_str()).map_err(|e| format!("`{authority}`: {e}"))?;
                    Source::Name { scheme, name: name.to_owned(), port, prefix, host }
                }
                _ => Source::Fixed(Arc::new(Backend::new(scheme, authority, prefix, None))),
            });
        }
        let host = bases.first().and_then(|b| b.as_str().parse::<Uri>().ok()).and_then(|u| u.host().map(str::to_owned));
        let fixed: Vec<Arc<Backend>> = sources
            .iter()
            .filter_map(|source| match source {
                Source::Fixed(backend) => Some(Arc::clone(backend)),
                Source::Name { .. } => None,
            })
            .collect();
        let dns = balance.dns_refresh.map(|every| Dns {
            every,
            resolver: resolver.unwrap_or_else(Resolver::system),
            sources,
            resolving: tokio::sync::Mutex::new(()),
            resolved: AtomicBool::new(false),
            next: Mutex::new(None),
            refreshing: AtomicBool::new(false),
        });
        Ok(Self {
            service: service.to_owned(),
            prefixes,
            set: RwLock::new(fixed.into()),
            ejection: balance.ejection,
            ejected: AtomicUsize::new(0),
            dns,
            host: host.unwrap_or_default(),
        })
    }

    /// A proxy's method paths under each prefix, for [`Backend::uri`].
    pub(crate) fn paths(&self, service: &str, methods: &[&str]) -> Result<Vec<Vec<PathAndQuery>>, String> {
        let path = |prefix: &str, method: &str| {
            let text = format!("{prefix}{}", route(service, method));
            PathAndQuery::try_from(text.as_str()).map_err(|e| format!("`{text}` is not a valid path ({e})"))
        };
        self.prefixes.iter().map(|prefix| methods.iter().map(|method| path(prefix, method)).collect()).collect()
    }

    /// The first URL's host, for the call's span.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    fn current(&self) -> Arc<[Arc<Backend>]> {
        Arc::clone(&self.set.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The endpoints now (after the last resolution).
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.current().iter().map(|backend| backend.label()).collect()
    }

    /// The endpoint for the next attempt: a due probe first, then the less loaded of
    /// two available endpoints the call has not tried. `None`: every endpoint is
    /// ejected (the circuit is open).
    ///
    /// Only a call's first attempt probes: a retry already failed once, and as a
    /// probe it could go back to the very endpoint it failed on (a replica killed
    /// under it, due again by the time the store let the retry through elsewhere).
    pub(crate) fn pick(&self, tried: &[Arc<Backend>]) -> Option<Picked> {
        let set = self.current();
        if tried.is_empty() && self.ejected.load(Ordering::Relaxed) > 0 {
            let now = Instant::now();
            if let Some(backend) = set.iter().find(|backend| backend.health.try_probe(now)) {
                return Some(Picked::new(backend, true));
            }
        }
        let untried =
            |backend: &Arc<Backend>| backend.health.available() && !tried.iter().any(|t| Arc::ptr_eq(t, backend));
        let chosen = match set.len() {
            0 => None,
            1 => Some(&set[0]).filter(|backend| backend.health.available()),
            n => {
                let first = fastrand::usize(..n);
                let second = (first + 1 + fastrand::usize(..n - 1)) % n;
                let (a, b) = (&set[first], &set[second]);
                match (untried(a), untried(b)) {
                    (true, true) if b.load() < a.load() => Some(b),
                    (true, _) => Some(a),
                    (false, true) => Some(b),
                    // Both tried or ejected: any untried one, else any available one
                    // other than the last tried, else the last tried.
                    (false, false) => {
                        let start = fastrand::usize(..n);
                        let around = || set.iter().cycle().skip(start).take(n);
                        let last = tried.last();
                        around()
                            .find(|backend| untried(backend))
                            .or_else(|| {
                                around().find(|backend| {
                                    backend.health.available() && !last.is_some_and(|l| Arc::ptr_eq(l, backend))
                                })
                            })
                            .or_else(|| around().find(|backend| backend.health.available()))
                    }
                }
            }
        };
        chosen.map(|backend| Picked::new(backend, false))
    }

    /// Records what an attempt on `picked` came to.
    pub(crate) fn report(&self, picked: &Picked, verdict: Verdict) {
        let Some(policy) = &self.ejection else { return };
        picked.reported.store(true, Ordering::Relaxed);
        match picked.backend.health.report(verdict, picked.probe, policy, &self.ejected, Instant::now()) {
            Change::None => {}
            Change::Ejected(length) => {
                let endpoint = picked.backend.label();
                crate::telemetry::client_ejected(&self.service, &endpoint);
                tracing::warn!(
                    service = %self.service,
                    endpoint,
                    ejected_ms = length.as_millis() as u64,
                    "endpoint ejected after failing {} times in a row; one call will probe it when the time is up",
                    policy.after
                );
            }
            Change::Returned => {
                tracing::info!(service = %self.service, endpoint = picked.backend.label(), "endpoint back in traffic");
            }
        }
    }

    /// With `dns_refresh_ms`: resolves the host names on the first call (an error when
    /// none resolves), and starts a re-resolution in the background once the interval
    /// has passed. Without it, nothing.
    pub(crate) async fn ready(self: &Arc<Self>) -> Result<(), String> {
        let Some(dns) = &self.dns else { return Ok(()) };
        if !dns.resolved.load(Ordering::Acquire) {
            let _one = dns.resolving.lock().await;
            if !dns.resolved.load(Ordering::Acquire) {
                self.resolve(dns).await?;
            }
            return Ok(());
        }
        let due = dns.next.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|next| Instant::now() >= next);
        if due && !dns.refreshing.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                if let Some(dns) = &this.dns {
                    let _one = dns.resolving.lock().await;
                    if let Err(message) = this.resolve(dns).await {
                        tracing::warn!(service = %this.service, "{message}; keeping the endpoints resolved before");
                    }
                    dns.refreshing.store(false, Ordering::Release);
                }
            });
        }
        Ok(())
    }

    /// Resolves every host name and installs the new set, keeping the state (load,
    /// health) of endpoints that stay; a name that fails to resolve keeps its addresses.
    async fn resolve(&self, dns: &Dns) -> Result<(), String> {
        let previous = self.current();
        let mut next: Vec<Arc<Backend>> = Vec::new();
        let mut failures = Vec::new();
        // The `Host` headers of the names that failed: their endpoints stay as they were.
        let mut kept_names: Vec<&HeaderValue> = Vec::new();
        for source in &dns.sources {
            match source {
                Source::Fixed(backend) => next.push(Arc::clone(backend)),
                Source::Name { scheme, name, port, prefix, host } => {
                    let found = match dns.resolver.resolve(name, *port).await {
                        Ok(found) if !found.is_empty() => found,
                        Ok(_) => {
                            failures.push(format!("`{name}` resolved to no address"));
                            kept_names.push(host);
                            continue;
                        }
                        Err(e) => {
                            failures.push(format!("`{name}` did not resolve: {e}"));
                            kept_names.push(host);
                            continue;
                        }
                    };
                    for addr in found {
                        let Ok(authority) = Authority::try_from(addr.to_string().as_str()) else { continue };
                        let fresh = Backend::new(scheme.clone(), authority, *prefix, Some(host.clone()));
                        let kept = previous.iter().find(|old| old.same_place(&fresh));
                        let backend = kept.cloned().unwrap_or_else(|| Arc::new(fresh));
                        if !next.iter().any(|b| Arc::ptr_eq(b, &backend)) {
                            next.push(backend);
                        }
                    }
                }
            }
        }
        for old in previous.iter() {
            let failed_name = old.host.as_ref().is_some_and(|host| kept_names.contains(&host));
            if failed_name && !next.iter().any(|n| Arc::ptr_eq(n, old)) {
                next.push(Arc::clone(old));
            }
        }
        *dns.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + dns.every);
        if next.is_empty() {
            return Err(format!("service `{}`: {}", self.service, failures.join("; ")));
        }
        if !failures.is_empty() {
            tracing::warn!(service = %self.service, "{}", failures.join("; "));
        }
        // Ejected endpoints that left the set no longer count.
        let gone_ejected =
            previous.iter().filter(|old| !old.health.available() && !next.iter().any(|n| Arc::ptr_eq(n, old))).count();
        self.ejected.fetch_sub(gone_ejected, Ordering::Relaxed);
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = next.into();
        dns.resolved.store(true, Ordering::Release);
        Ok(())
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("service", &self.service).field("endpoints", &self.endpoints()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Backends {
        let bases: Vec<BaseUrl> =
            (0..n).map(|i| BaseUrl::parse(&format!("http://127.0.0.1:{}/", 8000 + i)).unwrap()).collect();
        let balance = BalanceConfig {
            ejection: Some(EjectionConfig { after: 1, base: Duration::from_secs(1), max: Duration::from_secs(8) }),
            dns_refresh: None,
        };
        Backends::new("Catalog", &bases, &balance, None).unwrap()
    }

    #[test]
    fn the_less_loaded_of_two_wins() {
        let backends = backends(2);
        let busy = backends.current()[0].start();
        for _ in 0..50 {
            let picked = backends.pick(&[]).unwrap();
            assert_eq!(picked.backend.label(), "http://127.0.0.1:8001", "two endpoints: both are always drawn");
        }
        drop(busy);
    }

    #[test]
    fn a_retry_avoids_the_endpoints_tried_while_another_is_available() {
        let backends = backends(3);
        for _ in 0..50 {
            let pick = |tried: &[Arc<Backend>]| Arc::clone(&backends.pick(tried).unwrap().backend);
            let first = pick(&[]);
            let second = pick(&[Arc::clone(&first)]);
            let third = pick(&[Arc::clone(&first), Arc::clone(&second)]);
            assert!(!Arc::ptr_eq(&first, &second) && !Arc::ptr_eq(&second, &third) && !Arc::ptr_eq(&first, &third));
            // All tried: another than the last.
            let fourth = pick(&[first, second, Arc::clone(&third)]);
            assert!(!Arc::ptr_eq(&fourth, &third));
        }
    }

    #[test]
    fn every_endpoint_ejected_opens_the_circuit_until_a_probe_is_due() {
        let backends = backends(2);
        for backend in backends.current().iter() {
            let picked = Picked::new(backend, false);
            backends.report(&picked, Verdict::Failed);
        }
        assert!(backends.pick(&[]).is_none(), "open");
        assert_eq!(backends.ejected.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_ejection_gives_one_probe_and_a_probe_dropped_unsent_frees_its_place() {
        let backends = backends(1);
        let only = Arc::clone(&backends.current()[0]);
        backends.report(&Picked::new(&only, false), Verdict::Failed);
        assert!(backends.pick(&[]).is_none(), "ejected for a second");
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = backends.pick(&[]).expect("due");
        assert!(probe.probe);
        assert!(backends.pick(&[]).is_none(), "one probe at a time");
        drop(probe);
        let probe = backends.pick(&[]).expect("the place is free again");
        backends.report(&probe, Verdict::Answered);
        let after = backends.pick(&[]).expect("back in traffic");
        assert!(!after.probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_is_never_a_probe() {
        let backends = backends(2);
        let (dead, alive) = (Arc::clone(&backends.current()[0]), Arc::clone(&backends.current()[1]));
        backends.report(&Picked::new(&dead, false), Verdict::Failed);
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..20 {
            let retry = backends.pick(&[Arc::clone(&dead)]).expect("the other endpoint is available");
            assert!(!retry.probe && Arc::ptr_eq(&retry.backend, &alive), "a retry goes to the other endpoint");
        }
        let first = backends.pick(&[]).expect("due");
        assert!(first.probe && Arc::ptr_eq(&first.backend, &dead), "a first attempt probes");
    }

    #[test]
    fn uris_keep_each_url_s_prefix() {
        let bases = [BaseUrl::parse("http://a:1/x/").unwrap(), BaseUrl::parse("http://b:2").unwrap()];
        let backends = Backends::new("S", &bases, &BalanceConfig::default(), None).unwrap();
        let paths = backends.paths("S", &["m", "n"]).unwrap();
        let uris: Vec<String> = backends.current().iter().map(|b| b.uri(&paths, 1).to_string()).collect();
        assert_eq!(uris, ["http://a:1/x/S/n", "http://b:2/S/n"]);
    }
}
