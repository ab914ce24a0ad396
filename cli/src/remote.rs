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

fn client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot build an HTTP client: {e}")))
}

/// One endpoint's failure, and whether the command goes on to the target's next
/// endpoint ([`moves_on`]).
struct Missed {
    failure: Failure,
    next: bool,
}

impl From<Failure> for Missed {
    fn from(failure: Failure) -> Self {
        Missed { failure, next: false }
    }
}

/// Whether a failure at one endpoint sends the command on to the next (a service with
/// several `urls`): only when the endpoint certainly did not answer for the method, so
/// that the call runs at most once where a call-id store is shared, and nothing ran
/// where it is not:
/// - no connection (refused, no route, a name that does not resolve): nothing was sent;
/// - `503 overloaded` or `503 store_unavailable`: refused before anything ran (§4.2);
/// - a `502` or `503` without an intercall error body: a gateway or balancer that could
///   not reach a backend, or sheds load (§4.2, replies that are not intercall's).
///
/// Not a timeout: `--timeout` bounds the whole command, and the run may still be going
/// on that endpoint (its `409 in_progress` says so); nor any other reply, which is the
/// node's answer to the call.
fn moves_on(reply: Result<(u16, &[u8]), &reqwest::Error>) -> bool {
    match reply {
        Err(error) => error.is_connect() && !error.is_timeout(),
        Ok((status, body)) => {
            let kind = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|body| {
                    body.get("kind").and_then(Value::as_str).and_then(|kind| kind.parse::<ErrorKind>().ok())
                })
                .filter(|kind| kind.status() == status);
            matches!(
                (status, kind),
                (503, Some(ErrorKind::Overloaded | ErrorKind::StoreUnavailable)) | (502 | 503, None)
            )
        }
    }
}

/// Runs `attempt` on the target's endpoints in order until one answers (see
/// [`moves_on`]), within one `timeout` for the whole command; `attempt` gets the base
/// URL, the attempt's number from 1, the time left, and an [`Answered`] to call as soon
/// as it knows the endpoint answered (a stream's head, before its items), in an
/// [`Attempt`]. Writes a line
/// on stderr for every endpoint passed over, and names the endpoint that answered when
/// it was not the first. When every endpoint failed, the last failure is returned.
async fn each_endpoint<T>(
    target: &Target,
    timeout: Duration,
    mut attempt: impl AsyncFnMut(Attempt<'_>) -> Result<T, Missed>,
) -> Result<T, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    let count = target.bases.len();
    let mut number = 0;
    let mut passed_over = Vec::new();
    for (index, base) in target.bases.iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if index > 0 && left.is_zero() {
            break;
        }
        number += 1;
        let answered = Answered {
            line: (index > 0).then(|| {
                format!(
                    "answered by {base} (endpoint {} of {count}; passed over: {})",
                    index + 1,
                    passed_over.join(", ")
                )
            }),
            said: std::cell::Cell::new(false),
        };
        let outcome = attempt(Attempt { base, number, left, answered: &answered }).await;
        if !matches!(&outcome, Err(Missed { next: true, .. })) {
            answered.say();
        }
        match outcome {
            Err(Missed { failure, next: true }) if index + 1 < count => {
                note(&format!(
                    "endpoint {} of {count}, {base}: {}; trying the next one, {}",
                    index + 1,
                    failure.message,
                    target.bases[index + 1]
                ));
                passed_over.push(base.as_str());
            }
            Err(Missed { failure, next: true }) if count > 1 => {
                return Err(Failure::new(
                    failure.status,
                    format!("every endpoint failed ({count}); the last: {}", failure.message),
                ));
            }
            outcome => return outcome.map_err(|missed| missed.failure),
        }
    }
    Err(Failure::new(
        exit::UNREACHABLE,
        format!(
            "no answer within the timeout from {}, and no time left for {}",
            passed_over.join(", "),
            target.bases[number as usize]
        ),
    ))
}

/// One attempt at one endpoint, as [`each_endpoint`] hands it out.
struct Attempt<'a> {
    /// The endpoint's base URL.
    base: &'a str,
    /// `x-call-attempt`: 1, 2, ...
    number: u32,
    /// What is left of the command's `--timeout`.
    left: Duration,
    answered: &'a Answered,
}

/// The line naming the endpoint that answered, when it is not the target's first,
/// written once: when the attempt knows (a stream's head), else when it ends.
struct Answered {
    line: Option<String>,
    said: std::cell::Cell<bool>,
}

impl Answered {
    fn say(&self) {
        if let Some(line) = &self.line
            && !self.said.replace(true)
        {
            note(line);
        }
    }
}

/// A line on stderr; a failed write is ignored (the command's outcome does not depend
/// on it).
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "intercall: {line}");
}

/// The node's manifest, or one service's (`GET /.well-known/intercall/manifest[/{service}]`),
/// from the target's first endpoint that answers.
pub async fn fetch_manifest(target: &Target, service: Option<&str>, timeout: Duration) -> Result<Manifest, Failure> {
    let client = client()?;
    each_endpoint(target, timeout, async |attempt| {
        fetch_manifest_from(&client, attempt.base, target, service, attempt.left).await
    })
    .await
}

async fn fetch_manifest_from(
    client: &reqwest::Client,
    base: &str,
    target: &Target,
    service: Option<&str>,
    timeout: Duration,
) -> Result<Manifest, Missed> {
    let path = match service {
        Some(service) => manifest::service_path(service),
        None => manifest::INDEX_PATH.to_owned(),
    };
    let url = format!("{base}{path}");
    let mut request = client.get(&url).timeout(timeout);
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
    let response =
        request.send().await.map_err(|e| Missed { failure: unreachable(&url, &e), next: moves_on(Err(&e)) })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if status == 404 && service.is_some() {
        let service = service.unwrap_or_default();
        return Err(Failure::new(
            exit::of_kind(ErrorKind::UnknownService),
            format!(
                "{url}: no manifest for service `{service}` (404): the node has no such service, or serves it without its manifest"
            ),
        )
        .into());
    }
    if status != 200 {
        return Err(Missed { failure: error_reply(&url, status, &body), next: moves_on(Ok((status, &body))) });
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
        )
        .into());
    }
    Ok(manifest)
}

/// How long past `--timeout` the CLI still waits for the node's own answer: the node
/// measures the deadline (`x-deadline-ms`) from when the request reached it and then
/// answers `409 in_progress` (a unary call, whose run goes on) or ends a stream with
/// `deadline_exceeded`, which says more than the CLI giving up at the same moment.
pub const GRACE: Duration = Duration::from_secs(1);

/// The longest stream frame the CLI reads (PROTOCOL.md §4.3: a reader bounds them).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// What a call replied, when it did not fail.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// A unary method's result.
    Value(Value),
    /// A stream method's stream ended cleanly (`{"end":"ok"}`), after `items` items,
    /// each given to `on_item` as it arrived.
    StreamEnded {
        /// How many items the stream had.
        items: u64,
    },
}

/// Calls `service.method` with `args` (a JSON object). A unary method's result is
/// returned; a stream method's items (PROTOCOL.md §4.3) are given to `on_item` as they
/// arrive, and its final frame decides the outcome: `{"end":"ok"}` is
/// [`Reply::StreamEnded`], an error frame the failure of that error body, a body cut
/// before its final frame [`exit::UNREACHABLE`].
///
/// A target with several endpoints (a service's `urls`) is tried in order, moving on
/// only where the call certainly did not run (a refused connection, `503 overloaded`
/// or `store_unavailable`, a gateway's `502`/`503`), with the same call id, body and
/// activity on every attempt and `x-call-attempt` counting from 1 (PROTOCOL.md §5);
/// `options.timeout` bounds all the attempts together and each sends the time left as
/// its deadline.
pub async fn call(
    target: &Target,
    service: &str,
    method: &str,
    args: &Value,
    options: &CallOptions,
    on_item: &mut dyn FnMut(&Value),
) -> Result<Reply, Failure> {
    let client = client()?;
    let call = Call {
        service,
        method,
        body: serde_json::to_vec(args).expect("a JSON value serializes"),
        call_id: options.call_id.unwrap_or_else(uuid::Uuid::new_v4).to_string(),
        activity: uuid::Uuid::new_v4().to_string(),
        user: options.user.as_ref().map(|(user_type, user_id)| (user_type.as_str(), user_id.as_deref())),
    };
    let result =
        each_endpoint(target, options.timeout, async |attempt| call_at(&client, target, &call, attempt, on_item).await)
            .await;
    result.map_err(|mut failure| {
        if failure.status == exit::of_kind(ErrorKind::InProgress) {
            failure.message.push_str(&format!(
                "\nthe call may still be running: the same command with `--call-id {}` waits for its result",
                call.call_id
            ));
        }
        failure
    })
}

/// What every attempt of one call sends alike (PROTOCOL.md §5).
struct Call<'a> {
    service: &'a str,
    method: &'a str,
    body: Vec<u8>,
    call_id: String,
    activity: String,
    user: Option<(&'a str, Option<&'a str>)>,
}

/// One attempt of `call` at one endpoint, with `left` of the command's time.
async fn call_at(
    client: &reqwest::Client,
    target: &Target,
    call: &Call<'_>,
    Attempt { base, number, left, answered }: Attempt<'_>,
    on_item: &mut dyn FnMut(&Value),
) -> Result<Reply, Missed> {
    let url = format!("{base}/{}/{}", call.service, call.method);
    let mut request = client
        .post(&url)
        .timeout(left + GRACE)
        .header("content-type", protocol::JSON)
        .header("accept", format!("{}, {}", protocol::JSON, protocol::stream::NDJSON))
        .header(protocol::CALL_ID, &call.call_id)
        .header(protocol::CALL_ATTEMPT, number.to_string())
        .header(protocol::ACTIVITY_ID, &call.activity)
        .header(protocol::DEADLINE_MS, left.as_millis().to_string());
    let (user_type, user_id) = call.user.unzip();
    let user_id = user_id.flatten();
    if let Some(user_type) = user_type {
        request = request.header(protocol::USER_TYPE, user_type);
    }
    if let Some(user_id) = user_id {
        request = request.header(protocol::USER_ID, user_id);
    }
    let digest = body_sha256(&call.body);
    let fields = SignedFields {
        service: call.service,
        method: call.method,
        call_id: Some(&call.call_id),
        user_type,
        user_id,
        activity: Some(&call.activity),
        body_sha256: &digest,
    };
    if let Some((timestamp, signature)) = target.security.sign(&fields) {
        request = request.header(protocol::TIMESTAMP, timestamp.to_string()).header(protocol::SIGNATURE, signature);
    }
    let mut response = request
        .body(call.body.clone())
        .send()
        .await
        .map_err(|e| Missed { failure: unreachable(&url, &e), next: moves_on(Err(&e)) })?;
    let status = response.status().as_u16();
    let media_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if status == 200 && media_type == protocol::stream::NDJSON {
        answered.say();
        return Ok(read_stream(&url, &mut response, on_item).await?);
    }
    let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if status == 200 {
        return serde_json::from_slice(&bytes).map(Reply::Value).map_err(|e| {
            Failure::new(exit::FOREIGN_REPLY, format!("{url}: 200 with a body that is not JSON: {e}")).into()
        });
    }
    Err(Missed { failure: error_reply(&url, status, &bytes), next: moves_on(Ok((status, &bytes))) })
}

/// Reads a stream's frames as they arrive (PROTOCOL.md §4.3), one line each.
async fn read_stream(
    url: &str,
    response: &mut reqwest::Response,
    on_item: &mut dyn FnMut(&Value),
) -> Result<Reply, Failure> {
    let mut pending: Vec<u8> = Vec::new();
    let mut items = 0;
    loop {
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = line[..end].trim_ascii();
            if line.is_empty() {
                continue;
            }
            match frame(url, line)? {
                Frame::Item(item) => {
                    items += 1;
                    on_item(&item);
                }
                Frame::Skip => {}
                Frame::End => return Ok(Reply::StreamEnded { items }),
                Frame::Error(body) => {
                    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
                    let failure = error_body(url, "the stream's final frame", &bytes);
                    return Err(Failure::new(
                        failure.status,
                        format!("the stream ended with an error after {items} items: {}", failure.message),
                    ));
                }
            }
        }
        if pending.len() > MAX_FRAME_BYTES {
            return Err(Failure::new(
                exit::FOREIGN_REPLY,
                format!("{url}: a stream frame longer than {MAX_FRAME_BYTES} bytes"),
            ));
        }
        match response.chunk().await.map_err(|e| unreachable(url, &e))? {
            Some(chunk) => pending.extend_from_slice(&chunk),
            None => {
                return Err(Failure::new(
                    exit::UNREACHABLE,
                    format!("{url}: the stream was cut after {items} items, before its final frame"),
                ));
            }
        }
    }
}

/// One stream frame, as the CLI reads it.
enum Frame {
    Item(Value),
    /// A keep-alive, or a frame of a kind this CLI does not know.
    Skip,
    End,
    /// An error body (PROTOCOL.md §4.2).
    Error(Value),
}

fn frame(url: &str, line: &[u8]) -> Result<Frame, Failure> {
    let malformed = |why: &str| {
        let text: String = String::from_utf8_lossy(line).chars().take(200).collect();
        Failure::new(exit::FOREIGN_REPLY, format!("{url}: {why}: {text}"))
    };
    let Ok(Value::Object(mut frame)) = serde_json::from_slice::<Value>(line) else {
        return Err(malformed("a stream frame that is not a JSON object"));
    };
    match (frame.remove("item"), frame.get("end").map(|end| end.as_str())) {
        (Some(_), Some(_)) => Err(malformed("a stream frame with both `item` and `end`")),
        (Some(item), None) => Ok(Frame::Item(item)),
        (None, None) => Ok(Frame::Skip),
        (None, Some(Some("ok"))) => Ok(Frame::End),
        (None, Some(Some("error"))) => match frame.remove("error") {
            Some(body @ Value::Object(_)) => Ok(Frame::Error(body)),
            _ => Err(malformed("an error frame without an error body")),
        },
        (None, Some(_)) => Err(malformed("a final frame whose `end` is neither `ok` nor `error`")),
    }
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
    error_body(url, &format!("HTTP {status}"), body)
}

/// An error body, from a reply (`origin` is `HTTP 404`) or a stream's error frame.
fn error_body(url: &str, origin: &str, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let kind = parsed.as_ref().and_then(|b| b.get("kind")).and_then(Value::as_str).map(str::to_owned);
    let Some(kind_text) = kind else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(512).collect();
        return Failure::new(exit::FOREIGN_REPLY, format!("{url}: {origin}, not an intercall error body: {text}"));
    };
    let body = parsed.unwrap_or_default();
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    let Ok(kind) = kind_text.parse::<ErrorKind>() else {
        return Failure::new(exit::FOREIGN_REPLY, format!("{url}: {origin}, error kind `{kind_text}`: {message}"));
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
    Failure::new(exit::of_kind(kind), format!("{kind} ({origin}){argument}: {message}"))
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
    fn stream_frames_are_items_keep_alives_ends_or_malformed() {
        assert!(matches!(frame("u", br#"{"item":3}"#), Ok(Frame::Item(v)) if v == 3));
        assert!(matches!(frame("u", br#"{"item":null}"#), Ok(Frame::Item(Value::Null))), "an item of `()`");
        assert!(matches!(frame("u", b"{}"), Ok(Frame::Skip)));
        assert!(matches!(frame("u", br#"{"progress":1}"#), Ok(Frame::Skip)), "a kind of frame not known yet");
        assert!(matches!(frame("u", br#"{"end":"ok"}"#), Ok(Frame::End)));
        let error = br#"{"end":"error","error":{"kind":"panic","message":"m"}}"#;
        assert!(matches!(frame("u", error), Ok(Frame::Error(body)) if body["kind"] == "panic"));
        for bad in [&b"[1]"[..], br#"{"item":1,"end":"ok"}"#, br#"{"end":"done"}"#, br#"{"end":"error"}"#, b"{"] {
            let status = frame("u", bad).err().map(|failure| failure.status);
            assert_eq!(status, Some(exit::FOREIGN_REPLY), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_a_reply_that_ran_nothing_moves_on_to_the_next_endpoint() {
        let body = |kind: ErrorKind| format!(r#"{{"kind":"{kind}","message":"m"}}"#).into_bytes();
        for kind in ErrorKind::ALL {
            let expected = matches!(kind, ErrorKind::Overloaded | ErrorKind::StoreUnavailable);
            assert_eq!(moves_on(Ok((kind.status(), &body(kind)))), expected, "{kind}");
        }
        // A gateway's or balancer's own 502 and 503, or a kind at a status not its own.
        for reply in [&b"<html>bad gateway</html>"[..], b"", br#"{"kind":"newer_kind","message":"m"}"#] {
            assert!(moves_on(Ok((502, reply))));
            assert!(moves_on(Ok((503, reply))));
            assert!(!moves_on(Ok((504, reply))), "a gateway's timeout: the run may go on there");
            assert!(!moves_on(Ok((429, reply))));
        }
        assert!(moves_on(Ok((503, &body(ErrorKind::Service)))));
        assert!(!moves_on(Ok((500, &body(ErrorKind::Overloaded)))), "not intercall's 503");
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
