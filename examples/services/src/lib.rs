//! The example system's real implementations. They are plain `impl` blocks with plain
//! `async fn`s; nothing here knows about HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use example_api::{
    Catalog, CatalogError, Checkout, CheckoutError, Fulfilment, OrderEvents, OrderLine, PricedLine, Product, Quote,
};
use futures_util::StreamExt;
use intercall::Streaming;

/// A catalog held in memory.
#[derive(Default)]
pub struct InMemoryCatalog {
    products: Mutex<HashMap<String, Product>>,
    next_id: AtomicU64,
}

impl Catalog for InMemoryCatalog {
    async fn save(&self, mut product: Product) -> Result<Product, CatalogError> {
        if product.name.trim().is_empty() {
            return Err(CatalogError::Invalid("a product needs a name".into()));
        }
        if product.id.is_empty() {
            product.id = format!("p-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        }
        self.products.lock().unwrap().insert(product.id.clone(), product.clone());
        Ok(product)
    }

    async fn get(&self, id: String) -> Result<Product, CatalogError> {
        self.products.lock().unwrap().get(&id).cloned().ok_or(CatalogError::NotFound { id })
    }

    async fn delete(&self, id: String) -> Result<(), CatalogError> {
        match self.products.lock().unwrap().remove(&id) {
            Some(_) => Ok(()),
            None => Err(CatalogError::NotFound { id }),
        }
    }
}

/// Prices orders with products from any [`Catalog`]: the real one linked into this node,
/// or a `CatalogProxy` to another node. This code is the same in both builds. Placed
/// orders are told to any [`OrderEvents`]: an `OrderEventsPublisher`, a subscriber linked
/// in, or [`NoOrderEvents`].
pub struct ShopCheckout<C, E = NoOrderEvents> {
    /// Shared with the streams of [`Checkout::fulfil`], which outlive the call.
    catalog: Arc<C>,
    events: E,
    next_order: AtomicU64,
}

impl<C: Catalog> ShopCheckout<C> {
    pub fn new(catalog: C) -> Self {
        Self::with_events(catalog, NoOrderEvents)
    }
}

impl<C: Catalog, E: OrderEvents> ShopCheckout<C, E> {
    pub fn with_events(catalog: C, events: E) -> Self {
        Self { catalog: Arc::new(catalog), events, next_order: AtomicU64::new(1) }
    }
}

/// Order events nobody hears: for a node without an events stream.
pub struct NoOrderEvents;

impl OrderEvents for NoOrderEvents {
    async fn placed(&self, _order_id: String, _total_cents: u64, _lines: u32) -> Result<(), CheckoutError> {
        Ok(())
    }
}

/// Percent off for each known coupon.
const COUPONS: &[(&str, u64)] = &[("WELCOME10", 10), ("HALF", 50)];

impl<C: Catalog + 'static, E: OrderEvents> Checkout for ShopCheckout<C, E> {
    async fn quote(&self, lines: Vec<OrderLine>, coupon: Option<String>) -> Result<Quote, CheckoutError> {
        if lines.is_empty() {
            return Err(CheckoutError::EmptyOrder);
        }
        let percent_off = match &coupon {
            None => 0,
            Some(code) => match COUPONS.iter().find(|(known, _)| known == code) {
                Some((_, off)) => *off,
                None => return Err(CheckoutError::UnknownCoupon(code.clone())),
            },
        };
        let mut priced = Vec::with_capacity(lines.len());
        for line in lines {
            let product = self.catalog.get(line.product_id).await.map_err(CheckoutError::Catalog)?;
            let subtotal_cents = product.price_cents * u64::from(line.quantity);
            priced.push(PricedLine { product, quantity: line.quantity, subtotal_cents });
        }
        let total: u64 = priced.iter().map(|line| line.subtotal_cents).sum();
        Ok(Quote { lines: priced, total_cents: total * (100 - percent_off) / 100, coupon })
    }

    async fn place_order(&self, lines: Vec<OrderLine>, coupon: Option<String>) -> Result<String, CheckoutError> {
        let quote = self.quote(lines, coupon).await?;
        let order_id = format!("order-{}", self.next_order.fetch_add(1, Ordering::Relaxed));
        let lines = u32::try_from(quote.lines.len()).unwrap_or(u32::MAX);
        // Returns once Redis has the event; subscribers run on their own time.
        self.events.placed(order_id.clone(), quote.total_cents, lines).await?;
        Ok(order_id)
    }

    async fn fulfil(&self, lines: Vec<OrderLine>) -> Result<Streaming<Fulfilment, CheckoutError>, CheckoutError> {
        if lines.is_empty() {
            return Err(CheckoutError::EmptyOrder);
        }
        let tracking = format!("TRK-{}", self.next_order.fetch_add(1, Ordering::Relaxed));
        let (catalog, count) = (Arc::clone(&self.catalog), lines.len());
        // Each line is looked up as the caller reads the stream: the progress is real.
        let packed = futures_util::stream::iter(lines.into_iter().enumerate()).then(move |(done, line)| {
            let catalog = Arc::clone(&catalog);
            async move {
                let product = catalog.get(line.product_id).await.map_err(CheckoutError::Catalog)?;
                let percent = u8::try_from((done + 1) * 100 / count).unwrap_or(100);
                Ok(Fulfilment::Progress { percent, step: format!("packed {} x {}", line.quantity, product.name) })
            }
        });
        let shipped = futures_util::stream::once(async move { Ok(Fulfilment::Shipped { tracking }) });
        Ok(Streaming::new(packed.chain(shipped)))
    }
}
