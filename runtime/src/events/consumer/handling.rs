//! One entry in hand, to its end: what taking its lease found, the handler run in the
//! publisher's context (panics caught), redelivered after a failure (`XCLAIM`, with
//! backoff) until it succeeds or is a dead letter, and the heartbeat that keeps a slow
//! handler's lease and entry; then the `done` record, awaited before the next handler
//! (`per_event`) or held for the batch's pipeline (`per_batch`) (EVENTS.md §5 steps 3
//! to 5).

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use redis::Value;
use redis::aio::MultiplexedConnection;

use super::held::Held;
use super::{Consumer, Delivery, MAX_RETRY_BACKOFF, Ready};
use crate::config::DoneRecords;
use crate::context::CallContext;
use crate::events::codegen::Dispatch;
use crate::events::lease::{Claim, Lease};
use crate::events::partitions;
use crate::events::stream::{self, millis};
use crate::protocol::events::Event;

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
impl<T: Send + Sync + 'static> Consumer<T> {
    /// One entry, to its end (`true`): recorded as processed after success (or, with
    /// `per_batch`, its record held for the batch's pipeline), or found so (its
    /// acknowledgement joins `held`, sent with the batch's last `SET done`),
    /// redelivered after a failure, or moved to the dead-letter stream. Redis errors,
    /// and another consumer holding the event, leave it pending (`false`), to be claimed
    /// again. `partition_leases`: the owner keys (and marker) to renew while a handler
    /// runs. `last`: the batch's last entry, whose `SET done` carries the `XACK`s.
    pub(super) async fn handle(
        &self,
        connection: &MultiplexedConnection,
        mut delivery: Delivery,
        ready: Ready,
        partition_leases: Option<&(Vec<String>, String)>,
        held: &Held,
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
                held.ack(&delivery.stream, &delivery.entry.id);
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
        let work = self.run_handler(&mut conn, &event, &mut delivery, held);
        let outcome = self.keeping(keeper, &stream, &entry_id, &lease, partition_leases, held, work).await;
        match outcome {
            Outcome::Succeeded
                if self.config.done_records == DoneRecords::PerBatch
                    && *stream != *self.stream
                    && held.is_lost(&stream) =>
            {
                // An earlier event of this key partition was not recorded while this one
                // ran (a flush failed): recorded now, it would be done before that one
                // runs again. Not processed: the partition is recovered, in order.
                tracing::warn!(events = self.name, event = %event.id, "an earlier event of its key could not be recorded; left pending to run after it");
                self.release(&mut conn, &lease).await;
                false
            }
            Outcome::Succeeded if self.config.done_records == DoneRecords::PerBatch => {
                // Written with the batch's others, before their `XACK`s (`held.rs`).
                held.record(lease, &delivery.stream, &delivery.entry.id, at);
                true
            }
            Outcome::Succeeded => {
                // The record first: once it says done, the event is processed, whenever
                // its acknowledgement goes out. The batch's last carries them all.
                let mut complete = redis::pipe();
                lease.record_done(&mut complete, millis(self.config.processed_ttl));
                if last {
                    // One transaction: its own `XACK` never runs if its record is refused.
                    complete.atomic();
                    held.ack(&delivery.stream, &delivery.entry.id);
                    if let Some(taken) = held.take() {
                        taken.acks.add_to(&mut complete, &self.group);
                    }
                }
                let recorded = self.bounded(complete.query_async::<()>(&mut conn)).await;
                match recorded {
                    Ok(()) if last => true,
                    Ok(()) => {
                        held.ack(&delivery.stream, &delivery.entry.id);
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
    /// or acknowledged elsewhere), redelivering after each failure. A failure first
    /// writes the records `held` back (`per_batch`): the batch now waits on a backoff.
    async fn run_handler(
        &self,
        conn: &mut MultiplexedConnection,
        event: &Event,
        delivery: &mut Delivery,
        held: &Held,
    ) -> Outcome {
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
            if held.has_records() {
                self.flush(conn, held).await;
            }
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
    /// event; a dead consumer stops renewing, and both run out together. What the batch
    /// holds back (acknowledgements, and `per_batch`'s records, whose leases are not
    /// renewed) goes out before the first renewal, or sooner, once those records'
    /// leases are a third of their life old. Work that finishes when first polled
    /// (a handler that never waits) starts no heartbeat.
    #[allow(clippy::too_many_arguments)]
    async fn keeping<R>(
        &self,
        mut conn: MultiplexedConnection,
        stream: &str,
        entry_id: &str,
        lease: &Lease,
        partition_leases: Option<&(Vec<String>, String)>,
        held: &Held,
        work: impl Future<Output = R>,
    ) -> R {
        let mut work = std::pin::pin!(work);
        if let Some(result) = work.as_mut().now_or_never() {
            return result;
        }
        let heartbeat = async {
            let third = self.config.claim_idle / 3;
            // `per_batch`: the first tick comes sooner if the held records' leases are
            // a third of their life old before then.
            let mut wait = held.until_records_are(third).map_or(third, |until| until.min(third));
            loop {
                tokio::time::sleep(wait).await;
                wait = third;
                // The records first: their leases are older than the one in hand.
                self.flush(&mut conn, held).await;
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
}
