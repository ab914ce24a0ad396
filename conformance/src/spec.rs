//! The few protocol facts both modes check against (docs/PROTOCOL.md), written out
//! here rather than taken from the runtime, so that the suite checks the wire and not
//! intercall's own code.

/// The conformance service's name in paths (docs/CONFORMANCE.md).
pub const SERVICE: &str = "Conformance";

/// The conformance service's methods.
pub const METHODS: &[&str] = &["echo", "fail", "count", "counter", "panic", "context", "stream"];

/// What the `panic` method panics (throws) with; a server must never send it (§4.2).
pub const PANIC_DETAIL: &str = "conformance-panic-detail";

/// The call headers of §3, each allowed at most once.
pub const CALL_HEADERS: &[&str] =
    &["x-call-id", "x-call-attempt", "x-deadline-ms", "x-user-type", "x-user-id", "x-activity-id"];

/// The signature headers of §6.
pub const TIMESTAMP: &str = "x-intercall-timestamp";
/// See [`TIMESTAMP`].
pub const SIGNATURE: &str = "x-intercall-signature";

/// Whether `text` is a UUID in the one form §3 allows: 36 characters, lowercase hex
/// in groups 8-4-4-4-12.
pub fn is_canonical_uuid(text: &[u8]) -> bool {
    text.len() == 36
        && text.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether a `content-type` value is `application/json`, parameters allowed: what
/// every response of a server (§4) and every request of a client (§3) carries.
pub fn is_json_media_type(value: &[u8]) -> bool {
    let value = String::from_utf8_lossy(value);
    value.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lowercase_hyphenated_uuid_is_canonical() {
        assert!(is_canonical_uuid(b"67e55044-10b1-426f-9247-bb680e5fe0c8"));
        assert!(!is_canonical_uuid(b"67E55044-10B1-426F-9247-BB680E5FE0C8"));
        assert!(!is_canonical_uuid(b"67e5504410b1426f9247bb680e5fe0c8"));
        assert!(!is_canonical_uuid(b"{67e55044-10b1-426f-9247-bb680e5fe0c8}"));
    }
}
