#![deny(missing_docs)]
//! The example system's API crate: the service traits and their data types, nothing
//! else. Every node depends on it; none of them needs to know where a service runs.

use intercall::{CallError, Streaming};
use serde::{Deserialize, Serialize};

/// A product in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Product {
    /// Assigned by [`Catalog::save`] when empty.
    pub id: String,
    /// What the customer sees.
    pub name: String,
    /// Price in cents.
    pub price_cents: u64,
    /// Free-form labels.
    pub tags: Vec<String>,
}

/// What can go wrong in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum CatalogError {
    /// No product has this id.
    #[error("no product with id `{id}`")]
    NotFound {
        /// The id that was asked for.
        id: String,
    },
    /// The product was rejected; the text says why.
    #[error("invalid product: {0}")]
    Invalid(String),
    /// The catalog could not be reached (timeout, refused connection, bad reply).
    #[error("catalog unavailable: {0}")]
    Unavailable(CallError),
}

impl From<CallError> for CatalogError {
    fn from(error: CallError) -> Self {
        CatalogError::Unavailable(error)
    }
}

/// The product catalog.
#[intercall::service]
pub trait Catalog {
    /// Saves a product and returns it with its id.
    async fn save(&self, product: Product) -> Result<Product, CatalogError>;
    /// Finds a product by id.
    async fn get(&self, id: String) -> Result<Product, CatalogError>;
    /// Removes a product; removing a missing product is `NotFound`.
    async fn delete(&self, id: String) -> Result<(), CatalogError>;
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderLine {
    /// The [`Product::id`] ordered.
    pub product_id: String,
    /// How many.
    pub quantity: u32,
}

/// A priced order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Quote {
    /// The priced lines, in order.
    pub lines: Vec<PricedLine>,
    /// The total after the coupon, in cents.
    pub total_cents: u64,
    /// The coupon that was applied, if any.
    pub coupon: Option<String>,
}

/// An order line with its product and price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PricedLine {
    /// The product, as the catalog has it.
    pub product: Product,
    /// How many.
    pub quantity: u32,
    /// Price times quantity, in cents.
    pub subtotal_cents: u64,
}

/// What can go wrong at checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum CheckoutError {
    /// An order needs at least one line.
    #[error("the order is empty")]
    EmptyOrder,
    /// No such coupon.
    #[error("unknown coupon `{0}`")]
    UnknownCoupon(String),
    /// The catalog answered with its own typed error.
    #[error("catalog: {0}")]
    Catalog(CatalogError),
    /// Checkout could not be reached.
    #[error("checkout unavailable: {0}")]
    Unavailable(CallError),
}

impl From<CallError> for CheckoutError {
    fn from(error: CallError) -> Self {
        CheckoutError::Unavailable(error)
    }
}

/// What [`Checkout::fulfil`] reports: progress, then the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Fulfilment {
    /// One more line is packed.
    Progress {
        /// How much of the order is packed, 0 to 100.
        percent: u8,
        /// What was just done.
        step: String,
    },
    /// Everything is packed and handed to the carrier: the last item.
    Shipped {
        /// The carrier's tracking code.
        tracking: String,
    },
}

/// Prices orders; looks products up in the [`Catalog`].
#[intercall::service]
pub trait Checkout {
    /// Prices an order, applying `coupon` when given.
    async fn quote(&self, lines: Vec<OrderLine>, coupon: Option<String>) -> Result<Quote, CheckoutError>;
    /// Prices the order and places it: the quote becomes an order, and
    /// [`OrderEvents::placed`] tells whoever subscribes.
    async fn place_order(&self, lines: Vec<OrderLine>, coupon: Option<String>) -> Result<String, CheckoutError>;
    /// Packs and ships an order, reporting each packed line, then the tracking code: a
    /// stream. An empty order is refused before the first item; a product the catalog
    /// does not have ends the stream with [`CheckoutError::Catalog`].
    async fn fulfil(&self, lines: Vec<OrderLine>) -> Result<Streaming<Fulfilment, CheckoutError>, CheckoutError>;
}

/// What happens to orders, for whoever subscribes (a mailer, a ledger, ...): published
/// by checkout on Redis Streams, each subscriber group gets every event.
#[intercall::events]
pub trait OrderEvents {
    /// An order was placed: its id, its total and how many lines it has.
    async fn placed(&self, order_id: String, total_cents: u64, lines: u32) -> Result<(), CheckoutError>;
}
