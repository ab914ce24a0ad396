//! Consuming: read a group's events (`XREADGROUP`), claim those a dead consumer left
//! (`XAUTOCLAIM`), run the handler inside the publisher's context, then acknowledge
//! (`XACK`) with the processed-id record, retry (redeliver) a failure, or move the
//! entry to the dead-letter stream. Nothing an entry holds stops the loop: a bad entry
//! is a dead letter, a panicking handler a failure, and a Redis outage a wait.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use redis::Value;
use redis::aio::MultiplexedConnection;

use super::codegen::{Dispatch, DispatchFn};
use super::lease::{Claim, Lease};
use super::partitions::{self, Partitions};
use super::stream::{self, Entry, millis, now_ms};
use crate::config::EventsConfig;
use crate::context::CallContext;
use crate::protocol::events::{Event, dead_key, dead_letter_fields, processed_key, stream_key};
use crate::{Error, Invoker, Security};

mod acks;
mod reader;

use acks::Acks;

/// The longest wait between two redeliveries of a failing event.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// The longest a read blocks: a shutdown is noticed within it.
const MAX_BLOCK: Duration = Duration::from_secs(1);

/// Runs one implementation of an event trait for one subscriber group; what a
/// generated `XConsumer` holds.
pub struct Consumer<T> {
    implementation: Arc<T>,
    dispatch: DispatchFn<T>,
    name: &'static str,
    methods: &'static [&'static str],
    group: String,
    consumer: String,
    only_new: bool,
    /// Whether some method has an ordering key: then the partitions are read too.
    keyed: bool,
    stream: Arc<str>,
    dead: String,
    config: EventsConfig,
    security: Security,
}

/// The consumer of the events `name` for `group`, from the invoker's `[events]`.
pub fn consumer<T>(
    invoker: &Invoker,
    name: &'static str,
    methods: &'static [&'static str],
    keyed: bool,
    group: String,
    implementation: Arc<T>,
    dispatch: DispatchFn<T>,
) -> Result<Consumer<T>, Error> {
    let config = invoker.events_config().ok_or_else(|| super::no_events_table(name, invoker.source()))?.clone();
    if group.is_empty() || group.chars().any(char::is_control) {
        return Err(Error::config(format!(
            "the subscriber group of `{name}` must be a non-empty name without control characters, such as \"mailer\""
        )));
    }
    let stream: Arc<str> = stream_key(&config.prefix, name).into();
    Ok(Consumer {
        implementation,
        dispatch,
        name,
        methods,
        group,
        consumer: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        only_new: false,
        keyed,
        dead: dead_key(&stream),
        stream,
        config,
        security: invoker.security(),
    })
}

/// How running an event's handler ended.
enum Outcome {
    Succeeded,
    /// To the dead-letter stream, for this reason.
    Dead(String),
    /// The entry is no longer pending (trimmed, or acknowledged elsewhere).
    Gone,
    /// Redis failed while redelivering; the entry stays pending.
    Stuck(String),
}

/// A batch's entry after decoding, verifying and taking its lease.
enum Ready {
    /// To the dead-letter stream at once, for this reason.
    Bad(String),
    /// A well-formed event, its lease, what taking it found, and when.
    Claimed { event: Box<Event>, lease: Lease, claim: Result<Claim, String>, at: Instant },
}

/// An entry in hand, the stream it is in (the trait's, or a key partition's), and how
/// often Redis has delivered it.
struct Delivery {
    stream: Arc<str>,
    entry: Entry,
    deliveries: u64,
}

/// What the loop keeps between reads.
struct State {
    connection: Option<MultiplexedConnection>,
    group_ready: bool,
    last_claim: Option<Instant>,
    /// The key partitions this consumer reads, when the trait has ordering keys.
    partitions: Option<Partitions>,
}

impl<T: Send + Sync + 'static> Consumer<T> {
    /// This consumer's name within the group (default: process id and a random
    /// suffix). A consumer restarted under the same name finds its own pending events
    /// through the claim, like any other consumer.
    pub fn set_consumer_name(&mut self, name: String) {
        if !name.is_empty() {
            self.consumer = name;
        }
    }

    /// A group created by this consumer starts at the stream's end instead of its
    /// start (the retained events).
    pub fn set_only_new_events(&mut self) {
        self.only_new = true;
    }

    /// Reads and handles events until `shutdown` completes. An event in hand is
    /// finished (handled, acknowledged) before it returns; a read in progress ends
    /// first (within a second).
    pub async fn run<F: Future<Output = ()> + Send>(self, shutdown: F) {
        let mut shutdown = std::pin::pin!(shutdown);
        let partitions = self.keyed.then(|| Partitions::new(&self.stream, &self.group, &self.consumer));
        let mut state = State { connection: None, group_ready: false, last_claim: None, partitions };
        self.serve(shutdown.as_mut(), &mut state).await;
        if let (Some(partitions), Some(connection)) = (&mut state.partitions, &state.connection) {
            let mut conn = connection.clone();
            if let Err(e) = self.bounded(partitions.leave(&mut conn)).await {
                tracing::debug!(
                    events = self.name,
                    "cannot give the key partitions up; they run out by themselves: {e}"
                );
            }
        }
    }

    async fn serve<F: Future<Output = ()> + Send>(&self, mut shutdown: std::pin::Pin<&mut F>, state: &mut State) {
        let mut failures = 0u32;
        loop {
            if shutdown.as_mut().now_or_never().is_some() {
                return;
            }
            match self.next_batch(state).await {
                Ok((connection, batch)) => {
                    failures = 0;
                    let leases = state.partitions.as_ref().map(|p| {
                        let (keys, holder) = p.leases();
                        (keys, holder.to_owned())
                    });
                    // A partition whose entry stays pending is not read on: the rest of
                    // its batch waits, to be handled in order after it.
                    let mut stopped: Vec<Arc<str>> = Vec::new();
                    let mut acks = Acks::default();
                    let prepared = self.prepare(&connection, batch).await;
                    let last = prepared.len().saturating_sub(1);
                    for (i, (delivery, ready)) in prepared.into_iter().enumerate() {
                        if stopped.contains(&delivery.stream) {
                            if let Ready::Claimed { lease, claim: Ok(Claim::Taken), .. } = &ready {
                                let mut conn = connection.clone();
                                self.release(&mut conn, lease).await;
                            }
                            continue;
                        }
                        let stream = Arc::clone(&delivery.stream);
                        let finished =
                            self.handle(&connection, delivery, ready, leases.as_ref(), &mut acks, i == last).await;
                        if !finished && !Arc::ptr_eq(&stream, &self.stream) {
                            if let Some(partitions) = &mut state.partitions {
                                partitions.recover(&stream);
                            }
                            stopped.push(stream);
                        }
                    }
                    // What the last event's `SET done` did not carry (it was skipped,
                    // failed, or is a dead letter).
                    self.flush(&mut connection.clone(), &mut acks).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures % 30 == 0 {
                        tracing::warn!(events = self.name, group = %self.group, "cannot read events: {e}");
                    }
                    if e.contains("NOGROUP") {
                        state.group_ready = false;
                    }
                    state.connection = None;
                    if let Some(partitions) = &mut state.partitions {
                        partitions.recover_all();
                    }
                    let wait = self.config.retry_backoff.saturating_mul(failures.min(10)).min(MAX_RETRY_BACKOFF);
                    let sleep = std::pin::pin!(tokio::time::sleep(wait));
                    if let futures_util::future::Either::Left(_) =
                        futures_util::future::select(shutdown.as_mut(), sleep).await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Decodes and verifies a batch's entries, and takes the leases of the good ones in
    /// one round trip (EVENTS.md §5 steps 1 and 2).
    async fn prepare(&self, connection: &MultiplexedConnection, batch: Vec<Delivery>) -> Vec<(Delivery, Ready)> {
        let mut checked = Vec::with_capacity(batch.len());
        for delivery in batch {
            let event = match Event::decode(&delivery.entry.fields) {
                Ok(event) => event,
                Err(why) => {
                    checked.push((delivery, Err(format!("undecodable entry: {why}"))));
                    continue;
                }
            };
            // The canonical string (a SHA-256 of the payload) only when there is a secret.
            let verified = match self.security.is_enabled() {
                true => self.security.verify_text(&event.canonical(self.name), event.signature.as_deref()),
                false => Ok(()),
            };
            if let Err(why) = verified {
                checked.push((delivery, Err(format!("bad signature: {why}"))));
                continue;
            }
            let lease = Lease::new(processed_key(&self.stream, &self.group, &event.id), &self.consumer);
            checked.push((delivery, Ok((event, lease))));
        }
        let leases: Vec<&Lease> = checked.iter().filter_map(|(_, c)| c.as_ref().ok().map(|(_, lease)| lease)).collect();
        let mut conn = connection.clone();
        let claims = self.bounded(Lease::claim_all(&mut conn, &leases, millis(self.config.claim_idle))).await;
        let at = Instant::now();
        let mut claims = claims.map(Vec::into_iter);
        checked
            .into_iter()
            .map(|(delivery, checked)| {
                let ready = match checked {
                    Err(reason) => Ready::Bad(reason),
                    Ok((event, lease)) => {
                        let claim = match &mut claims {
                            Ok(claims) => claims.next().ok_or_else(|| "a lease without its claim".to_owned()),
                            Err(e) => Err(e.clone()),
                        };
                        Ready::Claimed { event: Box::new(event), lease, claim, at }
                    }
                };
                (delivery, ready)
            })
            .collect()
    }

    /// One entry, to its end (`true`): recorded as processed after success, or found
    /// so (its acknowledgement joins `acks`, sent with the batch's last `SET done`),
    /// redelivered after a failure, or moved to the dead-letter stream. Redis errors,
    /// and another consumer holding the event, leave it pending (`false`), to be claimed
    /// again. `partition_leases`: the owner keys (and marker) to renew while a handler
    /// runs. `last`: the batch's last entry, whose `SET done` carries the `XACK`s.
    async fn handle(
        &self,
        connection: &MultiplexedConnection,
        mut delivery: Delivery,
        ready: Ready,
        partition_leases: Option<&(Vec<String>, String)>,
        acks: &mut Acks,
        last: bool,
    ) -> bool {
        let mut conn = connection.clone();
        let (event, lease, claim, at) = match ready {
            Ready::Bad(reason) => return self.dead_letter(&mut conn, &delivery, &reason).await,
            Ready::Claimed { event, lease, claim, at } => (event, lease, claim, at),
        };
        match claim {
            Ok(Claim::Taken) if at.elapsed() < self.config.claim_idle / 3 => {}
            Ok(Claim::Taken) => {
                // Taken with the batch a while ago, while earlier events ran: still ours?
                match self.bounded(lease.renew(&mut conn, millis(self.config.claim_idle))).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(events = self.name, event = %event.id, "an event's lease ran out while the events before it in its batch ran; left pending");
                        return false;
                    }
                    Err(e) => return self.warn("renew the event's lease", &delivery, &e),
                }
            }
            Ok(Claim::Processed) => {
                tracing::debug!(events = self.name, event = %event.id, "already processed by this group; skipped");
                acks.push(&delivery.stream, &delivery.entry.id);
                return true;
            }
            Ok(Claim::HeldElsewhere) => {
                // A live consumer is running it (we claimed it from a stalled one, or it
                // is a second entry of the same event): it stays pending; whoever holds
                // the lease acknowledges it, or it comes back once the lease ran out.
                tracing::debug!(events = self.name, event = %event.id, entry = %delivery.entry.id, "another consumer holds this event; left pending");
                return false;
            }
            Err(e) => return self.warn("take the event's lease", &delivery, &e),
        }
        let (entry_id, stream) = (delivery.entry.id.clone(), Arc::clone(&delivery.stream));
        let keeper = conn.clone();
        let work = self.run_handler(&mut conn, &event, &mut delivery);
        let outcome = self.keeping(keeper, &stream, &entry_id, &lease, partition_leases, acks, work).await;
        match outcome {
            Outcome::Succeeded => {
                // The record first: once it says done, the event is processed, whenever
                // its acknowledgement goes out. The batch's last carries them all.
                let mut complete = redis::pipe();
                lease.record_done(&mut complete, millis(self.config.processed_ttl));
                if last {
                    acks.push(&delivery.stream, &delivery.entry.id);
                    acks.add_to(&mut complete, &self.group);
                }
                let recorded = self.bounded(complete.query_async::<()>(&mut conn)).await;
                if last {
                    acks.clear();
                }
                match recorded {
                    Ok(()) if last => true,
                    Ok(()) => {
                        acks.push(&delivery.stream, &delivery.entry.id);
                        true
                    }
                    Err(e) => self.warn(
                        "record the event as processed (its handler succeeded; it will run again)",
                        &delivery,
                        &e,
                    ),
                }
            }
            Outcome::Dead(reason) => {
                let moved = self.dead_letter(&mut conn, &delivery, &reason).await;
                self.release(&mut conn, &lease).await;
                moved
            }
            Outcome::Gone => {
                self.release(&mut conn, &lease).await;
                true
            }
            Outcome::Stuck(e) => self.warn("redeliver", &delivery, &e),
        }
    }

    /// Runs the handler until it succeeds, the event is dead, or it is gone (trimmed,
    /// or acknowledged elsewhere), redelivering after each failure.
    async fn run_handler(&self, conn: &mut MultiplexedConnection, event: &Event, delivery: &mut Delivery) -> Outcome {
        loop {
            let run = match (self.dispatch)(&self.implementation, &event.method, &event.payload) {
                Dispatch::Run(run) => run,
                Dispatch::Undecodable(why) => {
                    return Outcome::Dead(format!("the payload of `{}` does not decode: {why}", event.method));
                }
                Dispatch::UnknownMethod => {
                    return Outcome::Dead(format!(
                        "`{}` has no method `{}` here (it has: {})",
                        self.name,
                        event.method,
                        self.methods.join(", ")
                    ));
                }
            };
            let context = CallContext {
                user: event.user.clone(),
                activity: event.activity,
                trace: event.trace.clone(),
                ..CallContext::default()
            };
            let result = match std::panic::AssertUnwindSafe(context.scope(run)).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err("the handler panicked".to_owned()),
            };
            let failure = match result {
                Ok(()) => return Outcome::Succeeded,
                Err(failure) => failure,
            };
            if delivery.deliveries >= self.config.max_deliveries {
                return Outcome::Dead(format!(
                    "the handler failed on delivery {} of at most {}: {failure}",
                    delivery.deliveries.min(self.config.max_deliveries),
                    self.config.max_deliveries
                ));
            }
            tracing::warn!(events = self.name, group = %self.group, event = %event.id, deliveries = delivery.deliveries, "the handler failed, redelivering: {failure}");
            let doublings = u32::try_from(delivery.deliveries.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
            let wait = self.config.retry_backoff.saturating_mul(1 << doublings).min(MAX_RETRY_BACKOFF);
            tokio::time::sleep(wait).await;
            // Redelivered through Redis, so the count survives this consumer: XCLAIM
            // counts a delivery. Gone (trimmed, or taken and acknowledged elsewhere): done.
            let mut claim = redis::cmd("XCLAIM");
            claim.arg(&*delivery.stream).arg(&self.group).arg(&self.consumer).arg(0).arg(&delivery.entry.id);
            match self.bounded(claim.query_async::<Value>(conn)).await.and_then(|v| stream::entries(&v)) {
                Ok(entries) if entries.is_empty() => return Outcome::Gone,
                Ok(_) => delivery.deliveries += 1,
                Err(e) => return Outcome::Stuck(e),
            }
        }
    }

    /// Runs `work` while renewing the event's lease and resetting its entry's idle time
    /// every third of the claim idle time, so that a slow but live consumer keeps its
    /// event; a dead consumer stops renewing, and both run out together. The batch's
    /// acknowledgements held back go out with the first renewal. Work that finishes
    /// when first polled (a handler that never waits) starts no heartbeat.
    #[allow(clippy::too_many_arguments)]
    async fn keeping<R>(
        &self,
        mut conn: MultiplexedConnection,
        stream: &str,
        entry_id: &str,
        lease: &Lease,
        partition_leases: Option<&(Vec<String>, String)>,
        acks: &mut Acks,
        work: impl Future<Output = R>,
    ) -> R {
        let mut work = std::pin::pin!(work);
        if let Some(result) = work.as_mut().now_or_never() {
            return result;
        }
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.config.claim_idle / 3).await;
                match self.bounded(lease.renew(&mut conn, millis(self.config.claim_idle))).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            events = self.name,
                            entry = entry_id,
                            "an event's lease ran out while its handler ran (a stall longer than claim_idle_ms); another consumer may run it too"
                        )
                    }
                    Err(e) => {
                        tracing::debug!(events = self.name, entry = entry_id, "cannot renew an event's lease: {e}")
                    }
                }
                self.flush(&mut conn, acks).await;
                let mut keep = redis::cmd("XCLAIM");
                keep.arg(stream).arg(&self.group).arg(&self.consumer).arg(0).arg(entry_id).arg("JUSTID");
                if let Err(e) = self.bounded(keep.query_async::<Value>(&mut conn)).await {
                    tracing::debug!(events = self.name, entry = entry_id, "cannot keep an event in hand: {e}");
                }
                if let Some((keys, holder)) = partition_leases {
                    let renew = partitions::renew(&mut conn, keys, holder, self.config.claim_idle);
                    if let Err(e) = self.bounded(renew).await {
                        tracing::debug!(events = self.name, "cannot renew the key partitions' leases: {e}");
                    }
                }
            }
        };
        let heartbeat = std::pin::pin!(heartbeat);
        match futures_util::future::select(work, heartbeat).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right(((), _)) => unreachable!("the heartbeat never ends"),
        }
    }

    async fn release(&self, conn: &mut MultiplexedConnection, lease: &Lease) {
        if let Err(e) = self.bounded(lease.release(conn)).await {
            tracing::debug!(events = self.name, "cannot drop an event's lease; it runs out by itself: {e}");
        }
    }

    /// Sends the acknowledgements held back. On failure they are dropped: their records
    /// say done, so a redelivery acknowledges them without running.
    async fn flush(&self, conn: &mut MultiplexedConnection, acks: &mut Acks) {
        if acks.is_empty() {
            return;
        }
        let mut xacks = redis::pipe();
        acks.add_to(&mut xacks, &self.group);
        if let Err(e) = self.bounded(xacks.query_async::<()>(conn)).await {
            tracing::debug!(
                events = self.name,
                entries = acks.len(),
                "cannot acknowledge processed events; a redelivery will: {e}"
            );
        }
        acks.clear();
    }

    /// Moves the entry to the dead-letter stream with `reason`, and acknowledges it, in
    /// one transaction.
    async fn dead_letter(&self, conn: &mut MultiplexedConnection, delivery: &Delivery, reason: &str) -> bool {
        tracing::warn!(events = self.name, group = %self.group, entry = %delivery.entry.id, "to the dead-letter stream: {reason}");
        let fields = dead_letter_fields(
            &delivery.entry.fields,
            reason,
            &delivery.entry.id,
            &self.group,
            delivery.deliveries,
            now_ms(),
        );
        let mut transaction = redis::pipe();
        transaction.atomic();
        let xadd = transaction.cmd("XADD").arg(&self.dead).arg("MAXLEN").arg("~").arg(self.config.max_len).arg("*");
        for (name, value) in &fields {
            xadd.arg(name).arg(value);
        }
        xadd.ignore();
        transaction.cmd("XACK").arg(&*delivery.stream).arg(&self.group).arg(&delivery.entry.id).ignore();
        match self.bounded(transaction.query_async::<()>(conn)).await {
            Ok(()) => true,
            Err(e) => self.warn("move to the dead-letter stream", delivery, &e),
        }
    }

    /// Logs that an entry stays pending; `false`, for `handle`.
    fn warn(&self, what: &str, delivery: &Delivery, error: &str) -> bool {
        tracing::warn!(events = self.name, group = %self.group, entry = %delivery.entry.id, "cannot {what}; the event stays pending and will be claimed again: {error}");
        false
    }

    /// One Redis operation within the operation timeout; the error as text.
    async fn bounded<V>(&self, op: impl Future<Output = redis::RedisResult<V>>) -> Result<V, String> {
        match tokio::time::timeout(self.config.op_timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                Err(format!("Redis at {}: no answer within {} ms", self.config.address, millis(self.config.op_timeout)))
            }
        }
    }
}
