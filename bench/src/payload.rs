//! What every system serves: an echo of a small struct (~80 bytes of JSON), an echo of
//! a 64 KiB blob, and a typed error.

use serde::{Deserialize, Serialize};

/// The small operation's payload: about 80 bytes as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Echo {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub score: f64,
    pub active: bool,
}

impl Echo {
    pub fn sample(id: u64) -> Self {
        Self {
            id,
            name: "benchmark-item-name".into(),
            tags: vec!["alpha".into(), "beta".into()],
            score: 0.75,
            active: true,
        }
    }
}

/// The large operation's payload: 64 KiB of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Blob {
    pub data: String,
}

impl Blob {
    pub fn sample() -> Self {
        Self { data: "x".repeat(64 * 1024) }
    }
}

/// The typed error the error workload answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum BenchError {
    Rejected { code: u32 },
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for BenchError {
    fn from(error: intercall::CallError) -> Self {
        BenchError::Unavailable(error)
    }
}

/// The benchmark service, as an intercall trait.
#[intercall::service]
pub trait Bench {
    async fn echo(&self, msg: Echo) -> Result<Echo, BenchError>;
    async fn large(&self, blob: Blob) -> Result<Blob, BenchError>;
    async fn fail(&self, code: u32) -> Result<Echo, BenchError>;
    /// `count` small items, streamed (the `stream` run).
    async fn stream_small(&self, count: u64) -> Result<intercall::Streaming<Echo, BenchError>, BenchError>;
    /// `count` 64 KiB items, streamed.
    async fn stream_large(&self, count: u64) -> Result<intercall::Streaming<Blob, BenchError>, BenchError>;
}

/// The one implementation every intercall server runs.
pub struct Echoer;

impl Bench for Echoer {
    async fn echo(&self, msg: Echo) -> Result<Echo, BenchError> {
        Ok(msg)
    }

    async fn large(&self, blob: Blob) -> Result<Blob, BenchError> {
        Ok(blob)
    }

    async fn fail(&self, code: u32) -> Result<Echo, BenchError> {
        Err(BenchError::Rejected { code })
    }

    async fn stream_small(&self, count: u64) -> Result<intercall::Streaming<Echo, BenchError>, BenchError> {
        Ok(intercall::Streaming::iter((0..count).map(|id| Ok(Echo::sample(id)))))
    }

    async fn stream_large(&self, count: u64) -> Result<intercall::Streaming<Blob, BenchError>, BenchError> {
        Ok(intercall::Streaming::iter((0..count).map(|_| Ok(Blob::sample()))))
    }
}
