use intercall::Streaming;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum FeedError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for FeedError {
    fn from(error: intercall::CallError) -> Self {
        FeedError::Unavailable(error)
    }
}

#[derive(Debug)]
pub struct Change {
    pub key: String,
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
schema_by_hand!(FeedError, Change);

#[intercall::service]
pub trait Feed {
    async fn watch(&self, topic: String) -> Result<Streaming<Change, FeedError>, FeedError>;
}

fn main() {}
