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
    async fn ping(&self) -> Result<(), ShopError>;
    async fn list(&self) -> Result<Vec<Item>, ShopError>;
}

struct Local;

impl Shop for Local {
    async fn ping(&self) -> Result<(), ShopError> {
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Item>, ShopError> {
        Ok(Vec::new())
    }
}

fn is_shop(_: &impl Shop) {}

fn main() {
    let _router: intercall::Router = ShopServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    let proxy = ShopProxy::new(invoker).unwrap();
    is_shop(&proxy);
    is_shop(&(std::sync::Arc::new(Local) as std::sync::Arc<dyn Shop>));
}
