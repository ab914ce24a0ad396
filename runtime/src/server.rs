//! The server side: the axum routes a generated `XServer::into_router` builds, and the
//! request handling every method shares (content type, body limit, argument decoding,
//! panic isolation, error replies).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use futures_util::FutureExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::type_info::type_info;
use crate::wire::{self, ErrorBody, ErrorKind};

/// The default limit on a request body: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Settings of a generated server.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub max_body_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { max_body_bytes: DEFAULT_MAX_BODY_BYTES }
    }
}

/// Builds one service's routes; generated code calls [`method`](Self::method) once per
/// trait method.
#[doc(hidden)]
pub struct ServiceRouter<S> {
    service: &'static str,
    methods: &'static [&'static str],
    implementation: Arc<S>,
    options: ServerOptions,
    router: Router,
}

/// Which method a request is for; shared by every request to it.
#[derive(Debug, Clone, Copy)]
struct MethodInfo {
    service: &'static str,
    method: &'static str,
    max_body_bytes: usize,
}

impl<S: Send + Sync + 'static> ServiceRouter<S> {
    pub fn new(
        service: &'static str,
        methods: &'static [&'static str],
        implementation: Arc<S>,
        options: ServerOptions,
    ) -> Self {
        Self { service, methods, implementation, options, router: Router::new() }
    }

    /// Adds `POST /{service}/{method}`, which decodes the arguments as `A` and runs
    /// `call`.
    pub fn method<A, T, E, F, Fut>(mut self, method: &'static str, call: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize,
        E: Serialize,
        F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let info = MethodInfo { service: self.service, method, max_body_bytes: self.options.max_body_bytes };
        let implementation = Arc::clone(&self.implementation);
        let handler = move |request: Request| handle(info, Arc::clone(&implementation), call.clone(), request);
        let route =
            post(handler).fallback(move |request: Request| async move { method_not_allowed(info, request.method()) });
        self.router = self.router.route(&format!("/{}/{method}", self.service), route);
        self
    }

    /// The finished router; any other path under `/{service}/` answers `unknown_method`.
    pub fn finish(self) -> Router {
        let (service, methods) = (self.service, self.methods);
        let unknown =
            any(move |request: Request| async move { unknown_method(service, methods, request.uri().path()) });
        self.router
            .route(&format!("/{service}"), unknown.clone())
            .route(&format!("/{service}/"), unknown.clone())
            .route(&format!("/{service}/{{*method}}"), unknown)
    }
}

async fn handle<S, A, T, E, F, Fut>(info: MethodInfo, implementation: Arc<S>, call: F, request: Request) -> Response
where
    A: DeserializeOwned,
    T: Serialize,
    E: Serialize,
    F: FnOnce(Arc<S>, A) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let (parts, body) = request.into_parts();
    let args = match read_args::<A>(info, &parts.headers, body).await {
        Ok(args) => args,
        Err(rejection) => return rejection.into_reply(),
    };
    match AssertUnwindSafe(call(implementation, args)).catch_unwind().await {
        Ok(Ok(value)) => match serde_json::to_vec(&value) {
            Ok(json) => json_reply(StatusCode::OK, json),
            Err(e) => internal(info, &format!("cannot serialize the result: {e}")),
        },
        Ok(Err(error)) => service_error(info, &error),
        Err(panic) => {
            let message = panic_message(&*panic);
            tracing::error!(service = info.service, method = info.method, "implementation panicked: {message}");
            let message = format!("{}.{} panicked; the server logged the panic message", info.service, info.method);
            error_reply(ErrorKind::Panic, &message, None)
        }
    }
}

/// Why a request was turned away before the implementation ran; becomes an error reply.
struct Rejection {
    kind: ErrorKind,
    message: String,
    argument: Option<String>,
}

impl Rejection {
    fn new(kind: ErrorKind, message: String) -> Self {
        Self { kind, message, argument: None }
    }

    fn into_reply(self) -> Response {
        error_reply(self.kind, &self.message, self.argument.as_deref())
    }
}

/// Content type, body limit and argument decoding: every check that happens before
/// the implementation runs.
async fn read_args<A: DeserializeOwned>(info: MethodInfo, headers: &HeaderMap, body: Body) -> Result<A, Rejection> {
    check_content_type(headers)?;
    let too_large = || {
        let message = format!("the request body is larger than this server's limit of {} bytes", info.max_body_bytes);
        Rejection::new(ErrorKind::PayloadTooLarge, message)
    };
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > info.max_body_bytes as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, info.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(Rejection::new(ErrorKind::BadRequest, format!("cannot read the request body: {e}"))),
    };
    decode_args(&bytes)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let unsupported = |message: String| Err(Rejection::new(ErrorKind::UnsupportedMediaType, message));
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return unsupported(format!("missing `content-type` header; send `content-type: {}`", wire::JSON));
    };
    let media_type = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim();
    let is_json = media_type.eq_ignore_ascii_case(wire::JSON)
        || media_type.get(media_type.len().saturating_sub(5)..).is_some_and(|s| s.eq_ignore_ascii_case("+json"));
    if is_json {
        Ok(())
    } else {
        unsupported(format!(
            "`content-type: {}` is not supported; send `content-type: {}`",
            String::from_utf8_lossy(value.as_bytes()),
            wire::JSON
        ))
    }
}

/// Decodes the JSON object of named arguments; an empty body means no arguments.
fn decode_args<A: DeserializeOwned>(body: &[u8]) -> Result<A, Rejection> {
    let bad = |message: String, argument: Option<String>| Rejection { kind: ErrorKind::BadRequest, message, argument };
    let body: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        Some(_) => return Err(bad("the request body must be a JSON object of named arguments".to_owned(), None)),
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let args = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let argument = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => missing_field(&e.inner().to_string()),
        };
        let message = match (&argument, e.path().iter().count()) {
            (Some(name), 0) => format!("missing argument `{name}`"),
            (Some(name), 1) => format!("argument `{name}`: {}", e.inner()),
            (Some(name), _) => format!("argument `{name}` is invalid at `{}`: {}", e.path(), e.inner()),
            (None, _) => format!("malformed JSON: {}", e.inner()),
        };
        bad(message, argument)
    })?;
    json.end().map_err(|e| bad(format!("malformed JSON: {e}"), None))?;
    Ok(args)
}

/// serde reports a missing field only in its message: "missing field `id` at ...".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn service_error<E: Serialize>(info: MethodInfo, error: &E) -> Response {
    let value = match serde_json::value::to_raw_value(error) {
        Ok(value) => value,
        Err(e) => return internal(info, &format!("cannot serialize the error: {e}")),
    };
    let type_info = type_info(error);
    let type_name = type_info.name.unwrap_or_else(|| short_type_name::<E>());
    let message = match type_info.variant {
        Some(variant) => format!("{}.{} returned {type_name}::{variant}", info.service, info.method),
        None => format!("{}.{} returned a {type_name}", info.service, info.method),
    };
    let body = ErrorBody {
        kind: ErrorKind::Service.as_str().into(),
        message: message.into(),
        argument: None,
        type_name: Some(type_name.into()),
        variant: type_info.variant.map(Into::into),
        value: Some(&value as &RawValue),
    };
    reply(ErrorKind::Service, &body)
}

fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

fn internal(info: MethodInfo, message: &str) -> Response {
    tracing::error!(service = info.service, method = info.method, "{message}");
    error_reply(ErrorKind::Internal, &format!("{}.{}: {message}", info.service, info.method), None)
}

fn method_not_allowed(info: MethodInfo, method: &Method) -> Response {
    let message = format!("{method} is not allowed; call `POST /{}/{}`", info.service, info.method);
    let mut response = error_reply(ErrorKind::MethodNotAllowed, &message, None);
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

fn unknown_method(service: &str, methods: &[&str], path: &str) -> Response {
    let method = path.strip_prefix('/').and_then(|p| p.strip_prefix(service)).unwrap_or("").trim_start_matches('/');
    let methods = methods.join(", ");
    let message = match method {
        "" => format!("service `{service}` needs a method name: `POST /{service}/{{method}}`, one of: {methods}"),
        method => format!("service `{service}` has no method `{}`; its methods are: {methods}", truncate(method)),
    };
    error_reply(ErrorKind::UnknownMethod, &message, None)
}

/// The fallback for paths no service claims. [`serve`](crate::serve) installs it; add
/// it yourself with `router.fallback(intercall::unknown_service)` when you serve the
/// router another way.
pub async fn unknown_service(request: Request) -> Response {
    let path = request.uri().path();
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let message = format!(
        "no service `{}` on this node (path `{}`); intercall paths are `POST /{{service}}/{{method}}`",
        truncate(service),
        truncate(path)
    );
    error_reply(ErrorKind::UnknownService, &message, None)
}

/// Keeps an echoed client string short enough for a log line.
fn truncate(text: &str) -> &str {
    const MAX: usize = 128;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
}

/// A framework error reply: `{"kind": .., "message": .., "argument"?: ..}`.
pub(crate) fn error_reply(kind: ErrorKind, message: &str, argument: Option<&str>) -> Response {
    let body = ErrorBody {
        kind: kind.as_str().into(),
        message: message.into(),
        argument: argument.map(Into::into),
        type_name: None,
        variant: None,
        value: None,
    };
    reply(kind, &body)
}

fn reply(kind: ErrorKind, body: &ErrorBody<'_>) -> Response {
    let status = StatusCode::from_u16(kind.status()).expect("wire statuses are valid");
    let json = serde_json::to_vec(body).expect("an error body of strings and raw JSON always serializes");
    json_reply(status, json)
}

fn json_reply(status: StatusCode, json: Vec<u8>) -> Response {
    (status, [(CONTENT_TYPE, HeaderValue::from_static(wire::JSON))], Bytes::from(json)).into_response()
}
