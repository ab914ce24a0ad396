//! The keys of `[defaults]` and `[services.<name>]` that say how a service's calls
//! spread over its endpoints: outlier ejection (`eject_after`, `eject_ms`,
//! `max_eject_ms`) and the re-resolution of host names into endpoints
//! (`dns_refresh_ms`). `client/balance.rs` and `client/ejection.rs` apply them.

use std::time::Duration;

use toml::Spanned;

use super::{Located, TableCallSettings};
use crate::protocol::path::BaseUrl;

/// Consecutive failures that eject an endpoint unless configured (`eject_after`).
pub const DEFAULT_EJECT_AFTER: u32 = 5;
/// An endpoint's first ejection unless configured (`eject_ms`): each one in a row
/// doubles it, up to [`DEFAULT_MAX_EJECT`].
pub const DEFAULT_EJECT: Duration = Duration::from_secs(1);
/// The longest ejection unless configured (`max_eject_ms`).
pub const DEFAULT_MAX_EJECT: Duration = Duration::from_secs(30);

/// How one service's calls spread over its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BalanceConfig {
    /// When an endpoint is ejected; `None`: never (a single URL, unless configured).
    pub(crate) ejection: Option<EjectionConfig>,
    /// Host names are resolved by intercall, each address one endpoint, this often.
    pub(crate) dns_refresh: Option<Duration>,
}

impl BalanceConfig {
    /// Whether calls go through the balancer rather than straight to the one URL.
    pub(crate) fn balanced(&self, urls: usize) -> bool {
        urls > 1 || self.ejection.is_some() || self.dns_refresh.is_some()
    }
}

/// Outlier ejection: after `after` failures in a row an endpoint is ejected for
/// `base`, doubled for each ejection in a row, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EjectionConfig {
    pub(crate) after: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl TableCallSettings {
    /// This table's balancing keys over `defaults`'; `bases` are the service's URLs
    /// (none when validating `[defaults]` itself).
    pub(super) fn balance(&self, defaults: &TableCallSettings, bases: &[BaseUrl]) -> Result<BalanceConfig, Located> {
        let pick = |own: &Option<Spanned<u64>>, default: &Option<Spanned<u64>>, field: &str| {
            let (value, table) = match (own, default) {
                (Some(v), _) => (v, &self.key),
                (None, Some(v)) => (v, &defaults.key),
                (None, None) => return Ok(None),
            };
            let key = format!("`{table}.{field}`");
            match *value.get_ref() {
                0 => Err((value.span(), format!("{key} is 0; write a positive number of milliseconds"))),
                n => Ok(Some((n, value.span(), key))),
            }
        };
        let eject = pick(&self.eject_ms, &defaults.eject_ms, "eject_ms")?;
        let max_eject = pick(&self.max_eject_ms, &defaults.max_eject_ms, "max_eject_ms")?;
        let base = eject.as_ref().map_or(DEFAULT_EJECT, |(ms, ..)| Duration::from_millis(*ms));
        let max = max_eject.as_ref().map_or(DEFAULT_MAX_EJECT, |(ms, ..)| Duration::from_millis(*ms));
        if base > max {
            let (span, key) = match (&eject, &max_eject) {
                (_, Some((_, span, key))) | (Some((_, span, key)), None) => (span.clone(), key.clone()),
                (None, None) => unreachable!("the built-in ejection is below its maximum"),
            };
            let message = format!(
                "{key}: the first ejection ({} ms) is longer than the longest ({} ms)",
                base.as_millis(),
                max.as_millis()
            );
            return Err((span, message));
        }
        let dns = pick(&self.dns_refresh_ms, &defaults.dns_refresh_ms, "dns_refresh_ms")?;
        if let Some((_, span, key)) = &dns {
            if let Some(https) = bases.iter().find(|base| base.as_str().starts_with("https://")) {
                let message = format!(
                    "{key} makes each address of a host name an endpoint, and `{}` uses https, whose certificate names the host; remove the key for this service (set it in its own table, not `[defaults]`), or list the endpoints in `urls`",
                    https.as_str()
                );
                return Err((span.clone(), message));
            }
        }
        let dns_refresh = dns.map(|(ms, ..)| Duration::from_millis(ms));
        let after = match (&self.eject_after, &defaults.eject_after) {
            (Some(v), _) | (None, Some(v)) => Some(*v.get_ref()),
            (None, None) => None,
        };
        // One URL keeps the simple behaviour (no ejection, so no circuit) unless asked.
        let after = match after {
            Some(0) => None,
            Some(n) => Some(n),
            None if bases.len() > 1 || dns_refresh.is_some() => Some(DEFAULT_EJECT_AFTER),
            None => None,
        };
        let ejection = after.map(|after| EjectionConfig { after, base, max });
        Ok(BalanceConfig { ejection, dns_refresh })
    }
}
