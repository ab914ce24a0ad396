//! The events cases: each publishes through intercall and reads Redis, or writes to
//! Redis by hand and watches intercall's consumer. Every wait is a bounded poll.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use intercall::{ActivityId, CallContext, Invoker, UserContext, UserType};
use redis::Value;
use redis::aio::MultiplexedConnection;

use super::layout;
use super::{ConformanceEvents, ConformanceEventsConsumer, ConformanceEventsPublisher, Options, Recorder};
use crate::report::{Check, equal};
use crate::spec::is_canonical_uuid;

/// The subscriber group the reference consumer runs as.
const GROUP: &str = "conformance";

/// What every case works with. Cheap to clone.
#[derive(Clone)]
pub struct Target(Arc<Inner>);

/// See [`Target`].
pub struct Inner {
    redis: MultiplexedConnection,
    stream: String,
    secret: Option<Vec<u8>>,
    publisher: ConformanceEventsPublisher,
    recorder: Recorder,
    stop: tokio::sync::watch::Sender<bool>,
    consumer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Target {
    /// Connects, and starts the reference consumer on a prefix of this run's own.
    pub async fn start(options: &Options) -> Result<Self, String> {
        let prefix = format!("conformance:{}:", uuid::Uuid::new_v4().simple());
        let security = match &options.secret {
            Some(secret) => intercall::Security::shared_secret(secret.clone()).map_err(|e| e.to_string())?,
            None => intercall::Security::none(),
        };
        let invoker = Invoker::builder()
            .events(options.redis_url.as_str())
            .events_prefix(prefix.as_str())
            .security(security)
            .environment(false)
            .build()
            .map_err(|e| e.to_string())?;
        let redis = redis::Client::open(options.redis_url.as_str())
            .map_err(|e| format!("REDIS_URL: {e}"))?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("Redis at {}: {e}", options.redis_url))?;
        let recorder = Recorder::default();
        let consumer = ConformanceEventsConsumer::new(invoker.clone(), GROUP, recorder.clone())
            .map_err(|e| e.to_string())?
            .consumer_name("reference");
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let consumer = tokio::spawn(consumer.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        let publisher = ConformanceEventsPublisher::new(invoker).map_err(|e| e.to_string())?;
        let inner = Inner {
            redis,
            stream: layout::stream(&prefix),
            secret: options.secret.clone(),
            publisher,
            recorder,
            stop,
            consumer: tokio::sync::Mutex::new(Some(consumer)),
        };
        Ok(Target(Arc::new(inner)))
    }

    /// Stops the reference consumer.
    pub async fn stop(&self) {
        let _ = self.0.stop.send(true);
        if let Some(task) = self.0.consumer.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// One named case.
pub struct Case {
    /// Its name, printed with its verdict.
    pub name: &'static str,
    /// The section of EVENTS.md it checks.
    pub section: &'static str,
    /// Whether it needs a shared secret.
    pub needs_secret: bool,
    /// The check.
    pub run: fn(Target) -> Pin<Box<dyn Future<Output = Check> + Send>>,
}

macro_rules! case {
    ($name:ident, $section:literal) => {
        case!($name, $section, false)
    };
    ($name:ident, $section:literal, $needs_secret:literal) => {
        Case {
            name: stringify!($name),
            section: $section,
            needs_secret: $needs_secret,
            run: |target| Box::pin($name(target)),
        }
    };
}

/// Every events case, in the order they run.
pub fn all() -> Vec<Case> {
    vec![
        case!(published_entry_has_the_documented_fields, "§1, §3"),
        case!(published_entry_carries_the_user_and_activity, "§3"),
        case!(published_signature_verifies, "§4", true),
        case!(keyed_event_goes_to_its_partition, "§5a"),
        case!(hand_written_entry_is_handled_in_its_context, "§3, §5"),
        case!(handled_event_is_recorded_and_acknowledged, "§5"),
        case!(second_entry_of_an_event_is_skipped, "§5"),
        case!(event_with_a_processed_record_is_skipped, "§5"),
        case!(event_leased_by_another_consumer_is_left_pending, "§5"),
        case!(unknown_fields_are_ignored, "§3"),
        case!(hand_written_keyed_entry_is_handled, "§5a"),
        case!(undecodable_entry_is_a_dead_letter_with_the_documented_fields, "§6"),
        case!(wrongly_signed_entry_is_a_dead_letter, "§4, §6", true),
    ]
}

type Fields = HashMap<String, String>;

/// A stream's entries: id and fields, oldest first.
async fn entries(target: &Target, stream: &str) -> Result<Vec<(String, Fields)>, String> {
    let mut redis = target.0.redis.clone();
    let reply: Value =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(&mut redis).await.map_err(|e| e.to_string())?;
    let text = |v: &Value| match v {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => format!("{other:?}"),
    };
    let Value::Array(list) = reply else { return Ok(Vec::new()) };
    Ok(list
        .iter()
        .filter_map(|entry| match entry {
            Value::Array(pair) => match pair.as_slice() {
                [id, Value::Array(flat)] => {
                    Some((text(id), flat.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// The one entry of `stream` whose payload mentions `marker`.
async fn entry_with(target: &Target, stream: &str, marker: &str) -> Result<(String, Fields), String> {
    let mut found: Vec<_> = entries(target, stream)
        .await?
        .into_iter()
        .filter(|(_, f)| f.get("payload").is_some_and(|p| p.contains(marker)))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!("expected one entry for `{marker}` in `{stream}`, found {n}")),
    }
}

/// A fresh marker, unique to this case run.
fn marker(case: &str) -> String {
    format!("{case}-{}", uuid::Uuid::new_v4().simple())
}

/// Writes an entry by hand, signed when the suite has a secret (unless `sign` is false).
async fn add(target: &Target, stream: &str, mut fields: Vec<(&str, String)>, sign: bool) -> Result<String, String> {
    if let (Some(secret), true) = (&target.0.secret, sign) {
        let lookup: Fields = fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let signature = layout::signature(secret, |name| lookup.get(name).cloned().unwrap_or_default());
        fields.push(("signature", signature));
    }
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream).arg("*");
    for (name, value) in &fields {
        xadd.arg(*name).arg(value);
    }
    let mut redis = target.0.redis.clone();
    xadd.query_async::<String>(&mut redis).await.map_err(|e| e.to_string())
}

/// An entry's fields as a peer writes them: `noted` with `text`.
fn noted(text: &str, id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("id", id.to_owned()),
        ("method", "noted".to_owned()),
        ("payload", serde_json::json!({ "text": text, "n": 7 }).to_string()),
        ("published_ms", crate::signing::timestamp(0)),
    ]
}

/// Polls `condition` every 10 ms for up to 10 s.
async fn eventually<F: Future<Output = Result<bool, String>>>(what: &str, mut condition: impl FnMut() -> F) -> Check {
    for _ in 0..1_000 {
        if condition().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("not within 10 s: {what}"))
}

async fn handled(target: &Target, text: &str) -> Check {
    let recorder = target.0.recorder.clone();
    eventually(&format!("the consumer handled `{text}`"), || {
        let done = !recorder.of(text).is_empty();
        async move { Ok(done) }
    })
    .await
}

/// How many entries the group has delivered and not acknowledged, on `stream`.
async fn pending(target: &Target, stream: &str) -> Result<i64, String> {
    let mut redis = target.0.redis.clone();
    let summary: Value =
        redis::cmd("XPENDING").arg(stream).arg(GROUP).query_async(&mut redis).await.map_err(|e| e.to_string())?;
    match summary {
        Value::Array(items) => match items.first() {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(format!("unexpected XPENDING summary: {other:?}")),
        },
        other => Err(format!("unexpected XPENDING summary: {other:?}")),
    }
}

async fn get(target: &Target, key: &str) -> Result<Option<String>, String> {
    let mut redis = target.0.redis.clone();
    redis::cmd("GET").arg(key).query_async(&mut redis).await.map_err(|e| e.to_string())
}

/// Handles a marker event published after `stream`'s earlier entries, so that the
/// consumer is known to have gone past them (one consumer reads the trait's stream in
/// order).
async fn barrier(target: &Target) -> Check {
    let text = marker("barrier");
    add(target, &target.0.stream, noted(&text, &uuid::Uuid::new_v4().to_string()), true).await?;
    handled(target, &text).await
}

async fn published_entry_has_the_documented_fields(target: Target) -> Check {
    let text = marker("fields");
    target.0.publisher.noted(text.clone(), 42).await.map_err(|e| format!("publish: {e:?}"))?;
    let (_, fields) = entry_with(&target, &target.0.stream, &text).await?;
    for name in fields.keys() {
        if !layout::FIELDS.contains(&name.as_str()) {
            return Err(format!("an undocumented field `{name}`"));
        }
    }
    let id = fields.get("id").ok_or("no `id`")?;
    if !is_canonical_uuid(id.as_bytes()) {
        return Err(format!("`id` {id:?} is not a lowercase hyphenated UUID"));
    }
    equal("method", fields.get("method").map(String::as_str), Some("noted"))?;
    let payload: serde_json::Value =
        serde_json::from_str(fields.get("payload").ok_or("no `payload`")?).map_err(|e| format!("payload: {e}"))?;
    equal("payload", payload, serde_json::json!({ "text": text, "n": 42 }))?;
    let published = fields.get("published_ms").ok_or("no `published_ms`")?;
    let published: i64 = published
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| published.parse().ok())
        .flatten()
        .ok_or_else(|| format!("`published_ms` {published:?} is not digits"))?;
    let now: i64 = crate::signing::timestamp(0).parse().unwrap_or(0);
    if (now - published).abs() > 60_000 {
        return Err(format!("`published_ms` {published} is not now ({now})"));
    }
    let activity = fields.get("activity_id").ok_or("no `activity_id` (intercall always sends one)")?;
    if !is_canonical_uuid(activity.as_bytes()) {
        return Err(format!("`activity_id` {activity:?} is not a UUID"));
    }
    equal("user_type outside any user", fields.get("user_type"), None)
}

async fn published_entry_carries_the_user_and_activity(target: Target) -> Check {
    let text = marker("context");
    let user = UserContext::new(UserType::Customer, "alice").map_err(|e| e.to_string())?;
    let activity = ActivityId::new();
    let context = CallContext { user: Some(user), activity: Some(activity), ..CallContext::default() };
    context.scope(target.0.publisher.noted(text.clone(), 1)).await.map_err(|e| format!("publish: {e:?}"))?;
    let (_, fields) = entry_with(&target, &target.0.stream, &text).await?;
    equal("user_type", fields.get("user_type").map(String::as_str), Some("customer"))?;
    equal("user_id", fields.get("user_id").map(String::as_str), Some("alice"))?;
    equal("activity_id", fields.get("activity_id").cloned(), Some(activity.to_string()))
}

async fn published_signature_verifies(target: Target) -> Check {
    let secret = target.0.secret.clone().ok_or("no secret")?;
    let text = marker("signed");
    let user = UserContext::new(UserType::Admin, "root").map_err(|e| e.to_string())?;
    let context = CallContext { user: Some(user), ..CallContext::default() };
    context.scope(target.0.publisher.noted(text.clone(), 5)).await.map_err(|e| format!("publish: {e:?}"))?;
    let (_, fields) = entry_with(&target, &target.0.stream, &text).await?;
    let expected = layout::signature(&secret, |name| fields.get(name).cloned().unwrap_or_default());
    equal("signature", fields.get("signature").cloned(), Some(expected))
}

async fn keyed_event_goes_to_its_partition(target: Target) -> Check {
    let key = marker("key");
    target.0.publisher.keyed(key.clone(), 3).await.map_err(|e| format!("publish: {e:?}"))?;
    let partition = layout::keyed(&target.0.stream, &key);
    let (_, fields) = entry_with(&target, &partition, &key).await?;
    equal("key", fields.get("key"), Some(&key))?;
    let in_main = entries(&target, &target.0.stream).await?;
    if in_main.iter().any(|(_, f)| f.get("payload").is_some_and(|p| p.contains(&key))) {
        return Err("a keyed event also went to the trait's stream".to_owned());
    }
    Ok(())
}

async fn hand_written_entry_is_handled_in_its_context(target: Target) -> Check {
    let text = marker("by-hand");
    let activity = uuid::Uuid::new_v4().to_string();
    let mut fields = noted(&text, &uuid::Uuid::new_v4().to_string());
    fields.extend([
        ("user_type", "customer".to_owned()),
        ("user_id", "bob".to_owned()),
        ("activity_id", activity.clone()),
    ]);
    add(&target, &target.0.stream, fields, true).await?;
    handled(&target, &text).await?;
    let seen = target.0.recorder.of(&text);
    equal("handlings", seen.len(), 1)?;
    equal("n", seen[0].n, 7)?;
    equal("user", seen[0].user.clone(), Some(("customer".to_owned(), Some("bob".to_owned()))))?;
    equal("activity", seen[0].activity.clone(), Some(activity))
}

async fn handled_event_is_recorded_and_acknowledged(target: Target) -> Check {
    let text = marker("recorded");
    let id = uuid::Uuid::new_v4().to_string();
    add(&target, &target.0.stream, noted(&text, &id), true).await?;
    handled(&target, &text).await?;
    let record = layout::processed(&target.0.stream, GROUP, &id);
    let t = target.clone();
    eventually("the record says processed", || {
        let (t, record) = (t.clone(), record.clone());
        async move { Ok(get(&t, &record).await?.is_some_and(|value| !value.starts_with(layout::LEASE_PREFIX))) }
    })
    .await?;
    let t = target.clone();
    eventually("nothing is pending", || {
        let t = t.clone();
        async move { Ok(pending(&t, &t.0.stream).await? == 0) }
    })
    .await
}

async fn second_entry_of_an_event_is_skipped(target: Target) -> Check {
    let text = marker("twice");
    let id = uuid::Uuid::new_v4().to_string();
    add(&target, &target.0.stream, noted(&text, &id), true).await?;
    handled(&target, &text).await?;
    add(&target, &target.0.stream, noted(&text, &id), true).await?;
    barrier(&target).await?;
    equal("handlings of one event id", target.0.recorder.of(&text).len(), 1)?;
    equal("pending", pending(&target, &target.0.stream).await?, 0)
}

/// Writes an event's record as another peer of the group would, for a minute.
async fn set_record(target: &Target, id: &str, value: &str) -> Check {
    let mut redis = target.0.redis.clone();
    redis::cmd("SET")
        .arg(layout::processed(&target.0.stream, GROUP, id))
        .arg(value)
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut redis)
        .await
        .map_err(|e| e.to_string())
}

async fn event_with_a_processed_record_is_skipped(target: Target) -> Check {
    let text = marker("recorded-before");
    let id = uuid::Uuid::new_v4().to_string();
    set_record(&target, &id, "done another-peer").await?;
    add(&target, &target.0.stream, noted(&text, &id), true).await?;
    barrier(&target).await?;
    equal("handlings", target.0.recorder.of(&text).len(), 0)?;
    equal("pending", pending(&target, &target.0.stream).await?, 0)
}

async fn event_leased_by_another_consumer_is_left_pending(target: Target) -> Check {
    let text = marker("leased");
    let id = uuid::Uuid::new_v4().to_string();
    let record = layout::processed(&target.0.stream, GROUP, &id);
    set_record(&target, &id, &format!("{}another-peer 1", layout::LEASE_PREFIX)).await?;
    add(&target, &target.0.stream, noted(&text, &id), true).await?;
    barrier(&target).await?;
    equal("handlings while another consumer holds the lease", target.0.recorder.of(&text).len(), 0)?;
    equal("pending (the holder acknowledges it)", pending(&target, &target.0.stream).await?, 1)?;
    // As the holder would on success (EVENTS.md §5 step 4): the record says done, then
    // acknowledge, in one transaction so that the `XACK` runs only with its `SET`.
    let entry_id = entry_with(&target, &target.0.stream, &text).await?.0;
    let mut redis = target.0.redis.clone();
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&record)
        .arg("done another-peer")
        .ignore()
        .cmd("XACK")
        .arg(&target.0.stream)
        .arg(GROUP)
        .arg(&entry_id)
        .ignore()
        .query_async::<()>(&mut redis)
        .await
        .map_err(|e| e.to_string())
}

async fn unknown_fields_are_ignored(target: Target) -> Check {
    let text = marker("unknown-fields");
    let mut fields = noted(&text, &uuid::Uuid::new_v4().to_string());
    fields.push(("x_from_a_later_version", "whatever".to_owned()));
    add(&target, &target.0.stream, fields, true).await?;
    handled(&target, &text).await
}

async fn hand_written_keyed_entry_is_handled(target: Target) -> Check {
    let key = marker("keyed-by-hand");
    let fields = vec![
        ("id", uuid::Uuid::new_v4().to_string()),
        ("method", "keyed".to_owned()),
        ("payload", serde_json::json!({ "key": key, "n": 1 }).to_string()),
        ("published_ms", crate::signing::timestamp(0)),
        ("key", key.clone()),
    ];
    add(&target, &layout::keyed(&target.0.stream, &key), fields, true).await?;
    handled(&target, &key).await
}

async fn dead_letter_for(target: &Target, text: &str) -> Result<Fields, String> {
    let dead = layout::dead(&target.0.stream);
    let t = target.clone();
    eventually("a dead-letter entry", || {
        let (t, dead) = (t.clone(), dead.clone());
        let text = text.to_owned();
        async move { Ok(entries(&t, &dead).await?.iter().any(|(_, f)| f.values().any(|v| v.contains(&text)))) }
    })
    .await?;
    let (_, fields) = entries(target, &dead)
        .await?
        .into_iter()
        .find(|(_, f)| f.values().any(|v| v.contains(text)))
        .ok_or("the dead letter went away")?;
    for name in layout::DEAD_FIELDS {
        if !fields.contains_key(*name) {
            return Err(format!("the dead letter has no `{name}`: {fields:?}"));
        }
    }
    equal("dead_group", fields["dead_group"].as_str(), GROUP)?;
    equal("dead_deliveries", fields["dead_deliveries"].as_str(), "1")?;
    Ok(fields)
}

async fn undecodable_entry_is_a_dead_letter_with_the_documented_fields(target: Target) -> Check {
    let text = marker("no-id");
    let fields: Vec<(&str, String)> = noted(&text, "").into_iter().filter(|(name, _)| *name != "id").collect();
    let entry = add(&target, &target.0.stream, fields, false).await?;
    let letter = dead_letter_for(&target, &text).await?;
    equal("dead_entry", letter["dead_entry"].as_str(), entry.as_str())?;
    if !letter["dead_reason"].contains("`id`") {
        return Err(format!("dead_reason does not name the field: {:?}", letter["dead_reason"]));
    }
    equal("the original payload, kept", letter.get("payload").is_some_and(|p| p.contains(&text)), true)?;
    equal("handlings", target.0.recorder.of(&text).len(), 0)
}

async fn wrongly_signed_entry_is_a_dead_letter(target: Target) -> Check {
    let text = marker("forged");
    let mut fields = noted(&text, &uuid::Uuid::new_v4().to_string());
    fields.push(("signature", format!("v1={}", "0".repeat(64))));
    add(&target, &target.0.stream, fields, false).await?;
    let letter = dead_letter_for(&target, &text).await?;
    if !letter["dead_reason"].contains("signature") {
        return Err(format!("dead_reason does not say signature: {:?}", letter["dead_reason"]));
    }
    equal("handlings", target.0.recorder.of(&text).len(), 0)
}
