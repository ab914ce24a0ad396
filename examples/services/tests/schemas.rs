//! The manifest's JSON Schemas accept what the servers really send: every method of
//! the example system is called over HTTP as another language's client would, and each
//! request body's arguments, each `200` result, each item of a stream (and the error
//! that ends one) and each `422` error `value` is checked with a JSON Schema validator
//! against the schema the manifest gives for it. Every error variant a server sends is
//! reached, and every variant of a stream's items.
//!
//! `cargo test -p example-services --features schema`

use std::collections::BTreeSet;
use std::sync::Arc;

use example_api::{CatalogProxy, CatalogServer, CheckoutServer};
use example_services::{InMemoryCatalog, ShopCheckout};
use intercall::manifest::{Manifest, MethodManifest};
use serde_json::{Value, json};

struct Node {
    url: String,
    manifest: Manifest,
    client: reqwest::Client,
    /// `Service.method result`, `Service.method ErrorType::Variant`: what was checked.
    seen: BTreeSet<String>,
}

impl Node {
    async fn call(&mut self, service: &str, method: &str, args: Value) -> Value {
        let described: MethodManifest = self.manifest.service(service).unwrap().method(method).unwrap().clone();
        for argument in &described.arguments {
            let schema = argument.ty.schema.as_ref().expect("built with the schema feature");
            let value = args.get(&argument.name).cloned().unwrap_or(Value::Null);
            check(schema, &value, &format!("{service}.{method}({})", argument.name));
        }
        let url = format!("{}{service}/{method}", self.url);
        let response = self.client.post(&url).header("content-type", "application/json").body(args.to_string());
        let response = response.send().await.unwrap();
        let status = response.status().as_u16();
        let ndjson = response.headers().get("content-type").is_some_and(|v| v == "application/x-ndjson");
        let bytes = response.bytes().await.unwrap();
        if status == 200 && ndjson {
            assert!(described.stream, "{service}.{method}: a stream from a method that is not one");
            return self.frames(service, method, &described, &bytes);
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        match status {
            200 => {
                check(described.result.schema.as_ref().unwrap(), &body, &format!("{service}.{method} result"));
                self.seen.insert(format!("{service}.{method} result"));
            }
            422 => self.error(service, method, &described, "", &body),
            other => panic!("{service}.{method}: HTTP {other}: {body}"),
        }
        body
    }

    /// A typed error body (a `422`'s, or a stream's error frame's): its `value` checked
    /// against the error schema, its variant recorded.
    fn error(&mut self, service: &str, method: &str, described: &MethodManifest, place: &str, body: &Value) {
        assert_eq!(body["kind"], "service", "{body}");
        check(described.error.schema.as_ref().unwrap(), &body["value"], &format!("{service}.{method} error"));
        let variant = format!("{}::{}", body["type"].as_str().unwrap(), body["variant"].as_str().unwrap());
        let inner = body["value"].get("Catalog").and_then(Value::as_object).and_then(|v| v.keys().next().cloned());
        let variant = inner.map_or(variant.clone(), |inner| format!("{variant}({inner})"));
        self.seen.insert(format!("{service}.{method} {place}{variant}"));
    }

    /// A stream method's `200` (PROTOCOL.md §4.3): each item checked against the
    /// method's item type (its `result`), an error frame's body against its error type.
    /// Returns the items.
    fn frames(&mut self, service: &str, method: &str, described: &MethodManifest, body: &[u8]) -> Value {
        let mut items = Vec::new();
        let mut ended = false;
        for line in body.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            assert!(!ended, "{service}.{method}: a frame after the final one");
            let frame: Value = serde_json::from_slice(line).unwrap();
            if let Some(item) = frame.get("item") {
                check(described.result.schema.as_ref().unwrap(), item, &format!("{service}.{method} item"));
                let variant = item.as_object().and_then(|v| v.keys().next().cloned()).unwrap_or_default();
                self.seen.insert(format!("{service}.{method} item {variant}"));
                items.push(item.clone());
            } else if frame["end"] == "error" {
                self.error(service, method, described, "end ", &frame["error"]);
                ended = true;
            } else if frame["end"] == "ok" {
                ended = true;
            }
        }
        assert!(ended, "{service}.{method}: a stream without its final frame");
        Value::Array(items)
    }
}

fn check(schema: &Value, value: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{what}: invalid schema: {e}"));
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: {value} does not match its schema: {errors:?}");
}

async fn serve(router: intercall::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(intercall::serve(listener, router));
    url
}

#[tokio::test]
async fn every_value_the_servers_send_matches_its_schema() {
    let catalog = Arc::new(InMemoryCatalog::default());
    let router = CatalogServer::from_arc(Arc::clone(&catalog))
        .into_router()
        .merge(CheckoutServer::new(ShopCheckout::new(catalog)).into_router());
    let url = serve(router).await;
    let manifest = Manifest::new(vec![CatalogServer::manifest(), CheckoutServer::manifest()]);
    let mut node = Node { url, manifest, client: reqwest::Client::new(), seen: BTreeSet::new() };

    let lamp = json!({"id": "", "name": "desk lamp", "price_cents": 2500, "tags": ["light", "desk"]});
    let saved = node.call("Catalog", "save", json!({ "product": lamp })).await;
    let id = saved["id"].as_str().unwrap().to_owned();
    node.call("Catalog", "save", json!({"product": {"id": "", "name": " ", "price_cents": 1, "tags": []}})).await;
    node.call("Catalog", "get", json!({ "id": id })).await;
    node.call("Catalog", "get", json!({"id": "p-404"})).await;
    node.call("Checkout", "quote", json!({"lines": [{"product_id": id, "quantity": 2}], "coupon": "HALF"})).await;
    node.call("Checkout", "quote", json!({"lines": [{"product_id": id, "quantity": 1}]})).await;
    node.call("Checkout", "quote", json!({"lines": []})).await;
    node.call("Checkout", "quote", json!({"lines": [{"product_id": id, "quantity": 1}], "coupon": "NOPE"})).await;
    node.call("Checkout", "quote", json!({"lines": [{"product_id": "p-404", "quantity": 1}]})).await;
    node.call("Checkout", "place_order", json!({"lines": [{"product_id": id, "quantity": 3}], "coupon": null})).await;
    let items = node.call("Checkout", "fulfil", json!({"lines": [{"product_id": id, "quantity": 1}]})).await;
    assert_eq!(items.as_array().map(Vec::len), Some(2), "progress, then shipped: {items}");
    node.call("Checkout", "fulfil", json!({"lines": [{"product_id": "p-404", "quantity": 1}]})).await;
    node.call("Checkout", "fulfil", json!({"lines": []})).await;
    node.call("Catalog", "delete", json!({ "id": id })).await;
    node.call("Catalog", "delete", json!({ "id": id })).await;

    // A checkout whose catalog cannot be reached sends `CallError` inside its error.
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let invoker = intercall::Invoker::builder().service("Catalog", dead).retries(false).build().unwrap();
    let lost = CheckoutServer::new(ShopCheckout::new(CatalogProxy::new(invoker).unwrap())).into_router();
    node.url = serve(lost).await;
    node.call("Checkout", "quote", json!({"lines": [{"product_id": "p-1", "quantity": 1}]})).await;

    let expected = [
        "Catalog.delete CatalogError::NotFound",
        "Catalog.delete result",
        "Catalog.get CatalogError::NotFound",
        "Catalog.get result",
        "Catalog.save CatalogError::Invalid",
        "Catalog.save result",
        "Checkout.fulfil CheckoutError::EmptyOrder",
        "Checkout.fulfil end CheckoutError::Catalog(NotFound)",
        "Checkout.fulfil item Progress",
        "Checkout.fulfil item Shipped",
        "Checkout.place_order result",
        "Checkout.quote CheckoutError::Catalog(NotFound)",
        "Checkout.quote CheckoutError::Catalog(Unavailable)",
        "Checkout.quote CheckoutError::EmptyOrder",
        "Checkout.quote CheckoutError::UnknownCoupon",
        "Checkout.quote result",
    ];
    assert_eq!(node.seen.iter().map(String::as_str).collect::<Vec<_>>(), expected);
}

#[test]
fn the_schemas_refuse_what_the_types_refuse() {
    let get = CatalogServer::manifest();
    let get = get.method("get").unwrap();
    let product = get.result.schema.as_ref().unwrap();
    let wrong = json!({"id": "p-1", "name": "lamp", "price_cents": "2500", "tags": []});
    let validator = jsonschema::validator_for(product).unwrap();
    assert!(!validator.is_valid(&wrong), "a price as a string");
    assert!(!validator.is_valid(&json!({"id": "p-1"})), "missing members");
    let error = jsonschema::validator_for(get.error.schema.as_ref().unwrap()).unwrap();
    assert!(error.is_valid(&json!({"NotFound": {"id": "x"}})));
    assert!(!error.is_valid(&json!({"Gone": {"id": "x"}})), "a variant the type does not have");
}
