use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PlainError {
    Rejected,
}

#[intercall::events]
pub trait Orders {
    async fn placed(&self, order_id: String) -> Result<(), PlainError>;
}

fn main() {}
