//! How long to wait before a retry, and the budget that keeps retries from multiplying
//! the load on a service that is already down. (Whether to retry at all is
//! `protocol::retry`'s one decision.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{BudgetConfig, CallPolicy};

/// The backoff before retry number `retry` (1 for the first retry): "full jitter",
/// uniformly random in `0..=min(max_backoff, backoff * 2^(retry - 1))`, which spreads
/// retries of many clients over time instead of synchronising them.
pub(crate) fn backoff(policy: &CallPolicy, retry: u32) -> Duration {
    let doubled = policy.backoff.saturating_mul(1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX));
    let ceiling = doubled.min(policy.max_backoff);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(fastrand::u64(0..=micros))
}

/// A token bucket shared by every call of one invoker, as gRPC's retry throttling and
/// Finagle's `RetryBudget` do: each call deposits `ratio` tokens, each retry takes one,
/// and the bucket holds at most `max(burst, 1)`, starting with `burst`. So retries add
/// at most `ratio` x calls (plus the burst) to the load, however bad an outage is.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// Thousandths of a token, so that fractional deposits need no float atomics.
    milli_tokens: AtomicU64,
    deposit: u64,
    capacity: u64,
}

const TOKEN: u64 = 1000;

impl RetryBudget {
    pub(crate) fn new(config: BudgetConfig) -> Self {
        let milli = |tokens: f64| (tokens * TOKEN as f64).round() as u64;
        Self {
            milli_tokens: AtomicU64::new(milli(config.burst)),
            deposit: milli(config.ratio),
            capacity: milli(config.burst).max(TOKEN),
        }
    }

    /// Called once per call, before its first attempt.
    pub(crate) fn deposit(&self) {
        if self.deposit == 0 {
            return;
        }
        let _ = self.milli_tokens.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
            (tokens < self.capacity).then(|| (tokens + self.deposit).min(self.capacity))
        });
    }

    /// Takes a token for one retry; `false` when the budget is spent.
    pub(crate) fn try_withdraw(&self) -> bool {
        self.milli_tokens.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| tokens.checked_sub(TOKEN)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_limited_to_the_burst_plus_the_ratio_of_calls() {
        let budget = RetryBudget::new(BudgetConfig { ratio: 0.5, burst: 2.0 });
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw(), "the burst is spent");
        budget.deposit();
        assert!(!budget.try_withdraw(), "half a token is not a retry");
        budget.deposit();
        assert!(budget.try_withdraw(), "two calls at ratio 0.5 buy one retry");
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn the_bucket_never_holds_more_than_its_capacity() {
        let budget = RetryBudget::new(BudgetConfig { ratio: 1.0, burst: 1.0 });
        for _ in 0..100 {
            budget.deposit();
        }
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn a_zero_budget_allows_no_retry() {
        let budget = RetryBudget::new(BudgetConfig { ratio: 0.0, burst: 0.0 });
        budget.deposit();
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn backoff_stays_under_the_doubling_ceiling_and_the_maximum() {
        let policy = CallPolicy {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(25),
            ..CallPolicy::default()
        };
        for _ in 0..200 {
            assert!(backoff(&policy, 1) <= Duration::from_millis(10));
            assert!(backoff(&policy, 2) <= Duration::from_millis(20));
            assert!(backoff(&policy, 3) <= Duration::from_millis(25));
            assert!(backoff(&policy, 40) <= Duration::from_millis(25));
        }
    }
}
