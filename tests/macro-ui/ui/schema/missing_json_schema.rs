// With intercall's `schema` feature, every argument, result and error type needs a
// JSON Schema; `Query` has none. Run by tests/macro-ui/tests/ui.rs with that feature.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub enum SearchError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for SearchError {
    fn from(error: intercall::CallError) -> Self {
        SearchError::Unavailable(error)
    }
}

#[derive(Serialize, Deserialize)]
pub struct Query {
    pub text: String,
}

#[intercall::service]
pub trait Search {
    async fn find(&self, query: Query) -> Result<Vec<String>, SearchError>;
}

fn main() {}
