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


/// A non-ASCII trait name is fine with an ASCII name for URLs.
#[intercall::service(name = "katalog")]
pub trait Katalög {
    async fn get(&self, id: String) -> Result<Item, ShopError>;
}

struct Local;

impl Katalög for Local {
    async fn get(&self, id: String) -> Result<Item, ShopError> {
        Ok(Item { id })
    }
}

fn main() {
    let _router: intercall::Router = KatalögServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("katalog", "http://127.0.0.1:1/").build().unwrap();
    let _proxy: KatalögProxy = KatalögProxy::new(invoker).unwrap();
}
