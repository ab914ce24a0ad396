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

// With the `schema` feature every type here needs a JSON Schema. schemars' derive would
// change how rustc names serde's traits in the expected errors, so these are by hand.
macro_rules! schema_by_hand {
    ($($name:ident),*) => {$(
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                true.into()
            }
        }
    )*};
}
schema_by_hand!(Item, ShopError, Query);

#[intercall::service]
pub trait Shop {
    async fn find(&self, query: Query) -> Result<Item, ShopError>;
}

fn main() {}
