//! Transport failures over real loopback sockets: each reaches the caller as a value of
//! the method's error type carrying a `CallError` with the right predicate, and the
//! server (and the client) keep working afterwards.

use std::time::Duration;

use axum::http::{StatusCode, header::CONTENT_TYPE};
use axum::routing::post;
use example_api::{
    Catalog, CatalogError, CatalogProxy, CatalogServer, Checkout, CheckoutError, CheckoutProxy, CheckoutServer,
    OrderLine, Product,
};
use example_services::{InMemoryCatalog, ShopCheckout};
use intercall::CallError;
use intercall_tests::{dead_url, invoker, invoker_with_timeout, spawn};
use serde::{Deserialize, Serialize};

// ---- a service that never answers one of its methods ---------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
enum StallError {
    Unavailable(CallError),
}

impl From<CallError> for StallError {
    fn from(error: CallError) -> Self {
        StallError::Unavailable(error)
    }
}

#[intercall::service]
trait Stall {
    /// Never completes.
    async fn hang(&self) -> Result<(), StallError>;
    /// Answers at once.
    async fn ping(&self, text: String) -> Result<String, StallError>;
}

struct Stuck;

impl Stall for Stuck {
    async fn hang(&self) -> Result<(), StallError> {
        std::future::pending().await
    }

    async fn ping(&self, text: String) -> Result<String, StallError> {
        Ok(text)
    }
}

// ---- helpers ------------------------------------------------------------------------------

/// Serves a hand-written router with plain axum (no intercall fallback), as a server that
/// is not intercall's would. The task ends with the test's runtime.
async fn serve_foreign(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}/")
}

fn json(
    status: StatusCode,
    body: &'static str,
) -> (StatusCode, [(axum::http::HeaderName, &'static str); 1], &'static str) {
    (status, [(CONTENT_TYPE, "application/json")], body)
}

/// The `CallError` inside `Unavailable`, or a failure naming what came back instead.
#[track_caller]
fn unavailable<T: std::fmt::Debug>(result: Result<T, CatalogError>) -> CallError {
    match result {
        Err(CatalogError::Unavailable(e)) => e,
        other => panic!("expected Err(CatalogError::Unavailable(_)), got {other:?}"),
    }
}

/// Exactly one predicate holds.
fn kinds(e: &CallError) -> Vec<&'static str> {
    [
        ("timeout", e.is_timeout()),
        ("connect", e.is_connect()),
        ("status", e.is_status()),
        ("decode", e.is_decode()),
        ("encode", e.is_encode()),
        ("lookup", e.is_lookup()),
    ]
    .into_iter()
    .filter_map(|(name, holds)| holds.then_some(name))
    .collect()
}

fn product(name: &str, price_cents: u64) -> Product {
    Product { id: String::new(), name: name.into(), price_cents, tags: vec![] }
}

// ---- connect ----------------------------------------------------------------------------

#[tokio::test]
async fn server_down_is_a_connect_error() {
    let catalog = CatalogProxy::new(invoker("Catalog", &dead_url().await)).unwrap();
    let e = unavailable(catalog.get("p-1".into()).await);
    assert_eq!(kinds(&e), ["connect"], "{e:?}");
    assert_eq!(e.service(), "Catalog");
    assert_eq!(e.method(), "get");
    assert_eq!(e.status_code(), None);
    assert!(e.to_string().starts_with("call to Catalog.get failed: connection failed"), "{e}");

    // The failure is a value, not a poisoned proxy: the next call fails the same way.
    let e = unavailable(catalog.delete("p-1".into()).await);
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(e.method(), "delete");
}

// ---- timeout ----------------------------------------------------------------------------

#[tokio::test]
async fn no_reply_within_the_timeout_is_a_timeout_error() {
    let server = spawn(StallServer::new(Stuck).into_router()).await;
    let stall = StallProxy::new(invoker_with_timeout("Stall", &server.url(), Duration::from_millis(200))).unwrap();

    let e = match stall.hang().await {
        Err(StallError::Unavailable(e)) => e,
        other => panic!("expected a timeout, got {other:?}"),
    };
    assert_eq!(kinds(&e), ["timeout"], "{e:?}");
    assert_eq!(e.service(), "Stall");
    assert_eq!(e.method(), "hang");
    // An intercall server gives up waiting just before the client and says the call is
    // still running (409); without that reply, the client's own timer fires.
    assert!(matches!(e.status_code(), None | Some(409)), "{e:?}");
    assert!(e.message().contains("200 ms"), "{e}");

    // The server, the proxy and its connection pool still work.
    assert_eq!(stall.ping("still here".into()).await, Ok("still here".to_owned()));
}

// ---- decode -------------------------------------------------------------------------------

#[tokio::test]
async fn a_success_body_that_is_not_the_result_type_is_a_decode_error() {
    let router = axum::Router::new()
        .route("/Catalog/get", post(|| async { json(StatusCode::OK, r#"{"sku": 7, "label": "lamp"}"#) }))
        .route("/Catalog/delete", post(|| async { json(StatusCode::OK, "null") }));
    let catalog = CatalogProxy::new(invoker("Catalog", &serve_foreign(router).await)).unwrap();

    let e = unavailable(catalog.get("p-1".into()).await);
    assert_eq!(kinds(&e), ["decode"], "{e:?}");
    assert_eq!((e.service(), e.method()), ("Catalog", "get"));
    assert_eq!(e.status_code(), Some(200));

    // A well-formed reply on the same connection pool decodes.
    assert_eq!(catalog.delete("p-1".into()).await, Ok(()));
}

#[tokio::test]
async fn a_service_error_that_does_not_fit_the_error_type_is_a_decode_error() {
    const ENVELOPE: &str = r#"{"kind":"service","message":"Catalog.get returned CatalogError::Gone","type":"CatalogError","variant":"Gone","value":{"Gone":{"since":"yesterday"}}}"#;
    const NOT_FOUND: &str = r#"{"kind":"service","message":"Catalog.get returned CatalogError::NotFound","type":"CatalogError","variant":"NotFound","value":{"NotFound":{"id":"p-9"}}}"#;
    let router = axum::Router::new()
        .route("/Catalog/get", post(|| async { json(StatusCode::UNPROCESSABLE_ENTITY, ENVELOPE) }))
        .route("/Catalog/delete", post(|| async { json(StatusCode::UNPROCESSABLE_ENTITY, NOT_FOUND) }));
    let catalog = CatalogProxy::new(invoker("Catalog", &serve_foreign(router).await)).unwrap();

    let e = unavailable(catalog.get("p-1".into()).await);
    assert_eq!(kinds(&e), ["decode"], "{e:?}");
    assert_eq!(e.status_code(), Some(422));
    assert!(e.message().contains("CatalogError"), "the message names the server's error type: {e}");

    // An envelope whose value fits decodes into the typed error.
    assert_eq!(catalog.delete("p-9".into()).await, Err(CatalogError::NotFound { id: "p-9".into() }));
}

// ---- status -------------------------------------------------------------------------------

#[tokio::test]
async fn a_foreign_404_page_is_a_status_error() {
    let router = axum::Router::new().fallback(|| async {
        (StatusCode::NOT_FOUND, [(CONTENT_TYPE, "text/html")], "<html><body><h1>404 Not Found</h1></body></html>")
    });
    let catalog = CatalogProxy::new(invoker("Catalog", &serve_foreign(router).await)).unwrap();

    let e = unavailable(catalog.get("p-1".into()).await);
    assert_eq!(kinds(&e), ["status"], "{e:?}");
    assert_eq!(e.status_code(), Some(404));
    assert_eq!((e.service(), e.method()), ("Catalog", "get"));
    assert!(e.message().contains("404 Not Found"), "the message shows the start of the foreign body: {e}");
}

#[tokio::test]
async fn an_intercall_server_of_another_service_answers_unknown_service() {
    let catalog = InMemoryCatalog::default();
    let lamp = catalog.save(product("lamp", 1999)).await.unwrap();
    let server = spawn(CheckoutServer::new(ShopCheckout::new(catalog)).into_router()).await;

    let wrong = CatalogProxy::new(invoker("Catalog", &server.url())).unwrap();
    let e = unavailable(wrong.get(lamp.id.clone()).await);
    assert_eq!(kinds(&e), ["status"], "{e:?}");
    assert_eq!(e.status_code(), Some(404));
    assert!(e.message().contains("unknown_service"), "{e}");

    // The server still serves its own service.
    let checkout = CheckoutProxy::new(invoker("Checkout", &server.url())).unwrap();
    let quote = checkout.quote(vec![OrderLine { product_id: lamp.id, quantity: 2 }], None).await.unwrap();
    assert_eq!(quote.total_cents, 3998);
}

// ---- across two hops ---------------------------------------------------------------------------

#[tokio::test]
async fn a_call_error_survives_inside_a_typed_error_across_two_hops() {
    let dead_catalog = CatalogProxy::new(invoker("Catalog", &dead_url().await)).unwrap();
    let server = spawn(CheckoutServer::new(ShopCheckout::new(dead_catalog)).into_router()).await;
    let checkout = CheckoutProxy::new(invoker("Checkout", &server.url())).unwrap();

    let reply = checkout.quote(vec![OrderLine { product_id: "p-1".into(), quantity: 1 }], None).await;
    let e = match reply {
        Err(CheckoutError::Catalog(CatalogError::Unavailable(e))) => e,
        other => panic!("expected Err(CheckoutError::Catalog(CatalogError::Unavailable(_))), got {other:?}"),
    };
    assert_eq!(kinds(&e), ["connect"], "{e:?}");
    assert_eq!((e.service(), e.method()), ("Catalog", "get"), "the inner hop's service and method");
    assert_eq!(e.status_code(), None);

    // The checkout server keeps serving.
    assert_eq!(checkout.quote(vec![], None).await, Err(CheckoutError::EmptyOrder));
}

// ---- a base URL with a path prefix -----------------------------------------------------------

#[tokio::test]
async fn a_path_prefix_in_the_base_url_is_kept() {
    let router = axum::Router::new().nest("/shop/v1", CatalogServer::new(InMemoryCatalog::default()).into_router());
    let server = spawn(router).await;
    let catalog = CatalogProxy::new(invoker("Catalog", &server.at("shop/v1/"))).unwrap();
    let saved = catalog.save(product("desk", 12000)).await.unwrap();
    assert_eq!(catalog.get(saved.id.clone()).await, Ok(saved));
}

/// A reply larger than `max_reply_bytes` is refused, whether its size is declared or
/// only found while reading a chunked body; a reply within the limit still decodes.
#[tokio::test]
async fn a_reply_over_the_size_limit_is_refused_not_buffered() {
    let big = || format!(r#"{{"id":"p","name":"{}","price_cents":1,"tags":[]}}"#, "x".repeat(4096));
    let chunked = move || {
        let chunks: Vec<Result<String, std::io::Error>> = (0..8).map(|_| Ok("x".repeat(1024))).collect();
        axum::body::Body::from_stream(futures_util::stream::iter(chunks))
    };
    let router = axum::Router::new()
        .route(
            "/Catalog/get",
            post(move || async move { (StatusCode::OK, [(CONTENT_TYPE, "application/json")], big()) }),
        )
        .route("/Catalog/save", post(move || async move { (StatusCode::OK, chunked()) }))
        .route("/Catalog/delete", post(|| async { json(StatusCode::OK, "null") }));
    let url = serve_foreign(router).await;
    let config = format!("[defaults]\nmax_reply_bytes = 1024\n\n[services.Catalog]\nurl = \"{url}\"\n");
    let catalog = CatalogProxy::new(intercall::Invoker::from_toml(&config).unwrap()).unwrap();

    let declared = unavailable(catalog.get("p".into()).await);
    assert_eq!(kinds(&declared), ["decode"], "{declared:?}");
    assert!(declared.message().contains("max_reply_bytes"), "{declared}");
    let streamed = unavailable(catalog.save(product("lamp", 1)).await);
    assert_eq!(kinds(&streamed), ["decode"], "{streamed:?}");
    assert!(streamed.message().contains("more than 1024"), "{streamed}");
    assert_eq!(catalog.delete("p".into()).await, Ok(()));
}

/// Regression: a timeout too large to add to the clock must not panic at call time, on
/// the client (huge `timeout_ms`) or the server (huge `x-deadline-ms`).
#[tokio::test]
async fn huge_timeouts_and_deadlines_are_no_deadline_not_a_panic() {
    let server = spawn(CatalogServer::new(InMemoryCatalog::default()).into_router()).await;
    let config = format!("[defaults]\ntimeout_ms = {}\n\n[services.Catalog]\nurl = \"{}\"\n", u64::MAX, server.url());
    let catalog = CatalogProxy::new(intercall::Invoker::from_toml(&config).unwrap()).unwrap();
    assert_eq!(catalog.get("p-9".into()).await, Err(CatalogError::NotFound { id: "p-9".into() }));

    let reply = reqwest::Client::new()
        .post(format!("{}Catalog/get", server.url()))
        .header("content-type", "application/json")
        .header("x-deadline-ms", u64::MAX.to_string())
        .body(r#"{"id": "p-9"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 422);
}
