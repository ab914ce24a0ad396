//! The in-process call-id store: a sharded map of running and completed calls, with
//! completed calls expiring in the order they completed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};

/// The default time an entry lives after its run completes: 5 minutes, well beyond
/// any retry window a client can have (timeout x tries + backoff).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The default number of entries: 100,000, enough for ~6,600 calls/s over the default
/// retry window of 15 s (5 s timeout x 3 tries).
pub const DEFAULT_CAPACITY: u64 = 100_000;

/// The default bound on the bodies the store keeps: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// At most this many shards, each behind its own lock...
const MAX_SHARDS: u64 = 64;
/// ...and at least this many entries per shard, so that a small store is one shard
/// with an exact capacity.
const MIN_SHARD_CAPACITY: u64 = 1024;

/// The call-id store of a single node, in memory.
///
/// Completed calls live `ttl` after their run completes, and at most about `capacity`
/// of them, with at most about [`max_bytes`](Self::with_max_bytes) of bodies, are
/// kept: beyond either, the oldest completed is dropped first (the call least likely
/// to be retried still). The guarantee holds for a duplicate that arrives
/// while its entry is kept: size the store so that `capacity` >= peak calls/s x the
/// longest retry window, or an entry can be dropped before its retry arrives, and the
/// retry runs the method again. A claim whose run takes longer than `ttl` can be
/// claimed again. A restart loses every entry. Several replicas need a shared store.
///
/// Layout, for speed and size (docs/BENCHMARKS.md): keys are a 128-bit digest of the
/// [`CallKey`] (its strings are not kept); a completed call is its digest, body
/// fingerprint, status and body, plus a place in its shard's expiry queue, about 200
/// bytes beside the body. The keys are spread over up to 64 shards, each a plain map
/// behind a mutex; a running call also has a `Notify` its duplicates wait on.
pub struct MemoryCallStore {
    shards: Box<[Mutex<Shard>]>,
    /// Completed calls a shard keeps.
    shard_capacity: usize,
    /// The bytes of the bodies the whole store keeps, and its bound: one large reply
    /// must not empty its shard while the store is far below its budget.
    bytes: AtomicUsize,
    max_bytes: usize,
    ttl: Duration,
    /// Seeds the key digests: secret, so that clients cannot choose colliding keys.
    seed: u64,
    /// When the store was made: expiry times are kept as nanoseconds since then.
    epoch: Instant,
    next_ticket: AtomicU64,
}

#[derive(Default)]
struct Shard {
    running: HashMap<u128, Arc<Running>>,
    done: HashMap<u128, Done>,
    /// Completed calls in the order they completed, which is also the order they
    /// expire in (every entry lives the same `ttl`).
    expiry: VecDeque<Expiry>,
}

/// A completed call, as kept.
struct Done {
    fingerprint: u128,
    body: Bytes,
    /// The claim's ticket: tells this entry from a later one of the same key.
    token: u64,
    status: u16,
}

/// A completed call's place in the expiry queue.
struct Expiry {
    digest: u128,
    token: u64,
    /// Nanoseconds after the store's `epoch`.
    at: u64,
}

/// A claimed call whose run has not finished; its ticket holds it too, so the run can
/// always wake its waiters.
struct Running {
    /// Its key's digest, so that finishing it needs no second digest of the key.
    digest: u128,
    fingerprint: u128,
    claimed: Instant,
    /// Set once, when the run completes (`Some`) or is released (`None`).
    outcome: OnceLock<Option<StoredReply>>,
    finished: Notify,
}

impl Default for MemoryCallStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl MemoryCallStore {
    /// A store keeping about `capacity` completed calls, each for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let shards = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let shard_capacity = usize::try_from(capacity.div_ceil(shards).max(1)).unwrap_or(usize::MAX);
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes"));
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity,
            bytes: AtomicUsize::new(0),
            max_bytes: usize::try_from(DEFAULT_MAX_BYTES).unwrap_or(usize::MAX),
            ttl,
            seed,
            epoch: Instant::now(),
            next_ticket: AtomicU64::new(1),
        }
    }

    /// Keeps at most about `max_bytes` of reply bodies (default [`DEFAULT_MAX_BYTES`]);
    /// the newest completed call is always kept, however large.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        self
    }

    /// How many calls the store holds, completed or running.
    pub fn len(&self) -> u64 {
        let now = self.now();
        let held = self.shards.iter().map(|shard| {
            let mut shard = lock(shard);
            shard.expire(now, &self.bytes);
            shard.done.len() + shard.running.len()
        });
        held.sum::<usize>() as u64
    }

    /// Whether the store holds no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The shard `digest` belongs to, locked, with its expired calls dropped. Claims,
    /// completions and releases of one key all happen under this lock, so they
    /// exclude each other.
    fn shard(&self, digest: u128) -> MutexGuard<'_, Shard> {
        let mut shard = lock(&self.shards[(digest % self.shards.len() as u128) as usize]);
        shard.expire(self.now(), &self.bytes);
        shard
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let digest = key.digest(self.seed);
        let mut shard = self.shard(digest);
        if let Some(done) = shard.done.get(&digest) {
            return match done.fingerprint == fingerprint {
                true => Claim::Done(StoredReply { status: done.status, body: done.body.clone() }),
                false => Claim::Mismatch,
            };
        }
        match shard.running.get(&digest) {
            Some(claim) if claim.claimed.elapsed() < self.ttl => match claim.fingerprint == fingerprint {
                true => Claim::Running,
                false => Claim::Mismatch,
            },
            // Free, or a claim older than the time to live: it may be claimed (again).
            _ => {
                let claim = Arc::new(Running {
                    digest,
                    fingerprint,
                    claimed: Instant::now(),
                    outcome: OnceLock::new(),
                    finished: Notify::new(),
                });
                shard.running.insert(digest, Arc::clone(&claim));
                let token = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                Claim::Run(Ticket::with_local(token, claim))
            }
        }
    }

    /// Records the final state of the claim `ticket` holds, and wakes its waiters.
    fn finish(&self, key: &CallKey, ticket: &Ticket, outcome: Option<StoredReply>) {
        let Some(claim) = ticket.local().and_then(|local| Arc::clone(local).downcast::<Running>().ok()) else {
            tracing::error!(%key, "a ticket from another store was handed to the in-memory call store");
            return;
        };
        let digest = claim.digest;
        let owned = {
            let mut shard = self.shard(digest);
            let owned = shard.running.get(&digest).is_some_and(|current| Arc::ptr_eq(current, &claim));
            if owned {
                shard.running.remove(&digest);
                if let Some(reply) = &outcome {
                    let at = self.now().saturating_add(u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX));
                    let (token, body) = (ticket.token(), reply.body.clone());
                    self.bytes.fetch_add(body.len(), Ordering::Relaxed);
                    shard
                        .done
                        .insert(digest, Done { fingerprint: claim.fingerprint, body, token, status: reply.status });
                    shard.expiry.push_back(Expiry { digest, token, at });
                    shard.evict_beyond(self.shard_capacity, self.max_bytes, &self.bytes, reply.body.len());
                }
            }
            owned
        };
        if !owned && outcome.is_some() {
            tracing::warn!(%key, "a call finished after its claim expired; its result was not stored");
        }
        let _ = claim.outcome.set(outcome);
        claim.finished.notify_waiters();
    }

    /// What a duplicate of `key` can wait on: the stored reply, or its run.
    fn find(&self, key: &CallKey, fingerprint: u128) -> Option<Result<StoredReply, Arc<Running>>> {
        let digest = key.digest(self.seed);
        let shard = self.shard(digest);
        if let Some(done) = shard.done.get(&digest) {
            // A call of another body is another call: this request's own call is gone.
            let reply = StoredReply { status: done.status, body: done.body.clone() };
            return (done.fingerprint == fingerprint).then_some(Ok(reply));
        }
        let claim = shard.running.get(&digest).filter(|claim| claim.fingerprint == fingerprint)?;
        Some(Err(Arc::clone(claim)))
    }
}

impl Shard {
    /// Drops the completed calls whose time is up: the front of the queue.
    fn expire(&mut self, now: u64, bytes: &AtomicUsize) {
        while self.expiry.front().is_some_and(|oldest| oldest.at <= now) {
            self.drop_oldest(bytes);
        }
    }

    /// After a call of `added` bytes completed: drops this shard's oldest completed
    /// calls (never the newest) until it holds at most `capacity`, and while the store
    /// is over `max_bytes`, until the new call is paid for. The budget is the store's,
    /// not the shard's: one large reply in a store far below it drops nothing.
    fn evict_beyond(&mut self, capacity: usize, max_bytes: usize, bytes: &AtomicUsize, added: usize) {
        while self.done.len() > capacity && self.expiry.len() > 1 {
            self.drop_oldest(bytes);
        }
        let mut freed = 0;
        while bytes.load(Ordering::Relaxed) > max_bytes && freed < added && self.expiry.len() > 1 {
            freed += self.drop_oldest(bytes);
        }
    }

    /// Drops the oldest completed call; returns the bytes freed.
    fn drop_oldest(&mut self, bytes: &AtomicUsize) -> usize {
        let Some(oldest) = self.expiry.pop_front() else { return 0 };
        // The key may have completed again since (after an expiry): keep that one.
        if self.done.get(&oldest.digest).is_some_and(|done| done.token == oldest.token) {
            let dropped = self.done.remove(&oldest.digest).expect("just found");
            bytes.fetch_sub(dropped.body.len(), Ordering::Relaxed);
            return dropped.body.len();
        }
        0
    }
}

/// A poisoned shard only means a panic elsewhere while it was held; its maps are
/// still consistent (every change is one insert or remove).
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
            let claim = match found {
                None => return Ok(None),
                Some(Ok(reply)) => return Ok(Some(reply)),
                Some(Err(claim)) => claim,
            };
            // Registered before the outcome is read, so a finish in between still wakes it.
            let finished = claim.finished.notified();
            let mut finished = std::pin::pin!(finished);
            finished.as_mut().enable();
            if claim.outcome.get().is_none() {
                match timeout {
                    Some(timeout) => {
                        let _ = tokio::time::timeout(timeout, finished).await;
                    }
                    None => finished.await,
                }
            }
            // `None` after a timeout, or when the run was released.
            Ok(claim.outcome.get().cloned().flatten())
        })
    }

    fn complete<'a>(&'a self, key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()> {
        self.finish(key, &ticket, Some(reply));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        self.finish(key, &ticket, None);
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
    async fn beyond_its_capacity_the_store_drops_the_oldest_completed_call() {
        let store = MemoryCallStore::new(3, DEFAULT_TTL);
        let key = |n: u128| CallKey::new(uuid::Uuid::from_u128(n), "Catalog", "get", None);
        for n in 1..=4 {
            let Claim::Run(ticket) = store.claim(&key(n), 1).await.unwrap() else { panic!("a fresh key runs") };
            store.complete(&key(n), ticket, reply("done")).await.unwrap();
        }
        assert_eq!(store.len(), 3);
        assert!(matches!(store.claim(&key(1), 1).await.unwrap(), Claim::Run(_)), "the oldest was dropped");
        for n in 2..=4 {
            assert_eq!(store.claim(&key(n), 1).await.unwrap(), Claim::Done(reply("done")), "call {n} is kept");
        }
    }

    #[tokio::test]
    async fn beyond_its_byte_budget_the_store_drops_the_oldest_but_keeps_the_newest() {
        let store = MemoryCallStore::new(100, DEFAULT_TTL).with_max_bytes(10);
        let key = |n: u128| CallKey::new(uuid::Uuid::from_u128(n), "Catalog", "get", None);
        for (n, body) in [(1, "1234"), (2, "5678"), (3, "abcd"), (4, "a reply over the budget")] {
            let Claim::Run(ticket) = store.claim(&key(n), 1).await.unwrap() else { panic!("a fresh key runs") };
            store.complete(&key(n), ticket, reply(body)).await.unwrap();
            if n == 3 {
                // 12 bytes: the oldest went.
                assert!(matches!(store.claim(&key(1), 1).await.unwrap(), Claim::Run(_)));
            }
        }
        assert_eq!(store.claim(&key(4), 1).await.unwrap(), Claim::Done(reply("a reply over the budget")));
        assert!(matches!(store.claim(&key(3), 1).await.unwrap(), Claim::Run(_)), "dropped for the newest");
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
