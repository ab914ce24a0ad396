//! The call-id stores compared with the runtime's own `MemoryCallStore` (`bench
//! stores`, docs/BENCHMARKS.md): the same [`CallStore`] interface on a general-purpose
//! cache. They live here, not in the runtime: the hand-written store won (BENCHMARKS.md,
//! "The call-id store: hand-written, moka or quick_cache").
//!
//! Both keep what the hand-written store keeps (a completed call's body fingerprint,
//! status and body, keyed by the seeded digest of its [`CallKey`]), bounded by one
//! weight: each entry weighs its body's length plus [`ENTRY_WEIGHT`], and the cache
//! holds `max_bytes + capacity x ENTRY_WEIGHT`, so that neither the bytes nor (for
//! small bodies) the number of entries can grow past the runtime store's defaults.

pub mod moka;
pub mod quick_cache;
mod running;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use intercall::calls::{
    CallKey, CallStore, DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, DEFAULT_TTL, MemoryCallStore, StoredReply,
};

/// What an entry weighs beside its body.
pub const ENTRY_WEIGHT: u64 = 128;

/// One of the compared stores.
pub enum Store {
    Memory(Arc<MemoryCallStore>),
    Moka(Arc<moka::MokaStore>),
    QuickCache(Arc<quick_cache::QuickCacheStore>),
}

impl Store {
    /// The store of `system`: `intercall-moka`, `intercall-quick-cache`, or (anything
    /// else) the runtime's `MemoryCallStore`.
    pub fn new(system: &str, capacity: u64, ttl: Duration, max_bytes: u64) -> Self {
        match system {
            "intercall-moka" => Store::Moka(Arc::new(moka::MokaStore::new(capacity, ttl, max_bytes))),
            "intercall-quick-cache" => {
                Store::QuickCache(Arc::new(quick_cache::QuickCacheStore::new(capacity, ttl, max_bytes)))
            }
            _ => Store::Memory(Arc::new(MemoryCallStore::new(capacity, ttl).with_max_bytes(max_bytes))),
        }
    }

    /// The store of `system` with the runtime's defaults (capacity, time to live, bytes).
    pub fn with_defaults(system: &str) -> Self {
        Self::new(system, DEFAULT_CAPACITY, DEFAULT_TTL, DEFAULT_MAX_BYTES)
    }

    pub fn call_store(&self) -> Arc<dyn CallStore> {
        match self {
            Store::Memory(store) => store.clone(),
            Store::Moka(store) => store.clone(),
            Store::QuickCache(store) => store.clone(),
        }
    }

    /// Calls held, with any deferred bookkeeping done first (moka's).
    pub fn held(&self) -> u64 {
        match self {
            Store::Memory(store) => store.len(),
            Store::Moka(store) => store.held(),
            Store::QuickCache(store) => store.held(),
        }
    }
}

/// A completed call, as the caches keep it.
#[derive(Clone)]
pub struct Done {
    fingerprint: u128,
    status: u16,
    body: Bytes,
    /// Nanoseconds after the store's epoch (quick_cache has no time to live of its own).
    expires: u64,
}

impl Done {
    fn reply(&self) -> StoredReply {
        StoredReply { status: self.status, body: self.body.clone() }
    }

    fn weight(&self) -> u64 {
        self.body.len() as u64 + ENTRY_WEIGHT
    }
}

/// A random per-store seed for the key digests, as the runtime's store has.
fn seed() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The digest the stores key by.
fn digest(key: &CallKey, seed: u64) -> u128 {
    key.digest(seed)
}
