//! Acknowledgements held back within a batch: an entry whose record says `done` is
//! processed whatever happens to its `XACK` (a redelivery finds the record and only
//! acknowledges), so a batch's `XACK`s go out together, one command per stream with
//! every id, riding on the last event's `SET done` (EVENTS.md §5 step 4). Redis then
//! runs one `XACK` per batch instead of one per event.

use std::sync::Arc;

/// Entries recorded as processed (or found so) and not yet acknowledged, by stream.
#[derive(Default)]
pub(super) struct Acks {
    by_stream: Vec<(Arc<str>, Vec<String>)>,
}

impl Acks {
    pub(super) fn push(&mut self, stream: &Arc<str>, entry_id: &str) {
        match self.by_stream.iter_mut().find(|(s, _)| Arc::ptr_eq(s, stream) || **s == **stream) {
            Some((_, ids)) => ids.push(entry_id.to_owned()),
            None => self.by_stream.push((Arc::clone(stream), vec![entry_id.to_owned()])),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
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

    pub(super) fn clear(&mut self) {
        self.by_stream.clear();
    }
}
