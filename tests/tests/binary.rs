//! Binary data through a generated proxy and server over loopback: `intercall::Bytes`
//! and `#[serde(with = "intercall::base64")]` travel as base64 strings, so 1 MiB fits in
//! the default 2 MiB body limit, and a server rejects bad base64 naming the argument.

use intercall::{Bytes, CallError, DEFAULT_MAX_BODY_BYTES};
use intercall_tests::faults::{Fault, FaultProxy};
use intercall_tests::{TestServer, invoker, post_raw, spawn};
use serde::{Deserialize, Serialize};
use serde_json::json;

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BlobError(CallError);

impl From<CallError> for BlobError {
    fn from(error: CallError) -> Self {
        BlobError(error)
    }
}

/// A type that keeps `Vec<u8>` fields and opts into base64 per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct File {
    pub name: String,
    #[serde(with = "intercall::base64")]
    #[cfg_attr(feature = "schema", schemars(with = "intercall::Bytes"))]
    pub data: Vec<u8>,
    #[serde(default, with = "intercall::base64::option")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<intercall::Bytes>"))]
    pub thumbnail: Option<Vec<u8>>,
}

#[intercall::service]
pub trait Blobs {
    /// Returns `blob` unchanged.
    async fn echo(&self, blob: Bytes) -> Result<Bytes, BlobError>;
    /// Returns `file` with its data reversed, so a reply that merely mirrors the
    /// request's bytes would not pass.
    async fn reverse(&self, file: File) -> Result<File, BlobError>;
    /// Takes a plain `Vec<u8>`: serde's default, a JSON array of numbers.
    async fn count(&self, numbers: Vec<u8>) -> Result<usize, BlobError>;
}

struct Store;

impl Blobs for Store {
    async fn echo(&self, blob: Bytes) -> Result<Bytes, BlobError> {
        Ok(blob)
    }

    async fn reverse(&self, mut file: File) -> Result<File, BlobError> {
        file.data.reverse();
        Ok(file)
    }

    async fn count(&self, numbers: Vec<u8>) -> Result<usize, BlobError> {
        Ok(numbers.len())
    }
}

async fn server() -> TestServer {
    spawn(BlobsServer::new(Store).into_router()).await
}

fn proxy(url: &str) -> BlobsProxy {
    BlobsProxy::new(invoker("Blobs", url)).unwrap()
}

/// `len` bytes from a seeded generator: random enough that every byte value and
/// every padding case occur, and the same on every run.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

#[tokio::test]
async fn one_mib_of_random_bytes_round_trips_under_the_default_body_limit() {
    let server = server().await;
    let blobs = proxy(&server.url());
    let data = random_bytes(MIB, 1);
    // The whole request body, as the proxy sends it, is a third larger than the data and
    // well under the server's default limit.
    let body_len = serde_json::to_vec(&json!({ "blob": Bytes::from(data.clone()) })).unwrap().len();
    assert!(body_len > MIB * 4 / 3 && body_len < DEFAULT_MAX_BODY_BYTES, "request body of {body_len} bytes");

    let echoed = blobs.echo(Bytes::from(data.clone())).await.unwrap();
    assert!(*echoed == *data, "echo changed the bytes");
}

#[tokio::test]
async fn one_mib_in_a_serde_with_field_round_trips() {
    let server = server().await;
    let blobs = proxy(&server.url());
    let file = File { name: "noise.bin".into(), data: random_bytes(MIB, 2), thumbnail: Some(random_bytes(1000, 3)) };

    let reversed = blobs.reverse(file.clone()).await.unwrap();
    let mut expected = file.clone();
    expected.data.reverse();
    assert!(reversed == expected, "reverse gave different bytes");

    let without = File { thumbnail: None, ..file };
    assert_eq!(blobs.reverse(without.clone()).await.unwrap().thumbnail, None);
}

#[tokio::test]
async fn the_largest_byte_string_under_the_default_limit_is_as_specified() {
    // docs/PROTOCOL.md §1.1: `{"blob":"..."}` is 11 bytes around 4 characters per 3
    // bytes, so 1,572,855 bytes fit in 2,097,152 and one more byte does not.
    let server = server().await;
    let blobs = proxy(&server.url());
    let largest = random_bytes(1_572_855, 5);
    let echoed = blobs.echo(Bytes::from(largest.clone())).await.unwrap();
    assert!(*echoed == *largest, "echo changed the bytes");

    let BlobError(error) = blobs.echo(Bytes::from(random_bytes(1_572_856, 6))).await.unwrap_err();
    assert_eq!(error.status_code(), Some(413), "{error}");
}

#[tokio::test]
async fn the_same_mib_as_vec_u8_is_over_the_limit() {
    // Why the base64 types exist: as a JSON array of numbers, 1 MiB of random bytes is
    // about 3.6 MiB, and the server refuses it before anything runs.
    let server = server().await;
    let blobs = proxy(&server.url());
    let data = random_bytes(MIB, 4);
    let body_len = serde_json::to_vec(&json!({ "numbers": data })).unwrap().len();
    assert!(body_len > DEFAULT_MAX_BODY_BYTES, "request body of {body_len} bytes");

    let BlobError(error) = blobs.count(data).await.unwrap_err();
    assert!(error.is_status() && error.status_code() == Some(413), "{error}");
}

#[tokio::test]
async fn the_proxy_sends_and_the_server_replies_base64_strings() {
    let server = server().await;
    let wire = FaultProxy::start(server.addr, |_| Fault::Pass).await;
    let blobs = proxy(&wire.url());

    let echoed = blobs.echo(Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(&*echoed, b"hello");
    let file = File { name: "f".into(), data: b"foobar".to_vec(), thumbnail: Some(b"fo".to_vec()) };
    blobs.reverse(file).await.unwrap();

    let bodies: Vec<serde_json::Value> =
        wire.seen().iter().map(|seen| serde_json::from_slice(&seen.body).unwrap()).collect();
    assert_eq!(
        bodies,
        [json!({ "blob": "aGVsbG8=" }), json!({ "file": { "name": "f", "data": "Zm9vYmFy", "thumbnail": "Zm8=" } })]
    );
}

#[tokio::test]
async fn a_hand_made_base64_body_gets_a_base64_reply() {
    let server = server().await;
    let reply = post_raw(&server.at("Blobs/echo"), Some("application/json"), r#"{"blob":"aGVsbG8="}"#).await;
    assert_eq!((reply.status, reply.body), (200, json!("aGVsbG8=")));

    // `\/` is JSON for `/`; the server decodes the escaped string like any other.
    let reply = post_raw(&server.at("Blobs/echo"), Some("application/json"), r#"{"blob":"+\/8="}"#).await;
    assert_eq!((reply.status, reply.body), (200, json!("+/8=")));

    let body = r#"{"file":{"name":"f","data":"Zm9vYmFy"}}"#;
    let reply = post_raw(&server.at("Blobs/reverse"), Some("application/json"), body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({ "name": "f", "data": "cmFib29m", "thumbnail": null }));
}

#[tokio::test]
async fn invalid_base64_is_a_bad_request_naming_the_argument() {
    let server = server().await;
    let cases = [
        (r#"{"blob":"aGVsbG8"}"#, "the length is not a multiple of 4"),
        (r#"{"blob":"-_8="}"#, "`-` at offset 0 is URL-safe base64"),
        (r#"{"blob":"aGVs bG8="}"#, "whitespace ' ' at offset 4"),
        (r#"{"blob":[104,105]}"#, "invalid type: sequence, expected a base64 string (standard alphabet, padded)"),
    ];
    for (body, why) in cases {
        let reply = post_raw(&server.at("Blobs/echo"), Some("application/json"), body).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["kind"], "bad_request", "{body}");
        assert_eq!(reply.body["argument"], "blob", "{body}");
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.starts_with("argument `blob`"), "{body}: {message}");
        assert!(message.contains(why), "{body}: {message}");
    }

    let body = r#"{"file":{"name":"f","data":"Zm9vYmFy","thumbnail":"Zm8"}}"#;
    let reply = post_raw(&server.at("Blobs/reverse"), Some("application/json"), body).await;
    assert_eq!((reply.status, &reply.body["argument"]), (400, &json!("file")));
    let message = reply.body["message"].as_str().unwrap();
    assert!(message.contains("file.thumbnail") && message.contains("invalid base64"), "{message}");

    // The example in docs/PROTOCOL.md §1, byte for byte.
    let reply = post_raw(&server.at("Blobs/echo"), Some("application/json"), r#"{"blob":"aGVsbG8"}"#).await;
    assert_eq!(
        reply.body,
        json!({
            "kind": "bad_request",
            "message": "argument `blob`: invalid base64 (standard alphabet, padded): the length is not a multiple of 4; \
                        pad the last group with `=` at line 1 column 17",
            "argument": "blob",
        })
    );

    // The server keeps serving.
    assert_eq!(&*proxy(&server.url()).echo(Bytes::from_static(b"ok")).await.unwrap(), b"ok");
}
