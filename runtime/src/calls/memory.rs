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

/// The default number of entries: 100,000, enough for ~6,600 calls/s over the default
/// retry window of 15 s (5 s timeout x 3 tries).
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
        let token = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let fresh = Arc::new(Slot { fingerprint, state: watch::Sender::new(State::Running) });
        // Claims, completions and releases all go through `and_compute_with`, so they
        // exclude each other per key.
        let mut found = None;
        self.slots.entry_by_ref(key).and_compute_with(|entry| match entry {
            Some(entry) => {
                found = Some(entry.into_value());
                Op::Nop
            }
            None => Op::Put(Arc::clone(&fresh)),
        });
        let Some(slot) = found else {
            // The ticket holds the slot, so the run can always finish it and wake its
            // waiters, even after the entry has expired or been evicted.
            return Claim::Run(Ticket::with_local(token, fresh));
        };
        if slot.fingerprint != fingerprint {
            return Claim::Mismatch;
        }
        match &*slot.state.borrow() {
            State::Done(reply) => Claim::Done(reply.clone()),
            // Released: the slot is on its way out; the retry will find the key free.
            State::Running | State::Released => Claim::Running,
        }
    }

    /// Records the final state of the claim `ticket` holds, and wakes its waiters.
    fn finish(&self, key: &CallKey, ticket: &Ticket, state: State) {
        let Some(slot) = ticket.local().and_then(|local| Arc::clone(local).downcast::<Slot>().ok()) else {
            tracing::error!(%key, "a ticket from another store was handed to the in-memory call store");
            return;
        };
        let mut owned = false;
        self.slots.entry_by_ref(key).and_compute_with(|entry| match entry {
            Some(entry) if Arc::ptr_eq(entry.value(), &slot) => {
                owned = true;
                match state {
                    // Put again: the entry's time to live restarts at completion.
                    State::Done(_) => Op::Put(Arc::clone(&slot)),
                    _ => Op::Remove,
                }
            }
            _ => Op::Nop,
        });
        if !owned && matches!(state, State::Done(_)) {
            tracing::warn!(%key, "a call finished after its call-id entry expired; its result was not stored");
        }
        slot.state.send_replace(state);
    }
}

impl CallStore for MemoryCallStore {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        Box::pin(std::future::ready(Ok(self.claim_now(key, fingerprint))))
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>> {
        // A slot of another body is another call: this request's own call is gone.
        let receiver =
            self.slots.get(key).filter(|slot| slot.fingerprint == fingerprint).map(|slot| slot.state.subscribe());
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
        self.finish(key, &ticket, State::Done(reply));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        self.finish(key, &ticket, State::Released);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: Option<&str>) -> CallKey {
        CallKey::new(uuid::Uuid::from_u128(7), "Catalog", "get", user.map(Arc::from), None)
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
        let waiter = store.wait(&waiting_key, 1, None);
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
        let waiter = store.wait(&waiting_key, 1, None);
        store.release(&key(None), ticket).await.unwrap();
        assert_eq!(waiter.await.unwrap(), None);
        assert!(matches!(store.claim(&key(None), 1).await.unwrap(), Claim::Run(_)));
    }

    #[tokio::test]
    async fn a_stale_ticket_cannot_complete_a_newer_claim() {
        let store = MemoryCallStore::default();
        let Claim::Run(old) = store.claim(&key(None), 1).await.unwrap() else { panic!("runs") };
        store.release(&key(None), old.clone()).await.unwrap();
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
        assert_eq!(store.wait(&key(None), 1, Some(Duration::from_millis(1))).await.unwrap(), None);
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    /// Regression: a run that outlived its entry's time to live never woke its waiters.
    #[tokio::test]
    async fn a_run_that_outlives_its_entry_still_wakes_its_waiters() {
        let store = MemoryCallStore::new(10, Duration::from_millis(20));
        let key = CallKey::new(uuid::Uuid::from_u128(1), "S", "m", None, None);
        let Claim::Run(ticket) = store.claim(&key, 1).await.unwrap() else { panic!("runs") };
        let waiter = store.wait(&key, 1, None);
        // Not synchronisation: the entry's time to live has to pass on the clock.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let reply = StoredReply { status: 200, body: bytes::Bytes::from_static(b"1") };
        store.complete(&key, ticket, reply.clone()).await.unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("the waiter wakes");
        assert_eq!(woken.unwrap(), Some(reply));
    }
}
