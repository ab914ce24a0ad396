//! PROTOCOL.md §7 from the client's side: what a proxy makes of replies that are not
//! quite intercall's, from a hand-written server on a real loopback socket. A result is
//! only a `200` with a JSON body; a kind counts only at its own status; retries follow
//! the status and kind alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use example_api::{Catalog, CatalogError, CatalogProxy};
use intercall::CallError;
use intercall_tests::{TestServer, spawn};

/// A Catalog node that answers `get` with `reply` every time, and counts the calls;
/// it serves as long as the returned `TestServer` lives.
async fn catalog_answering(reply: fn() -> Response) -> (CatalogProxy, Arc<AtomicU32>, TestServer) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/Catalog/get",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { reply() }
        }),
    );
    let server = spawn(router).await;
    let invoker = intercall::Invoker::builder()
        .tries(3)
        .backoff(std::time::Duration::from_millis(1), std::time::Duration::from_millis(1))
        .service("Catalog", server.url())
        .build()
        .unwrap();
    (CatalogProxy::new(invoker).unwrap(), calls, server)
}

async fn call_error(reply: fn() -> Response) -> (CallError, u32) {
    let (catalog, calls, _server) = catalog_answering(reply).await;
    match catalog.get("p-1".into()).await {
        Err(CatalogError::Unavailable(error)) => (error, calls.load(Ordering::SeqCst)),
        other => panic!("expected a CallError, got {other:?}"),
    }
}

const PRODUCT: &str = r#"{"id":"p-1","name":"lamp","price_cents":1,"tags":[]}"#;

#[tokio::test]
async fn a_200_that_is_not_json_is_a_decode_failure() {
    let (error, calls) = call_error(|| (StatusCode::OK, [(CONTENT_TYPE, "text/plain")], PRODUCT).into_response()).await;
    assert!(error.is_decode(), "{error:?}");
    assert!(error.message().contains("text/plain"), "{error}");
    assert_eq!(calls, 1, "not retried");
}

#[tokio::test]
async fn another_2xx_is_not_a_result() {
    let (error, calls) =
        call_error(|| (StatusCode::CREATED, [(CONTENT_TYPE, "application/json")], PRODUCT).into_response()).await;
    assert!(error.is_status(), "{error:?}");
    assert_eq!((error.status_code(), calls), (Some(201), 1));
}

const TYPED: &str =
    r#"{"kind":"service","message":"m","type":"CatalogError","variant":"NotFound","value":{"NotFound":{"id":"p-9"}}}"#;

fn typed_at(status: StatusCode) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], TYPED).into_response()
}

#[tokio::test]
async fn a_service_error_at_another_status_is_not_the_typed_error() {
    let replies: [fn() -> Response; 2] =
        [|| typed_at(StatusCode::BAD_REQUEST), || typed_at(StatusCode::INTERNAL_SERVER_ERROR)];
    for reply in replies {
        let (error, calls) = call_error(reply).await;
        assert!(error.is_status(), "{error:?}");
        assert!(error.message().contains("not an intercall reply"), "{error}");
        assert_eq!(calls, 1);
    }
}

#[tokio::test]
async fn the_same_body_at_422_is_the_typed_error() {
    let (catalog, calls, _server) = catalog_answering(|| typed_at(StatusCode::UNPROCESSABLE_ENTITY)).await;
    assert_eq!(catalog.get("p-1".into()).await, Err(CatalogError::NotFound { id: "p-9".into() }));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_foreign_503_is_retried_and_a_foreign_409_is_not() {
    let (error, calls) = call_error(|| (StatusCode::SERVICE_UNAVAILABLE, "<html>busy</html>").into_response()).await;
    assert!(error.is_status() && error.message().contains("<html>busy"), "{error:?}");
    assert_eq!((calls, error.attempts()), (3, 3), "503 is retried whatever its body");

    let (error, calls) = call_error(|| (StatusCode::CONFLICT, [(RETRY_AFTER, "0")], "conflict").into_response()).await;
    assert!(error.is_status(), "{error:?}");
    assert_eq!(calls, 1, "only an intercall `in_progress` 409 is retried");
}

#[tokio::test]
async fn an_unknown_kind_is_a_framework_failure_with_its_name() {
    let (error, calls) = call_error(|| {
        (StatusCode::IM_A_TEAPOT, [(CONTENT_TYPE, "application/json")], r#"{"kind":"teapot","message":"short"}"#)
            .into_response()
    })
    .await;
    assert!(error.is_status(), "{error:?}");
    assert!(error.message().starts_with("teapot: short"), "{error}");
    assert_eq!((error.status_code(), calls), (Some(418), 1));
}

#[tokio::test]
async fn a_result_that_does_not_decode_is_a_decode_failure_not_retried() {
    let (error, calls) =
        call_error(|| (StatusCode::OK, [(CONTENT_TYPE, "application/json")], r#"{"id":5}"#).into_response()).await;
    assert!(error.is_decode(), "{error:?}");
    assert_eq!(calls, 1, "the same request would get the same reply");
}

#[tokio::test]
async fn a_typed_error_that_does_not_decode_is_a_decode_failure_not_retried() {
    const BODY: &str = r#"{"kind":"service","message":"m","type":"Other","value":{"Unheard":1}}"#;
    let (error, calls) =
        call_error(|| (StatusCode::UNPROCESSABLE_ENTITY, [(CONTENT_TYPE, "application/json")], BODY).into_response())
            .await;
    assert!(error.is_decode() && error.message().contains("Other"), "{error:?}");
    assert_eq!(calls, 1, "the same request would get the same reply");
}

#[tokio::test]
async fn deadline_exceeded_is_a_timeout_not_retried() {
    const BODY: &str = r#"{"kind":"deadline_exceeded","message":"the caller gave up"}"#;
    let (error, calls) =
        call_error(|| (StatusCode::GATEWAY_TIMEOUT, [(CONTENT_TYPE, "application/json")], BODY).into_response()).await;
    assert!(error.is_timeout() && !error.is_status(), "{error:?}");
    assert_eq!((error.status_code(), calls), (Some(504), 1));
}
