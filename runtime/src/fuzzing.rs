//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), compiled only
//! under `cfg(fuzzing)` (which cargo-fuzz sets) and in this crate's own tests: the
//! protocol and configuration code stays crate-private, and these thin wrappers are no
//! part of the public API.
//!
//! Each function takes the fuzzer's bytes, feeds them to the real parser, and checks
//! invariants beyond "it did not panic": what parses re-serialises to what was
//! received, what verifies was signed with the key, what loads builds an invoker. A
//! broken invariant is a panic, which is what the fuzzer reports.
//!
//! The input formats are plain text, so that a seed corpus is readable and easy to
//! write (`fuzz/corpus/<target>/`); each function's doc says its format.

use bytes::Bytes;
use hyper::http::{HeaderMap, HeaderName, HeaderValue};

use crate::protocol::fast_json;
use crate::protocol::headers::{self, CallHeaders};
use crate::protocol::reply::{self, Decoded};
use crate::protocol::signing::{self, SignedFields};
use crate::protocol::stream::{Line, Lines, item_frame};
use crate::protocol::{ErrorKind, MAX_QUOTED_MESSAGE, Refusal, args};

/// The longest refusal message any parser here may produce: a quoted value is cut to
/// [`MAX_QUOTED_MESSAGE`] bytes or 128 characters, and the rest is fixed text.
const MAX_MESSAGE: usize = 4 * MAX_QUOTED_MESSAGE;

/// Checks what every refusal must be: a short message, and an error body that a client
/// decodes back to the same kind and message.
fn check_refusal(refusal: &Refusal, kind: ErrorKind) {
    assert_eq!(refusal.kind, kind, "{refusal:?}");
    assert!(refusal.message.len() <= MAX_MESSAGE, "a {}-byte message: {refusal:?}", refusal.message.len());
    let encoded = refusal.encode();
    match reply::decode(encoded.status, Some(headers::JSON.as_bytes()), &encoded.body) {
        Decoded::Framework { kind: Some(decoded), message, .. } => {
            assert_eq!((decoded, &*message), (kind, refusal.message.as_str()), "the error body round-trips");
        }
        other => panic!("a refusal's own body decodes as {other:?}: {refusal:?}"),
    }
}

/// A header block as text: one `name: value` per line (`\n` or `\r\n`); lines that are
/// not a valid header name and value are skipped, as an HTTP parser would refuse them.
fn header_map(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(name, value);
        }
    }
    map
}

/// The call headers (§3), as a server parses them. Input: a header block (see
/// [`header_map`]).
///
/// Invariants: a refusal is a short `400` whose body decodes back; a UUID header that
/// parses is its own canonical form; the headers a client writes for the parsed call
/// (`CallValues`, `write_attempt`) parse back to the same values, and the user headers
/// and UUIDs re-serialise to the very bytes received.
pub fn call_headers(data: &[u8]) -> bool {
    let map = header_map(data);
    let _ = headers::signature_headers(&map);
    if let Err(refusal) = headers::check_content_type(&map) {
        check_refusal(&refusal, ErrorKind::UnsupportedMediaType);
    }
    let call = match CallHeaders::parse(&map) {
        Ok(call) => call,
        Err(refusal) => {
            check_refusal(&refusal, ErrorKind::BadRequest);
            return false;
        }
    };
    assert_eq!(call.call_id.map(|id| id.to_string()).as_deref(), call.call_id_text, "x-call-id is canonical");
    assert_eq!(call.activity.map(|id| id.to_string()).as_deref(), call.activity_text, "x-activity-id is canonical");

    const PLACEHOLDER: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let call_id = call.call_id_text.unwrap_or(PLACEHOLDER);
    let activity = call.activity_text.unwrap_or(PLACEHOLDER);
    let uuid = |text: &str| uuid::Uuid::parse_str(text).expect("parsed as a canonical UUID");
    let deadline_ms = call.deadline.map(|d| u64::try_from(d.as_millis()).expect("parsed from a u64"));
    let mut values = headers::CallValues::new(uuid(call_id), uuid(activity), call.user.as_ref());
    let mut written = values.headers();
    let deadline = values.deadline(deadline_ms.unwrap_or(0));
    headers::write_attempt(&mut written, call.attempt.unwrap_or(1), Some(deadline));
    headers::check_content_type(&written).expect("a client's content-type is accepted");
    let again = CallHeaders::parse(&written).expect("the headers a client writes parse");
    assert_eq!((again.call_id_text, again.activity_text), (Some(call_id), Some(activity)));
    assert_eq!(again.user, call.user);
    assert_eq!(again.attempt, Some(call.attempt.unwrap_or(1)));
    assert_eq!(again.deadline.map(|d| d.as_millis()), Some(u128::from(deadline_ms.unwrap_or(0))));
    for name in [headers::USER_TYPE, headers::USER_ID, headers::CALL_ID, headers::ACTIVITY_ID] {
        if let Some(received) = map.get(name) {
            let received = received.as_bytes().trim_ascii();
            let sent = written.get(name).map(HeaderValue::as_bytes);
            assert_eq!(sent, Some(received), "`{name}` re-serialises to the bytes received");
        }
    }
    true
}

/// The arguments of a method, as they decode on the server (§3 Body). Input: a request
/// body, decoded as a method with a string, an optional list of numbers, a nested
/// struct, an enum, a float and base64 bytes would decode it.
///
/// Invariants: what decodes encodes to JSON that decodes to the same value; a refusal
/// is a short `400` whose body decodes back, and the argument it names is one of the
/// method's.
pub fn arguments(data: &[u8]) -> bool {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Item {
        sku: String,
        quantity: u32,
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Mode {
        Fast,
        Careful { retries: u8 },
        Named(String),
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Args {
        id: String,
        #[serde(default)]
        tags: Option<Vec<u32>>,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        weight: Option<f64>,
        #[serde(default)]
        data: Option<crate::Bytes>,
    }
    const NAMES: [&str; 6] = ["id", "tags", "items", "mode", "weight", "data"];
    match args::decode::<Args>(data) {
        Ok(decoded) => {
            let json = serde_json::to_vec(&decoded).expect("decoded arguments encode");
            let again = args::decode::<Args>(&json).expect("encoded arguments decode");
            // NaN cannot come from JSON, so equality is well defined here.
            assert_eq!(again, decoded, "arguments round-trip through JSON");
            true
        }
        Err(refusal) => {
            check_refusal(&refusal, ErrorKind::BadRequest);
            if let Some(argument) = &refusal.argument {
                assert!(NAMES.contains(&argument.as_str()), "names an argument the method lacks: {refusal:?}");
            }
            false
        }
    }
}

/// A reply as a client decodes it (§7). Input: the status in digits on the first line,
/// the `content-type` on the second (`-` for none), then the body.
///
/// Invariants: each outcome agrees with the status (a result is a `200`, a known kind
/// comes at its own status, a gateway timeout is a `408` or `504`); descriptions stay
/// short; and every error kind's body, with a message from the input, decodes back.
pub fn reply(data: &[u8]) -> bool {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let status = parts.next().and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.trim().parse::<u16>().ok());
    let content_type = parts.next().map(|c| c.strip_suffix(b"\r").unwrap_or(c)).filter(|c| *c != b"-");
    let body = parts.next().unwrap_or_default();
    let status = status.unwrap_or(500);

    let decoded = reply::decode(status, content_type, body);
    let is_result = matches!(decoded, Decoded::Result(_));
    match decoded {
        Decoded::Result(result) => {
            assert_eq!(status, 200);
            assert_eq!(result, body, "a result is the body, untouched");
        }
        Decoded::NotJson { .. } => assert_eq!(status, 200),
        Decoded::Service { value, .. } => {
            assert_eq!(status, ErrorKind::Service.status());
            serde_json::from_str::<serde::de::IgnoredAny>(value.get()).expect("a typed error's value is JSON");
        }
        Decoded::Framework { kind, kind_text, .. } => {
            assert!(!(200..300).contains(&status), "an error at {status}");
            match kind {
                Some(kind) => assert_eq!((kind.status(), kind.as_str()), (status, &*kind_text)),
                None => assert!(kind_text.parse::<ErrorKind>().is_err()),
            }
        }
        Decoded::GatewayTimeout { description } => {
            assert!(status == 408 || status == 504, "a gateway timeout at {status}");
            assert!(description.len() <= MAX_MESSAGE, "a {}-byte description", description.len());
        }
        Decoded::Foreign { description } => {
            assert!(description.len() <= MAX_MESSAGE, "a {}-byte description", description.len());
        }
    }

    let message = String::from_utf8_lossy(body);
    for kind in ErrorKind::ALL.into_iter().filter(|&kind| kind != ErrorKind::Service) {
        let encoded = reply::framework_error(kind, &message, Some(&message));
        match reply::decode(encoded.status, Some(headers::JSON.as_bytes()), &encoded.body) {
            Decoded::Framework { kind: Some(decoded), message: back, .. } => {
                assert_eq!((decoded, &*back), (kind, &*message));
            }
            other => panic!("a `{kind}` body decodes as {other:?}"),
        }
    }
    is_result
}

/// A stream item's JSON (§4.3), as the reader's fast path (`protocol::fast_json`)
/// decodes it. Input: the item's text, any bytes.
///
/// Invariants: decoded as each of a set of item types that reach every `deserialize_*`
/// hint, the fast path gives up or gives the value serde_json gives, never accepting
/// what serde_json refuses; and the whole item frame, `{"item":<input>}`, gives the same
/// item (or none) with the fast path as without it, bytes that are not UTF-8 included;
/// read straight from a chunk of frames (`Lines::next_item`), an item is the one its
/// first line gives read alone, and the reader is then at the chunk's next line.
/// `true` when the fast path decoded the input as a `serde_json::Value`.
pub fn item_json(data: &[u8]) -> bool {
    let frame = [&b"{\"item\":"[..], data, b"}"].concat();
    let line = Line { bytes: &frame, text: None };
    let fast = item_frame::<serde_json::Value>(line, &mut true).map(|value| value.to_string());
    let slow = item_frame::<serde_json::Value>(line, &mut false).map(|value| value.to_string());
    assert_eq!(fast, slow, "the item frame {:?}", String::from_utf8_lossy(&frame));
    let chunk = [&frame[..], b"\n{\"item\":0}\n"].concat();
    let mut lines = Lines::new(chunk.len());
    lines.push(Bytes::copy_from_slice(&chunk));
    if let Some(item) = lines.next_item::<serde_json::Value>(true) {
        let mut split = chunk.split(|&b| b == b'\n');
        let first = Line { bytes: split.next().unwrap_or_default(), text: None };
        let alone = item_frame::<serde_json::Value>(first, &mut false).map(|value| value.to_string());
        assert_eq!(Some(item.to_string()), alone, "read from the chunk {:?}", String::from_utf8_lossy(&chunk));
        let next = lines.next_line().ok().flatten().map(|line| line.bytes);
        assert_eq!(next, split.next(), "after the item read from the chunk {:?}", String::from_utf8_lossy(&chunk));
    }
    std::str::from_utf8(data).is_ok_and(fast_json::differential::check)
}

/// Signature verification (§6). Input: lines `key`, `now_ms`, `max_age_ms`, `service`,
/// `method`, `call_id`, `user_type`, `user_id`, `activity`, `body`, `timestamp`,
/// `signature` (an empty line is an absent optional field; missing lines are empty).
///
/// Invariants: a signature that verifies is the HMAC of the canonical string under the
/// key, and its timestamp is inside the window; a refusal's message does not depend on
/// the key (so it cannot leak it); what
/// `sign` makes verifies at its own time, and not under another key or another body.
pub fn signature(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let key = next().as_bytes().to_vec();
    let now_ms = next().parse::<u64>().unwrap_or(1_700_000_000_000);
    let max_age = std::time::Duration::from_millis(next().parse::<u64>().unwrap_or(300_000));
    let (service, method) = (next(), next());
    let (call_id, user_type, user_id, activity) = (next(), next(), next(), next());
    let body = next();
    let (timestamp, signature) = (next(), next());
    let some = |line: &str| -> Option<String> { (!line.is_empty()).then(|| line.to_owned()) };
    let (call_id, user_type, user_id, activity) = (some(call_id), some(user_type), some(user_id), some(activity));
    let body_sha256 = signing::body_sha256(body.as_bytes());
    let fields = SignedFields {
        service,
        method,
        call_id: call_id.as_deref(),
        user_type: user_type.as_deref(),
        user_id: user_id.as_deref(),
        activity: activity.as_deref(),
        body_sha256: &body_sha256,
    };

    let keys: [&[u8]; 1] = [&key];
    let verified = signing::verify(&keys, max_age, now_ms, &fields, Some(timestamp), Some(signature));
    if verified.is_ok() {
        let sent_ms = crate::protocol::integer::<u64>(timestamp).expect("a verified timestamp is digits");
        let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        assert!(now_ms.saturating_sub(sent_ms) <= max_age_ms, "a verified timestamp is not too old");
        assert!(sent_ms.saturating_sub(now_ms) <= max_age_ms.min(5_000), "nor too far ahead");
        // Recomputed here with the hmac crate, not with `signing`'s own code.
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(signing::canonical(&fields, timestamp).as_bytes());
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(signature, format!("v1={expected}"), "a verified signature was made with the key");
    }

    // What `sign` makes verifies at its own time, and only under its key and fields.
    let signed = signing::sign(&key, &fields, now_ms);
    let at = now_ms.to_string();
    assert_eq!(signing::verify(&keys, max_age, now_ms, &fields, Some(&at), Some(&signed)), Ok(()));
    // HMAC pads short keys with zeros, so `k` and `k\0` are one key: flip a bit instead.
    let mut other = key.clone();
    match other.first_mut() {
        Some(first) => *first ^= 1,
        None => other.push(1),
    }
    let other_keys: [&[u8]; 1] = [&other];
    // A refusal says nothing about the key: under another key, the same words, unless
    // the other key is the one that signed it (the fuzzer does find that one).
    if let Err(message) = &verified {
        match signing::verify(&other_keys, max_age, now_ms, &fields, Some(timestamp), Some(signature)) {
            Ok(()) => {}
            Err(other) => assert_eq!(&other, message, "a refusal depends on the key"),
        }
    }
    assert!(signing::verify(&other_keys, max_age, now_ms, &fields, Some(&at), Some(&signed)).is_err());
    let changed = signing::body_sha256(format!("{body}.").as_bytes());
    let changed = SignedFields { body_sha256: &changed, ..fields };
    assert!(signing::verify(&keys, max_age, now_ms, &changed, Some(&at), Some(&signed)).is_err());
    verified.is_ok()
}

/// `services.toml` (`Invoker::from_toml`). Input: the file's text (bytes that are not
/// UTF-8 are replaced).
///
/// Invariants: the configuration loads exactly when an invoker builds from it; an
/// error message is a start-up error that never quotes a `secret` or
/// `accepted_secret`; an invoker's `Debug` never shows them either.
pub fn services_toml(data: &[u8]) -> bool {
    use crate::config::{Config, Inputs, Source};
    let text = String::from_utf8_lossy(data).into_owned();
    let loaded = Config::load(Inputs { source: Source::Inline, text: text.clone(), ..Inputs::default() });
    let built = crate::Invoker::from_toml(&text);
    // Secrets are at least 16 bytes, so a shorter string is not one worth looking for;
    // one that appears elsewhere in the text may rightly be quoted from there.
    let secrets: Vec<String> =
        secrets(&text).into_iter().filter(|s| s.len() >= 8 && text.matches(s).count() == 1).collect();
    match (&loaded, &built) {
        (Ok(_), Ok(invoker)) => {
            let shown = format!("{invoker:?}");
            for secret in secrets.iter().filter(|secret| shown.contains(secret.as_str())) {
                // A secret may equal words the Debug prints anyway (the 10M-input run found
                // `secret = "{ source: Inline, services: [] }"`): it is shown only if the
                // Debug depends on it, i.e. changes when another secret takes its place.
                let other: String = secret.chars().map(|c| if c == 'a' { 'b' } else { 'a' }).collect();
                if let Ok(other) = crate::Invoker::from_toml(&text.replacen(secret.as_str(), &other, 1)) {
                    assert_eq!(format!("{other:?}"), shown, "an invoker's Debug shows a secret: {shown}");
                }
            }
        }
        (Err(load), Err(build)) => {
            let message = build.to_string();
            assert_eq!(load.to_string(), message, "the same error either way");
            for secret in &secrets {
                assert!(!message.contains(secret.as_str()), "an error quotes a secret: {message}");
            }
        }
        (Ok(_), Err(error)) => panic!("the configuration loads but no invoker builds: {error}"),
        (Err(error), Ok(_)) => panic!("an invoker builds from a configuration that does not load: {error}"),
    }
    built.is_ok()
}

/// intercall's JSON encoder (`protocol/json_writer.rs`) against serde_json's. Input: any
/// bytes, read three ways: as one string (bytes that are not UTF-8 replaced), as JSON
/// when they are JSON, and as a value of serde's data model that they spell
/// (`json_writer::model::node_from_bytes`: every `Serializer` method, map keys of every
/// kind, wrong length hints, raw values).
///
/// Invariant: each encodes to the bytes `serde_json::to_writer` writes, or fails with
/// its error after the same bytes. Returns whether the input is JSON.
pub fn json_writer(data: &[u8]) -> bool {
    use crate::protocol::json_writer::model;
    model::check(&*String::from_utf8_lossy(data));
    let value = serde_json::from_slice::<serde_json::Value>(data);
    if let Ok(value) = &value {
        model::check(value);
    }
    model::check(&model::node_from_bytes(&mut &data[..], 6));
    value.is_ok()
}

/// The `secret` and `accepted_secret` strings of `[security]`, if the text is TOML.
fn secrets(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else { return Vec::new() };
    let Some(security) = table.get("security").and_then(toml::Value::as_table) else { return Vec::new() };
    ["secret", "accepted_secret"]
        .into_iter()
        .filter_map(|key| security.get(key).and_then(toml::Value::as_str).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Every seed of the committed corpus holds every invariant (and the fuzz targets'
    /// wrappers are compiled and run by `cargo test`, not only by cargo-fuzz).
    #[test]
    fn the_seed_corpus_holds_the_invariants() {
        let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        type Target = fn(&[u8]) -> bool;
        let targets: &[(&str, Target)] = &[
            ("call_headers", super::call_headers),
            ("arguments", super::arguments),
            ("reply", super::reply),
            ("item_json", super::item_json),
            ("signature", super::signature),
            ("services_toml", super::services_toml),
            ("json_writer", super::json_writer),
        ];
        for &(target, run) in targets {
            let seeds: Vec<_> = std::fs::read_dir(corpus.join(target))
                .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
                .map(|entry| entry.expect("a corpus entry").path())
                .collect();
            assert!(seeds.len() >= 3, "fuzz/corpus/{target} has {} seeds", seeds.len());
            let accepted = seeds.iter().filter(|seed| run(&std::fs::read(seed).expect("a seed"))).count();
            // Seeds on both sides of the parser: some accepted, some refused.
            assert!(0 < accepted && accepted < seeds.len(), "{target}: {accepted} of {} seeds accepted", seeds.len());
        }
    }
}
