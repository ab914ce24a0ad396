//! The trust boundary: with a shared secret, every call is signed (HMAC-SHA256) by the
//! proxy and verified by the server, so the user context in its headers cannot be
//! forged by whoever can reach a port. `docs/SECURITY.md` has the threat model.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::Error;

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
        let Some(secret) = std::env::var_os(SECRET_ENV) else {
            if std::env::var_os(ACCEPTED_SECRET_ENV).is_some() {
                return Err(Error::config(format!("{ACCEPTED_SECRET_ENV} is set but {SECRET_ENV} is not")));
            }
            return Ok(Self::none());
        };
        let security =
            Self::shared_secret(secret.as_encoded_bytes()).map_err(|e| Error::config(format!("{SECRET_ENV}: {e}")))?;
        match std::env::var_os(ACCEPTED_SECRET_ENV) {
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

    /// The signature headers for one attempt: `(timestamp, signature)`.
    pub(crate) fn sign(&self, signed: &Signed<'_>) -> Option<(String, String)> {
        let keys = self.keys.as_deref()?;
        let timestamp = now_ms().to_string();
        let mac = mac(&keys.current, signed, &timestamp).finalize().into_bytes();
        Some((timestamp, format!("v1={}", hex(&mac))))
    }

    /// Checks a request's signature headers; the error says what was wrong, never
    /// anything secret.
    pub(crate) fn verify(
        &self,
        signed: &Signed<'_>,
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(), String> {
        let Some(keys) = self.keys.as_deref() else { return Ok(()) };
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(format!("the call is not signed; this server requires `{TIMESTAMP}` and `{SIGNATURE}`"));
        };
        let sent_ms: u64 = timestamp.parse().map_err(|_| format!("`{TIMESTAMP}` is not a number of milliseconds"))?;
        let age = now_ms().abs_diff(sent_ms);
        if age > u64::try_from(keys.max_age.as_millis()).unwrap_or(u64::MAX) {
            return Err(format!(
                "the signature is {age} ms away from this server's clock; the limit is {} ms",
                keys.max_age.as_millis()
            ));
        }
        let digest = signature
            .strip_prefix("v1=")
            .and_then(unhex)
            .ok_or_else(|| format!("`{SIGNATURE}` must be `v1=` and 64 hex digits"))?;
        let matches = |key: &[u8]| mac(key, signed, timestamp).verify_slice(&digest).is_ok();
        if matches(&keys.current) || keys.accepted.as_deref().is_some_and(matches) {
            Ok(())
        } else {
            Err("the signature does not match the request".to_owned())
        }
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

/// Request header: when the call was signed, in Unix milliseconds.
pub const TIMESTAMP: &str = "x-intercall-timestamp";

/// Request header: `v1=` and the hex HMAC-SHA256 of the canonical request.
pub const SIGNATURE: &str = "x-intercall-signature";

/// What a signature covers. The canonical text is these fields, one per line, after
/// the line `intercall-v1`: `service/method`, the timestamp, the call id, the user
/// type, the user id, the activity id (each empty when absent) and the hex SHA-256 of
/// the body.
pub(crate) struct Signed<'a> {
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) call_id: Option<&'a str>,
    pub(crate) user_type: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) activity: Option<&'a str>,
    pub(crate) body_sha256: &'a str,
}

fn mac(key: &[u8], signed: &Signed<'_>, timestamp: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    let lines = [
        "intercall-v1",
        &format!("{}/{}", signed.service, signed.method),
        timestamp,
        signed.call_id.unwrap_or(""),
        signed.user_type.unwrap_or(""),
        signed.user_id.unwrap_or(""),
        signed.activity.unwrap_or(""),
        signed.body_sha256,
    ];
    mac.update(lines.join("\n").as_bytes());
    mac
}

/// The hex SHA-256 of a body, computed once per call.
pub(crate) fn body_sha256(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(user_id: &str) -> Signed<'_> {
        Signed {
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
