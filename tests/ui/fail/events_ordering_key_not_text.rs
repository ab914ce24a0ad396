use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum OrderError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for OrderError {
    fn from(error: intercall::CallError) -> Self {
        OrderError::Unavailable(error)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
}

#[intercall::events]
pub trait Orders {
    async fn shipped(&self, #[ordering_key] to: Address, order_id: String) -> Result<(), OrderError>;
}

fn main() {}
