//! The ways an entry leaves a consumer's hands besides a `done` record awaited in
//! hand: a dead letter (EVENTS.md §6), a lease dropped so a replay runs, and what the
//! batch held back (records with `per_batch`, acknowledgements) sent.

use redis::aio::MultiplexedConnection;

use super::held::{Held, Taken};
use super::{Consumer, Delivery};
use crate::events::lease::Lease;
use crate::events::stream::{millis, now_ms};
use crate::protocol::events::dead_letter_fields;

impl<T: Send + Sync + 'static> Consumer<T> {
    pub(super) async fn release(&self, conn: &mut MultiplexedConnection, lease: &Lease) {
        if let Err(e) = self.bounded(lease.release(conn)).await {
            tracing::debug!(events = self.name, "cannot drop an event's lease; it runs out by itself: {e}");
        }
    }

    /// Sends what the batch holds back, in one transaction (`MULTI` ... `EXEC`): the
    /// `done` records first (`per_batch`), then the acknowledgements, so that an entry
    /// is never acknowledged without its record (Redis refuses the whole transaction
    /// when a command is refused as it is queued: out of memory, no permission). On
    /// failure the acknowledgements are dropped (their records say done, so a
    /// redelivery acknowledges them without running), and the records are lost: those
    /// events stay pending and run again, and their streams are noted in `held` (a key
    /// partition is then recovered). Dropped before it ends (a heartbeat's flush when
    /// the handler finishes), it puts back what it took, to be sent again.
    pub(super) async fn flush(&self, conn: &mut MultiplexedConnection, held: &Held) {
        let Some(taken) = held.take() else { return };
        let mut sending = Sending { held, taken: Some(taken) };
        let Taken { acks, records, .. } = sending.taken.as_ref().expect("taken");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (lease, _) in records {
            lease.record_done(&mut pipe, millis(self.config.processed_ttl));
        }
        acks.add_to(&mut pipe, &self.group);
        let sent = self.bounded(pipe.query_async::<()>(conn)).await;
        let Taken { acks, records, .. } = sending.taken.take().expect("taken");
        let Err(e) = sent else { return };
        if records.is_empty() {
            tracing::debug!(
                events = self.name,
                entries = acks.len(),
                "cannot acknowledge processed events; a redelivery will: {e}"
            );
            return;
        }
        tracing::warn!(
            events = self.name,
            group = %self.group,
            events_unrecorded = records.len(),
            "cannot record events as processed (their handlers succeeded; they stay pending and will run again): {e}"
        );
        held.lose(records.into_iter().map(|(_, stream)| stream));
    }

    /// Moves the entry to the dead-letter stream with `reason`, and acknowledges it, in
    /// one transaction.
    pub(super) async fn dead_letter(
        &self,
        conn: &mut MultiplexedConnection,
        delivery: &Delivery,
        reason: &str,
    ) -> bool {
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
}

/// What a flush took out of [`Held`] while it is being sent: put back if the flush is
/// dropped before its reply is handled.
struct Sending<'a> {
    held: &'a Held,
    taken: Option<Taken>,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken.take() {
            self.held.restore(taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{Held, Sending};
    use crate::events::lease::Lease;

    /// A flush dropped while it awaits Redis (a heartbeat's, when the handler ends)
    /// leaves what it took in `Held`, for the next flush; one that finished does not.
    #[test]
    fn a_flush_dropped_before_its_reply_puts_back_what_it_took() {
        let held = Held::default();
        let stream: Arc<str> = Arc::from("s");
        let leased_at = Instant::now() - Duration::from_secs(5);
        held.record(Lease::new("s:processed:g:1".into(), "c"), &stream, "1-0", leased_at);
        held.ack(&stream, "2-0");
        let sending = Sending { held: &held, taken: held.take() };
        assert!(!held.has_records(), "taken while being sent");
        drop(sending);
        assert!(held.records_older_than(Duration::from_secs(5)), "the record's age is kept");
        let taken = held.take().expect("put back");
        assert_eq!((taken.records.len(), taken.acks.len()), (1, 2));
        let mut finished = Sending { held: &held, taken: Some(taken) };
        let _handled = finished.taken.take();
        drop(finished);
        assert!(held.take().is_none(), "a finished flush puts nothing back");
    }
}
