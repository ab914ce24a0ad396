#![deny(deprecated)]

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
    #[deprecated(note = "use `find`")]
    async fn get(&self, id: String) -> Result<Item, ShopError>;
    async fn find(&self, id: String) -> Result<Vec<Item>, ShopError>;
}

// The expansion uses `get` without a warning (see pass/deprecated_method.rs); a caller's
// use of it still warns, here denied.
async fn call(shop: &ShopProxy) -> Result<Item, ShopError> {
    shop.get("p-1".into()).await
}

fn main() {
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    let proxy = ShopProxy::new(invoker).unwrap();
    let _future = call(&proxy);
}
