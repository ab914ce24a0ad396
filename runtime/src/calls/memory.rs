//! The in-process call-id store, on moka.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use tokio::sync::watch;

use super::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};

/// The default time an entry lives after its run completes: 5 minutes, well beyond
/// any retry window a client can have (timeout x tries + backoff).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The default number of entries: 100,000 (~10,000 calls/s over 10 s of retries, or
/// ~330 calls/s over the whole default TTL).
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// The call-id store of a single node, in memory.
///
/// Entries live `ttl` after their run completes (or after their claim, while it runs)
/// and at most `capacity` of them are kept, least recently used evicted first. The
/// guarantee holds for a duplicate that arrives while its entry is kept: size the
/// store so that `capacity` >= peak calls/s x the longest retry window, or an entry
/// can be evicted before its retry arrives, and the retry runs the method again. A
/// restart loses every entry. Several replicas need a shared store.
pub struct MemoryCallStore {
    slots: moka::sync::Cache<CallKey, Arc<Slot>>,
    next_ticket: AtomicU64,
}

struct Slot {
    fingerprint: u128,
    ticket: u64,
    state: watch::Sender<State>,
}

#[derive(Clone)]
enum State {
    Running,
    Done(StoredReply),
    Released,
}

impl Default for MemoryCallStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl MemoryCallStore {
    /// A store keeping at most `capacity` calls, each for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let slots = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            // LRU rather than moka's default TinyLFU, which may refuse to admit a new
            // entry at all: a claim must always be recorded.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { slots, next_ticket: AtomicU64::new(1) }
    }

    /// How many calls the store holds (approximate: moka applies writes lazily).
    pub fn len(&self) -> u64 {
        self.slots.run_pending_tasks();
        self.slots.entry_count()
    }

    /// Whether the store holds no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let entry = self
            .slots
            .entry_by_ref(key)
            .or_insert_with(|| Arc::new(Slot { fingerprint, ticket, state: watch::Sender::new(State::Running) }));
        if entry.is_fresh() {
            return Claim::Run(Ticket(ticket));
        }
        let slot = entry.into_value();
        if slot.fingerprint != fingerprint {
            return Claim::Mismatch;
        }
        match &*slot.state.borrow() {
            State::Done(reply) => Claim::Done(reply.clone()),
            // Released: the slot is on its way out; the retry will find the key free.
            State::Running | State::Released => Claim::Running,
        }
    }

    /// Applies `finish` to the slot `ticket` owns, if it still owns `key`.
    fn finish(&self, key: &CallKey, ticket: Ticket, state: State) {
        let mut owned = None;
        self.slots.entry_by_ref(key).and_compute_with(|entry| match entry {
            Some(entry) if entry.value().ticket == ticket.0 => {
                let slot = entry.into_value();
                let op = match state {
                    // Put again: the entry's time to live restarts at completion.
                    State::Done(_) => Op::Put(Arc::clone(&slot)),
                    _ => Op::Remove,
                };
                owned = Some(slot);
                op
            }
            _ => Op::Nop,
        });
        match owned {
            Some(slot) => {
                slot.state.send_replace(state);
            }
            None => tracing::warn!(%key, "a call finished after its call-id entry expired; its result was not stored"),
        }
    }
}

impl CallStore for MemoryCallStore {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        Box::pin(std::future::ready(Ok(self.claim_now(key, fingerprint))))
    }

    fn wait<'a>(&'a self, key: &'a CallKey, timeout: Option<Duration>) -> StoreFuture<'a, Option<StoredReply>> {
        let receiver = self.slots.get(key).map(|slot| slot.state.subscribe());
        Box::pin(async move {
            let Some(mut receiver) = receiver else { return Ok(None) };
            let finished = receiver.wait_for(|state| !matches!(state, State::Running));
            let state = match timeout {
                Some(timeout) => match tokio::time::timeout(timeout, finished).await {
                    Ok(state) => state.map(|s| s.clone()),
                    Err(_) => return Ok(None),
                },
                None => finished.await.map(|s| s.clone()),
            };
            Ok(match state {
                Ok(State::Done(reply)) => Some(reply),
                // Released, or the slot was dropped without a result.
                _ => None,
            })
        })
    }

    fn complete<'a>(&'a self, key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()> {
        self.finish(key, ticket, State::Done(reply));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        self.finish(key, ticket, State::Released);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: Option<&str>) -> CallKey {
        CallKey::new(uuid::Uuid::from_u128(7), "Catalog", "get", user.map(Arc::from))
    }

    fn reply(body: &'static str) -> StoredReply {
        StoredReply { status: 200, body: bytes::Bytes::from_static(body.as_bytes()) }
    }

    #[tokio::test]
    async fn first_claim_runs_then_duplicates_wait_and_replay() {
        let store = MemoryCallStore::default();
        let Claim::Run(ticket) = store.claim(&key(None), 1).await.unwrap() else { panic!("the first claim runs") };
        assert_eq!(store.claim(&key(None), 1).await.unwrap(), Claim::Running);
        let waiting_key = key(None);
        let waiter = store.wait(&waiting_key, None);
        store.complete(&key(None), ticket, reply("42")).await.unwrap();
        assert_eq!(waiter.await.unwrap(), Some(reply("42")));
        assert_eq!(store.claim(&key(None), 1).await.unwrap(), Claim::Done(reply("42")));
    }

    #[tokio::test]
    async fn another_body_is_a_mismatch_and_another_user_is_another_call() {
        let store = MemoryCallStore::default();
        assert!(matches!(store.claim(&key(None), 1).await.unwrap(), Claim::Run(_)));
        assert_eq!(store.claim(&key(None), 2).await.unwrap(), Claim::Mismatch);
        assert!(matches!(store.claim(&key(Some("customer/9")), 1).await.unwrap(), Claim::Run(_)));
    }

    #[tokio::test]
    async fn a_released_claim_wakes_waiters_empty_handed_and_frees_the_key() {
        let store = MemoryCallStore::default();
        let Claim::Run(ticket) = store.claim(&key(None), 1).await.unwrap() else { panic!("runs") };
        let waiting_key = key(None);
        let waiter = store.wait(&waiting_key, None);
        store.release(&key(None), ticket).await.unwrap();
        assert_eq!(waiter.await.unwrap(), None);
        assert!(matches!(store.claim(&key(None), 1).await.unwrap(), Claim::Run(_)));
    }

    #[tokio::test]
    async fn a_stale_ticket_cannot_complete_a_newer_claim() {
        let store = MemoryCallStore::default();
        let Claim::Run(old) = store.claim(&key(None), 1).await.unwrap() else { panic!("runs") };
        store.release(&key(None), old).await.unwrap();
        let Claim::Run(new) = store.claim(&key(None), 1).await.unwrap() else { panic!("runs again") };
        store.complete(&key(None), old, reply("stale")).await.unwrap();
        assert_eq!(store.claim(&key(None), 1).await.unwrap(), Claim::Running);
        store.complete(&key(None), new, reply("fresh")).await.unwrap();
        assert_eq!(store.claim(&key(None), 1).await.unwrap(), Claim::Done(reply("fresh")));
    }

    #[tokio::test]
    async fn a_wait_that_times_out_returns_nothing() {
        let store = MemoryCallStore::default();
        assert!(matches!(store.claim(&key(None), 1).await.unwrap(), Claim::Run(_)));
        assert_eq!(store.wait(&key(None), Some(Duration::from_millis(1))).await.unwrap(), None);
    }
}
