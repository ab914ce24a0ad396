use intercall::Streaming;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FeedError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for FeedError {
    fn from(error: intercall::CallError) -> Self {
        FeedError::Unavailable(error)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OtherError {
    Unavailable(intercall::CallError),
}

#[intercall::service]
pub trait Feed {
    async fn watch(&self, topic: String) -> Result<Streaming<u64>, FeedError>;
}

fn main() {}
