//! The facts of docs/EVENTS.md the events cases check against, written out here from
//! the spec rather than taken from the runtime: key names, the entry's fields, the
//! event signature, the partition of an ordering key.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The event trait's name on the wire (the reference trait is `ConformanceEvents`).
pub const NAME: &str = "ConformanceEvents";

/// The fields an entry may carry (§3); anything else is a peer's own addition.
pub const FIELDS: &[&str] = &[
    "id",
    "method",
    "payload",
    "published_ms",
    "user_type",
    "user_id",
    "activity_id",
    "signature",
    "traceparent",
    "tracestate",
    "key",
];

/// What a dead-letter entry adds to the original's fields (§6).
pub const DEAD_FIELDS: &[&str] = &["dead_reason", "dead_entry", "dead_group", "dead_deliveries", "dead_ms"];

/// `{prefix}events:{name}` (§1).
pub fn stream(prefix: &str) -> String {
    format!("{prefix}events:{NAME}")
}

/// `{stream}:dead` (§1).
pub fn dead(stream: &str) -> String {
    format!("{stream}:dead")
}

/// `{stream}:processed:{group}:{id}`, the event's record (§1, §5).
pub fn processed(stream: &str, group: &str, id: &str) -> String {
    format!("{stream}:processed:{group}:{id}")
}

/// The prefix of a record's value while a consumer runs the event (§5); any other
/// value means processed.
pub const LEASE_PREFIX: &str = "lease ";

/// The partition of a key text (§5a): the first 8 bytes of its SHA-256, big-endian,
/// modulo 16.
pub fn partition(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 16
}

/// `{stream}:keyed:{partition}` (§5a).
pub fn keyed(stream: &str, key: &str) -> String {
    format!("{stream}:keyed:{}", partition(key))
}

/// The `signature` field (§4): `v1=` and hex HMAC-SHA256 of the canonical lines.
pub fn signature(secret: &[u8], field: impl Fn(&str) -> String) -> String {
    let payload_sha256: String =
        Sha256::digest(field("payload").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let canonical = [
        "intercall-event-v1".to_owned(),
        format!("{NAME}/{}", field("method")),
        field("published_ms"),
        field("id"),
        field("user_type"),
        field("user_id"),
        field("activity_id"),
        payload_sha256,
    ]
    .join("\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(canonical.as_bytes());
    let tag: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(stream("intercall:"), "intercall:events:ConformanceEvents");
        assert!(partition("customer-7") < 16);
        assert_eq!(signature(b"k", |_| String::new()).len(), 67);
    }
}
