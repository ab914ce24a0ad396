//! The in-process call-id store: completed calls in moka, running claims beside it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::policy::EvictionPolicy;
use tokio::sync::watch;

use super::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};

/// The default time an entry lives after its run completes: 5 minutes, well beyond
/// any retry window a client can have (timeout x tries + backoff).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The default number of entries: 100,000, enough for ~6,600 calls/s over the default
/// retry window of 15 s (5 s timeout x 3 tries).
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// Running claims are split over this many locks, so concurrent calls rarely share one.
const SHARDS: usize = 64;

/// The call-id store of a single node, in memory.
///
/// Completed calls live `ttl` after their run completes and at most `capacity` of them
/// are kept, least recently used evicted first. The guarantee holds for a duplicate
/// that arrives while its entry is kept: size the store so that `capacity` >= peak
/// calls/s x the longest retry window, or an entry can be evicted before its retry
/// arrives, and the retry runs the method again. A claim whose run takes longer than
/// `ttl` can be claimed again. A restart loses every entry. Several replicas need a
/// shared store.
///
/// Layout: a completed call is one moka entry keyed by a 128-bit digest of its
/// [`CallKey`] (the key's strings are not kept), holding the body fingerprint, the
/// status and the body. Calls still running sit in a small sharded map with a channel
/// for their waiters; they leave it when they complete.
pub struct MemoryCallStore {
    done: moka::sync::Cache<u128, Done>,
    running: Box<[Mutex<Claims>]>,
    /// Seeds the key digests: secret, so that clients cannot choose colliding keys.
    seed: u64,
    ttl: Duration,
    next_ticket: AtomicU64,
}

/// The running claims of one shard, by key digest.
type Claims = HashMap<u128, Arc<Running>>;

/// A completed call, as kept.
#[derive(Clone)]
struct Done {
    fingerprint: u128,
    status: u16,
    body: Bytes,
}

impl Done {
    fn reply(self) -> StoredReply {
        StoredReply { status: self.status, body: self.body }
    }
}

/// A claimed call whose run has not finished; its ticket holds it too, so the run can
/// always wake its waiters.
struct Running {
    fingerprint: u128,
    claimed: Instant,
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
        let done = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            // LRU rather than moka's default TinyLFU, which may refuse to admit a new
            // entry at all: a completed call must always be recorded.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        let running = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes"));
        Self { done, running, seed, ttl, next_ticket: AtomicU64::new(1) }
    }

    /// How many calls the store holds, completed or running (approximate: moka applies
    /// writes lazily).
    pub fn len(&self) -> u64 {
        self.done.run_pending_tasks();
        let running: usize = self.running.iter().map(|shard| lock(shard).len()).sum();
        self.done.entry_count() + running as u64
    }

    /// Whether the store holds no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shard of running claims `digest` belongs to, locked. Claims, completions and
    /// releases of one key all happen under its shard's lock, so they exclude each other.
    fn shard(&self, digest: u128) -> MutexGuard<'_, Claims> {
        lock(&self.running[digest as usize % SHARDS])
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let digest = key.digest(self.seed);
        let mut running = self.shard(digest);
        if let Some(done) = self.done.get(&digest) {
            return match done.fingerprint == fingerprint {
                true => Claim::Done(done.reply()),
                false => Claim::Mismatch,
            };
        }
        match running.get(&digest) {
            Some(claim) if claim.claimed.elapsed() < self.ttl => match claim.fingerprint == fingerprint {
                true => Claim::Running,
                false => Claim::Mismatch,
            },
            // Free, or a claim older than the time to live: it may be claimed (again).
            _ => {
                let claim = Arc::new(Running {
                    fingerprint,
                    claimed: Instant::now(),
                    state: watch::Sender::new(State::Running),
                });
                running.insert(digest, Arc::clone(&claim));
                let token = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                Claim::Run(Ticket::with_local(token, claim))
            }
        }
    }

    /// Records the final state of the claim `ticket` holds, and wakes its waiters.
    fn finish(&self, key: &CallKey, ticket: &Ticket, state: State) {
        let Some(claim) = ticket.local().and_then(|local| Arc::clone(local).downcast::<Running>().ok()) else {
            tracing::error!(%key, "a ticket from another store was handed to the in-memory call store");
            return;
        };
        let digest = key.digest(self.seed);
        let owned = {
            let mut running = self.shard(digest);
            let owned = running.get(&digest).is_some_and(|current| Arc::ptr_eq(current, &claim));
            if owned {
                running.remove(&digest);
                if let State::Done(reply) = &state {
                    // Inserted under the shard's lock: a claim never sees the call in
                    // neither place.
                    let done = Done { fingerprint: claim.fingerprint, status: reply.status, body: reply.body.clone() };
                    self.done.insert(digest, done);
                }
            }
            owned
        };
        if !owned && matches!(state, State::Done(_)) {
            tracing::warn!(%key, "a call finished after its claim expired; its result was not stored");
        }
        claim.state.send_replace(state);
    }

    /// What a duplicate of `key` can wait on: the stored reply, or its run's channel.
    fn find(&self, key: &CallKey, fingerprint: u128) -> Option<Result<StoredReply, watch::Receiver<State>>> {
        let digest = key.digest(self.seed);
        let running = self.shard(digest);
        if let Some(done) = self.done.get(&digest) {
            // A call of another body is another call: this request's own call is gone.
            return (done.fingerprint == fingerprint).then(|| Ok(done.reply()));
        }
        let claim = running.get(&digest).filter(|claim| claim.fingerprint == fingerprint)?;
        Some(Err(claim.state.subscribe()))
    }
}

/// A poisoned shard only means a panic elsewhere while it was held; its map is still
/// consistent (every change is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CallStore for MemoryCallStore {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        Box::pin(std::future::ready(Ok(self.claim_now(key, fingerprint))))
    }

    fn claim_at_once(&self, key: &CallKey, fingerprint: u128) -> Option<Result<Claim, super::StoreError>> {
        Some(Ok(self.claim_now(key, fingerprint)))
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>> {
        let found = self.find(key, fingerprint);
        Box::pin(async move {
            let mut receiver = match found {
                None => return Ok(None),
                Some(Ok(reply)) => return Ok(Some(reply)),
                Some(Err(receiver)) => receiver,
            };
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
                // Released, or the claim was dropped without a result.
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
    use crate::context::{UserContext, UserType};

    fn key(user: Option<&str>) -> CallKey {
        CallKey::new(
            uuid::Uuid::from_u128(7),
            "Catalog",
            "get",
            user.map(|id| UserContext::new(UserType::Customer, id).unwrap()),
        )
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
        let key = CallKey::new(uuid::Uuid::from_u128(1), "S", "m", None);
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
