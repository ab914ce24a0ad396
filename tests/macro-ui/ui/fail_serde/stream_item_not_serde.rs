use intercall::Streaming;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum FeedError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for FeedError {
    fn from(error: intercall::CallError) -> Self {
        FeedError::Unavailable(error)
    }
}

#[derive(Debug)]
pub struct Change {
    pub key: String,
}

#[intercall::service]
pub trait Feed {
    async fn watch(&self, topic: String) -> Result<Streaming<Change, FeedError>, FeedError>;
}

fn main() {}
