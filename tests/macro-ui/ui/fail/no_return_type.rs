use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Item {
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ShopError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for ShopError {
    fn from(error: intercall::CallError) -> Self {
        ShopError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Shop {
    async fn get(&self, id: String);
}

fn main() {}
