//! What a batch holds back. Acknowledgements, in both modes: an entry whose record says
//! `done` is processed whatever happens to its `XACK` (a redelivery finds the record
//! and only acknowledges), so a batch's `XACK`s go out together, one command per stream
//! with every id (EVENTS.md §5 step 4). And with `done_records = "per_batch"`, the
//! `done` records of the handlers that succeeded, each with its lease, written in one
//! pipeline before those `XACK`s: an entry is never acknowledged before its record.
//!
//! Shared by the handler's retries and the heartbeat that runs beside it (either may
//! send what is held), so it sits behind a lock that is never held across an await.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::events::lease::Lease;

/// A batch's held-back records and acknowledgements.
#[derive(Default)]
pub(super) struct Held {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    acks: Acks,
    /// Leases whose handlers succeeded, to be turned into `done` records, by stream.
    records: Vec<(Lease, Arc<str>)>,
    /// When the batch that holds the oldest record took its lease (`at`, after the
    /// reply of its `SET NX`; the leases of finished events are never renewed).
    oldest: Option<Instant>,
    /// Streams some of whose held records could not be written: their events run
    /// again, so a key partition among them must not be read on past them.
    lost: Vec<Arc<str>>,
}

/// What one send takes out of [`Held`].
#[derive(Default)]
pub(super) struct Taken {
    pub(super) acks: Acks,
    pub(super) records: Vec<(Lease, Arc<str>)>,
    oldest: Option<Instant>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An entry found processed (or recorded in a pipeline of its own): only its `XACK`.
    pub(super) fn ack(&self, stream: &Arc<str>, entry_id: &str) {
        self.lock().acks.push(stream, entry_id);
    }

    /// A handler that succeeded (`per_batch`): its record, then its `XACK`. `leased_at`:
    /// when its lease was taken, which bounds how long the record may wait.
    pub(super) fn record(&self, lease: Lease, stream: &Arc<str>, entry_id: &str, leased_at: Instant) {
        let mut inner = self.lock();
        inner.acks.push(stream, entry_id);
        inner.records.push((lease, Arc::clone(stream)));
        inner.oldest = Some(inner.oldest.map_or(leased_at, |oldest| oldest.min(leased_at)));
    }

    /// Whether records are held.
    pub(super) fn has_records(&self) -> bool {
        !self.lock().records.is_empty()
    }

    /// Whether a held record's lease is at least `age` old: it is then written before
    /// anything else waits on the batch, so that no lease runs out unrecorded.
    pub(super) fn records_older_than(&self, age: Duration) -> bool {
        self.lock().oldest.is_some_and(|oldest| oldest.elapsed() >= age)
    }

    /// Everything held, to be sent; `None` when nothing is.
    pub(super) fn take(&self) -> Option<Taken> {
        let mut inner = self.lock();
        if inner.acks.is_empty() && inner.records.is_empty() {
            return None;
        }
        Some(Taken {
            acks: std::mem::take(&mut inner.acks),
            records: std::mem::take(&mut inner.records),
            oldest: inner.oldest.take(),
        })
    }

    /// Puts back what a send took and did not finish (its future was dropped, as a
    /// heartbeat's is when the handler ends): a later send writes it again, which is
    /// harmless if Redis did run it (`SET done` and `XACK` are idempotent).
    pub(super) fn restore(&self, taken: Taken) {
        let mut inner = self.lock();
        for (stream, ids) in taken.acks.by_stream {
            for id in ids {
                inner.acks.push(&stream, &id);
            }
        }
        inner.records.extend(taken.records);
        inner.oldest = match (inner.oldest, taken.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// How long until the oldest held record is `age` old (zero if it is); `None` when
    /// no record is held.
    pub(super) fn until_records_are(&self, age: Duration) -> Option<Duration> {
        self.lock().oldest.map(|oldest| age.saturating_sub(oldest.elapsed()))
    }

    /// Whether records of `stream` could not be written (and were not yet taken by
    /// [`Held::lost`]): an event of that stream must not be recorded after them.
    pub(super) fn is_lost(&self, stream: &str) -> bool {
        self.lock().lost.iter().any(|s| **s == *stream)
    }

    /// The records of `streams` were not written.
    pub(super) fn lose(&self, streams: impl IntoIterator<Item = Arc<str>>) {
        let mut inner = self.lock();
        for stream in streams {
            if !inner.lost.iter().any(|s| **s == *stream) {
                inner.lost.push(stream);
            }
        }
    }

    /// The streams whose records were lost since the last call.
    pub(super) fn lost(&self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.lock().lost)
    }
}

/// Entries recorded as processed (or found so, or about to be) and not yet
/// acknowledged, by stream.
#[derive(Default)]
pub(super) struct Acks {
    by_stream: Vec<(Arc<str>, Vec<String>)>,
}

impl Acks {
    fn push(&mut self, stream: &Arc<str>, entry_id: &str) {
        match self.by_stream.iter_mut().find(|(s, _)| Arc::ptr_eq(s, stream) || **s == **stream) {
            Some((_, ids)) => ids.push(entry_id.to_owned()),
            None => self.by_stream.push((Arc::clone(stream), vec![entry_id.to_owned()])),
        }
    }

    fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }

    /// Adds `XACK {stream} {group} {id} ...` for each stream to `pipe`.
    pub(super) fn add_to(&self, pipe: &mut redis::Pipeline, group: &str) {
        for (stream, ids) in &self.by_stream {
            pipe.cmd("XACK").arg(&**stream).arg(group).arg(ids).ignore();
        }
    }

    /// How many entries are held back.
    pub(super) fn len(&self) -> usize {
        self.by_stream.iter().map(|(_, ids)| ids.len()).sum()
    }
}
