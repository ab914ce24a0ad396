//! The example system's real implementations. They are plain `impl` blocks with plain
//! `async fn`s; nothing here knows about HTTP.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use example_api::{Catalog, CatalogError, Checkout, CheckoutError, OrderLine, PricedLine, Product, Quote};

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
/// or a `CatalogProxy` to another node. This code is the same in both builds.
pub struct ShopCheckout<C> {
    catalog: C,
}

impl<C: Catalog> ShopCheckout<C> {
    pub fn new(catalog: C) -> Self {
        Self { catalog }
    }
}

/// Percent off for each known coupon.
const COUPONS: &[(&str, u64)] = &[("WELCOME10", 10), ("HALF", 50)];

impl<C: Catalog> Checkout for ShopCheckout<C> {
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
}
