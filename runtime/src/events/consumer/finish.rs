//! The ways an entry leaves a consumer's hands besides its `done` record: a dead
//! letter (EVENTS.md §6), a lease dropped so a replay runs, and the batch's held-back
//! acknowledgements sent.

use redis::aio::MultiplexedConnection;

use super::acks::Acks;
use super::{Consumer, Delivery};
use crate::events::lease::Lease;
use crate::events::stream::now_ms;
use crate::protocol::events::dead_letter_fields;

impl<T: Send + Sync + 'static> Consumer<T> {
    pub(super) async fn release(&self, conn: &mut MultiplexedConnection, lease: &Lease) {
        if let Err(e) = self.bounded(lease.release(conn)).await {
            tracing::debug!(events = self.name, "cannot drop an event's lease; it runs out by itself: {e}");
        }
    }

    /// Sends the acknowledgements held back. On failure they are dropped: their records
    /// say done, so a redelivery acknowledges them without running.
    pub(super) async fn flush(&self, conn: &mut MultiplexedConnection, acks: &mut Acks) {
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
