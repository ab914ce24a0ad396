//! The service the process-kill tests (`tests/process_kills.rs`) call on replicas that
//! run as child processes (`src/bin/ledger_replica.rs`).

use serde::{Deserialize, Serialize};

/// `Ledger`'s error: only a transport failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LedgerError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for LedgerError {
    fn from(error: intercall::CallError) -> Self {
        LedgerError::Unavailable(error)
    }
}

/// A method with a side effect outside the process, so that runs can be counted after
/// the process that made them is killed.
#[intercall::service]
pub trait Ledger {
    /// Appends `n` to the replica's runs file (the side effect), then returns `n`.
    async fn record(&self, n: u64) -> Result<u64, LedgerError>;
}
