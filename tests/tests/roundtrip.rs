//! Every method and every error variant through a generated proxy and router, over real
//! loopback sockets.

use std::sync::Arc;

use example_api::{
    Catalog, CatalogError, CatalogProxy, CatalogServer, Checkout, CheckoutError, CheckoutProxy, CheckoutServer,
    OrderLine, Product,
};
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

/// A node can hold a service as `Arc<dyn Catalog>`, `Box<dyn Catalog>` or a generic
/// `C: Catalog`; the proxy and the real implementation both fit each.
async fn price_of<C: Catalog>(catalog: &C, id: &str) -> Result<u64, CatalogError> {
    Ok(catalog.get(id.into()).await?.price_cents)
}

#[tokio::test]
async fn the_same_trait_works_as_dyn_and_as_generic() {
    let (_server, proxy) = catalog_proxy().await;
    let saved = proxy.save(product("chair", 4200)).await.unwrap();

    let local = InMemoryCatalog::default();
    local.save(product("chair", 4200)).await.unwrap();

    let shared: Vec<Arc<dyn Catalog>> = vec![Arc::new(proxy.clone()), Arc::new(local)];
    for catalog in &shared {
        assert_eq!(catalog.get(saved.id.clone()).await.unwrap().price_cents, 4200);
        assert_eq!(price_of(catalog, &saved.id).await, Ok(4200));
        assert_eq!(catalog.get("x".into()).await, Err(CatalogError::NotFound { id: "x".into() }));
    }
    let boxed: Box<dyn Catalog> = Box::new(proxy.clone());
    assert_eq!(price_of(&boxed, &saved.id).await, Ok(4200));
    assert_eq!(price_of(&proxy, &saved.id).await, Ok(4200));

    // A server can serve a `dyn` implementation, too.
    let served = spawn(CatalogServer::new(shared[0].clone()).into_router()).await;
    let through_dyn = CatalogProxy::new(invoker("Catalog", &served.url())).unwrap();
    assert_eq!(price_of(&through_dyn, &saved.id).await, Ok(4200));
}

fn assert_send<F: std::future::Future + Send>(future: F) -> F {
    future
}

#[tokio::test]
async fn proxy_and_dyn_futures_are_send_and_spawnable() {
    let (_server, proxy) = catalog_proxy().await;
    let saved = proxy.save(product("rug", 900)).await.unwrap();
    let shared: Arc<dyn Catalog> = Arc::new(proxy.clone());
    let id = saved.id.clone();
    let task = tokio::spawn(async move { assert_send(shared.get(id)).await });
    assert_eq!(task.await.unwrap().unwrap().name, "rug");

    // Regression: generic code over `&Arc<dyn Catalog>` / `&Box<dyn Catalog>` inside a
    // spawned task needed the dyn impls for every object lifetime, not only 'static.
    let shared: Arc<dyn Catalog> = Arc::new(proxy.clone());
    let id = saved.id.clone();
    let task = tokio::spawn(async move { price_of(&shared, &id).await });
    assert_eq!(task.await.unwrap(), Ok(900));
    let boxed: Box<dyn Catalog> = Box::new(proxy);
    let task = tokio::spawn(async move { price_of(&boxed, &saved.id).await });
    assert_eq!(task.await.unwrap(), Ok(900));
}

#[tokio::test]
async fn an_arc_of_an_implementation_is_an_implementation() {
    let catalog = Arc::new(InMemoryCatalog::default());
    let saved = catalog.save(product("cup", 300)).await.unwrap();
    assert_eq!(price_of(&catalog, &saved.id).await, Ok(300));
    let server = spawn(CatalogServer::new(Arc::clone(&catalog)).into_router()).await;
    let proxy = CatalogProxy::new(invoker("Catalog", &server.url())).unwrap();
    assert_eq!(price_of(&proxy, &saved.id).await, Ok(300));
}

/// front -> Checkout node -> Catalog node, each hop a real socket; the typed error of
/// the last hop arrives inside the first hop's typed error.
#[tokio::test]
async fn a_call_chain_across_two_nodes_carries_results_and_typed_errors() {
    let (catalog_server, catalog) = catalog_proxy().await;
    let lamp = catalog.save(product("lamp", 1000)).await.unwrap();
    let desk = catalog.save(product("desk", 5000)).await.unwrap();

    let checkout_node = spawn(CheckoutServer::new(ShopCheckout::new(catalog.clone())).into_router()).await;
    let checkout = CheckoutProxy::new(invoker("Checkout", &checkout_node.url())).unwrap();
    let line = |id: &str, quantity| OrderLine { product_id: id.into(), quantity };

    let quote = checkout.quote(vec![line(&lamp.id, 2), line(&desk.id, 1)], Some("HALF".into())).await.unwrap();
    assert_eq!(quote.total_cents, 3500);
    assert_eq!(quote.lines[1].product, desk);
    assert_eq!(quote.coupon.as_deref(), Some("HALF"));

    // `coupon: None` travels as a missing/null optional argument.
    assert_eq!(checkout.quote(vec![line(&lamp.id, 1)], None).await.unwrap().total_cents, 1000);

    let missing = checkout.quote(vec![line("p-404", 1)], None).await;
    assert_eq!(missing, Err(CheckoutError::Catalog(CatalogError::NotFound { id: "p-404".into() })));
    assert_eq!(checkout.quote(vec![], None).await, Err(CheckoutError::EmptyOrder));
    assert_eq!(
        checkout.quote(vec![line(&lamp.id, 1)], Some("X".into())).await,
        Err(CheckoutError::UnknownCoupon("X".into()))
    );
    drop(catalog_server);
}

/// Two services merged into one node's router, reached through a path prefix with and
/// without a trailing slash.
#[tokio::test]
async fn merged_services_behind_a_path_prefix() {
    let catalog = Arc::new(InMemoryCatalog::default());
    let node = CatalogServer::from_arc(Arc::clone(&catalog))
        .into_router()
        .merge(CheckoutServer::new(ShopCheckout::new(Arc::clone(&catalog) as Arc<dyn Catalog>)).into_router());
    let gateway = spawn(intercall::Router::new().nest("/mesh/shop", node)).await;

    for base in [gateway.at("mesh/shop"), gateway.at("mesh/shop/")] {
        let invoker =
            intercall::Invoker::builder().service("Catalog", &base).service("Checkout", &base).build().unwrap();
        let catalog = CatalogProxy::new(invoker.clone()).unwrap();
        let checkout = CheckoutProxy::new(invoker).unwrap();
        let saved = catalog.save(product("pen", 150)).await.unwrap();
        let quote = checkout.quote(vec![OrderLine { product_id: saved.id, quantity: 4 }], None).await.unwrap();
        assert_eq!(quote.total_cents, 600);
    }
}
