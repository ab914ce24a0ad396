use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OrderError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for OrderError {
    fn from(error: intercall::CallError) -> Self {
        OrderError::Unavailable(error)
    }
}

#[intercall::events]
pub trait Orders {
    async fn placed(&self, order_id: String) -> Result<u64, OrderError>;
}

fn main() {}
