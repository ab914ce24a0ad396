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
    async fn placed(&self, #[ordering_key] customer: String, #[ordering_key] order_id: String) -> Result<(), OrderError>;
}

fn main() {}
