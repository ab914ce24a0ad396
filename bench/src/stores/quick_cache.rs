//! The call-id store on quick_cache, with its guard API as the single flight: the
//! first claim of a key gets quick_cache's placeholder guard (kept in the ticket), a
//! duplicate that finds the guard alive is `Running`, a waiter joins the placeholder
//! (`get_value_or_guard_async`), completing inserts the reply through the guard (which
//! wakes the waiters), and releasing drops it.
//!
//! What it cannot keep of the runtime store's guarantees: quick_cache evicts by its
//! own policy (S3-FIFO-like: a new entry never read again can go before an older one
//! that was read), not the oldest completed first; it has no time to live (expiry is
//! checked on read here, the weight still held until eviction); and a placeholder
//! never expires, so a run that hangs holds its key until it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intercall::calls::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};
use quick_cache::sync::{Cache, GuardResult, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, Weighter};

use super::{Done, digest, seed};

/// Weighs a completed call by its body, plus [`super::ENTRY_WEIGHT`].
#[derive(Clone)]
pub struct ReplyWeighter;

impl Weighter<u128, Done> for ReplyWeighter {
    fn weight(&self, _key: &u128, done: &Done) -> u64 {
        done.weight()
    }
}

type Completed = Cache<u128, Done, ReplyWeighter>;
type Guard = PlaceholderGuard<
    'static,
    u128,
    Done,
    ReplyWeighter,
    DefaultHashBuilder,
    quick_cache::sync::DefaultLifecycle<u128, Done>,
>;

/// A claim: quick_cache's guard for its key, until the run completes or is released.
struct Owned {
    digest: u128,
    fingerprint: u128,
    guard: Mutex<Option<Guard>>,
}

/// Completed calls in quick_cache; its placeholders are the running claims.
pub struct QuickCacheStore {
    /// Leaked, so that a guard (which borrows the cache) can live in a `'static`
    /// ticket: one store per benchmark process.
    done: &'static Completed,
    /// The body fingerprint of each running claim: a duplicate of another body is a
    /// mismatch, which the placeholder cannot tell.
    running: Box<[Mutex<HashMap<u128, u128>>]>,
    seed: u64,
    ttl: Duration,
    epoch: Instant,
    next_ticket: AtomicU64,
}

const SHARDS: usize = 64;

impl QuickCacheStore {
    pub fn new(capacity: u64, ttl: Duration, max_bytes: u64) -> Self {
        let weight = max_bytes + capacity * super::ENTRY_WEIGHT;
        let done = Cache::with_weighter(usize::try_from(capacity).unwrap_or(usize::MAX), weight, ReplyWeighter);
        let running = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        let (epoch, next_ticket) = (Instant::now(), AtomicU64::new(1));
        Self { done: Box::leak(Box::new(done)), running, seed: seed(), ttl, epoch, next_ticket }
    }

    /// Completed calls held (expired ones included until evicted) and running claims.
    pub fn held(&self) -> u64 {
        let running: usize = self.running.iter().map(|shard| shard.lock().map_or(0, |s| s.len())).sum();
        (self.done.len() + running) as u64
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn running(&self, digest: u128) -> std::sync::MutexGuard<'_, HashMap<u128, u128>> {
        self.running[digest as usize % SHARDS].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let digest = digest(key, self.seed);
        loop {
            match self.done.get_value_or_guard(&digest, Some(Duration::ZERO)) {
                GuardResult::Value(done) if done.expires <= self.now() => {
                    // Expired: gone, unless it completed again meanwhile.
                    self.done.remove_if(&digest, |current| current.expires == done.expires);
                }
                GuardResult::Value(done) => {
                    return if done.fingerprint == fingerprint { Claim::Done(done.reply()) } else { Claim::Mismatch };
                }
                GuardResult::Guard(guard) => {
                    self.running(digest).insert(digest, fingerprint);
                    let owned = Owned { digest, fingerprint, guard: Mutex::new(Some(guard)) };
                    let token = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                    return Claim::Run(Ticket::with_local(token, Arc::new(owned)));
                }
                GuardResult::Timeout => {
                    // The owner may not have recorded its fingerprint yet: then it runs.
                    let theirs = self.running(digest).get(&digest).copied();
                    return if theirs.is_none_or(|theirs| theirs == fingerprint) {
                        Claim::Running
                    } else {
                        Claim::Mismatch
                    };
                }
            }
        }
    }

    fn finish(&self, ticket: &Ticket, reply: Option<StoredReply>) {
        let Some(owned) = ticket.local().and_then(|local| Arc::clone(local).downcast::<Owned>().ok()) else { return };
        let Some(guard) = owned.guard.lock().ok().and_then(|mut guard| guard.take()) else { return };
        self.running(owned.digest).remove(&owned.digest);
        match reply {
            Some(reply) => {
                let expires = self.now().saturating_add(self.ttl.as_nanos() as u64);
                let done = Done { fingerprint: owned.fingerprint, status: reply.status, body: reply.body, expires };
                let _ = guard.insert(done);
            }
            // The waiters each get the guard in turn and drop it: the key is free.
            None => drop(guard),
        }
    }
}

impl CallStore for QuickCacheStore {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        Box::pin(std::future::ready(Ok(self.claim_now(key, fingerprint))))
    }

    fn claim_at_once(&self, key: &CallKey, fingerprint: u128) -> Option<Result<Claim, intercall::calls::StoreError>> {
        Some(Ok(self.claim_now(key, fingerprint)))
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>> {
        let digest = digest(key, self.seed);
        let done = self.done;
        let now = self.now();
        Box::pin(async move {
            let joined = done.get_value_or_guard_async(&digest);
            let joined = match timeout {
                Some(timeout) => match tokio::time::timeout(timeout, joined).await {
                    Ok(joined) => joined,
                    Err(_) => return Ok(None),
                },
                None => joined.await,
            };
            // A guard: the run was released or never was; dropping it frees the key.
            Ok(joined
                .ok()
                .filter(|done| done.fingerprint == fingerprint && done.expires > now)
                .map(|done| done.reply()))
        })
    }

    fn complete<'a>(&'a self, _key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()> {
        self.finish(&ticket, Some(reply));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, _key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        self.finish(&ticket, None);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> CallKey {
        CallKey::new(uuid::Uuid::from_u128(n), "Bench", "echo", None)
    }

    /// Why the runtime does not adopt it: quick_cache keeps a call that had a duplicate
    /// (a read) over younger calls that had none yet, so a retry of a young call can
    /// find its entry gone while older ones are kept, and run again. The runtime's
    /// store drops the oldest completed call first, which is what makes its sizing
    /// rule (capacity >= calls/s x retry window) enough for at most once.
    #[tokio::test]
    async fn quick_cache_drops_younger_calls_before_older_ones_that_were_read() {
        let store = QuickCacheStore::new(1000, Duration::from_secs(3600), 0);
        let complete = |n: u128| {
            let Claim::Run(ticket) = store.claim_now(&key(n), 1) else { panic!("call {n} is fresh") };
            store.finish(&ticket, Some(StoredReply { status: 200, body: bytes::Bytes::new() }));
        };
        (0..1000).for_each(complete);
        // The first half gets a duplicate each: a replay, a read of the cache.
        for n in 0..500 {
            assert!(matches!(store.claim_now(&key(n), 1), Claim::Done(_)), "call {n} replays");
        }
        (1000..1500).for_each(complete);
        let held = |range: std::ops::Range<u128>| {
            range.filter(|n| store.done.contains_key(&digest(&key(*n), store.seed))).count()
        };
        let (old_read, young_unread) = (held(0..500), held(500..1000));
        println!("kept: {old_read} of 500 old calls that were read, {young_unread} of 500 younger ones");
        // Oldest first would keep 0 of the old and all 500 of the young.
        assert!(old_read > young_unread, "kept: {old_read} old calls that were read, {young_unread} younger ones");
    }
}
