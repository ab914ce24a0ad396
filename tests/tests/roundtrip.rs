//! Every method and every error variant through a generated proxy and router, over real
//! loopback sockets.

use std::sync::Arc;

use example_api::{Catalog, CatalogError, CatalogProxy, CatalogServer, Checkout, CheckoutError, CheckoutProxy, CheckoutServer, OrderLine, Product};
use example_services::{InMemoryCatalog, ShopCheckout};
use intercall_tests::{invoker, spawn};

fn product(name: &str, price_cents: u64) -> Product {
    Product { id: String::new(), name: name.into(), price_cents, tags: vec!["t".into()] }
}

async fn catalog_proxy() -> (intercall_tests::TestServer, CatalogProxy) {
    let server = spawn(CatalogServer::new(InMemoryCatalog::default()).into_router()).await;
    let proxy = CatalogProxy::new(invoker("Catalog", &server.url())).unwrap();
    (server, proxy)
}

#[tokio::test]
async fn every_catalog_method_round_trips() {
    let (_server, catalog) = catalog_proxy().await;
    let saved = catalog.save(product("lamp", 1999)).await.unwrap();
    assert_eq!(saved.id, "p-1");
    assert_eq!(saved.name, "lamp");
    assert_eq!(catalog.get(saved.id.clone()).await, Ok(saved.clone()));
    assert_eq!(catalog.delete(saved.id.clone()).await, Ok(()));
    assert_eq!(catalog.get(saved.id.clone()).await, Err(CatalogError::NotFound { id: saved.id }));
}

#[tokio::test]
async fn every_catalog_error_variant_round_trips() {
    let (_server, catalog) = catalog_proxy().await;
    assert_eq!(catalog.get("nope".into()).await, Err(CatalogError::NotFound { id: "nope".into() }));
    assert_eq!(catalog.delete("gone".into()).await, Err(CatalogError::NotFound { id: "gone".into() }));
    assert_eq!(catalog.save(product(" ", 1)).await, Err(CatalogError::Invalid("a product needs a name".into())));
}
