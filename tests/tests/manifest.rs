//! The service manifest (PROTOCOL.md §11): built without a server, served at
//! `/.well-known/intercall/manifest` for the whole node and per service, signed like a
//! call when the node has a secret, and left out when a server is told so.

use std::sync::Arc;

use example_api::{CatalogServer, CheckoutServer};
use example_services::{InMemoryCatalog, ShopCheckout};
use hmac::{Hmac, Mac};
use intercall::manifest::{INDEX_PATH, Manifest, service_path};
use intercall::{Router, Security};
use intercall_tests::spawn;
use sha2::{Digest, Sha256};

const SECRET: &str = "manifest-test-secret-0123456789";

fn node(security: Security) -> Router {
    let catalog = Arc::new(InMemoryCatalog::default());
    CatalogServer::from_arc(Arc::clone(&catalog))
        .security(security.clone())
        .into_router()
        .merge(CheckoutServer::new(ShopCheckout::new(catalog)).security(security).into_router())
}

async fn get(url: &str, headers: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (status, serde_json::from_slice(&bytes).expect("a JSON body"))
}

#[test]
fn the_manifest_exists_without_a_server() {
    let catalog = CatalogServer::manifest();
    assert_eq!(catalog.name, "Catalog");
    assert_eq!(catalog.docs, "The product catalog.");
    let names: Vec<_> = catalog.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["save", "get", "delete"]);
    let get = catalog.method("get").unwrap();
    assert_eq!(get.docs, "Finds a product by id.");
    assert_eq!(get.arguments[0].name, "id");
    assert_eq!(get.arguments[0].ty.rust_type, "String");
    assert!(get.arguments[0].required);
    assert_eq!(get.result.rust_type, "Product");
    assert_eq!(get.error.rust_type, "CatalogError");
    assert_eq!(catalog.method("delete").unwrap().result.rust_type, "()");

    let quote = CheckoutServer::manifest();
    let quote = quote.method("quote").unwrap();
    assert_eq!(quote.arguments[0].ty.rust_type, "Vec<OrderLine>");
    assert_eq!(quote.arguments[1].ty.rust_type, "Option<String>");
    assert!(!quote.arguments[1].required, "an Option argument may be left out");
}

#[tokio::test]
async fn a_node_serves_its_services_manifests() {
    let server = spawn(node(Security::none())).await;
    let (status, body) = get(&server.at(INDEX_PATH), &[]).await;
    assert_eq!(status, 200, "{body}");
    let manifest: Manifest = serde_json::from_value(body).unwrap();
    let names: Vec<_> = manifest.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Catalog", "Checkout"]);
    assert_eq!(manifest.service("Catalog"), Some(&CatalogServer::manifest()));

    let (status, body) = get(&server.at(&service_path("Checkout")), &[]).await;
    assert_eq!(status, 200);
    let one: Manifest = serde_json::from_value(body).unwrap();
    assert_eq!(one.services, [CheckoutServer::manifest()]);
}

#[tokio::test]
async fn another_nodes_services_are_not_listed() {
    let _other = spawn(CheckoutServer::new(ShopCheckout::new(InMemoryCatalog::default())).into_router()).await;
    let server = spawn(CatalogServer::new(InMemoryCatalog::default()).into_router()).await;
    let (_, body) = get(&server.at(INDEX_PATH), &[]).await;
    let manifest: Manifest = serde_json::from_value(body).unwrap();
    let names: Vec<_> = manifest.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Catalog"]);
}

#[tokio::test]
async fn a_server_can_keep_its_manifest_to_itself() {
    let catalog = CatalogServer::new(InMemoryCatalog::default()).without_manifest().into_router();
    let server = spawn(catalog).await;
    let (status, body) = get(&server.at(&service_path("Catalog")), &[]).await;
    assert_eq!(status, 404, "{body}");
    let (_, body) = get(&server.at(INDEX_PATH), &[]).await;
    assert_eq!(body["services"], serde_json::json!([]));
}

/// PROTOCOL.md §11: signed as a call, with the path (without its leading `/`) as the
/// `{service}/{method}` line and an empty body, built here by hand as another
/// language's client would.
fn signature(path: &str, timestamp: u64) -> String {
    let empty = format!("{:x}", Sha256::digest(b""));
    let canonical =
        ["intercall-v1", path.trim_start_matches('/'), &timestamp.to_string(), "", "", "", "", &empty].join("\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(canonical.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("v1={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[tokio::test]
async fn with_a_secret_manifest_requests_must_be_signed() {
    let server = spawn(node(Security::shared_secret(SECRET).unwrap())).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for path in [INDEX_PATH.to_owned(), service_path("Catalog")] {
        let (status, body) = get(&server.at(&path), &[]).await;
        assert_eq!((status, body["kind"].as_str()), (401, Some("unauthorized")), "{path}: {body}");

        let wrong = signature("/.well-known/intercall/other", now);
        let signed = [("x-intercall-timestamp", now.to_string()), ("x-intercall-signature", wrong)];
        assert_eq!(get(&server.at(&path), &signed).await.0, 401, "{path}: signed for another path");

        let signed = [("x-intercall-timestamp", now.to_string()), ("x-intercall-signature", signature(&path, now))];
        let (status, body) = get(&server.at(&path), &signed).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body["services"].as_array().unwrap().is_empty());
    }
}

/// Issue 16's audit: the index answered an unsigned `{"services":[]}` on a node with a
/// secret when no service served its manifest, as only the services' routes checked.
#[tokio::test]
async fn with_a_secret_the_index_is_signed_even_when_no_service_serves_its_manifest() {
    let security = Security::shared_secret(SECRET).unwrap();
    let catalog = CatalogServer::new(InMemoryCatalog::default()).security(security).without_manifest().into_router();
    let server = spawn(catalog).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for path in [INDEX_PATH.to_owned(), service_path("Catalog")] {
        let (status, body) = get(&server.at(&path), &[]).await;
        assert_eq!((status, body["kind"].as_str()), (401, Some("unauthorized")), "{path}: {body}");
    }
    let signed =
        |path: &str| [("x-intercall-timestamp", now.to_string()), ("x-intercall-signature", signature(path, now))];
    let (status, body) = get(&server.at(INDEX_PATH), &signed(INDEX_PATH)).await;
    assert_eq!((status, &body["services"]), (200, &serde_json::json!([])), "{body}");
    let path = service_path("Catalog");
    let (status, body) = get(&server.at(&path), &signed(&path)).await;
    assert_eq!(status, 404, "signed, and still not served: {body}");
}
