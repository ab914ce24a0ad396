//! `[events]`: where the node's event streams live and how they are consumed
//! (docs/EVENTS.md). Validated as strictly as the rest: unknown keys, zero or negative
//! numbers and a malformed URL are errors naming the key and its line.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Default bound on the retained entries of a stream (`XADD MAXLEN ~`).
pub const DEFAULT_MAX_LEN: u64 = 100_000;
/// Default idle time after which another consumer claims a pending event: 30 s.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);
/// Default number of deliveries before a failing event goes to the dead-letter stream.
pub const DEFAULT_MAX_DELIVERIES: u64 = 5;
/// Default lifetime of a processed-event record: 24 hours.
pub const DEFAULT_PROCESSED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default wait before the first redelivery of a failed event (doubling, at most 5 s).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Default bound on one Redis operation (a publish included): 1 s.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Default number of events a consumer reads at once.
pub const DEFAULT_BATCH_SIZE: u64 = 10;
/// Default prefix of every key.
pub const DEFAULT_PREFIX: &str = "intercall:";

/// When a consumer writes the `done` records of the events whose handlers succeeded
/// (`[events] done_records`, EVENTS.md §5 step 4): the choice between the narrowest
/// crash window and the fewest round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DoneRecords {
    /// `"per_event"`: each event's record is written, and its reply awaited, before the
    /// next handler runs, so a consumer killed mid-batch reruns at most the handler in
    /// hand (the default).
    #[default]
    PerEvent,
    /// `"per_batch"`: the records of a batch's successful handlers go out together, in
    /// one pipeline with the batch's `XACK`s, after its last handler (or earlier: when a
    /// handler fails or is slow, before a lease could run out). One round trip per
    /// batch instead of one per event, but a consumer killed mid-batch reruns every
    /// handler of the batch that had finished and was not yet recorded.
    PerBatch,
}

impl DoneRecords {
    /// The value as `services.toml` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneRecords::PerEvent => "per_event",
            DoneRecords::PerBatch => "per_batch",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    url: Spanned<String>,
    prefix: Option<Spanned<String>>,
    max_len: Option<Spanned<i64>>,
    claim_idle_ms: Option<Spanned<i64>>,
    max_deliveries: Option<Spanned<i64>>,
    processed_ttl_ms: Option<Spanned<i64>>,
    retry_backoff_ms: Option<Spanned<i64>>,
    op_timeout_ms: Option<Spanned<i64>>,
    batch_size: Option<Spanned<i64>>,
    done_records: Option<Spanned<String>>,
}

/// `[events]`, validated (the URL parsed, nothing connected).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) struct EventsConfig {
    #[cfg(feature = "events")]
    pub(crate) client: redis::Client,
    /// Host and port, without credentials, for messages.
    pub(crate) address: String,
    pub(crate) prefix: String,
    pub(crate) max_len: u64,
    pub(crate) claim_idle: Duration,
    pub(crate) max_deliveries: u64,
    pub(crate) processed_ttl: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) batch_size: u64,
    pub(crate) done_records: DoneRecords,
}

type Located = (Range<usize>, String);

pub(super) fn events(raw: Spanned<RawEvents>) -> Result<EventsConfig, Located> {
    let raw = raw.into_inner();
    let positive = |value: &Option<Spanned<i64>>, key: &str, example: &str| match value {
        Some(v) if *v.get_ref() <= 0 => {
            Err((v.span(), format!("`events.{key}` is {}; write a positive number, such as {example}", v.get_ref())))
        }
        Some(v) => Ok(Some(u64::try_from(*v.get_ref()).expect("positive"))),
        None => Ok(None),
    };
    let millis =
        |value, key, example, default| positive(value, key, example).map(|v| v.map_or(default, Duration::from_millis));
    let max_len = positive(&raw.max_len, "max_len", "100000")?.unwrap_or(DEFAULT_MAX_LEN);
    let claim_idle = millis(&raw.claim_idle_ms, "claim_idle_ms", "30000", DEFAULT_CLAIM_IDLE)?;
    let max_deliveries = positive(&raw.max_deliveries, "max_deliveries", "5")?.unwrap_or(DEFAULT_MAX_DELIVERIES);
    let processed_ttl = millis(&raw.processed_ttl_ms, "processed_ttl_ms", "86400000", DEFAULT_PROCESSED_TTL)?;
    let retry_backoff = millis(&raw.retry_backoff_ms, "retry_backoff_ms", "100", DEFAULT_RETRY_BACKOFF)?;
    let op_timeout = millis(&raw.op_timeout_ms, "op_timeout_ms", "1000", DEFAULT_OP_TIMEOUT)?;
    let batch_size = positive(&raw.batch_size, "batch_size", "10")?.unwrap_or(DEFAULT_BATCH_SIZE);
    if let Some(v) = &raw.batch_size
        && batch_size > 1000
    {
        return Err((v.span(), format!("`events.batch_size` is {batch_size}; write at most 1000")));
    }
    let done_records = match &raw.done_records {
        None => DoneRecords::default(),
        Some(v) => match v.get_ref().as_str() {
            "per_event" => DoneRecords::PerEvent,
            "per_batch" => DoneRecords::PerBatch,
            other => {
                return Err((
                    v.span(),
                    format!("`events.done_records` is `{other}`; write \"per_event\" (the default) or \"per_batch\""),
                ));
            }
        },
    };
    let prefix = match &raw.prefix {
        Some(p) if p.get_ref().chars().any(char::is_control) => {
            return Err((p.span(), "`events.prefix` contains a control character".to_owned()));
        }
        Some(p) => p.get_ref().clone(),
        None => DEFAULT_PREFIX.to_owned(),
    };
    let url = &raw.url;
    // The value may hold a password: never echo it.
    let text = url.get_ref().as_str();
    if text.starts_with("rediss://") {
        return Err((
            url.span(),
            "`events.url`: TLS to Redis (rediss://) is not supported; use redis:// on a private network".to_owned(),
        ));
    }
    if !text.starts_with("redis://") {
        return Err((
            url.span(),
            "`events.url` must be a redis:// URL, such as \"redis://127.0.0.1:6379/0\"".to_owned(),
        ));
    }
    connect_info(text, url.span()).map(|(client, address)| {
        #[cfg(not(feature = "events"))]
        let () = client;
        EventsConfig {
            #[cfg(feature = "events")]
            client,
            address,
            prefix,
            max_len,
            claim_idle,
            max_deliveries,
            processed_ttl,
            retry_backoff,
            op_timeout,
            batch_size,
            done_records,
        }
    })
}

#[cfg(feature = "events")]
fn connect_info(url: &str, span: Range<usize>) -> Result<(redis::Client, String), Located> {
    let client = redis::Client::open(url).map_err(|e| {
        (span, format!("`events.url` is not a valid Redis URL: {}", e.to_string().replace(url, "<url>")))
    })?;
    let address = client.get_connection_info().addr().to_string();
    Ok((client, address))
}

#[cfg(not(feature = "events"))]
fn connect_info(_: &str, span: Range<usize>) -> Result<((), String), Located> {
    Err((
        span,
        "`[events]` needs intercall's `events` feature: `intercall = { version = \"..\", features = [\"events\"] }`"
            .to_owned(),
    ))
}
