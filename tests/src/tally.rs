//! The events the consumer-kill test (`tests/events_kills.rs`) publishes to consumers
//! that run as child processes (`src/bin/tally_consumer.rs`).

use serde::{Deserialize, Serialize};

/// `Tally`'s error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TallyError {
    Unavailable(intercall::CallError),
    /// The handler could not count its run.
    Redis(String),
}

impl From<intercall::CallError> for TallyError {
    fn from(error: intercall::CallError) -> Self {
        TallyError::Unavailable(error)
    }
}

/// An event whose handler has a side effect in Redis, so that runs can be counted after
/// the consumer that made them is killed.
#[intercall::events]
pub trait Tally {
    /// Counts one run of `n` (the side effect), then finishes.
    async fn counted(&self, n: u64) -> Result<(), TallyError>;
}

/// The hash of runs per event (`n` → how many times a handler ran it).
pub const RUNS: &str = "tally:runs";

/// The list of the events one consumer ran, in order.
pub fn runs_by(consumer: &str) -> String {
    format!("tally:by:{consumer}")
}
