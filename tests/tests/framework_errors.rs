//! Every framework-level failure a raw HTTP client can provoke, answered with its
//! documented status and JSON error body; and after each one the same server still
//! answers a good request.
//!
//! The clients here are deliberately not intercall's proxy: plain reqwest for anything
//! that is valid HTTP, and a raw `TcpStream` writing bytes for chunked bodies and
//! malformed HTTP.

use std::time::Duration;

use example_api::{CatalogError, CatalogServer, Product};
use example_services::InMemoryCatalog;
use intercall::{CallError, DEFAULT_MAX_BODY_BYTES};
use intercall_tests::{RawReply, TestServer, post_raw, request_raw, spawn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------
// A test-only service: a panicking method, an optional argument, a nested argument and
// a method without arguments.
// ---------------------------------------------------------------------------------

/// The secret a panicking implementation carries; it must never reach a client.
const PANIC_SECRET: &str = "db password is hunter2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProbeError {
    #[error("probe unavailable: {0}")]
    Unavailable(CallError),
}

impl From<CallError> for ProbeError {
    fn from(error: CallError) -> Self {
        ProbeError::Unavailable(error)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Address {
    pub street: String,
    pub zip: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Customer {
    pub name: String,
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Order {
    pub customer: Customer,
    pub lines: Vec<Line>,
}

#[intercall::service]
pub trait Probe {
    /// Always panics with a message that contains [`PANIC_SECRET`].
    async fn boom(&self, reason: String) -> Result<(), ProbeError>;
    /// `Hello, {name}!`, or `Hello, stranger!` without a name.
    async fn greet(&self, name: Option<String>) -> Result<String, ProbeError>;
    /// Echoes the order back.
    async fn submit(&self, order: Order, note: Option<String>) -> Result<Order, ProbeError>;
    /// No arguments at all.
    async fn ping(&self) -> Result<String, ProbeError>;
}

struct TestProbe;

impl Probe for TestProbe {
    async fn boom(&self, reason: String) -> Result<(), ProbeError> {
        panic!("{PANIC_SECRET} ({reason})");
    }

    async fn greet(&self, name: Option<String>) -> Result<String, ProbeError> {
        Ok(format!("Hello, {}!", name.as_deref().unwrap_or("stranger")))
    }

    async fn submit(&self, order: Order, _note: Option<String>) -> Result<Order, ProbeError> {
        Ok(order)
    }

    async fn ping(&self) -> Result<String, ProbeError> {
        Ok("pong".into())
    }
}

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// A guard against hangs only: generous, never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Catalog and Probe with default options, as a node serves them.
async fn server() -> TestServer {
    spawn(CatalogServer::new(InMemoryCatalog::default()).into_router().merge(ProbeServer::new(TestProbe).into_router()))
        .await
}

/// Catalog and Probe with a 1 KiB body limit.
async fn small_limit_server() -> TestServer {
    spawn(
        CatalogServer::new(InMemoryCatalog::default())
            .max_body_bytes(1024)
            .into_router()
            .merge(ProbeServer::new(TestProbe).max_body_bytes(1024).into_router()),
    )
    .await
}

fn product_json(name: &str) -> Value {
    json!({"product": {"id": "", "name": name, "price_cents": 1999, "tags": ["t"]}})
}

fn order_json() -> Value {
    json!({
        "order": {
            "customer": {"name": "Ada", "address": {"street": "1 Loop Rd", "zip": 12345}},
            "lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 2}]
        }
    })
}

async fn post_json(server: &TestServer, path: &str, body: &Value) -> RawReply {
    post_raw(&server.at(path), Some("application/json"), body.to_string()).await
}

/// The server still answers a good request normally: a fresh connection, a valid
/// `Catalog.save`, a 200 with the saved product; and the test service answers too.
async fn assert_still_serving(server: &TestServer) {
    let reply = post_json(server, "/Catalog/save", &product_json("still-serving")).await;
    assert_eq!(reply.status, 200, "the server stopped answering good requests: {reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "{reply:?}");
    let saved: Product =
        serde_json::from_value(reply.body.clone()).unwrap_or_else(|e| panic!("not a Product ({e}): {reply:?}"));
    assert_eq!(saved.name, "still-serving");
    assert!(saved.id.starts_with("p-"), "{saved:?}");

    let reply = post_raw(&server.at("/Probe/ping"), Some("application/json"), "").await;
    assert_eq!((reply.status, &reply.body), (200, &json!("pong")), "{reply:?}");
}

/// Asserts a framework error reply: the status, `application/json`, the `kind`, a
/// non-empty `message`; returns the message.
#[track_caller]
fn assert_error(reply: &RawReply, status: u16, kind: &str) -> String {
    assert_eq!(reply.status, status, "wrong status: {reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "wrong content type: {reply:?}");
    let body = reply.body.as_object().unwrap_or_else(|| panic!("the error body is not a JSON object: {reply:?}"));
    assert_eq!(body.get("kind").and_then(Value::as_str), Some(kind), "wrong kind: {reply:?}");
    let message =
        body.get("message").and_then(Value::as_str).unwrap_or_else(|| panic!("no string `message`: {reply:?}"));
    assert!(!message.trim().is_empty(), "empty message: {reply:?}");
    if kind != "service" {
        for field in ["type", "variant", "value"] {
            assert!(body.get(field).is_none(), "a `{kind}` reply carries the service-only field `{field}`: {reply:?}");
        }
    }
    message.to_owned()
}

/// A `bad_request` naming `argument` in its `argument` field and in its message.
#[track_caller]
fn assert_bad_argument(reply: &RawReply, argument: &str) -> String {
    let message = assert_error(reply, 400, "bad_request");
    assert_eq!(reply.body.get("argument").and_then(Value::as_str), Some(argument), "wrong `argument`: {reply:?}");
    assert!(message.contains(&format!("`{argument}`")), "the message does not name `{argument}`: {message}");
    message
}

/// What a raw HTTP exchange produced.
#[derive(Debug)]
struct RawHttp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawHttp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("reply body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The reply as the reqwest-based helpers would see it.
    fn as_raw_reply(&self) -> RawReply {
        RawReply {
            status: self.status,
            content_type: self.header("content-type").map(str::to_owned),
            body: self.json(),
        }
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it.
/// `None` when the server closed without answering; `Some` with the first reply
/// otherwise. Write errors are ignored: the server may answer and close before it
/// has read everything.
async fn raw_exchange(server: &TestServer, request: &[u8], half_close: bool) -> Option<RawHttp> {
    let exchange = async {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let (mut read, mut write) = stream.split();
        let writer = async {
            let _ = write.write_all(request).await;
            if half_close {
                let _ = write.shutdown().await;
            }
        };
        let mut reply = Vec::new();
        let reader = async {
            // A reset after the reply is fine: we keep what we read.
            let mut buf = [0u8; 8192];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::join!(writer, reader);
        reply
    };
    let reply = tokio::time::timeout(HANG_GUARD, exchange)
        .await
        .expect("the server neither answered nor closed the connection (hang)");
    if reply.is_empty() {
        return None;
    }
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("an incomplete HTTP reply: {}", String::from_utf8_lossy(&reply));
    });
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {head}"));
    let mut raw = RawHttp { status, head, body: reply[split + 4..].to_vec() };
    if let Some(len) = raw.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        assert!(raw.body.len() >= len, "a truncated reply body: {raw:?}");
        raw.body.truncate(len);
    }
    Some(raw)
}

/// The server answered malformed HTTP with a 400 or closed the connection.
#[track_caller]
fn assert_rejected_or_closed(reply: &Option<RawHttp>, what: &str) {
    if let Some(reply) = reply {
        assert_eq!(reply.status, 400, "{what}: expected 400 or a closed connection: {reply:?}");
    }
}

/// A chunked request for `path` whose body is `body` split into 100-byte chunks.
fn chunked_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// A `Catalog.save` body of exactly `len` bytes: a valid product padded with trailing
/// whitespace, which JSON ignores.
fn save_body_of_len(len: usize) -> String {
    let mut body = product_json("padded").to_string();
    assert!(body.len() <= len);
    body.push_str(&" ".repeat(len - body.len()));
    body
}

/// A `Catalog.save` body of exactly `len` bytes whose product name fills it.
fn big_save_body(len: usize) -> String {
    let empty = product_json("").to_string();
    let body = product_json(&"x".repeat(len - empty.len())).to_string();
    assert_eq!(body.len(), len);
    body
}

// ---------------------------------------------------------------------------------
// Successes.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_call_is_200_with_the_json_result() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/save", &product_json("lamp")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.body, json!({"id": "p-1", "name": "lamp", "price_cents": 1999, "tags": ["t"]}));

    let reply = post_json(&server, "/Catalog/get", &json!({"id": "p-1"})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["name"], "lamp");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn unknown_fields_are_ignored_at_every_level() {
    let server = server().await;
    let body = json!({
        "product": {"id": "", "name": "lamp", "price_cents": 5, "tags": [], "colour": "red"},
        "extra": {"anything": [1, 2, 3]},
    });
    let reply = post_json(&server, "/Catalog/save", &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"id": "p-1", "name": "lamp", "price_cents": 5, "tags": []}));
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_missing_option_argument_is_none_and_null_is_none() {
    let server = server().await;
    let reply = post_json(&server, "/Probe/greet", &json!({})).await;
    assert_eq!((reply.status, &reply.body), (200, &json!("Hello, stranger!")), "{reply:?}");
    let reply = post_json(&server, "/Probe/greet", &json!({"name": null})).await;
    assert_eq!((reply.status, &reply.body), (200, &json!("Hello, stranger!")), "{reply:?}");
    let reply = post_json(&server, "/Probe/greet", &json!({"name": "Ada"})).await;
    assert_eq!((reply.status, &reply.body), (200, &json!("Hello, Ada!")), "{reply:?}");

    // An optional argument beside a required one.
    let reply = post_json(&server, "/Probe/submit", &order_json()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, order_json()["order"]);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn an_empty_body_calls_a_method_without_arguments() {
    let server = server().await;
    for body in ["", "  \r\n", "{}", r#"{"unexpected": true}"#] {
        let reply = post_raw(&server.at("/Probe/ping"), Some("application/json"), body).await;
        assert_eq!((reply.status, &reply.body), (200, &json!("pong")), "body {body:?}: {reply:?}");
    }
    // An empty body is "no arguments", so a method that needs one reports it missing.
    let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), "").await;
    assert_bad_argument(&reply, "id");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn json_content_types_with_parameters_and_suffixes_are_accepted() {
    let server = server().await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json ; charset=UTF-8",
        "application/vnd.shop+json",
    ] {
        let reply = post_raw(&server.at("/Probe/greet"), Some(content_type), r#"{"name": "Ada"}"#).await;
        assert_eq!(
            (reply.status, &reply.body),
            (200, &json!("Hello, Ada!")),
            "content-type {content_type:?}: {reply:?}"
        );
    }
    assert_still_serving(&server).await;
}

// ---------------------------------------------------------------------------------
// 400 bad_request.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400() {
    let server = server().await;
    for body in [r#"{"id":"#, r#"{"id": "p-1""#, r#"{"id": "p-1",}"#, "{", r#"{id: "p-1"}"#, r#"{"id": "\x"}"#] {
        let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), body).await;
        assert_error(&reply, 400, "bad_request");
        assert_still_serving(&server).await;
    }
    // A syntax error outside any argument's value is reported as such.
    let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), r#"{"id": "p-1","#).await;
    let message = assert_error(&reply, 400, "bad_request");
    assert!(message.contains("malformed JSON"), "{message}");
    assert!(reply.body.get("argument").is_none(), "{reply:?}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn an_argument_of_the_wrong_type_is_400_naming_it() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/get", &json!({"id": 5})).await;
    let message = assert_bad_argument(&reply, "id");
    assert!(message.contains("invalid type"), "the message does not say what is wrong: {message}");
    assert_still_serving(&server).await;

    let reply = post_json(&server, "/Probe/greet", &json!({"name": ["Ada"]})).await;
    assert_bad_argument(&reply, "name");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_wrong_type_deep_inside_a_nested_argument_names_the_argument_and_the_path() {
    let server = server().await;

    let mut body = product_json("lamp");
    body["product"]["price_cents"] = json!("cheap");
    let reply = post_json(&server, "/Catalog/save", &body).await;
    let message = assert_bad_argument(&reply, "product");
    assert!(message.contains("product.price_cents"), "the message does not give the path: {message}");
    assert_still_serving(&server).await;

    let mut body = order_json();
    body["order"]["customer"]["address"]["zip"] = json!(-1);
    let reply = post_json(&server, "/Probe/submit", &body).await;
    let message = assert_bad_argument(&reply, "order");
    assert!(message.contains("order.customer.address.zip"), "the message does not give the path: {message}");
    assert_still_serving(&server).await;

    let mut body = order_json();
    body["order"]["lines"][1]["quantity"] = json!("two");
    let reply = post_json(&server, "/Probe/submit", &body).await;
    let message = assert_bad_argument(&reply, "order");
    assert!(message.contains("order.lines[1].quantity"), "the message does not give the path: {message}");
    assert_still_serving(&server).await;

    // A field missing deep inside names the argument and the field.
    let mut body = order_json();
    body["order"]["customer"]["address"].as_object_mut().unwrap().remove("street");
    let reply = post_json(&server, "/Probe/submit", &body).await;
    let message = assert_bad_argument(&reply, "order");
    assert!(message.contains("order.customer.address") && message.contains("street"), "{message}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_missing_required_argument_is_400_naming_it() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/get", &json!({})).await;
    let message = assert_bad_argument(&reply, "id");
    assert!(message.contains("missing"), "{message}");
    assert_still_serving(&server).await;

    // The optional `note` may be left out; the required `order` may not.
    let reply = post_json(&server, "/Probe/submit", &json!({"note": "hi"})).await;
    assert_bad_argument(&reply, "order");
    assert_still_serving(&server).await;

    // `null` for a required (non-Option) argument is a wrong type, not a missing one.
    let reply = post_json(&server, "/Catalog/get", &json!({"id": null})).await;
    assert_bad_argument(&reply, "id");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    let server = server().await;
    for body in [r#"["p-1"]"#, r#""p-1""#, "null", "5", "true", "  [ ]"] {
        let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), body).await;
        let message = assert_error(&reply, 400, "bad_request");
        assert!(message.contains("object"), "body {body:?}: the message does not say an object is expected: {message}");
        assert!(reply.body.get("argument").is_none(), "{reply:?}");
        assert_still_serving(&server).await;
    }
    // Also for a method without arguments: an empty body is fine, a non-object is not.
    let reply = post_raw(&server.at("/Probe/ping"), Some("application/json"), "[]").await;
    assert_error(&reply, 400, "bad_request");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn trailing_garbage_after_the_object_is_400() {
    let server = server().await;
    for body in
        [r#"{"id": "p-1"} garbage"#, r#"{"id": "p-1"}}"#, r#"{"id": "p-1"}{"id": "p-2"}"#, r#"{"id": "p-1"} []"#]
    {
        let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), body).await;
        let message = assert_error(&reply, 400, "bad_request");
        assert!(message.contains("malformed JSON"), "body {body:?}: {message}");
        assert_still_serving(&server).await;
    }
    // Trailing whitespace is not garbage.
    let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), "{\"id\": \"gone\"} \n\t ").await;
    assert_eq!(reply.status, 422, "{reply:?}");
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_400() {
    let server = server().await;
    let reply =
        post_raw(&server.at("/Catalog/get"), Some("application/json"), b"{\"id\": \"\xff\xfe\"}".to_vec()).await;
    assert_error(&reply, 400, "bad_request");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_duplicate_argument_is_400() {
    let server = server().await;
    let reply = post_raw(&server.at("/Catalog/get"), Some("application/json"), r#"{"id": "a", "id": "b"}"#).await;
    let message = assert_error(&reply, 400, "bad_request");
    assert!(message.contains("duplicate") && message.contains("`id`"), "{message}");
    assert_still_serving(&server).await;
}

// ---------------------------------------------------------------------------------
// 404, 405.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_service_is_404_naming_it() {
    let server = server().await;
    let reply = post_json(&server, "/Nope/get", &json!({"id": "p-1"})).await;
    let message = assert_error(&reply, 404, "unknown_service");
    assert!(message.contains("`Nope`"), "{message}");
    assert_still_serving(&server).await;

    // Service names are case-sensitive.
    let reply = post_json(&server, "/catalog/get", &json!({"id": "p-1"})).await;
    let message = assert_error(&reply, 404, "unknown_service");
    assert!(message.contains("`catalog`"), "{message}");

    // The root path has no service.
    let reply = post_json(&server, "/", &json!({})).await;
    assert_error(&reply, 404, "unknown_service");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_very_long_unknown_name_is_not_echoed_in_full() {
    let server = server().await;
    let name = "N".repeat(10_000);
    let reply = post_json(&server, &format!("/{name}/get"), &json!({})).await;
    let message = assert_error(&reply, 404, "unknown_service");
    assert!(message.len() < 1_000, "the reply echoes {} bytes of the client's path", message.len());

    let reply = post_json(&server, &format!("/Catalog/{name}"), &json!({})).await;
    let message = assert_error(&reply, 404, "unknown_method");
    assert!(message.len() < 1_000, "the reply echoes {} bytes of the client's path", message.len());
    assert_still_serving(&server).await;
}

/// Issue 17 item 6: a 1 MB string in a number field gave a 1,000,128-byte error body,
/// serde's message quoting the whole value. The reply is bounded, and still says what
/// was expected and where.
#[tokio::test]
async fn a_huge_value_of_the_wrong_type_is_not_echoed_in_full() {
    let server = server().await;
    let mut body = order_json();
    body["order"]["customer"]["address"]["zip"] = json!("9".repeat(1_000_000));
    let response = reqwest::Client::new()
        .post(server.at("/Probe/submit"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 400);
    let bytes = response.bytes().await.expect("a complete body");
    assert!(bytes.len() < 2_048, "the error body is {} bytes", bytes.len());
    let reply: Value = serde_json::from_slice(&bytes).expect("a JSON error body");
    assert_eq!((reply["kind"].as_str(), reply["argument"].as_str()), (Some("bad_request"), Some("order")));
    let message = reply["message"].as_str().expect("a message");
    assert!(message.contains("order.customer.address.zip") && message.contains("expected u32"), "{message}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn an_unknown_method_is_404_naming_it_and_listing_the_real_ones() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/nope", &json!({"id": "p-1"})).await;
    let message = assert_error(&reply, 404, "unknown_method");
    assert!(message.contains("`nope`"), "{message}");
    assert!(message.contains("`Catalog`"), "{message}");
    for method in ["save", "get", "delete"] {
        assert!(message.contains(method), "the message does not list `{method}`: {message}");
    }
    assert_still_serving(&server).await;

    // The test service lists its own methods, not the catalog's.
    let reply = post_json(&server, "/Probe/nope", &json!({})).await;
    let message = assert_error(&reply, 404, "unknown_method");
    for method in ["boom", "greet", "submit", "ping"] {
        assert!(message.contains(method), "the message does not list `{method}`: {message}");
    }
    assert!(!message.contains("delete"), "{message}");

    // Method names are case-sensitive; a path below a method is not that method.
    for path in ["/Catalog/Get", "/Catalog/get/extra"] {
        let reply = post_json(&server, path, &json!({"id": "p-1"})).await;
        assert_error(&reply, 404, "unknown_method");
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_service_path_without_a_method_is_404_unknown_method() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog", &json!({})).await;
    let message = assert_error(&reply, 404, "unknown_method");
    assert!(message.contains("`Catalog`"), "{message}");
    assert!(message.contains("save, get, delete"), "the message does not list the methods: {message}");
    assert_still_serving(&server).await;
}

/// PROTOCOL.md §7: "an unknown method of a known service [is] `404 unknown_method`";
/// `/Catalog/` names the known service `Catalog` with an empty method.
#[tokio::test]
async fn a_service_path_with_a_trailing_slash_is_404_unknown_method_not_unknown_service() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/", &json!({})).await;
    assert_eq!(reply.status, 404, "{reply:?}");
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(!message.contains("no service `Catalog`"), "the server denies hosting a service it hosts: {reply:?}");
    let message = assert_error(&reply, 404, "unknown_method");
    assert!(message.contains("save, get, delete"), "the message does not list the methods: {message}");
    assert_still_serving(&server).await;
}

/// PROTOCOL.md §4.2: path (404), verb (405), content-type (415), size (413), body (400).
#[tokio::test]
async fn checks_happen_in_the_documented_order() {
    let server = small_limit_server().await;
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, content_type: &str, body: String| {
        let request = client.request(method, server.at(path)).header("content-type", content_type).body(body);
        async move {
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            let bytes = response.bytes().await.expect("a complete body");
            RawReply { status, content_type, body: serde_json::from_slice(&bytes).expect("a JSON body") }
        }
    };
    let huge_garbage = "[".repeat(4096);

    // An unknown method wins over a wrong verb, a wrong content type and a huge body.
    let reply = send(reqwest::Method::GET, "/Catalog/nope", "text/plain", huge_garbage.clone()).await;
    assert_error(&reply, 404, "unknown_method");
    // The verb wins over the content type and the size.
    let reply = send(reqwest::Method::PUT, "/Catalog/get", "text/plain", huge_garbage.clone()).await;
    assert_error(&reply, 405, "method_not_allowed");
    // The content type wins over the size.
    let reply = send(reqwest::Method::POST, "/Catalog/get", "text/plain", huge_garbage.clone()).await;
    assert_error(&reply, 415, "unsupported_media_type");
    // The size wins over the body's contents.
    let reply = send(reqwest::Method::POST, "/Catalog/get", "application/json", huge_garbage).await;
    assert_error(&reply, 413, "payload_too_large");
    // And a body within the limit is decoded.
    let reply = send(reqwest::Method::POST, "/Catalog/get", "application/json", "[".into()).await;
    assert_error(&reply, 400, "bad_request");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_method_other_than_post_is_405_with_allow_post() {
    let server = server().await;
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let response = reqwest::Client::new()
            .request(method.clone(), server.at("/Catalog/get"))
            .header("content-type", "application/json")
            .body(r#"{"id": "p-1"}"#)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some("POST"),
            "{method}: {response:?}"
        );
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let body: Value =
            serde_json::from_slice(&response.bytes().await.expect("a complete body")).expect("a JSON body");
        let reply = RawReply { status, content_type, body };
        let message = assert_error(&reply, 405, "method_not_allowed");
        assert!(message.contains(method.as_str()) && message.contains("POST /Catalog/get"), "{message}");
        assert_still_serving(&server).await;
    }
    // The harness's own helper sees the same.
    let reply = request_raw(reqwest::Method::GET, &server.at("/Catalog/get")).await;
    assert_error(&reply, 405, "method_not_allowed");
}

// ---------------------------------------------------------------------------------
// 415.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_415() {
    let server = server().await;
    for content_type in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/json"),
        Some("application/jsonx"),
        Some(""),
    ] {
        let reply = post_raw(&server.at("/Catalog/get"), content_type, r#"{"id": "p-1"}"#).await;
        let message = assert_error(&reply, 415, "unsupported_media_type");
        assert!(
            message.contains("application/json"),
            "content-type {content_type:?}: the message does not say what to send: {message}"
        );
        assert_still_serving(&server).await;
    }
    // Even for a method without arguments and an empty body.
    let reply = post_raw(&server.at("/Probe/ping"), None, "").await;
    assert_error(&reply, 415, "unsupported_media_type");
    assert_still_serving(&server).await;
}

// ---------------------------------------------------------------------------------
// 413.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_a_configured_limit_is_413() {
    let server = small_limit_server().await;
    let reply = post_raw(&server.at("/Catalog/save"), Some("application/json"), big_save_body(2048)).await;
    let message = assert_error(&reply, 413, "payload_too_large");
    assert!(message.contains("1024"), "the message does not give the limit: {message}");
    assert_still_serving(&server).await;

    // Exactly at the limit is accepted; one byte over is not.
    let reply = post_raw(&server.at("/Catalog/save"), Some("application/json"), save_body_of_len(1024)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = post_raw(&server.at("/Catalog/save"), Some("application/json"), save_body_of_len(1025)).await;
    assert_error(&reply, 413, "payload_too_large");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn the_default_limit_is_2_mib() {
    assert_eq!(DEFAULT_MAX_BODY_BYTES, 2 * 1024 * 1024);
    let server = server().await;

    let reply =
        post_raw(&server.at("/Catalog/save"), Some("application/json"), big_save_body(DEFAULT_MAX_BODY_BYTES + 1))
            .await;
    let message = assert_error(&reply, 413, "payload_too_large");
    assert!(message.contains(&DEFAULT_MAX_BODY_BYTES.to_string()), "the message does not give the limit: {message}");
    assert_still_serving(&server).await;

    // Well under the limit, and exactly at it, are served.
    let reply =
        post_raw(&server.at("/Catalog/save"), Some("application/json"), big_save_body(DEFAULT_MAX_BODY_BYTES / 2))
            .await;
    assert_eq!(reply.status, 200, "status {}", reply.status);
    assert_eq!(
        reply.body["name"].as_str().map(str::len),
        Some(DEFAULT_MAX_BODY_BYTES / 2 - product_json("").to_string().len())
    );
    let reply =
        post_raw(&server.at("/Catalog/save"), Some("application/json"), big_save_body(DEFAULT_MAX_BODY_BYTES)).await;
    assert_eq!(reply.status, 200, "status {}", reply.status);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = small_limit_server().await;
    let request = chunked_request("/Catalog/save", big_save_body(2048).as_bytes());
    let reply = raw_exchange(&server, &request, false).await.expect("the server answers a chunked request");
    let message = assert_error(&reply.as_raw_reply(), 413, "payload_too_large");
    assert!(message.contains("1024"), "{message}");
    assert_still_serving(&server).await;

    // A chunked body under the limit is served.
    let request = chunked_request("/Catalog/save", product_json("chunked").to_string().as_bytes());
    let reply = raw_exchange(&server, &request, false).await.expect("the server answers a chunked request");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["name"], "chunked");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_default_limit_is_413() {
    let server = server().await;
    let request = chunked_request("/Catalog/save", big_save_body(DEFAULT_MAX_BODY_BYTES + 1).as_bytes());
    let reply = raw_exchange(&server, &request, false).await.expect("the server answers a chunked request");
    assert_error(&reply.as_raw_reply(), 413, "payload_too_large");
    assert_still_serving(&server).await;
}

// ---------------------------------------------------------------------------------
// 500 panic, 422 service.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_panic_is_500_without_the_panic_message() {
    let server = server().await;
    for _ in 0..3 {
        let reply = post_json(&server, "/Probe/boom", &json!({"reason": "on purpose"})).await;
        let message = assert_error(&reply, 500, "panic");
        assert!(message.contains("Probe.boom"), "the message does not name the method: {message}");
        let text = reply.body.to_string();
        assert!(!text.contains("hunter2") && !text.contains(PANIC_SECRET), "the panic message leaked: {text}");
        assert!(!text.contains("on purpose"), "the panic message leaked: {text}");
        assert_still_serving(&server).await;
    }
}

#[tokio::test]
async fn a_typed_service_error_is_422_with_type_variant_and_value() {
    let server = server().await;
    let reply = post_json(&server, "/Catalog/get", &json!({"id": "missing"})).await;
    let message = assert_error(&reply, 422, "service");
    assert!(message.contains("CatalogError") && message.contains("NotFound"), "{message}");
    assert_eq!(reply.body["type"], "CatalogError", "{reply:?}");
    assert_eq!(reply.body["variant"], "NotFound", "{reply:?}");
    let expected = serde_json::to_value(CatalogError::NotFound { id: "missing".into() }).unwrap();
    assert_eq!(reply.body["value"], expected, "{reply:?}");
    assert_eq!(expected, json!({"NotFound": {"id": "missing"}}));
    assert!(reply.body.get("argument").is_none(), "{reply:?}");
    assert_still_serving(&server).await;

    // A newtype variant.
    let reply = post_json(&server, "/Catalog/save", &product_json("  ")).await;
    assert_error(&reply, 422, "service");
    assert_eq!(reply.body["type"], "CatalogError");
    assert_eq!(reply.body["variant"], "Invalid");
    assert_eq!(
        reply.body["value"],
        serde_json::to_value(CatalogError::Invalid("a product needs a name".into())).unwrap()
    );
    assert_still_serving(&server).await;
}

// ---------------------------------------------------------------------------------
// Malformed HTTP.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_garbage_request_line_is_rejected_and_the_server_survives() {
    let server = server().await;
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"POST /Catalog/get HTTP/9.9\r\nhost: x\r\n\r\n",
        b"POST  HTTP/1.1\r\n\r\n",
    ];
    for request in garbage {
        let reply = raw_exchange(&server, request, true).await;
        assert_rejected_or_closed(&reply, &String::from_utf8_lossy(request));
        assert_still_serving(&server).await;
    }
}

#[tokio::test]
async fn an_invalid_header_is_rejected_and_the_server_survives() {
    let server = server().await;
    let requests: [&[u8]; 5] = [
        // No colon.
        b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\nthis is not a header\r\n\r\n",
        // A space in the header name.
        b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent type: application/json\r\n\r\n",
        // A control character in the value.
        b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\x01\r\ncontent-length: 2\r\n\r\n{}",
        // A content-length that is not a number.
        b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: lots\r\n\r\n{}",
        // Two different content-lengths.
        b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
    ];
    for request in requests {
        let reply = raw_exchange(&server, request, true).await;
        assert_rejected_or_closed(&reply, &String::from_utf8_lossy(request));
        assert_still_serving(&server).await;
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_rejected_and_the_server_survives() {
    let server = server().await;
    let request = b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\": \"p-1\"}";
    let reply = raw_exchange(&server, request, true).await;
    assert_rejected_or_closed(&reply, "a truncated body");
    if let Some(reply) = reply {
        assert_error(&reply.as_raw_reply(), 400, "bad_request");
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_malformed_chunked_body_is_rejected_and_the_server_survives() {
    let server = server().await;
    let request = b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    let reply = raw_exchange(&server, request, true).await;
    assert_rejected_or_closed(&reply, "a bad chunk size");
    if let Some(reply) = reply {
        assert_error(&reply.as_raw_reply(), 400, "bad_request");
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_valid_raw_request_gets_the_same_reply_as_reqwest() {
    // Checks the raw client itself, so that the malformed-HTTP tests mean something.
    let server = server().await;
    let request = b"POST /Catalog/get HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"id\": \"gone\"}\n";
    let reply = raw_exchange(&server, request, false).await.expect("an answer");
    let reply = reply.as_raw_reply();
    assert_error(&reply, 422, "service");
    assert_eq!(reply.body["value"], json!({"NotFound": {"id": "gone"}}));
}

// ---- odd paths and repeated headers (PROTOCOL.md §3) -----------------------------------------

/// One request written byte for byte (reqwest would normalise the path).
async fn raw_request(server: &TestServer, method: &str, path: &str, extra: &str, body: &str) -> RawHttp {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(server, request.as_bytes(), false).await.expect("a reply")
}

#[tokio::test]
async fn odd_paths_answer_as_the_spec_says() {
    let server = server().await;
    let ok = raw_request(&server, "POST", "/Catalog/get?x=1", "", r#"{"id":"p-404"}"#).await;
    assert_eq!((ok.status, ok.json()["kind"].as_str()), (422, Some("service")), "the query is ignored");
    for (path, kind) in [
        ("/Catalog/get/", "unknown_method"),
        ("/Catalog/", "unknown_method"),
        ("/Catalog", "unknown_method"),
        ("/Catalog/g%65t", "unknown_method"),
        ("//Catalog/get", "unknown_service"),
        ("/Catal%6Fg/get", "unknown_service"),
        ("/", "unknown_service"),
    ] {
        let reply = raw_request(&server, "POST", path, "", "{}").await;
        assert_eq!((reply.status, reply.json()["kind"].as_str()), (404, Some(kind)), "{path}");
    }
    let reply = raw_request(&server, "POST", "//Catalog/get", "", "{}").await;
    assert!(reply.json()["message"].as_str().unwrap().contains("no service ``"), "{reply:?}");
    for method in ["GET", "OPTIONS", "PUT", "DELETE"] {
        let reply = raw_request(&server, method, "/Catalog/get", "", "").await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"), "{method}");
        assert_eq!(reply.json()["kind"], "method_not_allowed", "{method}");
    }
    // HEAD: `raw_exchange` expects a body as long as `content-length`, which a reply
    // to HEAD declares without sending.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(b"HEAD /Catalog/get HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply)).await.expect("no hang").unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("\r\nallow: post\r\n"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "a HEAD reply has no body: {reply}");
}

#[tokio::test]
async fn a_repeated_call_header_is_a_400_naming_it() {
    let server = server().await;
    let repeated = "x-deadline-ms: 100\r\nx-deadline-ms: 0\r\n";
    let reply = raw_request(&server, "POST", "/Catalog/get", repeated, r#"{"id":"p-1"}"#).await;
    assert_eq!(reply.status, 400);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("x-deadline-ms") && message.contains("more than once"), "{message}");
    let reply = raw_request(&server, "POST", "/Catalog/get", "x-deadline-ms: +100\r\n", r#"{"id":"p-1"}"#).await;
    assert_eq!(reply.status, 400, "a sign is not a digit");
    let upper = "x-call-id: 67E55044-10B1-426F-9247-BB680E5FE0C8\r\n";
    let reply = raw_request(&server, "POST", "/Catalog/get", upper, r#"{"id":"p-1"}"#).await;
    assert_eq!(reply.status, 400, "only the canonical UUID form");
    assert!(reply.json()["message"].as_str().unwrap().contains("x-call-id"));
}
