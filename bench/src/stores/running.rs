//! Running claims beside a cache of completed calls (what the moka store needs: moka
//! has no notion of a value being computed): a sharded map of claims, each with a
//! `Notify` its duplicates wait on, as the runtime's store has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use intercall::calls::StoredReply;
use tokio::sync::Notify;

const SHARDS: usize = 64;

/// A claimed call whose run has not finished.
pub struct Running {
    pub digest: u128,
    pub fingerprint: u128,
    /// Nanoseconds after the store's epoch.
    pub claimed: u64,
    /// Set once: the reply (`Some`) or a release (`None`).
    pub outcome: OnceLock<Option<StoredReply>>,
    pub finished: Notify,
}

/// One shard's running claims, by key digest.
type Shard = HashMap<u128, Arc<Running>>;

/// The running claims, by key digest.
pub struct Claims {
    shards: Box<[Mutex<Shard>]>,
}

impl Claims {
    pub fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    /// The shard of `digest`, locked: a claim and a finish of one key exclude each other.
    pub fn shard(&self, digest: u128) -> MutexGuard<'_, Shard> {
        self.shards[digest as usize % SHARDS].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shards[i].lock().map_or(0, |shard| shard.len())).sum()
    }
}

/// Waits for `claim`'s outcome for at most `timeout`.
pub async fn wait(claim: Arc<Running>, timeout: Option<std::time::Duration>) -> Option<StoredReply> {
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
    claim.outcome.get().cloned().flatten()
}
