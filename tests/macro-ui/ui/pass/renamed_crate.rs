extern crate intercall as renamed;

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Item {
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ShopError {
    Unavailable(renamed::CallError),
}

impl From<renamed::CallError> for ShopError {
    fn from(error: renamed::CallError) -> Self {
        ShopError::Unavailable(error)
    }
}

#[renamed::service(crate = "renamed")]
pub trait Shop {
    async fn get(&self, id: String) -> Result<Item, ShopError>;
}

struct Local;

impl Shop for Local {
    async fn get(&self, id: String) -> Result<Item, ShopError> {
        Ok(Item { id })
    }
}

fn main() {
    let _router: renamed::Router = ShopServer::new(Local).into_router();
    let invoker = renamed::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    let _proxy: ShopProxy = ShopProxy::new(invoker).unwrap();
}
