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

#[intercall::service]
pub trait Orders {
    async fn place(&self, #[ordering_key] customer: String) -> Result<(), OrderError>;
}

fn main() {}
