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

fn main() {
    #[intercall::service]
    trait Shop {
        async fn get(&self, id: String) -> Result<Item, ShopError>;
    }

    struct Local;

    impl Shop for Local {
        async fn get(&self, id: String) -> Result<Item, ShopError> {
            Ok(Item { id })
        }
    }

    fn is_shop(_: &impl Shop) {}

    let _router: intercall::Router = ShopServer::new(Local).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    is_shop(&ShopProxy::new(invoker).unwrap());
}
