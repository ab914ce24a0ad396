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


// One mistake (`&str`); the code below uses the trait, the server and the proxy as if
// it were right, and must not add errors of its own.
#[intercall::service]
pub trait Shop {
    async fn get(&self, id: String) -> Result<Item, ShopError>;
    async fn find(&self, text: &str) -> Result<Vec<Item>, ShopError>;
    #[cfg(any())]
    async fn gone(&self, id: Missing) -> Result<Missing, ShopError>;
}

struct Local;

impl Shop for Local {
    async fn get(&self, id: String) -> Result<Item, ShopError> {
        Ok(Item { id })
    }

    async fn find(&self, text: &str) -> Result<Vec<Item>, ShopError> {
        Ok(vec![Item { id: text.to_owned() }])
    }
}

async fn call(shop: &ShopProxy) -> Result<usize, ShopError> {
    let item = shop.get("p-1".into()).await?;
    Ok(shop.find(&item.id).await?.len())
}

fn main() {
    let _router: intercall::Router = ShopServer::new(Local).max_body_bytes(1024).into_router();
    let invoker = intercall::Invoker::builder().service("Shop", "http://127.0.0.1:1/").build().unwrap();
    let proxy = ShopProxy::new(invoker).unwrap();
    let _future = call(&proxy);
}
