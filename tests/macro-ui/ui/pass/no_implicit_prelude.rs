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

mod m {
    #![no_implicit_prelude]

    use super::{Item, ShopError};

    #[::intercall::service]
    pub trait Shop {
        async fn get(&self, id: ::std::string::String) -> ::std::result::Result<Item, ShopError>;
        async fn list(&self) -> ::std::result::Result<::std::vec::Vec<Item>, ShopError>;
        async fn watch(&self) -> ::std::result::Result<::intercall::Streaming<Item, ShopError>, ShopError>;
    }
}

use m::{Shop, ShopProxy, ShopServer};

struct Local;

impl Shop for Local {
    async fn get(&self, id: String) -> Result<Item, ShopError> {
        Ok(Item { id })
    }

    async fn list(&self) -> Result<Vec<Item>, ShopError> {
        Ok(Vec::new())
    }

    async fn watch(&self) -> Result<intercall::Streaming<Item, ShopError>, ShopError> {
        Ok(intercall::Streaming::iter([Ok(Item { id: "1".into() })]))
    }
}

fn is_shop(_: &impl Shop) {}

fn main() {
    let _router: intercall::Router = ShopServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    is_shop(&ShopProxy::new(invoker).unwrap());
}
