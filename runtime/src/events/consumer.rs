//! Consuming: read a group's events (`XREADGROUP`), claim those a dead consumer left
//! (`XAUTOCLAIM`), run the handler inside the publisher's context, then acknowledge
//! (`XACK`) with the processed-id record, retry (redeliver) a failure, or move the
//! entry to the dead-letter stream. Nothing an entry holds stops the loop: a bad entry
//! is a dead letter, a panicking handler a failure, and a Redis outage a wait.
//!
//! This file: the consumer, its loop over batches, and a batch's decoding, verifying
//! and leases. `reader.rs`: the reads; `handling.rs`: one entry to its end;
//! `finish.rs`: dead letters, dropped leases, what a batch held back sent; `held.rs`:
//! the acknowledgements (and, with `done_records = "per_batch"`, the `done` records) a
//! batch holds back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use redis::aio::MultiplexedConnection;

use super::codegen::DispatchFn;
use super::lease::{Claim, Lease};
use super::partitions::Partitions;
use super::stream::{Entry, millis};
use crate::config::{DoneRecords, EventsConfig};
use crate::protocol::events::{Event, dead_key, processed_key, stream_key};
use crate::{Error, Invoker, Security};

mod finish;
mod handling;
mod held;
mod reader;

use held::Held;

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

    /// Reads and handles events until `shutdown` completes. The batch in hand is
    /// finished (handled, recorded, acknowledged; with `done_records = "per_batch"` its
    /// held records written) before it returns; a read in progress ends first (within
    /// a second). If that last write fails, it is logged, not retried: those events
    /// stay pending and run again on another consumer once `claim_idle_ms` has passed.
    pub async fn run<F: Future<Output = ()> + Send>(self, shutdown: F) {
        let mut shutdown = std::pin::pin!(shutdown);
        if self.config.done_records == DoneRecords::PerBatch
            && self.config.op_timeout.saturating_mul(9) >= self.config.claim_idle.saturating_mul(2)
        {
            // EVENTS.md §5 step 4: a held record is written within claim_idle/3 and
            // three Redis operations of its lease, which lives claim_idle.
            tracing::warn!(
                events = self.name,
                "done_records = \"per_batch\" with op_timeout_ms ({}) at least 2/9 of claim_idle_ms ({}): when Redis is that slow, a finished event's lease may run out before its record is written, and another consumer may run it again",
                self.config.op_timeout.as_millis(),
                self.config.claim_idle.as_millis()
            );
        }
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
                    let held = Held::default();
                    let prepared = self.prepare(&connection, batch).await;
                    let last = prepared.len().saturating_sub(1);
                    for (i, (delivery, ready)) in prepared.into_iter().enumerate() {
                        // `per_batch`: records whose leases have aged a third of their
                        // life are written before the next handler, never left to run out.
                        if held.records_older_than(self.config.claim_idle / 3) {
                            self.flush(&mut connection.clone(), &held).await;
                        }
                        self.stop_lost(&held, state, &mut stopped);
                        if stopped.contains(&delivery.stream) {
                            if let Ready::Claimed { lease, claim: Ok(Claim::Taken), .. } = &ready {
                                let mut conn = connection.clone();
                                self.release(&mut conn, lease).await;
                            }
                            continue;
                        }
                        let stream = Arc::clone(&delivery.stream);
                        let finished =
                            self.handle(&connection, delivery, ready, leases.as_ref(), &held, i == last).await;
                        if !finished && !Arc::ptr_eq(&stream, &self.stream) {
                            if let Some(partitions) = &mut state.partitions {
                                partitions.recover(&stream);
                            }
                            stopped.push(stream);
                        }
                    }
                    // What the last event's `SET done` did not carry (it was skipped,
                    // failed, or is a dead letter), or, with `per_batch`, the batch's
                    // records and acknowledgements.
                    self.flush(&mut connection.clone(), &held).await;
                    self.stop_lost(&held, state, &mut stopped);
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

    /// Key partitions whose held records were not written (their events run again) are
    /// read no further in this batch, and recovered before the next read, as when an
    /// entry in hand cannot be finished: the events of a key stay in order.
    fn stop_lost(&self, held: &Held, state: &mut State, stopped: &mut Vec<Arc<str>>) {
        for stream in held.lost() {
            if Arc::ptr_eq(&stream, &self.stream) || *stream == *self.stream || stopped.contains(&stream) {
                continue;
            }
            if let Some(partitions) = &mut state.partitions {
                partitions.recover(&stream);
            }
            stopped.push(stream);
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
