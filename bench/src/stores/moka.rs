//! The call-id store on moka, as the runtime had it before its hand-written store
//! (commit 4ef3edf): completed calls in a `moka::sync::Cache` (LRU, a time to live,
//! sized up front), running claims beside it; plus the byte budget as moka's weigher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use intercall::calls::{CallKey, CallStore, Claim, StoreFuture, StoredReply, Ticket};
use moka::policy::EvictionPolicy;

use super::running::{Claims, Running, wait};
use super::{Done, digest, seed};

/// Completed calls in moka, running claims in a sharded map.
pub struct MokaStore {
    done: moka::sync::Cache<u128, Done>,
    running: Claims,
    seed: u64,
    ttl: Duration,
    epoch: Instant,
    next_ticket: AtomicU64,
}

impl MokaStore {
    pub fn new(capacity: u64, ttl: Duration, max_bytes: u64) -> Self {
        let done = moka::sync::Cache::builder()
            .max_capacity(max_bytes + capacity * super::ENTRY_WEIGHT)
            .weigher(|_, done: &Done| u32::try_from(done.weight()).unwrap_or(u32::MAX))
            .initial_capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
            .time_to_live(ttl)
            // LRU rather than TinyLFU, which may refuse to admit a new entry at all.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        let next_ticket = AtomicU64::new(1);
        Self { done, running: Claims::new(), seed: seed(), ttl, epoch: Instant::now(), next_ticket }
    }

    /// Completed and running calls (moka applies its writes lazily: flushed first).
    pub fn held(&self) -> u64 {
        self.done.run_pending_tasks();
        self.done.entry_count() + self.running.len() as u64
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Claim {
        let digest = digest(key, self.seed);
        let mut running = self.running.shard(digest);
        if let Some(done) = self.done.get(&digest) {
            return if done.fingerprint == fingerprint { Claim::Done(done.reply()) } else { Claim::Mismatch };
        }
        let now = self.now();
        match running.get(&digest) {
            Some(claim) if now.saturating_sub(claim.claimed) < self.ttl.as_nanos() as u64 => {
                if claim.fingerprint == fingerprint { Claim::Running } else { Claim::Mismatch }
            }
            _ => {
                let claim = Arc::new(Running {
                    digest,
                    fingerprint,
                    claimed: now,
                    outcome: Default::default(),
                    finished: Default::default(),
                });
                running.insert(digest, Arc::clone(&claim));
                Claim::Run(Ticket::with_local(self.next_ticket.fetch_add(1, Ordering::Relaxed), claim))
            }
        }
    }

    fn finish(&self, ticket: &Ticket, outcome: Option<StoredReply>) {
        let Some(claim) = ticket.local().and_then(|local| Arc::clone(local).downcast::<Running>().ok()) else { return };
        {
            let mut running = self.running.shard(claim.digest);
            if running.get(&claim.digest).is_some_and(|current| Arc::ptr_eq(current, &claim)) {
                running.remove(&claim.digest);
                if let Some(reply) = &outcome {
                    let done = Done {
                        fingerprint: claim.fingerprint,
                        status: reply.status,
                        body: reply.body.clone(),
                        expires: 0,
                    };
                    // Under the shard's lock: a claim never sees the call in neither place.
                    self.done.insert(claim.digest, done);
                }
            }
        }
        let _ = claim.outcome.set(outcome);
        claim.finished.notify_waiters();
    }
}

impl CallStore for MokaStore {
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
        let found = {
            let running = self.running.shard(digest);
            match self.done.get(&digest) {
                Some(done) => Err((done.fingerprint == fingerprint).then(|| done.reply())),
                None => Ok(running.get(&digest).filter(|claim| claim.fingerprint == fingerprint).cloned()),
            }
        };
        Box::pin(async move {
            match found {
                Err(replay) => Ok(replay),
                Ok(None) => Ok(None),
                Ok(Some(claim)) => Ok(wait(claim, timeout).await),
            }
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
