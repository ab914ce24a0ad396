//! Where a command goes and how it signs: a URL given on the command line, or a
//! service name looked up in services.toml (`--config`, else `INTERCALL_SERVICES`, else
//! `./services.toml`), whose `url` or every one of its `urls` is an endpoint; the
//! secret from `INTERCALL_SECRET`, else services.toml's `[security]`.

use std::path::PathBuf;

use intercall::{Invoker, Security};

/// Where a command goes, one base URL or a service's several, and how to sign requests.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URLs, without a trailing `/`: the URL given on the command line, or
    /// the service's `url`, or each of its `urls` in the order services.toml lists
    /// them. Never empty. A command tries them in that order (`remote`).
    pub bases: Vec<String>,
    /// How requests are signed (none without a secret).
    pub security: Security,
}

/// Whether a command-line word is a URL rather than a service name.
pub fn is_url(word: &str) -> bool {
    word.starts_with("http://") || word.starts_with("https://")
}

/// Reads services.toml when a command needs it.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `--config`, when given.
    pub path: Option<PathBuf>,
}

impl Config {
    fn path(&self) -> PathBuf {
        self.path
            .clone()
            .or_else(|| std::env::var_os(intercall::SERVICES_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("services.toml"))
    }

    fn invoker(&self) -> Result<Invoker, String> {
        let path = self.path();
        Invoker::from_file(&path).map_err(|e| e.to_string())
    }

    /// `word` as a target: a URL as given, or a service's URLs from services.toml.
    pub fn resolve(&self, word: &str) -> Result<Target, String> {
        if is_url(word) {
            return Ok(Target { bases: vec![word.trim_end_matches('/').to_owned()], security: self.security()? });
        }
        let invoker = self.invoker().map_err(|e| {
            format!(
                "`{word}` is not a URL, so it is looked up as a service in services.toml, which cannot be read: {e}"
            )
        })?;
        let bases = invoker.base_urls(word).ok_or_else(|| {
            format!("`{word}` is not a URL (http://host:port/) and `{}` has no service `{word}`", self.path().display())
        })?;
        let security = match env_security()? {
            Some(security) => security,
            None => invoker.security(),
        };
        let bases = bases.into_iter().map(|base| base.trim_end_matches('/').to_owned()).collect();
        Ok(Target { bases, security })
    }

    /// The secret for a URL given on the command line: `INTERCALL_SECRET`, else
    /// services.toml's when the file exists, else none.
    fn security(&self) -> Result<Security, String> {
        if let Some(security) = env_security()? {
            return Ok(security);
        }
        if self.path().exists() { Ok(self.invoker()?.security()) } else { Ok(Security::none()) }
    }
}

fn env_security() -> Result<Option<Security>, String> {
    match std::env::var_os(intercall::SECRET_ENV) {
        None => Ok(None),
        Some(_) => Security::from_env().map(Some).map_err(|e| e.to_string()),
    }
}
