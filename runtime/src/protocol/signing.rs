//! §6 Signed calls: the canonical string both sides build, the MAC over it, the header
//! formats and the time window. [`Security`](crate::Security) only holds the keys.
//!
//! The HMAC key is the secret's bytes exactly as configured (no derivation step). The
//! window is inclusive: a timestamp exactly `max_age` behind the server's clock, or
//! exactly 5 s (or `max_age`, if shorter) ahead of it, is accepted.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signature scheme's version: the first line of the canonical string and the
/// prefix of the signature header.
const VERSION_LINE: &str = "intercall-v1";
const SIGNATURE_PREFIX: &str = "v1=";

/// How far ahead of the server's clock a timestamp may be (or `max_age`, if shorter).
///
/// The window is not symmetric: a timestamp `s` ahead would keep a captured request
/// valid until `s + max_age` from now, past the time a call-id store keeps the entry
/// that answers its replays (its time to live, counted from the run). Bounding the
/// future to a clock skew bounds that gap to the skew.
pub(crate) const MAX_AHEAD: Duration = Duration::from_secs(5);

/// What a signature covers, besides the timestamp. Absent fields are empty lines.
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    /// The service's name (for a manifest request, see
    /// [`manifest_request_line`](crate::manifest::manifest_request_line)).
    pub service: &'a str,
    /// The method's name.
    pub method: &'a str,
    /// `x-call-id` as sent (the canonical UUID form).
    pub call_id: Option<&'a str>,
    /// `x-user-type` as sent.
    pub user_type: Option<&'a str>,
    /// `x-user-id` as sent.
    pub user_id: Option<&'a str>,
    /// `x-activity-id` as sent.
    pub activity: Option<&'a str>,
    /// The lowercase hex SHA-256 of the exact body bytes.
    pub body_sha256: &'a str,
}

/// The canonical string: `intercall-v1`, `service/method`, the timestamp, the call id,
/// the user type, the user id, the activity id and the body's SHA-256, joined by `\n`
/// with no trailing newline.
pub(crate) fn canonical(fields: &SignedFields<'_>, timestamp: &str) -> String {
    [
        VERSION_LINE,
        &format!("{}/{}", fields.service, fields.method),
        timestamp,
        fields.call_id.unwrap_or(""),
        fields.user_type.unwrap_or(""),
        fields.user_id.unwrap_or(""),
        fields.activity.unwrap_or(""),
        fields.body_sha256,
    ]
    .join("\n")
}

fn mac(key: &[u8], fields: &SignedFields<'_>, timestamp: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(canonical(fields, timestamp).as_bytes());
    mac
}

/// The `x-intercall-signature` value for `fields` signed with `key` at `timestamp_ms`.
pub(crate) fn sign(key: &[u8], fields: &SignedFields<'_>, timestamp_ms: u64) -> String {
    let digest = mac(key, fields, &timestamp_ms.to_string()).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex(&digest))
}

#[cfg(feature = "events")]
/// The signature of another canonical string (an event's, `protocol::events`): the
/// same MAC and format as a call's, over text that starts with its own version line.
pub(crate) fn sign_text(key: &[u8], canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(canonical.as_bytes());
    format!("{SIGNATURE_PREFIX}{}", hex(&mac.finalize().into_bytes()))
}

#[cfg(feature = "events")]
/// Checks a [`sign_text`] signature against `keys`. No time window: an event may wait
/// in its stream for as long as it is retained.
pub(crate) fn verify_text(keys: &[&[u8]], canonical: &str, signature: Option<&str>) -> Result<(), String> {
    let Some(signature) = signature else {
        return Err("the event is not signed, and this consumer has a shared secret".to_owned());
    };
    let digest = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(unhex)
        .ok_or_else(|| "the signature must be `v1=` and 64 lowercase hex digits".to_owned())?;
    let verifies = |key: &&[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(canonical.as_bytes());
        mac.verify_slice(&digest).is_ok()
    };
    if keys.iter().any(verifies) { Ok(()) } else { Err("the signature does not match the event".to_owned()) }
}

/// Checks the signature headers of a request against `keys` (the current secret and,
/// during a rotation, an accepted one) at `now_ms`. The error says what was wrong,
/// never anything secret; a server answers it with `401 unauthorized`.
pub(crate) fn verify(
    keys: &[&[u8]],
    max_age: Duration,
    now_ms: u64,
    fields: &SignedFields<'_>,
    timestamp: Option<&str>,
    signature: Option<&str>,
) -> Result<(), String> {
    let (timestamp, digest) = check_headers(max_age, now_ms, timestamp, signature)?;
    // Verified over the timestamp text as sent, which `integer` admits only in digits.
    if keys.iter().any(|key| mac(key, fields, timestamp).verify_slice(&digest).is_ok()) {
        Ok(())
    } else {
        Err("the signature does not match the request".to_owned())
    }
}

/// Everything [`verify`] checks that needs no body: both headers present, well formed,
/// and the timestamp inside the window. A server runs it before it reads the body, so
/// an unsigned request is refused without its body being read. Gives the timestamp
/// text and the signature's MAC.
pub(crate) fn check_headers<'a>(
    max_age: Duration,
    now_ms: u64,
    timestamp: Option<&'a str>,
    signature: Option<&str>,
) -> Result<(&'a str, Vec<u8>), String> {
    use super::headers::{SIGNATURE, TIMESTAMP};
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(format!(
            "the call is not signed; this server requires one `{TIMESTAMP}` and one `{SIGNATURE}` header"
        ));
    };
    let sent_ms = super::integer::<u64>(timestamp).ok_or_else(|| {
        format!("`{TIMESTAMP}` must be Unix milliseconds in digits; got `{}`", super::truncate(timestamp))
    })?;
    let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    let max_ahead_ms = max_age_ms.min(u64::try_from(MAX_AHEAD.as_millis()).unwrap_or(u64::MAX));
    if sent_ms > now_ms {
        let ahead = sent_ms - now_ms;
        if ahead > max_ahead_ms {
            return Err(format!(
                "`{TIMESTAMP}` is {ahead} ms ahead of this server's clock; the limit is {max_ahead_ms} ms (check the clocks)"
            ));
        }
    } else if now_ms - sent_ms > max_age_ms {
        let age = now_ms - sent_ms;
        return Err(format!("the signature is {age} ms behind this server's clock; the limit is {max_age_ms} ms"));
    }
    let digest = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(unhex)
        .ok_or_else(|| format!("`{SIGNATURE}` must be `v1=` and 64 lowercase hex digits"))?;
    Ok((timestamp, digest))
}

/// The lowercase hex SHA-256 of a body, computed once per call.
/// The lowercase hex SHA-256 of `body`, as [`SignedFields::body_sha256`] wants it.
pub fn body_sha256(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// 64 lowercase hex digits.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(super::is_lowercase_hex) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123";
    const NOW: u64 = 1_700_000_000_000;
    const MAX_AGE: Duration = Duration::from_secs(300);

    fn fields(user_id: &str) -> SignedFields<'_> {
        SignedFields {
            service: "Catalog",
            method: "get",
            call_id: Some("67e55044-10b1-426f-9247-bb680e5fe0c8"),
            user_type: Some("customer"),
            user_id: Some(user_id),
            activity: None,
            body_sha256: "00",
        }
    }

    fn check(fields: &SignedFields<'_>, timestamp: &str, signature: &str) -> Result<(), String> {
        verify(&[KEY], MAX_AGE, NOW, fields, Some(timestamp), Some(signature))
    }

    #[test]
    fn the_canonical_string_is_the_documented_lines() {
        let text = canonical(&fields("42"), "1700000000000");
        assert_eq!(
            text,
            "intercall-v1\nCatalog/get\n1700000000000\n67e55044-10b1-426f-9247-bb680e5fe0c8\ncustomer\n42\n\n00"
        );
    }

    #[test]
    fn a_known_vector() {
        // Computed with Python's hmac module over the canonical string above, with the
        // key as raw bytes: `hmac.new(key, canonical.encode(), hashlib.sha256)`.
        let expected = "v1=e4a48fbed23154bcf4e4af0390775df6220010866ac69df821ec309f0d866b73";
        assert_eq!(sign(KEY, &fields("42"), 1_700_000_000_000), expected);
        assert_eq!(body_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn a_signature_verifies_and_a_changed_field_does_not() {
        let signature = sign(KEY, &fields("42"), NOW);
        assert_eq!(check(&fields("42"), &NOW.to_string(), &signature), Ok(()));
        assert!(check(&fields("43"), &NOW.to_string(), &signature).unwrap_err().contains("does not match"));
        let other: &[u8] = b"another secret of 16+ bytes";
        assert!(verify(&[other], MAX_AGE, NOW, &fields("42"), Some(&NOW.to_string()), Some(&signature)).is_err());
        assert_eq!(
            verify(&[other, KEY], MAX_AGE, NOW, &fields("42"), Some(&NOW.to_string()), Some(&signature)),
            Ok(())
        );
    }

    #[test]
    fn the_window_is_inclusive_at_both_ends() {
        let max = u64::try_from(MAX_AGE.as_millis()).unwrap();
        let ahead = u64::try_from(MAX_AHEAD.as_millis()).unwrap();
        for sent in [NOW - max, NOW + ahead] {
            let signature = sign(KEY, &fields("1"), sent);
            assert_eq!(check(&fields("1"), &sent.to_string(), &signature), Ok(()), "{sent}");
        }
        for (sent, why) in [(NOW - max - 1, "behind"), (NOW + ahead + 1, "ahead of")] {
            let signature = sign(KEY, &fields("1"), sent);
            assert!(check(&fields("1"), &sent.to_string(), &signature).unwrap_err().contains(why), "{sent}");
        }
    }

    /// Issue 17 item 4: a timestamp `s` seconds ahead stayed valid until `s` seconds
    /// after the call's store entry expired, so a replay ran again. A timestamp more
    /// than `MAX_AHEAD` in the future is refused, whatever `max_age`.
    #[test]
    fn a_timestamp_further_ahead_than_the_allowed_skew_is_refused() {
        let ahead = u64::try_from(MAX_AHEAD.as_millis()).unwrap();
        for sent in [NOW + ahead + 1, NOW + 60_000, NOW + 299_000] {
            let signature = sign(KEY, &fields("1"), sent);
            let refused = check(&fields("1"), &sent.to_string(), &signature).unwrap_err();
            assert!(refused.contains("ahead of this server's clock"), "{sent}: {refused}");
        }
        // A window shorter than the skew bounds the future too.
        let short = Duration::from_secs(1);
        let signature = sign(KEY, &fields("1"), NOW + 1_001);
        let refused = verify(&[KEY], short, NOW, &fields("1"), Some(&(NOW + 1_001).to_string()), Some(&signature));
        assert!(refused.is_err());
    }

    #[test]
    fn malformed_signature_headers_are_refused_by_name() {
        let signature = sign(KEY, &fields("1"), NOW);
        let missing = verify(&[KEY], MAX_AGE, NOW, &fields("1"), None, Some(&signature)).unwrap_err();
        assert!(missing.contains("not signed"), "{missing}");
        for timestamp in ["+1700000000000", "1700000000000.0", "", "17e11"] {
            assert!(check(&fields("1"), timestamp, &signature).unwrap_err().contains("x-intercall-timestamp"));
        }
        let upper = signature.to_uppercase().replace("V1=", "v1=");
        for bad in ["v2=00", &signature[3..], &upper, &signature[..60]] {
            assert!(check(&fields("1"), &NOW.to_string(), bad).unwrap_err().contains("x-intercall-signature"), "{bad}");
        }
    }

    #[test]
    fn the_timestamp_is_verified_as_sent_not_as_its_number() {
        let padded = format!("0{NOW}");
        let signature = sign(KEY, &fields("1"), NOW);
        assert!(check(&fields("1"), &padded, &signature).unwrap_err().contains("does not match"));
        let over_padded =
            format!("{SIGNATURE_PREFIX}{}", hex(&mac(KEY, &fields("1"), &padded).finalize().into_bytes()));
        assert_eq!(check(&fields("1"), &padded, &over_padded), Ok(()));
    }
}
