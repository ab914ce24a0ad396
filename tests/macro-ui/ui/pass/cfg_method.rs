#![deny(warnings)]

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


/// Methods whose `#[cfg]` (or a `#[cfg_attr]` that adds one) is false vanish from every
/// generated item: they name `Missing`, which does not exist, so any trace of them would
/// fail to compile. The others still work, in any order around them.
#[intercall::service]
pub trait Shop {
    #[cfg(any())]
    async fn gone(&self, id: Missing) -> Result<Missing, ShopError>;
    async fn get(&self, id: String) -> Result<Item, ShopError>;
    #[cfg_attr(all(), cfg(any()))]
    async fn also_gone(&self, id: Missing) -> Result<(), ShopError>;
    /// Kept: the `cfg_attr`'s condition is false, so it adds no `cfg`, only this doc.
    #[cfg_attr(any(), cfg(any()))]
    #[cfg_attr(all(), doc = "Lists every item.")]
    async fn list(&self) -> Result<Vec<Item>, ShopError>;
    #[cfg(all())]
    async fn count(&self) -> Result<u64, ShopError>;
}

struct Local;

impl Shop for Local {
    async fn get(&self, id: String) -> Result<Item, ShopError> {
        Ok(Item { id })
    }

    async fn list(&self) -> Result<Vec<Item>, ShopError> {
        Ok(Vec::new())
    }

    async fn count(&self) -> Result<u64, ShopError> {
        Ok(0)
    }
}

fn is_shop(_: &impl Shop) {}

fn main() {
    let _router: intercall::Router = ShopServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    let proxy = ShopProxy::new(invoker).unwrap();
    is_shop(&proxy);
    is_shop(&(std::sync::Arc::new(Local) as std::sync::Arc<dyn Shop>));
    is_shop(&(Box::new(Local) as Box<dyn Shop>));
    is_shop(&std::sync::Arc::new(Local));
    let _ = (proxy.get("p-1".into()), proxy.list(), proxy.count());
}
