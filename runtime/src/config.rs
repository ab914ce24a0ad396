//! `services.toml`: where each service lives and how to call it.
//!
//! ```toml
//! [defaults]
//! timeout_ms = 2000          # per call; every service inherits it
//!
//! [services.Catalog]
//! url = "http://127.0.0.1:8081/"
//! timeout_ms = 500           # overrides the default for this service
//! ```
//!
//! Every mistake is a start-up [`Error`] naming the source, the line, the column and the
//! key: unknown keys, a missing or malformed URL, a scheme other than http(s), a zero
//! timeout, a service name that cannot be a URL path segment.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use toml::Spanned;

use crate::error::Error;

/// The timeout a service gets when neither its entry nor `[defaults]` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a configuration came from; every error message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Inline,
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
}

/// How to reach one service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    /// The base URL with no trailing slash: `http://host:port` or `http://host/prefix`.
    pub(crate) base: String,
    pub(crate) timeout: Duration,
}

impl ServiceConfig {
    /// The URL of one method: `{base}/{service}/{method}`.
    pub(crate) fn method_url(&self, service: &str, method: &str) -> Url {
        Url::parse(&format!("{}/{service}/{method}", self.base))
            .expect("a validated base URL joined with path-safe names is a valid URL")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    url: Spanned<String>,
    timeout_ms: Option<Spanned<u64>>,
}

impl Config {
    pub(crate) fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::unreadable_file(path, &e))?;
        Self::parse(&text, Source::File(path.to_owned()))
    }

    pub(crate) fn parse(text: &str, source: Source) -> Result<Self, Error> {
        let at = |span: Option<Range<usize>>, message: &str| {
            Error::config(format!("invalid services config {}: {message}", locate(&source, text, span)))
        };
        let raw: RawFile = parse_toml(text).map_err(|(e, key)| match key {
            Some(key) => at(e.span(), &format!("`{key}`: {}", e.message().trim_end())),
            None => at(e.span(), e.message().trim_end()),
        })?;

        let default_timeout = match raw.defaults.timeout_ms {
            Some(ms) => timeout(&ms).map_err(|m| at(Some(ms.span()), &format!("`defaults.timeout_ms` {m}")))?,
            None => DEFAULT_TIMEOUT,
        };
        let mut services = BTreeMap::new();
        for (name, entry) in raw.services {
            let key = format!("services.{name}");
            check_service_name(&name).map_err(|m| at(Some(entry.span()), &format!("`{key}`: {m}")))?;
            let entry = entry.into_inner();
            let url = &entry.url;
            let base = base_url(url.get_ref()).map_err(|m| at(Some(url.span()), &format!("`{key}.url` {m}")))?;
            let timeout = match &entry.timeout_ms {
                Some(ms) => timeout(ms).map_err(|m| at(Some(ms.span()), &format!("`{key}.timeout_ms` {m}")))?,
                None => default_timeout,
            };
            services.insert(name, ServiceConfig { base, timeout });
        }
        Ok(Config { source, services })
    }
}

/// Parses the document, and on a type error also returns the dotted key it concerns
/// (toml's own message names only the position).
fn parse_toml(text: &str) -> Result<RawFile, (toml::de::Error, Option<String>)> {
    let document = toml::Deserializer::parse(text).map_err(|e| (e, None))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        // `Spanned` shows up in the path as a private field; the user never wrote it.
        let key = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let key = (key != ".").then_some(key);
        (e.into_inner(), key)
    })
}

/// `path:line:column`, or just the source when the position is unknown.
fn locate(source: &Source, text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else { return format!("in `{source}`") };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    format!("in `{source}` at line {line}, column {column}")
}

fn timeout(ms: &Spanned<u64>) -> Result<Duration, String> {
    match *ms.get_ref() {
        0 => Err("is 0; write a timeout of at least 1 millisecond".to_owned()),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// A service name becomes a URL path segment, so it is limited to `[A-Za-z0-9_.-]`,
/// the same rule the `#[service(name = "...")]` attribute enforces.
pub(crate) fn check_service_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid { Ok(()) } else { Err("a service name may only use letters, digits, `_`, `.` and `-`".to_owned()) }
}

/// Validates a base URL and returns it without a trailing slash.
pub(crate) fn base_url(text: &str) -> Result<String, String> {
    // Every message shows the URL without its credentials, whatever else is wrong.
    let shown = redact(text);
    let text = shown.as_ref();
    let url = Url::parse(text)
        .map_err(|e| format!("`{text}` is not a valid URL ({e}); write e.g. \"http://127.0.0.1:8081/\""))?;
    match url.scheme() {
        "http" => {}
        "https" if cfg!(feature = "tls") => {}
        "https" => {
            return Err(format!("`{text}` uses https, which needs intercall's `tls` feature; enable it or use http"));
        }
        other => return Err(format!("`{text}` has scheme `{other}`; write an http:// or https:// URL")),
    }
    if url.host().is_none() {
        return Err(format!("`{text}` has no host; write e.g. \"http://127.0.0.1:8081/\""));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; a base URL is scheme, host, port and an optional path prefix"
        ));
    }
    if let Cow::Owned(_) = shown {
        return Err(format!("`{text}` carries credentials; intercall does not send URL credentials, remove them"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The URL text with any `user:password@` replaced by `***@`, found by text rather
/// than by parsing, so that even a URL that does not parse is shown safely.
fn redact(text: &str) -> Cow<'_, str> {
    let authority_start = text.find("://").map_or(0, |i| i + 3);
    let authority_len = text[authority_start..].find(['/', '?', '#']).unwrap_or(text.len() - authority_start);
    match text[authority_start..authority_start + authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &text[..authority_start], &text[authority_start + at..])),
        None => Cow::Borrowed(text),
    }
}
