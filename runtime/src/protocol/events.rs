//! Events on Redis Streams (docs/EVENTS.md), as pure code: the key names, the fields
//! of an entry and their decoding, the canonical string an event's signature covers,
//! and the fields a dead-letter entry adds. The Redis I/O is in `events/`.

use crate::context::{ActivityId, UserContext};

/// The first line of an event's canonical string. Not the calls' `intercall-v1`: an
/// event's signature must never verify as a call's, or the other way round.
const VERSION_LINE: &str = "intercall-event-v1";

/// The fields of an entry (EVENTS.md §3). Every value is UTF-8 text.
pub(crate) mod field {
    /// The event id: a UUID, lowercase and hyphenated; the unit of deduplication.
    pub(crate) const ID: &str = "id";
    /// The method of the event trait: which handler runs.
    pub(crate) const METHOD: &str = "method";
    /// The JSON object of the method's named arguments, as a call's body.
    pub(crate) const PAYLOAD: &str = "payload";
    /// When it was published, Unix milliseconds in digits.
    pub(crate) const PUBLISHED_MS: &str = "published_ms";
    /// The publisher's user, as `x-user-type` and `x-user-id`; absent without one.
    pub(crate) const USER_TYPE: &str = "user_type";
    pub(crate) const USER_ID: &str = "user_id";
    /// The publisher's activity id (always present when published by intercall).
    pub(crate) const ACTIVITY_ID: &str = "activity_id";
    /// `v1=` and 64 lowercase hex digits: HMAC-SHA256 of the canonical string;
    /// present when the publisher has a shared secret.
    pub(crate) const SIGNATURE: &str = "signature";
    /// W3C trace context, as the calls' headers of the same names (not signed).
    pub(crate) const TRACEPARENT: &str = "traceparent";
    pub(crate) const TRACESTATE: &str = "tracestate";
    /// The ordering key's text, for a method with one (informational: the key is also
    /// an argument in the payload, and the entry's stream already says its partition).
    pub(crate) const KEY: &str = "key";

    /// What a dead-letter entry adds to the original's fields.
    pub(crate) const DEAD_REASON: &str = "dead_reason";
    pub(crate) const DEAD_ENTRY: &str = "dead_entry";
    pub(crate) const DEAD_GROUP: &str = "dead_group";
    pub(crate) const DEAD_DELIVERIES: &str = "dead_deliveries";
    pub(crate) const DEAD_MS: &str = "dead_ms";
}

/// `{prefix}events:{name}`: the stream of one event trait.
pub(crate) fn stream_key(prefix: &str, name: &str) -> String {
    format!("{prefix}events:{name}")
}

/// `{stream}:dead`: where entries that cannot be handled go, with the reason.
pub(crate) fn dead_key(stream: &str) -> String {
    format!("{stream}:dead")
}

/// `{stream}:processed:{group}:{id}`: the event's record for the group: `lease
/// {consumer} {random}` (NX, for the claim idle time, renewed) while a consumer runs
/// its handler, then `done {consumer}` (for the processed-record lifetime), so that a
/// redelivery is skipped.
pub(crate) fn processed_key(stream: &str, group: &str, id: &uuid::Uuid) -> String {
    format!("{stream}:processed:{group}:{}", id.hyphenated())
}

/// How many partitions the events with an ordering key are spread over: a fixed part
/// of the layout, so every publisher and consumer, in any language, agrees.
pub(crate) const KEY_PARTITIONS: u64 = 16;

/// The partition of an ordering key: the first 8 bytes of the SHA-256 of its UTF-8
/// text, as a big-endian integer, modulo [`KEY_PARTITIONS`].
pub(crate) fn partition(key: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let first: [u8; 8] = digest[..8].try_into().expect("a SHA-256 has 32 bytes");
    u64::from_be_bytes(first) % KEY_PARTITIONS
}

/// `{stream}:keyed:{partition}`: the stream of the events whose ordering key falls in
/// `partition`; one consumer of a group reads it at a time, in order.
pub(crate) fn keyed_stream_key(stream: &str, partition: u64) -> String {
    format!("{stream}:keyed:{partition}")
}

/// `{stream}:keyed:{partition}:owner:{group}`: held (NX, for the claim idle time,
/// renewed) by the one consumer of `group` that reads the partition.
pub(crate) fn partition_owner_key(stream: &str, partition: u64, group: &str) -> String {
    format!("{stream}:keyed:{partition}:owner:{group}")
}

/// `{stream}:consumers:{group}`: a sorted set of the group's live consumers (score:
/// when each one's registration runs out, Unix ms), so each takes a fair share of the
/// partitions.
pub(crate) fn consumers_key(stream: &str, group: &str) -> String {
    format!("{stream}:consumers:{group}")
}

/// One event as an entry carries it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) id: uuid::Uuid,
    pub(crate) method: String,
    pub(crate) payload: String,
    pub(crate) published_ms: u64,
    pub(crate) user: Option<UserContext>,
    pub(crate) activity: Option<ActivityId>,
    pub(crate) signature: Option<String>,
    /// The publisher's trace context; a malformed one is dropped when read, as for calls.
    pub(crate) trace: Option<super::trace::TraceContext>,
    /// The ordering key's text, for a method with one.
    pub(crate) key: Option<String>,
}

impl Event {
    /// The entry's fields, in the order they are written.
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            (field::ID, self.id.hyphenated().to_string()),
            (field::METHOD, self.method.clone()),
            (field::PAYLOAD, self.payload.clone()),
            (field::PUBLISHED_MS, self.published_ms.to_string()),
        ];
        if let Some(user) = &self.user {
            fields.push((field::USER_TYPE, user.user_type().as_str().to_owned()));
            if let Some(id) = user.user_id() {
                fields.push((field::USER_ID, id.to_owned()));
            }
        }
        if let Some(activity) = &self.activity {
            fields.push((field::ACTIVITY_ID, activity.to_string()));
        }
        if let Some(signature) = &self.signature {
            fields.push((field::SIGNATURE, signature.clone()));
        }
        if let Some(trace) = &self.trace {
            fields.push((field::TRACEPARENT, trace.traceparent().to_owned()));
            if let Some(state) = trace.tracestate() {
                fields.push((field::TRACESTATE, state.to_owned()));
            }
        }
        if let Some(key) = &self.key {
            fields.push((field::KEY, key.clone()));
        }
        fields
    }

    /// Reads an entry's fields. Unknown fields are ignored (a later version may add
    /// some); a missing, repeated or malformed known field is an error saying which.
    pub(crate) fn decode(fields: &[(String, Vec<u8>)]) -> Result<Self, String> {
        let get = |name: &str| -> Result<Option<&str>, String> {
            let mut values = fields.iter().filter(|(n, _)| n == name);
            let Some((_, value)) = values.next() else { return Ok(None) };
            if values.next().is_some() {
                return Err(format!("field `{name}` appears more than once"));
            }
            std::str::from_utf8(value).map(Some).map_err(|_| format!("field `{name}` is not UTF-8"))
        };
        let required = |name: &str| get(name)?.ok_or_else(|| format!("field `{name}` is missing"));
        let id_text = required(field::ID)?;
        let id = uuid::Uuid::try_parse(id_text).ok().filter(|id| id.hyphenated().to_string() == id_text).ok_or_else(
            || format!("field `id` must be a lowercase hyphenated UUID; got `{}`", super::truncate(id_text)),
        )?;
        let method = required(field::METHOD)?.to_owned();
        let payload = required(field::PAYLOAD)?.to_owned();
        let published = required(field::PUBLISHED_MS)?;
        let published_ms = super::integer::<u64>(published).ok_or_else(|| {
            format!("field `published_ms` must be Unix milliseconds in digits; got `{}`", super::truncate(published))
        })?;
        let user_type = get(field::USER_TYPE)?.map(str::as_bytes);
        let user_id = get(field::USER_ID)?.map(str::as_bytes);
        let user = UserContext::from_headers(user_type, user_id).map_err(|e| {
            e.to_string()
                .replace("header `x-user-type`", "field `user_type`")
                .replace("header `x-user-id`", "field `user_id`")
                .replace("`x-user-type`", "`user_type`")
        })?;
        let activity = match get(field::ACTIVITY_ID)? {
            None => None,
            Some(text) => Some(
                uuid::Uuid::try_parse(text)
                    .map(ActivityId::from_uuid)
                    .map_err(|_| format!("field `activity_id` must be a UUID; got `{}`", super::truncate(text)))?,
            ),
        };
        let signature = get(field::SIGNATURE)?.map(str::to_owned);
        // Never a reason to refuse an event: a malformed or repeated one is dropped.
        let trace = get(field::TRACEPARENT)
            .ok()
            .flatten()
            .and_then(|parent| super::trace::TraceContext::parse(parent, get(field::TRACESTATE).ok().flatten()));
        let key = get(field::KEY)?.map(str::to_owned);
        Ok(Event { id, method, payload, published_ms, user, activity, signature, trace, key })
    }

    /// What the signature covers, one line each, joined by `\n`: `intercall-event-v1`,
    /// `{name}/{method}`, `published_ms`, the event id, the user type, the user id,
    /// the activity id (empty lines when absent) and the payload's SHA-256 in hex.
    pub(crate) fn canonical(&self, name: &str) -> String {
        let user_type = self.user.as_ref().map(|u| u.user_type().as_str().to_owned());
        let user_id = self.user.as_ref().and_then(|u| u.user_id().map(str::to_owned));
        [
            VERSION_LINE,
            &format!("{name}/{}", self.method),
            &self.published_ms.to_string(),
            &self.id.hyphenated().to_string(),
            user_type.as_deref().unwrap_or(""),
            user_id.as_deref().unwrap_or(""),
            &self.activity.map(|a| a.to_string()).unwrap_or_default(),
            &super::signing::body_sha256(self.payload.as_bytes()),
        ]
        .join("\n")
    }
}

/// A dead-letter entry's fields: the original's, as they were (also when they do not
/// decode), then why, which entry, which group, after how many deliveries, and when.
pub(crate) fn dead_letter_fields(
    original: &[(String, Vec<u8>)],
    reason: &str,
    entry_id: &str,
    group: &str,
    deliveries: u64,
    now_ms: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = original.to_vec();
    for (name, value) in [
        (field::DEAD_REASON, reason.to_owned()),
        (field::DEAD_ENTRY, entry_id.to_owned()),
        (field::DEAD_GROUP, group.to_owned()),
        (field::DEAD_DELIVERIES, deliveries.to_string()),
        (field::DEAD_MS, now_ms.to_string()),
    ] {
        fields.push((name.to_owned(), value.into_bytes()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::UserType;

    fn event() -> Event {
        Event {
            id: uuid::Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
            method: "placed".into(),
            payload: r#"{"order_id":"o-1"}"#.into(),
            published_ms: 1_700_000_000_000,
            user: Some(UserContext::new(UserType::Customer, "alice").unwrap()),
            activity: Some(ActivityId::from_uuid(
                uuid::Uuid::parse_str("0b7e2b9a-8c55-4f0e-a0b1-3c1c0f6b1e11").unwrap(),
            )),
            signature: None,
            trace: super::super::trace::TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("congo=t61rcWkgMzE"),
            ),
            key: Some("customer-7".into()),
        }
    }

    #[test]
    fn a_malformed_trace_context_is_dropped_not_refused() {
        let mut fields = owned(event().fields());
        for (name, value) in &mut fields {
            if name == field::TRACEPARENT {
                *value = b"garbage".to_vec();
            }
        }
        let decoded = Event::decode(&fields).unwrap();
        assert_eq!((decoded.trace, decoded.id), (None, event().id));
    }

    fn owned(fields: Vec<(&'static str, String)>) -> Vec<(String, Vec<u8>)> {
        fields.into_iter().map(|(n, v)| (n.to_owned(), v.into_bytes())).collect()
    }

    #[test]
    fn an_event_round_trips_through_its_fields() {
        let mut signed = event();
        signed.signature = Some(format!("v1={}", "0".repeat(64)));
        assert_eq!(Event::decode(&owned(signed.fields())), Ok(signed));
        let anonymous = Event { user: None, activity: None, ..event() };
        assert_eq!(Event::decode(&owned(anonymous.fields())), Ok(anonymous));
    }

    #[test]
    fn the_canonical_string_is_the_documented_lines() {
        let payload_sha256 = crate::protocol::signing::body_sha256(br#"{"order_id":"o-1"}"#);
        let expected = format!(
            "intercall-event-v1\nOrderEvents/placed\n1700000000000\n67e55044-10b1-426f-9247-bb680e5fe0c8\ncustomer\nalice\n0b7e2b9a-8c55-4f0e-a0b1-3c1c0f6b1e11\n{payload_sha256}"
        );
        assert_eq!(event().canonical("OrderEvents"), expected);
    }

    #[test]
    fn malformed_entries_say_which_field() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("garbage", "1")], "field `id` is missing"),
            (vec![("id", "not-a-uuid"), ("method", "m"), ("payload", "{}"), ("published_ms", "1")], "field `id`"),
            (
                vec![
                    ("id", "67E55044-10B1-426F-9247-BB680E5FE0C8"),
                    ("method", "m"),
                    ("payload", "{}"),
                    ("published_ms", "1"),
                ],
                "lowercase",
            ),
            (
                vec![("id", "67e55044-10b1-426f-9247-bb680e5fe0c8"), ("method", "m"), ("payload", "{}")],
                "`published_ms` is missing",
            ),
            (
                vec![
                    ("id", "67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    ("method", "m"),
                    ("payload", "{}"),
                    ("published_ms", "-1"),
                ],
                "`published_ms` must be",
            ),
            (
                vec![
                    ("id", "67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    ("method", "m"),
                    ("method", "n"),
                    ("payload", "{}"),
                    ("published_ms", "1"),
                ],
                "more than once",
            ),
            (
                vec![
                    ("id", "67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    ("method", "m"),
                    ("payload", "{}"),
                    ("published_ms", "1"),
                    ("user_id", "7"),
                ],
                "`user_type`",
            ),
        ];
        for (fields, expected) in cases {
            let fields: Vec<(String, Vec<u8>)> =
                fields.into_iter().map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec())).collect();
            let error = Event::decode(&fields).unwrap_err();
            assert!(error.contains(expected), "{error} (expected {expected})");
        }
    }

    #[test]
    fn a_key_s_partition_is_the_documented_hash() {
        // hashlib.sha256(b"customer-7").digest()[:8], big-endian, % 16 (EVENTS.md §5a)
        let digest = <sha2::Sha256 as sha2::Digest>::digest(b"customer-7");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) % 16;
        assert_eq!(partition("customer-7"), expected);
        let spread: std::collections::HashSet<u64> = (0..200).map(|i| partition(&format!("k{i}"))).collect();
        assert_eq!(spread.len(), 16, "200 keys reach every partition");
        assert_eq!(keyed_stream_key("intercall:events:OrderEvents", 3), "intercall:events:OrderEvents:keyed:3");
        assert_eq!(
            partition_owner_key("intercall:events:OrderEvents", 3, "mailer"),
            "intercall:events:OrderEvents:keyed:3:owner:mailer"
        );
        assert_eq!(
            consumers_key("intercall:events:OrderEvents", "mailer"),
            "intercall:events:OrderEvents:consumers:mailer"
        );
    }

    #[test]
    fn names_are_the_documented_keys() {
        let stream = stream_key("intercall:", "OrderEvents");
        assert_eq!(stream, "intercall:events:OrderEvents");
        assert_eq!(dead_key(&stream), "intercall:events:OrderEvents:dead");
        assert_eq!(
            processed_key(&stream, "mailer", &event().id),
            "intercall:events:OrderEvents:processed:mailer:67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
    }
}
