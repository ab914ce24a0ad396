//! The memory store's locks and atomics: std's, or under `--cfg shuttle` the shuttle
//! model checker's, so that it controls every lock and clock step and explores how
//! claims, waits, completions, releases, expiry and eviction interleave
//! (`model_check.rs`, docs/RELIABILITY.md). Nothing else changes between the two.

#[cfg(shuttle)]
pub(super) use shuttle::sync::atomic::AtomicU64;
#[cfg(shuttle)]
pub(super) use shuttle::sync::{Mutex, MutexGuard};
#[cfg(not(shuttle))]
pub(super) use std::sync::atomic::AtomicU64;
#[cfg(not(shuttle))]
pub(super) use std::sync::{Mutex, MutexGuard};
