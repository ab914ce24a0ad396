//! The keys of the trust boundary (the scheme itself is `protocol::signing`): with a
//! shared secret, every call is signed (HMAC-SHA256) by the proxy and verified by the
//! server, so the user context in its headers cannot be forged by whoever can reach a
//! port. `docs/SECURITY.md` has the threat model.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::protocol::signing::{self, SignedFields};

/// The environment variable holding the shared secret.
pub const SECRET_ENV: &str = "INTERCALL_SECRET";

/// The environment variable holding a second secret that is accepted, never used to
/// sign: the next or the last one, during a rotation.
pub const ACCEPTED_SECRET_ENV: &str = "INTERCALL_ACCEPTED_SECRET";

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// How old a signed request may be by default: 5 minutes.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// Whether and how calls are signed and verified.
///
/// Without a secret (the default), a server trusts the context headers as sent: right
/// for a closed network, and it logs a warning once. With one, a proxy signs every
/// call and a server answers `401` to any request that is unsigned, wrongly signed, or
/// older than `max_age`, before anything runs. To rotate without downtime, see
/// `docs/SECURITY.md`: a second, accepted secret makes a three-step rollout possible.
///
/// `Debug` shows whether secrets are set, never their value.
#[derive(Clone, Default)]
pub struct Security {
    keys: Option<Arc<Keys>>,
}

struct Keys {
    current: Vec<u8>,
    accepted: Option<Vec<u8>>,
    max_age: Duration,
}

impl Security {
    /// No signing: context headers are trusted as sent.
    pub fn none() -> Self {
        Self::default()
    }

    /// Signs with `secret` and accepts only calls signed with it.
    pub fn shared_secret(secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        let current = checked(secret.as_ref(), "the shared secret")?;
        Ok(Self { keys: Some(Arc::new(Keys { current, accepted: None, max_age: DEFAULT_MAX_AGE })) })
    }

    /// Also accepts calls signed with `secret`, without signing with it: the next or
    /// the last secret, during a rotation.
    pub fn with_accepted_secret(self, secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        let accepted = checked(secret.as_ref(), "the accepted secret")?;
        let keys = self.keys.as_deref().ok_or_else(|| {
            Error::config("an accepted secret was given without a signing secret; set `secret` first")
        })?;
        let keys = Keys { current: keys.current.clone(), accepted: Some(accepted), max_age: keys.max_age };
        Ok(Self { keys: Some(Arc::new(keys)) })
    }

    /// How old a signed request may be (default 5 minutes); older ones get `401`.
    pub fn max_age(self, max_age: Duration) -> Self {
        match self.keys.as_deref() {
            None => self,
            Some(keys) => {
                let keys = Keys { current: keys.current.clone(), accepted: keys.accepted.clone(), max_age };
                Self { keys: Some(Arc::new(keys)) }
            }
        }
    }

    /// Reads `INTERCALL_SECRET` and `INTERCALL_ACCEPTED_SECRET`; none when unset.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) over another environment (`var` reads one variable).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self, Error> {
        let Some(secret) = var(SECRET_ENV) else {
            if var(ACCEPTED_SECRET_ENV).is_some() {
                return Err(Error::config(format!("{ACCEPTED_SECRET_ENV} is set but {SECRET_ENV} is not")));
            }
            return Ok(Self::none());
        };
        let security =
            Self::shared_secret(secret.as_encoded_bytes()).map_err(|e| Error::config(format!("{SECRET_ENV}: {e}")))?;
        match var(ACCEPTED_SECRET_ENV) {
            Some(accepted) => security
                .with_accepted_secret(accepted.as_encoded_bytes())
                .map_err(|e| Error::config(format!("{ACCEPTED_SECRET_ENV}: {e}"))),
            None => Ok(security),
        }
    }

    /// Whether calls are signed and verified.
    pub fn is_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// The signature of one request, now: `(x-intercall-timestamp,
    /// x-intercall-signature)`, or `None` without a secret. For clients that build
    /// requests themselves (the `intercall` CLI); proxies sign for you.
    pub fn sign(&self, fields: &SignedFields<'_>) -> Option<(u64, String)> {
        let keys = self.keys.as_deref()?;
        let timestamp = now_ms();
        Some((timestamp, signing::sign(&keys.current, fields, timestamp)))
    }

    /// Checks a request's signature headers (`None` when missing or repeated); the
    /// error says what was wrong, never anything secret.
    pub(crate) fn verify(
        &self,
        fields: &SignedFields<'_>,
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(), String> {
        let Some(keys) = self.keys.as_deref() else { return Ok(()) };
        let current: &[u8] = &keys.current;
        let both;
        let candidates: &[&[u8]] = match keys.accepted.as_deref() {
            Some(accepted) => {
                both = [current, accepted];
                &both
            }
            None => std::slice::from_ref(&current),
        };
        signing::verify(candidates, keys.max_age, now_ms(), fields, timestamp, signature)
    }
}

impl Security {
    #[cfg(feature = "events")]
    /// The signature of an event's canonical string; `None` without a secret.
    pub(crate) fn sign_text(&self, canonical: &str) -> Option<String> {
        let keys = self.keys.as_deref()?;
        Some(signing::sign_text(&keys.current, canonical))
    }

    #[cfg(feature = "events")]
    /// Checks an event's signature; always `Ok` without a secret (an unsigned
    /// consumer trusts its stream, as an unsigned server trusts its headers).
    pub(crate) fn verify_text(&self, canonical: &str, signature: Option<&str>) -> Result<(), String> {
        let Some(keys) = self.keys.as_deref() else { return Ok(()) };
        let current: &[u8] = &keys.current;
        match keys.accepted.as_deref() {
            Some(accepted) => signing::verify_text(&[current, accepted], canonical, signature),
            None => signing::verify_text(&[current], canonical, signature),
        }
    }
}

impl Security {
    /// The checks of [`verify`](Self::verify) that need no body (headers present, well
    /// formed, timestamp in the window): a server makes them before reading the body.
    pub(crate) fn check_headers(&self, timestamp: Option<&str>, signature: Option<&str>) -> Result<(), String> {
        let Some(keys) = self.keys.as_deref() else { return Ok(()) };
        signing::check_headers(keys.max_age, now_ms(), timestamp, signature).map(drop)
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keys.as_deref() {
            None => f.write_str("Security(none)"),
            Some(keys) => f
                .debug_struct("Security")
                .field("secrets", &(1 + usize::from(keys.accepted.is_some())))
                .field("max_age", &keys.max_age)
                .finish(),
        }
    }
}

fn checked(secret: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::config(format!(
            "{what} is {} bytes; use at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
            secret.len()
        )));
    }
    Ok(secret.to_vec())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(user_id: &str) -> SignedFields<'_> {
        SignedFields {
            service: "Catalog",
            method: "get",
            call_id: None,
            user_type: Some("customer"),
            user_id: Some(user_id),
            activity: None,
            body_sha256: "00",
        }
    }

    #[test]
    fn a_signature_verifies_and_a_forged_field_does_not() {
        let security = Security::shared_secret("0123456789abcdef0123").unwrap();
        let (timestamp, signature) = security.sign(&signed("42")).unwrap();
        let timestamp = timestamp.to_string();
        assert_eq!(security.verify(&signed("42"), Some(&timestamp), Some(&signature)), Ok(()));
        assert!(security.verify(&signed("43"), Some(&timestamp), Some(&signature)).is_err());
        assert!(security.verify(&signed("42"), None, None).is_err());
        let other = Security::shared_secret("another secret of 16+ bytes").unwrap();
        assert!(other.verify(&signed("42"), Some(&timestamp), Some(&signature)).is_err());
    }

    #[test]
    fn rotation_accepts_the_accepted_secret_and_debug_hides_both() {
        let old = Security::shared_secret("old secret, 16 bytes at least").unwrap();
        let rotating = Security::shared_secret("new secret, 16 bytes at least")
            .unwrap()
            .with_accepted_secret("old secret, 16 bytes at least")
            .unwrap();
        let (timestamp, signature) = old.sign(&signed("1")).unwrap();
        let timestamp = timestamp.to_string();
        assert_eq!(rotating.verify(&signed("1"), Some(&timestamp), Some(&signature)), Ok(()));
        let debug = format!("{rotating:?}");
        assert!(!debug.contains("secret, 16"), "{debug}");
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let error = Security::shared_secret("short-pw").unwrap_err().to_string();
        assert!(error.contains("8 bytes") && !error.contains("short-pw"), "{error}");
    }
}
