//! The `intercall` binary as a user runs it: a real node on a loopback port (the example
//! system's Catalog and Checkout, and a service that says who called it), a signed
//! one, and the binary started as a process for every command.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use example_api::{CatalogServer, CheckoutServer};
use example_services::{InMemoryCatalog, ShopCheckout};
use futures_util::StreamExt;
use intercall::{CallError, Security, Streaming, UserContext};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

const SECRET: &str = "cli-test-secret-0123456789abcdef";

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[error("who: {0}")]
pub struct WhoError(CallError);

impl From<CallError> for WhoError {
    fn from(error: CallError) -> Self {
        WhoError(error)
    }
}

/// Says who a call was made for, so the test sees what `--user` sent.
#[intercall::service]
pub trait Who {
    /// `type:id` of the caller.
    async fn who(&self) -> Result<String, WhoError>;
}

struct Answer;

impl Who for Answer {
    async fn who(&self) -> Result<String, WhoError> {
        Ok(match UserContext::current() {
            Some(user) => format!("{}:{}", user.user_type().as_str(), user.user_id().unwrap_or("-")),
            None => "nobody".to_owned(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[error("drip: {0}")]
pub struct DripError(CallError);

impl From<CallError> for DripError {
    fn from(error: CallError) -> Self {
        DripError(error)
    }
}

/// Slow methods: one that outlasts `--timeout`, and a stream whose second item waits
/// for the test.
#[intercall::service]
pub trait Drip {
    /// Answers after `ms` milliseconds.
    async fn nap(&self, ms: u64) -> Result<(), DripError>;
    /// Sends `1`, then `2` once the test opens the gate, then ends.
    async fn drip(&self) -> Result<Streaming<u32, DripError>, DripError>;
}

struct Tap {
    gate: Arc<Notify>,
}

impl Drip for Tap {
    async fn nap(&self, ms: u64) -> Result<(), DripError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    async fn drip(&self) -> Result<Streaming<u32, DripError>, DripError> {
        let gate = Arc::clone(&self.gate);
        let first = futures_util::stream::once(async { Ok(1) });
        let second = futures_util::stream::once(async move {
            gate.notified().await;
            Ok(2)
        });
        Ok(Streaming::new(first.chain(second)))
    }
}

/// A node with a shared secret, served until the runtime is dropped.
struct Node {
    url: String,
    /// Lets `Drip.drip`'s second item go.
    gate: Arc<Notify>,
    _runtime: tokio::runtime::Runtime,
}

fn node() -> Node {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let security = Security::shared_secret(SECRET).unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let catalog = Arc::new(InMemoryCatalog::default());
    let gate = Arc::new(Notify::new());
    let router = CatalogServer::from_arc(Arc::clone(&catalog))
        .security(security.clone())
        .into_router()
        .merge(CheckoutServer::new(ShopCheckout::new(catalog)).security(security.clone()).into_router())
        .merge(WhoServer::new(Answer).security(security.clone()).into_router())
        .merge(DripServer::new(Tap { gate: Arc::clone(&gate) }).security(security).into_router());
    runtime.spawn(intercall::serve(listener, router));
    Node { url, gate, _runtime: runtime }
}

/// Runs `intercall ARGS` with the secret in the environment (unless `secret` is
/// `None`) and no services.toml around.
fn intercall(args: &[&str], secret: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intercall"));
    command.args(args).env_remove("INTERCALL_SECRET").env_remove("INTERCALL_ACCEPTED_SECRET");
    command.env("INTERCALL_SERVICES", "/nonexistent/services.toml");
    if let Some(secret) = secret {
        command.env("INTERCALL_SECRET", secret);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_and_describe_read_the_nodes_manifest() {
    let node = node();
    let list = intercall(&["list", &node.url], Some(SECRET));
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert_eq!(
        stdout(&list),
        "Catalog: save, get, delete\nCheckout: quote, place_order, fulfil (stream)\nDrip: nap, drip (stream)\nWho: who\n"
    );

    let describe = intercall(&["describe", &node.url, "Checkout"], Some(SECRET));
    assert_eq!(describe.status.code(), Some(0), "{}", stderr(&describe));
    let text = stdout(&describe);
    assert!(text.contains("POST /Checkout/quote"), "{text}");
    assert!(
        text.contains(
            "quote(lines: Vec<OrderLine>, coupon: Option<String> (optional)) -> Result<Quote, CheckoutError>"
        ),
        "{text}"
    );
    assert!(!text.contains("service Catalog"), "only the service asked for: {text}");
    assert!(text.contains("POST /Checkout/fulfil [stream]"), "{text}");
    assert!(
        text.contains("fulfil(lines: Vec<OrderLine>) -> Result<Streaming<Fulfilment, CheckoutError>, CheckoutError>"),
        "{text}"
    );
    assert!(!text.contains("POST /Checkout/quote [stream]"), "{text}");

    let fulfil = intercall(&["describe", &node.url, "Checkout.fulfil"], Some(SECRET));
    assert!(stdout(&fulfil).contains("// A stream:"), "{}", stdout(&fulfil));
    assert!(stdout(&fulfil).contains("Streaming<Fulfilment, CheckoutError>"), "{}", stdout(&fulfil));

    let method = intercall(&["describe", &node.url, "Catalog.get"], Some(SECRET));
    assert!(stdout(&method).contains("get(id: String) -> Result<Product, CatalogError>"), "{}", stdout(&method));
    assert!(stdout(&method).contains("// Finds a product by id."));

    let json = intercall(&["describe", &node.url, "--json"], Some(SECRET));
    let manifest: intercall::manifest::Manifest = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(manifest.service("Catalog"), Some(&CatalogServer::manifest()));

    let missing = intercall(&["describe", &node.url, "Catalog.nope"], Some(SECRET));
    assert_eq!(missing.status.code(), Some(12), "unknown_method");
    assert!(stderr(&missing).contains("its methods are: save, get, delete"), "{}", stderr(&missing));
}

#[test]
fn call_prints_results_and_typed_errors_with_their_exit_status() {
    let node = node();
    let product = r#"{"product":{"id":"","name":"desk lamp","price_cents":2500,"tags":["light"]}}"#;
    let saved = intercall(&["call", &node.url, "Catalog.save", product], Some(SECRET));
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    let value: serde_json::Value = serde_json::from_slice(&saved.stdout).unwrap();
    assert_eq!(value["name"], "desk lamp");
    assert!(stdout(&saved).contains("\n  \"name\": \"desk lamp\""), "pretty JSON: {}", stdout(&saved));
    let id = value["id"].as_str().unwrap().to_owned();

    let got = intercall(&["call", &node.url, "Catalog.get", &format!("id={id}")], Some(SECRET));
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got.stdout).unwrap(), value);

    let missing = intercall(&["call", &node.url, "Catalog.get", "id=p-404"], Some(SECRET));
    assert_eq!(missing.status.code(), Some(1), "a typed error");
    assert!(stderr(&missing).starts_with("error: service error CatalogError::NotFound\n"), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("\"id\": \"p-404\""));

    let wrong_type = intercall(&["call", &node.url, "Catalog.get", "id=3"], Some(SECRET));
    assert_eq!(wrong_type.status.code(), Some(10), "bad_request: {}", stderr(&wrong_type));
    assert!(stderr(&wrong_type).contains("(argument `id`)"), "{}", stderr(&wrong_type));

    let unknown = intercall(&["call", &node.url, "Catalog.nope"], Some(SECRET));
    assert_eq!(unknown.status.code(), Some(12), "unknown_method: {}", stderr(&unknown));
    let no_service = intercall(&["call", &node.url, "Nope.get"], Some(SECRET));
    assert_eq!(no_service.status.code(), Some(11), "unknown_service: {}", stderr(&no_service));
}

#[test]
fn calls_are_signed_and_carry_the_user_and_call_id() {
    let node = node();
    let unsigned = intercall(&["call", &node.url, "Who.who"], None);
    assert_eq!(unsigned.status.code(), Some(16), "unauthorized: {}", stderr(&unsigned));
    let unsigned = intercall(&["list", &node.url], None);
    assert_eq!(unsigned.status.code(), Some(16), "the manifest needs a signature too: {}", stderr(&unsigned));

    let who = intercall(&["call", &node.url, "Who.who", "--user", "customer:alice"], Some(SECRET));
    assert_eq!(stdout(&who), "\"customer:alice\"\n", "{}", stderr(&who));
    let guest = intercall(&["call", &node.url, "Who.who", "--user", "guest"], Some(SECRET));
    assert_eq!(stdout(&guest), "\"guest:-\"\n", "{}", stderr(&guest));

    // The same call id runs once: the second save is a replay of the first.
    let call_id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let product = r#"{"product":{"id":"","name":"chair","price_cents":100,"tags":[]}}"#;
    let args = ["call", &node.url, "Catalog.save", product, "--call-id", call_id];
    let first = intercall(&args, Some(SECRET));
    let second = intercall(&args, Some(SECRET));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&second));
    let other = intercall(&["call", &node.url, "Catalog.save", product], Some(SECRET));
    assert_ne!(stdout(&first), stdout(&other), "a new call id is a new call");
}

#[test]
fn a_service_name_resolves_through_services_toml() {
    let node = node();
    let dir = std::env::temp_dir().join(format!("intercall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config: PathBuf = dir.join("services.toml");
    let toml = format!("[services.Who]\nurl = \"{}/\"\n\n[security]\nsecret = \"{SECRET}\"\n", node.url);
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();

    let who = intercall(&["--config", config, "call", "Who.who", "--user", "admin:root"], None);
    assert_eq!(stdout(&who), "\"admin:root\"\n", "signed with services.toml's secret: {}", stderr(&who));
    let list = intercall(&["--config", config, "list", "Who"], None);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));

    let unknown = intercall(&["--config", config, "call", "Catalog.get", "id=p-1"], None);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("has no service `Catalog`"), "{}", stderr(&unknown));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stream_prints_each_item_as_it_arrives_and_ends_with_its_final_frame() {
    let node = node();
    // The second item is sent only once the test has read the first from the CLI's
    // stdout: a CLI that printed the items at the end would wait for the deadline, and
    // its stream would end in `deadline_exceeded`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_intercall"))
        .args(["--timeout", "30s", "call", &node.url, "Drip.drip"])
        .env("INTERCALL_SERVICES", "/nonexistent/services.toml")
        .env("INTERCALL_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "1");
    node.gate.notify_one();
    assert_eq!(lines.next().unwrap().unwrap(), "2");
    assert!(lines.next().is_none(), "the stream ended");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // A real stream: the example's fulfilment, one JSON line per item.
    let product = r#"{"product":{"id":"","name":"desk lamp","price_cents":2500,"tags":[]}}"#;
    let saved = intercall(&["call", &node.url, "Catalog.save", product], Some(SECRET));
    let id = serde_json::from_slice::<serde_json::Value>(&saved.stdout).unwrap()["id"].as_str().unwrap().to_owned();
    let lines = format!(r#"{{"lines":[{{"product_id":"{id}","quantity":2}}]}}"#);
    let fulfil = intercall(&["call", &node.url, "Checkout.fulfil", &lines], Some(SECRET));
    assert_eq!(fulfil.status.code(), Some(0), "{}", stderr(&fulfil));
    let items: Vec<serde_json::Value> =
        stdout(&fulfil).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(items.len(), 2, "{}", stdout(&fulfil));
    assert_eq!(items[0]["Progress"]["percent"], 100);
    assert!(items[1]["Shipped"]["tracking"].is_string());

    // Its typed error ends the stream (a product the catalog does not have) or comes
    // before it (an empty order): exit 1 either way, with the type and variant.
    let missing = r#"{"lines":[{"product_id":"p-404","quantity":1}]}"#;
    let failed = intercall(&["call", &node.url, "Checkout.fulfil", missing], Some(SECRET));
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("service error CheckoutError::Catalog"), "{}", stderr(&failed));
    let empty = intercall(&["call", &node.url, "Checkout.fulfil", r#"{"lines":[]}"#], Some(SECRET));
    assert_eq!(empty.status.code(), Some(1), "{}", stderr(&empty));
    assert!(stderr(&empty).contains("service error CheckoutError::EmptyOrder"), "{}", stderr(&empty));
}

#[test]
fn past_its_timeout_a_call_ends_with_the_nodes_answer_or_the_timeout_status() {
    let node = node();
    // A unary run goes on past the deadline; the node answers `409 in_progress`.
    let nap = intercall(&["--timeout", "300ms", "call", &node.url, "Drip.nap", "ms=600000"], Some(SECRET));
    assert_eq!(nap.status.code(), Some(19), "in_progress: {}", stderr(&nap));
    assert!(stderr(&nap).contains("--call-id"), "{}", stderr(&nap));
    // A stream past the deadline: the node ends it with `deadline_exceeded`, after the
    // items it sent.
    let drip = intercall(&["--timeout", "300ms", "call", &node.url, "Drip.drip"], Some(SECRET));
    assert_eq!(drip.status.code(), Some(17), "deadline_exceeded: {}", stderr(&drip));
    assert_eq!(stdout(&drip), "1\n");
    // A node that never answers: the CLI gives up.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let waited = intercall(&["--timeout", "200ms", "call", &url, "Catalog.get", "id=p-1"], None);
    assert_eq!(waited.status.code(), Some(3), "{}", stderr(&waited));
    assert!(stderr(&waited).contains("no answer within the timeout"), "{}", stderr(&waited));
    drop(silent);
}

#[test]
fn an_unreachable_node_and_a_bad_command_line_have_their_own_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = intercall(&["call", &url, "Catalog.get", "id=p-1"], None);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("cannot reach the node"), "{}", stderr(&refused));
    let usage = intercall(&["call", &url, "no-dot"], None);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

#[test]
fn openapi_from_a_node_is_a_valid_openapi_3_1_document() {
    let node = node();
    let output = intercall(&["openapi", &node.url], Some(SECRET));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/Catalog/get"]["post"]["responses"]["422"].is_object());
    intercall_cli_validate::openapi(&output.stdout);

    // With JSON Schemas (the corpus' manifests were built with the `schema` feature),
    // whose `$defs` move to `components/schemas`.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/05-service-added/new.json");
    let output = intercall(&["openapi", file], None);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["components"]["schemas"]["CallError"].is_object());
    intercall_cli_validate::openapi(&output.stdout);
}

/// Checks an OpenAPI document with a real validator: Python's `openapi-spec-validator`
/// (installed with pip when missing; skipped, saying so, when neither works outside CI).
mod intercall_cli_validate {
    use std::process::{Command, Stdio};

    const CHECK: &str =
        "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')";

    fn available() -> bool {
        let probe = |code: &str| {
            Command::new("python3")
                .args(["-c", code])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if probe("import openapi_spec_validator") {
            return true;
        }
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "openapi-spec-validator"])
            .status()
            .is_ok_and(|s| s.success());
        installed && probe("import openapi_spec_validator")
    }

    pub fn openapi(document: &[u8]) {
        if !available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "openapi-spec-validator is needed under CI (python3 -m pip install openapi-spec-validator)"
            );
            eprintln!("skipped: no python3 with openapi-spec-validator to validate the OpenAPI document");
            return;
        }
        let mut child = Command::new("python3")
            .args(["-c", CHECK])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(document).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "the OpenAPI document is invalid: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "valid");
    }
}

/// `println!` panics when stdout's reader has gone (`intercall openapi .. | head`);
/// the CLI ignores the failed write and exits with its own status.
#[test]
fn a_reader_that_stops_reading_is_no_panic() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/04-service-removed/old.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(corpus).unwrap()).unwrap();
    // Forty copies of each service: a document far larger than a pipe's buffer, so the
    // CLI is still writing when the reader goes.
    let services = manifest["services"].as_array().unwrap().clone();
    let copies: Vec<serde_json::Value> = (0..40)
        .flat_map(|i| {
            services.iter().map(move |service| {
                let mut copy = service.clone();
                copy["name"] = format!("{}{i}", service["name"].as_str().unwrap()).into();
                copy
            })
        })
        .collect();
    manifest["services"] = copies.into();
    let dir = std::env::temp_dir().join(format!("intercall-compat-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.json");
    std::fs::write(&file, manifest.to_string()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_intercall"))
        .arg("openapi")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A loopback URL nothing listens on: a port bound, then let go.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A stand-in node that answers every request `503 overloaded` (as a server at its
/// `max_in_flight` does, PROTOCOL.md §4.2) and keeps each request's head, lowercased,
/// to show what each attempt sent. Its thread waits for connections until the test
/// process ends.
struct Shedding {
    url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

fn shedding() -> Shedding {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse::<usize>().unwrap());
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            kept.lock().unwrap().push(head);
            let reply = r#"{"kind":"overloaded","message":"test: at its limit"}"#;
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    Shedding { url, heads }
}

/// The value of header `name` in a lowercased request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))).map(str::trim)
}

/// A service with several `urls` (issue 15) is tried in order: a refused connection and
/// a `503 overloaded` send the command on to the next endpoint, with the same call id,
/// and stderr names the endpoint that answered.
#[test]
fn a_service_with_several_urls_moves_on_from_a_dead_or_shedding_endpoint() {
    let node = node();
    let (dead, shed, first_shed, second_shed) = (dead_url(), shedding(), shedding(), shedding());
    let dir = std::env::temp_dir().join(format!("intercall-cli-urls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config: PathBuf = dir.join("services.toml");
    let toml = format!(
        "[services.Who]\nurls = [\"{dead}/\", \"{}\", \"{}/\"]\n\n\
         [services.Busy]\nurls = [\"{}\", \"{}\"]\n\n\
         [services.Dead]\nurls = [\"{dead}\"]\n\n\
         [services.Drip]\nurls = [\"{dead}\", \"{}\"]\n\n\
         [security]\nsecret = \"{SECRET}\"\n",
        shed.url, node.url, first_shed.url, second_shed.url, node.url
    );
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();

    // A dead port, then a live node.
    let nap = intercall(&["--config", config, "call", "Drip.nap", "ms=0"], None);
    assert_eq!((nap.status.code(), stdout(&nap).as_str()), (Some(0), "null\n"), "{}", stderr(&nap));
    assert!(stderr(&nap).contains(&format!("answered by {} (endpoint 2 of 2", node.url)), "{}", stderr(&nap));

    // A stream from the second endpoint: the line naming it comes before the items (the
    // second item waits for the test, which waits for that line: a CLI that named the
    // endpoint only at the end would reach the deadline and exit 17).
    let mut child = Command::new(env!("CARGO_BIN_EXE_intercall"))
        .args(["--config", config, "--timeout", "30s", "call", "Drip.drip"])
        .env_remove("INTERCALL_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut notes = BufReader::new(child.stderr.take().unwrap()).lines();
    let passed = notes.next().unwrap().unwrap();
    assert!(passed.starts_with(&format!("intercall: endpoint 1 of 2, {dead}:")), "{passed}");
    let answered = notes.next().unwrap().unwrap();
    assert!(answered.starts_with(&format!("intercall: answered by {} (endpoint 2 of 2", node.url)), "{answered}");
    let mut items = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(items.next().unwrap().unwrap(), "1");
    node.gate.notify_one();
    assert_eq!(items.next().unwrap().unwrap(), "2");
    assert!(notes.next().is_none(), "no second line naming the endpoint");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // A dead port, a shedding node, then the live one.
    let call_id = "5d3c1c52-93b1-4f7e-9a0e-2b6a0f3c8d11";
    let who = intercall(&["--config", config, "call", "Who.who", "--user", "admin:root", "--call-id", call_id], None);
    assert_eq!(who.status.code(), Some(0), "{}", stderr(&who));
    assert_eq!(stdout(&who), "\"admin:root\"\n");
    let notes = stderr(&who);
    assert!(notes.contains(&format!("{dead}/Who/who: cannot reach the node")), "{notes}");
    assert!(notes.contains("overloaded (HTTP 503)"), "{notes}");
    assert!(notes.contains(&format!("answered by {} (endpoint 3 of 3", node.url)), "{notes}");
    let heads = shed.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(header(&heads[0], "x-call-id"), Some(call_id), "the same call id at every endpoint");
    assert_eq!(header(&heads[0], "x-call-attempt"), Some("2"));

    // The manifest commands too.
    for command in [&["list", "Who"][..], &["describe", "Who", "Who.who"], &["openapi", "Who"]] {
        let output = intercall(&[&["--config", config][..], command].concat(), None);
        assert_eq!(output.status.code(), Some(0), "{command:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(&format!("answered by {}", node.url)), "{}", stderr(&output));
    }
    assert!(stdout(&intercall(&["--config", config, "list", "Who"], None)).contains("who"));

    // Every endpoint shedding: the last one's answer, one call id (generated) for both.
    let busy = intercall(&["--config", config, "call", "Busy.work"], None);
    assert_eq!(busy.status.code(), Some(24), "overloaded: {}", stderr(&busy));
    assert!(stderr(&busy).contains("every endpoint failed (2)"), "{}", stderr(&busy));
    assert!(!stderr(&busy).contains("answered by"), "{}", stderr(&busy));
    let (first, second) = (first_shed.heads.lock().unwrap().clone(), second_shed.heads.lock().unwrap().clone());
    assert_eq!((first.len(), second.len()), (1, 1));
    assert!(header(&first[0], "x-call-id").is_some());
    assert_eq!(header(&first[0], "x-call-id"), header(&second[0], "x-call-id"));
    assert_eq!(header(&first[0], "x-activity-id"), header(&second[0], "x-activity-id"));
    assert_eq!((header(&first[0], "x-call-attempt"), header(&second[0], "x-call-attempt")), (Some("1"), Some("2")));

    // One URL: as before, the endpoint's own failure, no note.
    let dead_only = intercall(&["--config", config, "call", "Dead.x"], None);
    assert_eq!(dead_only.status.code(), Some(3), "{}", stderr(&dead_only));
    assert!(!stderr(&dead_only).contains("intercall:"), "{}", stderr(&dead_only));
    std::fs::remove_dir_all(&dir).unwrap();
}
