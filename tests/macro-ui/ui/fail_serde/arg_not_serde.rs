use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ShopError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for ShopError {
    fn from(error: intercall::CallError) -> Self {
        ShopError::Unavailable(error)
    }
}

#[derive(Debug)]
pub struct Query {
    pub text: String,
}

#[intercall::service]
pub trait Shop {
    async fn find(&self, query: Query) -> Result<Item, ShopError>;
}

fn main() {}
