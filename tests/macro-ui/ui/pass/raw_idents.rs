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
    async fn r#type(&self, r#type: String, r#match: u8) -> Result<Item, ShopError>;
    async fn r#async(&self, r#fn: Vec<String>) -> Result<(), ShopError>;
}

struct Local;

impl Shop for Local {
    async fn r#type(&self, r#type: String, r#match: u8) -> Result<Item, ShopError> {
        Ok(Item { id: format!("{type}-{match}", type = r#type, match = r#match) })
    }

    async fn r#async(&self, r#fn: Vec<String>) -> Result<(), ShopError> {
        let _ = r#fn;
        Ok(())
    }
}

fn is_shop(_: &impl Shop) {}

fn main() {
    let _router: intercall::Router = ShopServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    is_shop(&ShopProxy::new(invoker).unwrap());
}
