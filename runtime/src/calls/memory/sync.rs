//! The memory store's locks and atomics: std's, or in its tests under `--cfg shuttle` the shuttle
//! model checker's, so that it controls every lock and clock step and explores how
//! claims, waits, completions, releases, expiry and eviction interleave
//! (`model_check.rs`, docs/RELIABILITY.md). Nothing else changes between the two.

#[cfg(all(test, shuttle))]
pub(super) use shuttle::sync::atomic::AtomicU64;
#[cfg(all(test, shuttle))]
pub(super) use shuttle::sync::{Mutex, MutexGuard};
#[cfg(not(all(test, shuttle)))]
pub(super) use std::sync::OnceLock;
#[cfg(not(all(test, shuttle)))]
pub(super) use std::sync::atomic::AtomicU64;
#[cfg(not(all(test, shuttle)))]
pub(super) use std::sync::{Mutex, MutexGuard};

/// A run's outcome cell. Under shuttle, a `std::sync::OnceLock` with a scheduling point
/// after each read and around each write: the cell and tokio's `Notify` are not
/// shuttle's, and without these points the checker could not interleave a waiter's
/// "register, then read the outcome" with a run's "set the outcome, then notify",
/// which is where a lost wake-up would hide.
#[cfg(all(test, shuttle))]
pub(super) struct OnceLock<T>(std::sync::OnceLock<T>);

#[cfg(all(test, shuttle))]
impl<T> OnceLock<T> {
    pub(super) const fn new() -> Self {
        Self(std::sync::OnceLock::new())
    }

    pub(super) fn get(&self) -> Option<&T> {
        let value = self.0.get();
        shuttle::thread::yield_now();
        value
    }

    pub(super) fn set(&self, value: T) -> Result<(), T> {
        shuttle::thread::yield_now();
        let set = self.0.set(value);
        shuttle::thread::yield_now();
        set
    }
}
