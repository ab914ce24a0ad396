use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OrderError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for OrderError {
    fn from(error: intercall::CallError) -> Self {
        OrderError::Unavailable(error)
    }
}

/// Renamed, with a gated method, used as a node would.
#[intercall::events(name = "orders")]
pub trait Orders {
    async fn placed(&self, order_id: String, lines: Vec<u32>) -> Result<(), OrderError>;
    #[cfg(any())]
    async fn gone(&self) -> Result<(), OrderError>;
    async fn cancelled(&self) -> Result<(), OrderError>;
    /// In order per customer; a key type of the user's own.
    async fn moved(&self, #[ordering_key] customer: CustomerId, to: String) -> Result<(), OrderError>;
    async fn counted(&self, #[ordering_key] shelf: u64) -> Result<(), OrderError>;
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CustomerId(String);

impl intercall::OrderingKey for CustomerId {
    fn ordering_key(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.0)
    }
}

struct Mailer;

impl Orders for Mailer {
    async fn placed(&self, _order_id: String, _lines: Vec<u32>) -> Result<(), OrderError> {
        Ok(())
    }
    async fn cancelled(&self) -> Result<(), OrderError> {
        Ok(())
    }
    async fn moved(&self, _customer: CustomerId, _to: String) -> Result<(), OrderError> {
        Ok(())
    }
    async fn counted(&self, _shelf: u64) -> Result<(), OrderError> {
        Ok(())
    }
}

async fn checkout(events: &impl Orders) -> Result<(), OrderError> {
    events.placed("o-1".into(), vec![1]).await
}

fn main() {
    let invoker = intercall::Invoker::builder().build().unwrap();
    let _ = OrdersPublisher::new(invoker.clone()).map(|publisher| drop(checkout(&publisher)));
    let _ = checkout(&Mailer);
    let dynamic: std::sync::Arc<dyn Orders> = std::sync::Arc::new(Mailer);
    let _ = checkout(&dynamic);
    let consumer = OrdersConsumer::new(invoker, "mailer", Mailer).map(|c| c.consumer_name("m-1").only_new_events());
    let _ = consumer.map(|c| c.run(async {}));
}
