//! §6 signing, written from the spec: the canonical text and its HMAC-SHA256.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What one signature covers. Absent fields are empty lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Canonical<'a> {
    /// `{service}/{method}`.
    pub route: &'a str,
    /// The `x-intercall-timestamp` value.
    pub timestamp: &'a str,
    /// The `x-call-id` value.
    pub call_id: &'a [u8],
    /// The `x-user-type` value.
    pub user_type: &'a [u8],
    /// The `x-user-id` value.
    pub user_id: &'a [u8],
    /// The `x-activity-id` value.
    pub activity: &'a [u8],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// The `x-intercall-signature` value for `canonical` under `secret`: `v1=` and 64
/// lowercase hex digits.
pub fn signature(secret: &[u8], canonical: &Canonical<'_>) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    let body_sha256 = hex(&Sha256::digest(canonical.body));
    let lines: [&[u8]; 8] = [
        b"intercall-v1",
        canonical.route.as_bytes(),
        canonical.timestamp.as_bytes(),
        canonical.call_id,
        canonical.user_type,
        canonical.user_id,
        canonical.activity,
        body_sha256.as_bytes(),
    ];
    mac.update(&lines.join(&b'\n'));
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

/// Unix time in milliseconds, `offset_ms` away from now.
pub fn timestamp(offset_ms: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (i64::try_from(now.as_millis()).unwrap_or(i64::MAX).saturating_add(offset_ms)).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The real check is end to end: the Rust reference server accepts these signatures
    // (tests/rust_peers.rs).
    #[test]
    fn signs_the_canonical_lines() {
        let canonical = Canonical { route: "Catalog/get", timestamp: "1", body: b"{}", ..Canonical::default() };
        let signature = signature(b"0123456789abcdef", &canonical);
        assert!(signature.starts_with("v1=") && signature.len() == 67, "{signature}");
    }
}
