//! Code that calls a service, tested without a server: a hand-written fake and a
//! mockall mock of the same trait return `CallError`s built with the public
//! constructors, and the caller's handling of each kind is what is checked.
//!
//! Attribute order: `#[intercall::service]` must come *above* `#[mockall::automock]`.
//! The other way round, automock copies the trait's attributes onto the items it
//! generates and `#[intercall::service]` meets something that is not a trait.

use std::sync::atomic::{AtomicU32, Ordering};

use intercall::CallError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum InventoryError {
    UnknownSku { sku: String },
    Unavailable(CallError),
}

impl From<CallError> for InventoryError {
    fn from(error: CallError) -> Self {
        InventoryError::Unavailable(error)
    }
}

#[intercall::service]
#[mockall::automock]
pub trait Inventory {
    /// How many of `sku` are in stock.
    async fn count(&self, sku: String) -> Result<u32, InventoryError>;
}

/// The code under test: what a shop page shows for one product.
async fn availability(inventory: &impl Inventory, sku: &str) -> String {
    match inventory.count(sku.to_owned()).await {
        Ok(0) => "sold out".to_owned(),
        Ok(n) => format!("{n} in stock"),
        Err(InventoryError::UnknownSku { .. }) => "no such product".to_owned(),
        Err(InventoryError::Unavailable(e)) if e.is_timeout() => "stock unknown, try again".to_owned(),
        Err(InventoryError::Unavailable(e)) if e.status_code() == Some(429) => "busy, try again later".to_owned(),
        Err(InventoryError::Unavailable(_)) => "stock unknown".to_owned(),
    }
}

/// A hand-written fake: a struct implementing the trait, counting its calls.
struct FailingInventory {
    error: CallError,
    calls: AtomicU32,
}

impl Inventory for FailingInventory {
    async fn count(&self, _sku: String) -> Result<u32, InventoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(self.error.clone().into())
    }
}

#[tokio::test]
async fn a_hand_written_fake_returns_each_kind_of_failure() {
    for (error, shown) in [
        (CallError::new_timeout("Inventory", "count"), "stock unknown, try again"),
        (CallError::new_timeout("Inventory", "count").with_status(504), "stock unknown, try again"),
        (CallError::new_status("Inventory", "count", 429), "busy, try again later"),
        (CallError::new_connect("Inventory", "count"), "stock unknown"),
        (CallError::new_decode("Inventory", "count"), "stock unknown"),
    ] {
        let fake = FailingInventory { error: error.clone(), calls: AtomicU32::new(0) };
        assert_eq!(availability(&fake, "sku-1").await, shown, "{error:?}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_mockall_mock_of_the_same_trait() {
    let mut inventory = MockInventory::new();
    inventory
        .expect_count()
        .withf(|sku| sku == "sku-1")
        .times(1)
        .returning(|_| Box::pin(async { Err(CallError::new_timeout("Inventory", "count").into()) }));
    inventory.expect_count().withf(|sku| sku == "sku-2").times(1).returning(|_| Box::pin(async { Ok(3) }));
    inventory
        .expect_count()
        .withf(|sku| sku == "sku-3")
        .times(1)
        .returning(|sku| Box::pin(async move { Err(InventoryError::UnknownSku { sku }) }));
    assert_eq!(availability(&inventory, "sku-1").await, "stock unknown, try again");
    assert_eq!(availability(&inventory, "sku-2").await, "3 in stock");
    assert_eq!(availability(&inventory, "sku-3").await, "no such product");
    inventory.checkpoint();
}
