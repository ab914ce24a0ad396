//! Talking to a node: fetching its manifest and making one call, both signed when the
//! target has a secret, and turning the reply into what the command prints and the
//! status it exits with.

use std::time::Duration;

use intercall::manifest::{self, Manifest};
use intercall::protocol::signing::{SignedFields, body_sha256};
use intercall::protocol::{self, ErrorKind};
use serde_json::Value;

use crate::exit;
use crate::target::Target;

/// What went wrong, as printed on stderr, and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status ([`exit`]).
    pub status: u8,
    /// What the user reads.
    pub message: String,
}

impl Failure {
    /// A failure with this status and message.
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

/// One call's options from the command line.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// `--user TYPE[:ID]`.
    pub user: Option<(String, Option<String>)>,
    /// `--call-id`: the call id to send (default: a new one).
    pub call_id: Option<uuid::Uuid>,
    /// `--timeout`: how long to wait, also sent as `x-deadline-ms`.
    pub timeout: Duration,
}

fn client(timeout: Duration) -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot build an HTTP client: {e}")))
}

/// The node's manifest, or one service's (`GET /.well-known/intercall/manifest[/{service}]`).
pub async fn fetch_manifest(target: &Target, service: Option<&str>, timeout: Duration) -> Result<Manifest, Failure> {
    let path = match service {
        Some(service) => manifest::service_path(service),
        None => manifest::INDEX_PATH.to_owned(),
    };
    let url = format!("{}{path}", target.base);
    let mut request = client(timeout)?.get(&url);
    let (service_line, method_line) = manifest::manifest_request_line(&path);
    let empty = body_sha256(b"");
    let fields = SignedFields {
        service: service_line,
        method: method_line,
        call_id: None,
        user_type: None,
        user_id: None,
        activity: None,
        body_sha256: &empty,
    };
    if let Some((timestamp, signature)) = target.security.sign(&fields) {
        request = request.header(protocol::TIMESTAMP, timestamp.to_string()).header(protocol::SIGNATURE, signature);
    }
    let response = request.send().await.map_err(|e| unreachable(&url, &e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if status == 404 && service.is_some() {
        let service = service.unwrap_or_default();
        return Err(Failure::new(
            exit::of_kind(ErrorKind::UnknownService),
            format!(
                "{url}: no manifest for service `{service}` (404): the node has no such service, or serves it without its manifest"
            ),
        ));
    }
    if status != 200 {
        return Err(error_reply(&url, status, &body));
    }
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| {
        Failure::new(exit::FOREIGN_REPLY, format!("{url}: the reply is not an intercall manifest: {e}"))
    })?;
    if manifest.format > manifest::FORMAT_VERSION {
        return Err(Failure::new(
            exit::FOREIGN_REPLY,
            format!(
                "{url}: manifest format {} is newer than this CLI reads ({})",
                manifest.format,
                manifest::FORMAT_VERSION
            ),
        ));
    }
    Ok(manifest)
}

/// Calls `service.method` with `args` (a JSON object) and returns the result.
pub async fn call(
    target: &Target,
    service: &str,
    method: &str,
    args: &Value,
    options: &CallOptions,
) -> Result<Value, Failure> {
    let url = format!("{}/{service}/{method}", target.base);
    let body = serde_json::to_vec(args).expect("a JSON value serializes");
    let call_id = options.call_id.unwrap_or_else(uuid::Uuid::new_v4).to_string();
    let activity = uuid::Uuid::new_v4().to_string();
    let deadline = options.timeout.as_millis().to_string();
    let mut request = client(options.timeout)?
        .post(&url)
        .header("content-type", protocol::JSON)
        .header("accept", protocol::JSON)
        .header(protocol::CALL_ID, &call_id)
        .header(protocol::CALL_ATTEMPT, "1")
        .header(protocol::ACTIVITY_ID, &activity)
        .header(protocol::DEADLINE_MS, &deadline);
    let (user_type, user_id) = match &options.user {
        Some((user_type, user_id)) => (Some(user_type.as_str()), user_id.as_deref()),
        None => (None, None),
    };
    if let Some(user_type) = user_type {
        request = request.header(protocol::USER_TYPE, user_type);
    }
    if let Some(user_id) = user_id {
        request = request.header(protocol::USER_ID, user_id);
    }
    let digest = body_sha256(&body);
    let fields = SignedFields {
        service,
        method,
        call_id: Some(&call_id),
        user_type,
        user_id,
        activity: Some(&activity),
        body_sha256: &digest,
    };
    if let Some((timestamp, signature)) = target.security.sign(&fields) {
        request = request.header(protocol::TIMESTAMP, timestamp.to_string()).header(protocol::SIGNATURE, signature);
    }
    let response = request.body(body).send().await.map_err(|e| unreachable(&url, &e))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if status == 200 {
        return serde_json::from_slice(&bytes)
            .map_err(|e| Failure::new(exit::FOREIGN_REPLY, format!("{url}: 200 with a body that is not JSON: {e}")));
    }
    Err(error_reply(&url, status, &bytes))
}

fn unreachable(url: &str, error: &reqwest::Error) -> Failure {
    let what = if error.is_timeout() { "no answer within the timeout" } else { "cannot reach the node" };
    let mut message = format!("{url}: {what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Failure::new(exit::UNREACHABLE, message)
}

/// An error reply: a typed error with its type and variant, a framework error with its
/// kind, or a reply that is not intercall's.
fn error_reply(url: &str, status: u16, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let kind = parsed.as_ref().and_then(|b| b.get("kind")).and_then(Value::as_str).map(str::to_owned);
    let Some(kind_text) = kind else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(512).collect();
        return Failure::new(exit::FOREIGN_REPLY, format!("{url}: HTTP {status}, not an intercall error body: {text}"));
    };
    let body = parsed.unwrap_or_default();
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    let Ok(kind) = kind_text.parse::<ErrorKind>() else {
        return Failure::new(exit::FOREIGN_REPLY, format!("{url}: HTTP {status}, error kind `{kind_text}`: {message}"));
    };
    if kind == ErrorKind::Service {
        let ty = body.get("type").and_then(Value::as_str).unwrap_or("?");
        let name = match body.get("variant").and_then(Value::as_str) {
            Some(variant) => format!("{ty}::{variant}"),
            None => ty.to_owned(),
        };
        let value = serde_json::to_string_pretty(body.get("value").unwrap_or(&Value::Null)).unwrap_or_default();
        return Failure::new(exit::SERVICE_ERROR, format!("service error {name}\n{value}"));
    }
    let argument = match body.get("argument").and_then(Value::as_str) {
        Some(argument) => format!(" (argument `{argument}`)"),
        None => String::new(),
    };
    Failure::new(exit::of_kind(kind), format!("{kind} (HTTP {status}){argument}: {message}"))
}

/// The arguments of `intercall call`: one JSON object, or `name=value` words whose
/// value is JSON when it parses as JSON (`3`, `true`, `["a"]`, `"3"`) and a string
/// otherwise (`p-1`).
pub fn parse_args(words: &[String]) -> Result<Value, Failure> {
    match words {
        [] => Ok(Value::Object(Default::default())),
        [one] if one.trim_start().starts_with('{') => {
            let value: Value = serde_json::from_str(one)
                .map_err(|e| Failure::new(exit::USAGE, format!("the arguments are not a JSON object: {e}")))?;
            Ok(value)
        }
        words => {
            let mut object = serde_json::Map::new();
            for word in words {
                let Some((name, value)) = word.split_once('=') else {
                    return Err(Failure::new(
                        exit::USAGE,
                        format!(
                            "`{word}` is not an argument: write `name=value`, or one JSON object such as '{{\"id\":\"p-1\"}}'"
                        ),
                    ));
                };
                let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
                object.insert(name.to_owned(), value);
            }
            Ok(Value::Object(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_arguments_are_json_when_they_parse() {
        let words = ["id=p-1", "quantity=3", "quoted=\"3\"", "tags=[\"a\"]"].map(str::to_owned);
        let args = parse_args(&words).unwrap();
        assert_eq!(args, serde_json::json!({"id": "p-1", "quantity": 3, "quoted": "3", "tags": ["a"]}));
        assert_eq!(parse_args(&["{\"id\":\"p-1\"}".to_owned()]).unwrap()["id"], "p-1");
        assert_eq!(parse_args(&["nonsense".to_owned()]).unwrap_err().status, exit::USAGE);
    }

    #[test]
    fn typed_errors_show_their_type_and_variant() {
        let body = br#"{"kind":"service","message":"m","type":"CatalogError","variant":"NotFound","value":{"NotFound":{"id":"x"}}}"#;
        let failure = error_reply("u", 422, body);
        assert_eq!(failure.status, exit::SERVICE_ERROR);
        assert!(failure.message.starts_with("service error CatalogError::NotFound\n"), "{}", failure.message);
        let failure = error_reply("u", 404, br#"{"kind":"unknown_method","message":"no method"}"#);
        assert_eq!(failure.status, exit::of_kind(ErrorKind::UnknownMethod));
        assert_eq!(error_reply("u", 502, b"<html>").status, exit::FOREIGN_REPLY);
    }
}
