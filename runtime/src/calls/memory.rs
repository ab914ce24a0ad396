//! The in-process call-id store: a sharded map of running and completed calls, with
//! completed calls expiring in the order they completed.

mod sync;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use self::sync::{AtomicU64, Mutex, MutexGuard, OnceLock};
use super::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};
use crate::protocol::ErrorKind;
use crate::protocol::reply::framework_error;

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
/// ...at least this many entries per shard, so that a small store is one shard with an
/// exact capacity...
const MIN_SHARD_CAPACITY: u64 = 1024;
/// ...and at least this much of the byte budget per shard: a shard keeps no reply
/// larger than its share, so a small budget is split over fewer shards.
const MIN_SHARD_BYTES: u64 = 1 << 20;
/// A shard is made ready for at most this many completed calls; beyond, it grows.
const MAX_PRESIZED_SHARD: usize = 1 << 16;

/// The call-id store of a single node, in memory.
///
/// Completed calls live `ttl` after their run completes, and at most about `capacity`
/// of them, with at most [`max_bytes`](Self::with_max_bytes) of bodies, are kept:
/// beyond either, the oldest completed is dropped first (the call least likely to be
/// retried still). A reply larger than [`max_reply_bytes`](Self::max_reply_bytes) is
/// not kept at all: its call is remembered as run, and a later duplicate gets
/// `500 internal` instead of running it again. The guarantee holds for a duplicate that arrives
/// while its entry is kept: size the store so that `capacity` >= peak calls/s x the
/// longest retry window, or an entry can be dropped before its retry arrives, and the
/// retry runs the method again. A claim whose run takes longer than `ttl` can be
/// claimed again. A restart loses every entry. Several replicas need a shared store.
///
/// Layout, for speed and size (docs/BENCHMARKS.md): keys are a 128-bit digest of the
/// [`CallKey`] (its strings are not kept); a completed call is its digest, body
/// fingerprint, status and body, plus a place in its shard's expiry queue, about 200
/// bytes beside the body. The keys are spread over up to 64 shards, each a plain map
/// behind a mutex with an even share of the capacity and of the byte budget; a running
/// call also has a `Notify` its duplicates wait on.
pub struct MemoryCallStore {
    shards: Box<[Mutex<Shard>]>,
    /// What the store was asked to keep, to split again when the budget changes.
    capacity: u64,
    /// Completed calls a shard keeps.
    shard_capacity: usize,
    /// Bytes of bodies a shard keeps: the shards' shares add up to at most the store's
    /// budget, so the budget is a true bound with no lock or counter across shards.
    shard_max_bytes: usize,
    ttl: Duration,
    /// Seeds the key digests: secret, so that clients cannot choose colliding keys.
    seed: u64,
    /// When the store was made: times are kept as nanoseconds since then.
    epoch: Instant,
    next_ticket: AtomicU64,
    /// Tests move the store's clock forward by this many nanoseconds...
    #[cfg(test)]
    skew: AtomicU64,
    /// ...or run it by hand alone (`skew` is then the time).
    #[cfg(test)]
    manual_clock: bool,
}

/// What a [`MemoryCallStore`] holds at one moment ([`MemoryCallStore::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStoreUsage {
    /// Completed calls kept, replies or not.
    pub completed: u64,
    /// Bytes of the kept reply bodies: at most the store's byte budget.
    pub bytes: u64,
    /// Claims whose run has not finished.
    pub running: u64,
}

#[derive(Default)]
struct Shard {
    running: DigestMap<Arc<Running>>,
    done: DigestMap<Done>,
    /// Completed calls in the order they completed, which is also the order they
    /// expire in (every entry lives the same `ttl`).
    expiry: VecDeque<Expiry>,
    /// The bytes of the bodies in `done`.
    bytes: usize,
}

/// A map keyed by key digests, hashed by taking the digest's high half: a digest is
/// already a seeded XXH3 of the key (the seed is secret, so clients cannot aim many
/// keys at one bucket), and SipHash over it again was about 1% of a call's CPU. The
/// low half picks the shard.
type DigestMap<V> = HashMap<u128, V, BuildHasherDefault<DigestHasher>>;

#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write_u128(&mut self, digest: u128) {
        self.0 = (digest >> 64) as u64;
    }

    /// Only `u128` digests are hashed here; any other input is still spread.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A completed call, as kept.
struct Done {
    fingerprint: u128,
    /// `None`: the reply was larger than the shard's share of the budget; the call
    /// ran, and a duplicate gets [`not_kept`] instead.
    body: Option<Bytes>,
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
    /// Nanoseconds after the store's `epoch`.
    claimed: u64,
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
    /// A store keeping about `capacity` completed calls, each for `ttl`, with at most
    /// [`DEFAULT_MAX_BYTES`] of bodies.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes"));
        let store = Self {
            shards: Box::default(),
            capacity,
            shard_capacity: 0,
            shard_max_bytes: 0,
            ttl,
            seed,
            epoch: Instant::now(),
            next_ticket: AtomicU64::new(1),
            #[cfg(test)]
            skew: AtomicU64::new(0),
            #[cfg(test)]
            manual_clock: false,
        };
        store.split(DEFAULT_MAX_BYTES)
    }

    /// Keeps at most `max_bytes` of reply bodies (default [`DEFAULT_MAX_BYTES`]), a
    /// bound that holds at every moment. The budget is split evenly over the shards
    /// (fewer shards for a small budget: each gets at least 1 MiB, or the whole budget
    /// when it is smaller), and a reply larger than a shard's share is not kept (see
    /// [`max_reply_bytes`](Self::max_reply_bytes)). Set it on a new store: calls
    /// already in it are forgotten.
    pub fn with_max_bytes(self, max_bytes: u64) -> Self {
        self.split(max_bytes)
    }

    /// The largest reply the store keeps: its byte budget over its shards, at least
    /// 1 MiB unless the whole budget is smaller. The call of a larger reply is
    /// remembered as run without its reply: a duplicate that arrives after the run
    /// gets `500 internal` (not retried: at most once holds), and duplicates waiting
    /// for the run get the reply itself.
    pub fn max_reply_bytes(&self) -> u64 {
        self.shard_max_bytes as u64
    }

    /// Splits the capacity and `max_bytes` over new, empty shards.
    fn split(mut self, max_bytes: u64) -> Self {
        let shards = (self.capacity / MIN_SHARD_CAPACITY).min(max_bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        self.shard_capacity = usize::try_from(self.capacity.div_ceil(shards).max(1)).unwrap_or(usize::MAX);
        self.shards = (0..shards).map(|_| Mutex::new(Shard::sized(self.shard_capacity))).collect();
        self.shard_max_bytes = usize::try_from(max_bytes / shards).unwrap_or(usize::MAX);
        self
    }

    /// How many calls the store holds, completed or running.
    pub fn len(&self) -> u64 {
        let now = self.now();
        let held = self.shards.iter().map(|shard| {
            let mut shard = lock(shard);
            shard.expire(now);
            shard.done.len() + shard.running.len()
        });
        held.sum::<usize>() as u64
    }

    /// Whether the store holds no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the store holds now, for monitoring (the soak run in `bench/` watches it):
    /// completed calls, the bytes of their kept bodies, and running claims.
    pub fn usage(&self) -> MemoryStoreUsage {
        let now = self.now();
        let mut usage = MemoryStoreUsage::default();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.expire(now);
            usage.completed += shard.done.len() as u64;
            usage.bytes += shard.bytes as u64;
            usage.running += shard.running.len() as u64;
        }
        usage
    }

    fn now(&self) -> u64 {
        #[cfg(test)]
        if self.manual_clock {
            return self.skew.load(Ordering::Relaxed);
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        #[cfg(test)]
        let now = now.saturating_add(self.skew.load(Ordering::Relaxed));
        now
    }

    fn ttl_nanos(&self) -> u64 {
        u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The shard `digest` belongs to, locked, with its expired calls dropped, and the
    /// time it was read at (one clock read for the expiry and the caller: each costs
    /// ~90 instructions). Claims, completions and releases of one key all happen under
    /// this lock, so they exclude each other.
    fn shard(&self, digest: u128) -> (MutexGuard<'_, Shard>, u64) {
        // The low half (the maps hash by the high half); a `u128` remainder is a
        // library call, a `u64` one an instruction.
        let mut shard = lock(&self.shards[(digest as u64 % self.shards.len() as u64) as usize]);
        let now = self.now();
        shard.expire(now);
        (shard, now)
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let digest = key.digest(self.seed);
        let (mut shard, now) = self.shard(digest);
        if let Some(done) = shard.done.get(&digest) {
            return match done.fingerprint == fingerprint {
                true => Claim::Done(done.reply()),
                false => Claim::Mismatch,
            };
        }
        match shard.running.get(&digest) {
            Some(claim) if now.saturating_sub(claim.claimed) < self.ttl_nanos() => {
                match claim.fingerprint == fingerprint {
                    true => Claim::Running,
                    false => Claim::Mismatch,
                }
            }
            // Free, or a claim older than the time to live: it may be claimed (again).
            _ => {
                let claim = Arc::new(Running {
                    digest,
                    fingerprint,
                    claimed: now,
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
        // Kept only within the shard's share of the budget, so the budget is a bound.
        let body =
            outcome.as_ref().and_then(|reply| (reply.body.len() <= self.shard_max_bytes).then(|| reply.body.clone()));
        let owned = {
            let (mut shard, now) = self.shard(digest);
            let owned = shard.running.get(&digest).is_some_and(|current| Arc::ptr_eq(current, &claim));
            if owned {
                shard.running.remove(&digest);
                if let Some(reply) = &outcome {
                    let at = now.saturating_add(self.ttl_nanos());
                    let done =
                        Done { fingerprint: claim.fingerprint, body, token: ticket.token(), status: reply.status };
                    shard.insert(digest, done, at);
                    shard.evict_beyond(self.shard_capacity, self.shard_max_bytes);
                }
            }
            owned
        };
        match &outcome {
            Some(_) if !owned => {
                tracing::warn!(%key, "a call finished after its claim expired; its result was not stored")
            }
            Some(reply) if reply.body.len() > self.shard_max_bytes => tracing::warn!(
                %key,
                bytes = reply.body.len(),
                max_reply_bytes = self.shard_max_bytes,
                "a reply larger than the call-id store keeps was not kept; a duplicate after the run gets `500 internal`"
            ),
            _ => {}
        }
        let _ = claim.outcome.set(outcome);
        claim.finished.notify_waiters();
    }

    /// What a duplicate of `key` can wait on: the stored reply, or its run.
    fn find(&self, key: &CallKey, fingerprint: u128) -> Option<Result<StoredReply, Arc<Running>>> {
        let digest = key.digest(self.seed);
        let (shard, _) = self.shard(digest);
        if let Some(done) = shard.done.get(&digest) {
            // A call of another body is another call: this request's own call is gone.
            return (done.fingerprint == fingerprint).then(|| Ok(done.reply()));
        }
        let claim = shard.running.get(&digest).filter(|claim| claim.fingerprint == fingerprint)?;
        Some(Err(Arc::clone(claim)))
    }
}

impl Done {
    /// What a duplicate is answered with.
    fn reply(&self) -> StoredReply {
        match &self.body {
            Some(body) => StoredReply { status: self.status, body: body.clone() },
            None => not_kept(),
        }
    }

    fn bytes(&self) -> usize {
        self.body.as_ref().map_or(0, Bytes::len)
    }
}

/// The stand-in reply of a call that ran but whose reply was too large to keep: a
/// `500 internal`, which clients do not retry, so the method does not run again.
fn not_kept() -> StoredReply {
    static REPLY: std::sync::OnceLock<StoredReply> = std::sync::OnceLock::new();
    let reply = REPLY.get_or_init(|| {
        let message = "this call ran, but its reply was larger than the server's call-id store keeps, \
                       so a duplicate cannot be answered with it; it was not run again";
        framework_error(ErrorKind::Internal, message, None).into()
    });
    reply.clone()
}

impl Shard {
    /// A shard whose map and queue hold `capacity` completed calls without growing: a
    /// growing map rehashes every entry it holds (a cache miss each) while a new store
    /// fills. Only the map's control bytes are written now; the rest of its memory is
    /// touched as calls arrive. Capped, so a huge configured capacity costs nothing up
    /// front.
    fn sized(capacity: usize) -> Self {
        let capacity = capacity.min(MAX_PRESIZED_SHARD);
        Self {
            running: DigestMap::default(),
            done: DigestMap::with_capacity_and_hasher(capacity, Default::default()),
            expiry: VecDeque::with_capacity(capacity),
            bytes: 0,
        }
    }

    /// Drops the completed calls whose time is up: the front of the queue.
    fn expire(&mut self, now: u64) {
        while self.expiry.front().is_some_and(|oldest| oldest.at <= now) {
            self.drop_oldest();
        }
    }

    /// Keeps a completed call, expiring at `at`.
    fn insert(&mut self, digest: u128, done: Done, at: u64) {
        self.bytes += done.bytes();
        self.expiry.push_back(Expiry { digest, token: done.token, at });
        // A claim exists only while no completed call of its key does: nothing is replaced.
        self.done.insert(digest, done);
    }

    /// After a call completed: drops this shard's oldest completed calls (never the
    /// newest, which fits its share by itself) until it holds at most `capacity` calls
    /// and `max_bytes` of bodies.
    fn evict_beyond(&mut self, capacity: usize, max_bytes: usize) {
        while (self.done.len() > capacity || self.bytes > max_bytes) && self.expiry.len() > 1 {
            self.drop_oldest();
        }
    }

    /// Drops the oldest completed call.
    fn drop_oldest(&mut self) {
        let Some(oldest) = self.expiry.pop_front() else { return };
        // The key may have completed again since (after an expiry): keep that one.
        if self.done.get(&oldest.digest).is_some_and(|done| done.token == oldest.token) {
            let dropped = self.done.remove(&oldest.digest).expect("just found");
            self.bytes -= dropped.bytes();
        }
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

/// A controlled clock and a look inside, for tests.
#[cfg(test)]
impl MemoryCallStore {
    /// The store's clock stands still but for [`advance`](Self::advance).
    fn with_manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }

    /// Moves the store's clock forward.
    fn advance(&self, by: Duration) {
        self.skew.fetch_add(u64::try_from(by.as_nanos()).expect("a short step"), Ordering::Relaxed);
    }

    /// The completed calls kept and the bytes of their bodies, counted from the bodies
    /// (each shard's own count is checked against them).
    fn kept(&self) -> (usize, usize) {
        let now = self.now();
        let mut kept = (0, 0);
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.expire(now);
            let bytes: usize = shard.done.values().map(Done::bytes).sum();
            assert_eq!(bytes, shard.bytes, "a shard's byte count is its bodies'");
            kept = (kept.0 + shard.done.len(), kept.1 + bytes);
        }
        kept
    }
}

#[cfg(all(test, shuttle))]
mod model_check;
#[cfg(test)]
mod proptests;

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
    async fn beyond_its_byte_budget_the_store_drops_the_oldest_and_keeps_no_reply_larger_than_its_budget() {
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
        // The large reply is not kept, nor does it push the others out; its call is
        // remembered as run: a duplicate gets a 500 (not retried), not a second run.
        assert_eq!(store.kept(), (3, 8));
        let Claim::Done(stand_in) = store.claim(&key(4), 1).await.unwrap() else { panic!("remembered as run") };
        assert_eq!(stand_in.status, 500);
        assert!(std::str::from_utf8(&stand_in.body).unwrap().contains(r#""kind":"internal""#), "{stand_in:?}");
        assert_eq!(store.claim(&key(3), 1).await.unwrap(), Claim::Done(reply("abcd")));
    }

    /// Regression (issue 17): each of 64 shards kept its newest reply whatever the
    /// budget, so a small budget held 64 replies.
    #[tokio::test]
    async fn a_64_kib_budget_holds_under_a_thousand_4_kib_replies() {
        let store = MemoryCallStore::new(DEFAULT_CAPACITY, DEFAULT_TTL).with_max_bytes(64 << 10);
        let key = |n: u128| CallKey::new(uuid::Uuid::from_u128(n), "Catalog", "get", None);
        for n in 1..=1000 {
            let Claim::Run(ticket) = store.claim(&key(n), 1).await.unwrap() else { panic!("a fresh key runs") };
            let body = bytes::Bytes::from(vec![b'x'; 4096]);
            store.complete(&key(n), ticket, StoredReply { status: 200, body }).await.unwrap();
            assert!(store.kept().1 <= 64 << 10, "{} bytes kept after call {n}", store.kept().1);
        }
        assert_eq!(store.kept(), (16, 64 << 10), "the budget is used, not only bounded");
        assert!(matches!(store.claim(&key(1000), 1).await.unwrap(), Claim::Done(_)), "the newest is kept");
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
