//! Outlier ejection, per endpoint: after `eject_after` failures in a row (no
//! connection, no reply within `timeout_ms`, a 5xx reply) an endpoint is ejected for `eject_ms`,
//! doubled for each ejection in a row up to `max_eject_ms`. When that time is up it is
//! half-open: the next call goes to it as a probe, and no other until the probe ends.
//! A probe that succeeds returns the endpoint to traffic; one that fails ejects it
//! again, for twice as long.
//!
//! The clock is tokio's, so tests drive ejection and recovery with paused time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::EjectionConfig;
use crate::protocol::ErrorKind;
use crate::protocol::retry::Outcome;

/// What one attempt says about the endpoint that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answered: a result, a typed error, a 4xx, a reply this client cannot use.
    Answered,
    /// It failed: no connection, no reply in time, a 5xx of its own.
    Failed,
    /// Says nothing about its health: it shed the call (`503 overloaded`, load is not a
    /// fault), the caller's deadline had passed (`504 deadline_exceeded`) or cut the
    /// attempt's time short (no reply within less than `timeout_ms`, `endpoint.rs`), or a
    /// client layer refused the call.
    Neutral,
}

/// The verdict on an attempt that failed with `outcome`.
pub(crate) fn verdict(outcome: &Outcome<'_>) -> Verdict {
    match outcome {
        Outcome::NoReply => Verdict::Failed,
        Outcome::Replied { kind: Some(ErrorKind::Overloaded | ErrorKind::DeadlineExceeded), .. } => Verdict::Neutral,
        Outcome::Replied { status, .. } if *status >= 500 => Verdict::Failed,
        Outcome::Replied { .. } | Outcome::Unusable => Verdict::Answered,
    }
}

/// One endpoint's health. The healthy path (an answer with no failure before it) is
/// two relaxed atomic loads; the lock is taken only around failures and ejections.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Failures in a row.
    failures: AtomicU32,
    /// Ejected (and possibly half-open): no call but a probe goes to it.
    ejected: AtomicBool,
    state: Mutex<Ejection>,
}

#[derive(Debug, Default)]
struct Ejection {
    /// Ejections in a row: each doubles the next one's length.
    in_a_row: u32,
    /// When the current ejection ends and a probe may go.
    until: Option<Instant>,
    /// A probe is out.
    probing: bool,
    /// When the endpoint last returned to traffic.
    returned: Option<Instant>,
}

/// What a report changed, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// Ejected for this long.
    Ejected(Duration),
    /// Back in traffic after a successful probe.
    Returned,
}

impl Health {
    /// Whether calls may go to it (it is not ejected).
    pub(crate) fn available(&self) -> bool {
        !self.ejected.load(Ordering::Relaxed)
    }

    /// For an ejected endpoint whose ejection is over and that has no probe out:
    /// claims the probe, and then the caller's call is it.
    pub(crate) fn try_probe(&self, now: Instant) -> bool {
        if self.available() {
            return false;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = state.until.is_some_and(|until| now >= until);
        if due && !state.probing {
            state.probing = true;
            return true;
        }
        false
    }

    /// Frees the place of a probe that was claimed and never sent.
    pub(crate) fn release_probe(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).probing = false;
    }

    /// Records an attempt's verdict; `probe` says whether the attempt was this
    /// endpoint's probe. `ejected` counts the service's ejected endpoints.
    pub(crate) fn report(
        &self,
        verdict: Verdict,
        probe: bool,
        policy: &EjectionConfig,
        ejected: &AtomicUsize,
        now: Instant,
    ) -> Change {
        match (verdict, probe) {
            // The fast path: healthy and still healthy.
            (Verdict::Answered, false) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                Change::None
            }
            (Verdict::Neutral, false) => Change::None,
            (Verdict::Failed, false) => {
                // Calls that were in flight when it was ejected say nothing new.
                if !self.available() {
                    return Change::None;
                }
                if self.failures.fetch_add(1, Ordering::Relaxed) + 1 < policy.after {
                    return Change::None;
                }
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if !self.available() {
                    return Change::None; // another failure ejected it first
                }
                // A long healthy spell forgets earlier ejections.
                if state.returned.is_some_and(|at| now.saturating_duration_since(at) > policy.max) {
                    state.in_a_row = 0;
                }
                ejected.fetch_add(1, Ordering::Relaxed);
                self.ejected.store(true, Ordering::Relaxed);
                Change::Ejected(eject(&mut state, policy, now))
            }
            (Verdict::Answered, true) => {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.probing = false;
                state.until = None;
                state.returned = Some(now);
                self.failures.store(0, Ordering::Relaxed);
                self.ejected.store(false, Ordering::Relaxed);
                ejected.fetch_sub(1, Ordering::Relaxed);
                Change::Returned
            }
            (Verdict::Failed, true) => {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.probing = false;
                Change::Ejected(eject(&mut state, policy, now))
            }
            // The probe told nothing: the next call may probe again.
            (Verdict::Neutral, true) => {
                self.state.lock().unwrap_or_else(|e| e.into_inner()).probing = false;
                Change::None
            }
        }
    }
}

/// Starts an ejection: `base` doubled per ejection in a row, at most `max`.
fn eject(state: &mut Ejection, policy: &EjectionConfig, now: Instant) -> Duration {
    let doubling = 1u32.checked_shl(state.in_a_row).unwrap_or(u32::MAX);
    let length = policy.base.saturating_mul(doubling).min(policy.max);
    state.in_a_row = state.in_a_row.saturating_add(1);
    state.until = Some(now + length);
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: EjectionConfig =
        EjectionConfig { after: 3, base: Duration::from_secs(1), max: Duration::from_secs(5) };

    #[test]
    fn verdicts() {
        assert_eq!(verdict(&Outcome::NoReply), Verdict::Failed);
        let replied = |status, kind| verdict(&Outcome::Replied { status, kind, retry_after: None });
        assert_eq!(replied(500, Some(ErrorKind::Panic)), Verdict::Failed);
        assert_eq!(replied(502, None), Verdict::Failed);
        assert_eq!(replied(503, Some(ErrorKind::StoreUnavailable)), Verdict::Failed);
        assert_eq!(replied(503, Some(ErrorKind::Overloaded)), Verdict::Neutral);
        assert_eq!(replied(504, Some(ErrorKind::DeadlineExceeded)), Verdict::Neutral);
        assert_eq!(replied(409, Some(ErrorKind::InProgress)), Verdict::Answered);
        assert_eq!(replied(400, Some(ErrorKind::BadRequest)), Verdict::Answered);
        assert_eq!(verdict(&Outcome::Unusable), Verdict::Answered);
    }

    #[test]
    fn failures_in_a_row_eject_and_an_answer_between_them_resets_the_count() {
        let (health, ejected, now) = (Health::default(), AtomicUsize::new(0), Instant::now());
        let report = |verdict| health.report(verdict, false, &POLICY, &ejected, now);
        assert_eq!(report(Verdict::Failed), Change::None);
        assert_eq!(report(Verdict::Failed), Change::None);
        assert_eq!(report(Verdict::Answered), Change::None);
        assert_eq!(report(Verdict::Neutral), Change::None);
        assert_eq!(report(Verdict::Failed), Change::None);
        assert_eq!(report(Verdict::Failed), Change::None);
        assert!(health.available());
        assert_eq!(report(Verdict::Failed), Change::Ejected(Duration::from_secs(1)));
        assert!(!health.available());
        assert_eq!(ejected.load(Ordering::Relaxed), 1);
        assert_eq!(report(Verdict::Failed), Change::None, "a call that was in flight");
    }

    #[test]
    fn one_probe_when_the_time_is_up_and_failed_probes_double_the_ejection() {
        let (health, ejected, start) = (Health::default(), AtomicUsize::new(0), Instant::now());
        for _ in 0..3 {
            health.report(Verdict::Failed, false, &POLICY, &ejected, start);
        }
        assert!(!health.try_probe(start + Duration::from_millis(999)), "still ejected");
        let mut now = start + Duration::from_secs(1);
        let mut lengths = Vec::new();
        for _ in 0..4 {
            assert!(health.try_probe(now), "due");
            assert!(!health.try_probe(now), "one probe at a time");
            let Change::Ejected(length) = health.report(Verdict::Failed, true, &POLICY, &ejected, now) else {
                panic!("a failed probe ejects again")
            };
            lengths.push(length.as_secs());
            now += length;
        }
        assert_eq!(lengths, [2, 4, 5, 5], "doubling up to the maximum");
        assert!(health.try_probe(now));
        assert_eq!(health.report(Verdict::Answered, true, &POLICY, &ejected, now), Change::Returned);
        assert!(health.available());
        assert_eq!(ejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_neutral_probe_lets_the_next_call_probe() {
        let (health, ejected, now) = (Health::default(), AtomicUsize::new(0), Instant::now());
        for _ in 0..3 {
            health.report(Verdict::Failed, false, &POLICY, &ejected, now);
        }
        let later = now + Duration::from_secs(1);
        assert!(health.try_probe(later));
        assert_eq!(health.report(Verdict::Neutral, true, &POLICY, &ejected, later), Change::None);
        assert!(health.try_probe(later), "the probe's place is free again");
    }
}
