//! The server side: the axum routes a generated `XServer::into_router` builds, and the
//! request flow every method shares: checks (`request`), the call-id flow (`dedup`),
//! the run and the replies (`reply`). The node's settings and its stores: `settings`;
//! the accept loop and its connection limits: `serve` (its connections' watchers:
//! `side_wake`).

mod dedup;
mod detach;
mod reply;
mod request;
mod serve;
mod settings;
mod shed;
mod side_wake;
mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::header::{ALLOW, CONNECTION, HeaderValue};
use axum::response::Response;
use axum::routing::{any, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::calls::{CallKey, CallStore, OnStoreError, fingerprint};
use crate::context::CallContext;
use crate::protocol::headers::{CallHeaders, RequestHead};
use crate::protocol::reply::framework_error;
use crate::protocol::{ErrorKind, args, path, truncate};
use crate::security::Security;
use crate::telemetry;
use reply::outcome_of;
use reply::refuse;
pub(crate) use reply::respond;
pub use serve::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    ServeOptions, default_max_connections,
};
pub(crate) use serve::{ServeTimings, serve_connections};
pub(crate) use settings::server_settings;
pub use settings::{DEFAULT_MAX_BODY_BYTES, ServerSettings, default_call_store};
use shed::InFlight;
pub use shed::{MaxInFlight, SHED_RETRY_AFTER_SECS};

/// What a generated `XServer` has been told before `into_router`: its own body limit
/// and the node's [`ServerSettings`]. Generated builder methods call these setters, so
/// the fields can change without touching generated code.
#[doc(hidden)]
#[derive(Clone)]
pub struct ServerSetup {
    max_body_bytes: usize,
    serve_manifest: bool,
    settings: ServerSettings,
    /// Per-method limits on calls in flight, over the node's.
    method_max_in_flight: Vec<(String, usize)>,
}

impl Default for ServerSetup {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            serve_manifest: true,
            settings: ServerSettings::default(),
            method_max_in_flight: Vec::new(),
        }
    }
}

impl ServerSetup {
    pub fn set_max_body_bytes(&mut self, limit: usize) {
        self.max_body_bytes = limit;
    }

    pub fn set_serve_manifest(&mut self, serve: bool) {
        self.serve_manifest = serve;
    }

    pub fn set_security(&mut self, security: Security) {
        self.settings.security = security;
    }

    pub fn set_call_store(&mut self, store: Arc<dyn CallStore>) {
        self.settings.call_store = Some(store);
    }

    pub fn set_settings(&mut self, settings: ServerSettings) {
        self.settings = settings;
    }

    pub fn set_method_max_in_flight(&mut self, method: &str, limit: usize) {
        self.method_max_in_flight.retain(|(name, _)| name != method);
        self.method_max_in_flight.push((method.to_owned(), limit));
    }
}

/// Builds one service's routes; generated code calls [`method`](Self::method) once per
/// trait method.
#[doc(hidden)]
pub struct ServiceRouter<S> {
    service: &'static str,
    methods: &'static [&'static str],
    implementation: Arc<S>,
    max_body_bytes: usize,
    store: Arc<dyn CallStore>,
    on_store_error: OnStoreError,
    security: Arc<Security>,
    /// The node's limit on calls in flight, if any.
    max_in_flight: Option<MaxInFlight>,
    /// Methods with a limit of their own: their calls count against it, not the node's.
    method_max_in_flight: Vec<(String, MaxInFlight)>,
    serve_manifest: bool,
    router: Router,
}

/// The method a request is for, and how its server was set up; shared by every
/// request to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServedMethod {
    pub(crate) service: &'static str,
    pub(crate) method: &'static str,
    max_body_bytes: usize,
    pub(crate) on_store_error: OnStoreError,
}

impl<S: Send + Sync + 'static> ServiceRouter<S> {
    pub fn new(
        service: &'static str,
        methods: &'static [&'static str],
        implementation: Arc<S>,
        setup: ServerSetup,
    ) -> Self {
        let ServerSettings { security, call_store, on_store_error, serve_options: _, max_in_flight } = setup.settings;
        let store = call_store.unwrap_or_else(default_call_store);
        // A limit for a method this service does not have is a mistake in code, found
        // at start-up (a method under `#[cfg]` off counts as absent).
        for (method, _) in &setup.method_max_in_flight {
            assert!(
                methods.contains(&method.as_str()),
                "`{service}Server::method_max_in_flight(\"{method}\", ..)`: `{service}` has no method `{method}`; its methods are: {}",
                methods.join(", ")
            );
        }
        let method_max_in_flight =
            setup.method_max_in_flight.into_iter().map(|(method, limit)| (method, MaxInFlight::new(limit))).collect();
        if !security.is_enabled() {
            warn_unsigned_once();
        }
        let security = Arc::new(security);
        let (max_body_bytes, serve_manifest) = (setup.max_body_bytes, setup.serve_manifest);
        let router = Router::new();
        Self {
            service,
            methods,
            implementation,
            max_body_bytes,
            store,
            on_store_error,
            security,
            max_in_flight,
            method_max_in_flight,
            serve_manifest,
            router,
        }
    }

    /// Adds `POST /{service}/{method}`, which decodes the arguments as `A` and runs
    /// `call`.
    pub fn method<A, T, E, F, Fut>(self, method: &'static str, call: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize + 'static,
        E: Serialize + 'static,
        F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.route(method, move |served, state, request, span, in_flight| {
            handle(served, state, call.clone(), request, span, in_flight)
        })
    }

    /// Adds the route of `method`, answered by `handle` inside the request's span, and
    /// its `405` for other verbs. Load shedding comes first: `handle` gets the call's
    /// place under its limit, to hold for as long as the run lasts (`shed.rs`). The
    /// span and the metrics end with the call's outcome.
    fn route<H, R>(mut self, method: &'static str, handle: H) -> Self
    where
        H: Fn(ServedMethod, ServiceState<S>, Request, Span, InFlight) -> R + Clone + Send + Sync + 'static,
        R: Future<Output = Response> + Send + 'static,
    {
        let served = ServedMethod {
            service: self.service,
            method,
            max_body_bytes: self.max_body_bytes,
            on_store_error: self.on_store_error,
        };
        let state = ServiceState {
            implementation: Arc::clone(&self.implementation),
            store: Arc::clone(&self.store),
            security: Arc::clone(&self.security),
        };
        let limit = match self.method_max_in_flight.iter().find(|(name, _)| name == method) {
            Some((_, own)) => Some(own.clone()),
            None => self.max_in_flight.clone(),
        };
        let metrics = telemetry::ServerMetrics::new(self.service, method);
        let handler = move |request: Request| {
            // Before anything else: a shed call must cost less than a served one.
            let entered = match &limit {
                None => Ok(InFlight::default()),
                Some(limit) => limit.try_admit().ok_or_else(|| limit.clone()),
            };
            let span = serve_span(served, &request);
            // Boxed here, once: the request's whole flow is a future of a few KiB, and
            // axum's handler, the shedding and the metrics wrappers each move what they
            // are given; unboxed, those moves were a tenth of the server's CPU per call.
            // A shed call makes none.
            let flow = match entered {
                Err(limit) => Err(limit),
                Ok(in_flight) => {
                    let handling = Box::pin(handle(served, state.clone(), request, span.clone(), in_flight.clone()));
                    Ok((in_flight, handling))
                }
            };
            // Without the `metrics` feature, an empty copy: no shared count to touch.
            let metrics = metrics.clone();
            async move {
                let serving = metrics.start();
                let response = match flow {
                    Err(limit) => shed::shed(served, &limit),
                    // The request holds its place until its reply is made; its run
                    // holds it too, until the run ends.
                    Ok((_in_flight, handling)) => handling.await,
                };
                finish(served, span, serving, response)
            }
        };
        let route =
            post(handler).fallback(move |request: Request| async move { method_not_allowed(served, request.method()) });
        self.router = self.router.route(&path::route(self.service, method), route);
        self
    }

    /// Serves the service's manifest at `manifest::service_path` (unless the server
    /// was told not to) and lists it in the node's index. A server told not to, on a
    /// node with a secret, still refuses unsigned manifest requests, the index's too.
    pub fn manifest(mut self, manifest: crate::manifest::ServiceManifest) -> Self {
        if self.serve_manifest {
            self.router = crate::manifest::register(self.router, self.service, manifest, Arc::clone(&self.security));
        } else if self.security.is_enabled() {
            self.router = crate::manifest::register_withheld(self.router, self.service, Arc::clone(&self.security));
        }
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

/// Records how a call ended, on its span and in its metrics: a unary call's reply now,
/// a stream's outcome when the stream ends (its final frame, or its client leaving).
fn finish(served: ServedMethod, span: Span, serving: telemetry::Serving, response: Response) -> Response {
    match response.extensions().get::<stream::StreamReply>() {
        Some(stream) => {
            let status = response.status().as_u16();
            stream.on_end(move |outcome| {
                serving.finish(outcome.label(), status);
                reply::record_ended(served, &span, outcome, status, || &[]);
            });
        }
        None => {
            // Read from the reply as it was made, not from its status: `call_id_mismatch`
            // shares the typed error's 422.
            serving.finish(outcome_of(&response).label(), response.status().as_u16());
            reply::record_outcome(served, &span, &response);
        }
    }
    response
}

/// What every request to one service shares: the implementation, the call-id store
/// and how calls are verified.
struct ServiceState<S> {
    implementation: Arc<S>,
    store: Arc<dyn CallStore>,
    security: Arc<Security>,
}

impl<S> Clone for ServiceState<S> {
    fn clone(&self) -> Self {
        Self {
            implementation: Arc::clone(&self.implementation),
            store: Arc::clone(&self.store),
            security: Arc::clone(&self.security),
        }
    }
}

/// A request's `intercall.serve` span, made before the checks, so that a refused
/// request has a span and an outcome too. Field names of the OpenTelemetry RPC
/// conventions; the rest are recorded as the request is read and answered.
///
/// `server.address` and `server.port` are the server's as its client addressed it (the
/// `Host` header, or HTTP/2's `:authority`), as the conventions ask of a server span;
/// without either, the address the connection was accepted on. `replayed = true`: the
/// reply came from the call-id store, a finished run's or (`waited = true` too) the
/// one this request waited for.
fn serve_span(served: ServedMethod, request: &Request) -> Span {
    let span = tracing::info_span!(
        "intercall.serve",
        "otel.kind" = "server",
        "rpc.system" = "intercall",
        "rpc.service" = served.service,
        "rpc.method" = served.method,
        "server.address" = Empty,
        "server.port" = Empty,
        call_id = Empty,
        activity_id = Empty,
        attempt = Empty,
        replayed = Empty,
        waited = Empty,
        outcome = Empty,
        "error.type" = Empty,
        "http.response.status_code" = Empty,
    );
    if !span.is_disabled() {
        record_server_address(&span, request);
    }
    span
}

/// Records `server.address` and `server.port` on a request's span (see [`serve_span`]).
fn record_server_address(span: &Span, request: &Request) {
    let addressed = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| request.headers().get(axum::http::header::HOST).and_then(|host| host.to_str().ok()))
        .and_then(host_and_port);
    match addressed {
        Some((host, port)) => {
            span.record("server.address", host);
            if let Some(port) = port {
                span.record("server.port", port);
            }
        }
        None => {
            let local = request.extensions().get::<ServeTimings>().and_then(|timings| timings.local_addr);
            if let Some(local) = local {
                span.record("server.address", tracing::field::display(local.ip()));
                span.record("server.port", local.port());
            }
        }
    }
}

/// The host (an IPv6 address without its brackets) and the port of an authority
/// (`host`, `host:port`, `[::1]:port`); `None` when it is empty or not one.
fn host_and_port(authority: &str) -> Option<(&str, Option<u16>)> {
    // A `userinfo@` has no place in `Host`; an authority with one is taken as none.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']')?;
            match rest {
                "" => (host, None),
                rest => (host, Some(rest.strip_prefix(':')?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    (!host.is_empty()).then_some((host, port))
}

/// A request that passed every check before the implementation: its decoded
/// arguments, the context to run it in, its span, and its call-id claim when it has
/// a call id.
pub(crate) struct Admitted<A> {
    pub(crate) args: A,
    pub(crate) context: CallContext,
    pub(crate) span: Span,
    /// The request's `x-deadline-ms`, as sent.
    pub(crate) deadline: Option<std::time::Duration>,
    pub(crate) dedup: Option<(CallKey, u128, Option<dedup::ClaimGuard>)>,
    /// The request's header map, emptied, to hold the reply's headers (see
    /// [`reply::respond_in`]).
    pub(crate) reply_headers: HeaderMap,
}

/// The checks of PROTOCOL.md §4.2, in order, up to the decoded arguments: every
/// method runs them, unary or streamed. `Err` is the response that refuses the
/// request (a replay of a call id's reply among them).
async fn admit<S, A: DeserializeOwned>(
    served: ServedMethod,
    state: &ServiceState<S>,
    request: Request,
    span: Span,
) -> Result<Admitted<A>, Response> {
    let arrived = Instant::now();
    let (mut parts, body) = request.into_parts();
    // Every header the checks read, found in one pass.
    let head = RequestHead::read(&parts.headers);
    let headers = request::check_headers(&head).map_err(|refusal| refuse(&refusal))?;
    // Before the body: a declared size over the limit, and an unsigned request to a
    // signed server, are refused unread.
    // `content-length`, read once for both the check and the read.
    let declared = head.content_length();
    request::check_declared_size(declared, served.max_body_bytes)
        .and_then(|()| request::check_signature_headers(&state.security, &head))
        .map_err(|refusal| refuse(&refusal))?;
    // What is read from the head after the body, taken now: the whole head is not
    // kept across the body's read, in every request's future.
    let (signature, trace) = (head.signature(), head.trace());
    let body_timeout = parts.extensions.get::<ServeTimings>().map(|timings| timings.body_read);
    let bytes = match request::read_body(declared, body, served.max_body_bytes, body_timeout).await {
        Ok(bytes) => bytes,
        Err(refusal) if refusal.kind == ErrorKind::RequestTimeout => {
            // The rest of the body may still come: the connection cannot be reused.
            let mut response = refuse(&refusal);
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return Err(response);
        }
        Err(refusal) => return Err(refuse(&refusal)),
    };
    request::verify(&state.security, served.service, served.method, &headers, signature, &bytes)
        .map_err(|refusal| refuse(&refusal))?;
    // Nothing reads the request's headers after this (the signature covered their
    // text): emptied, their map, sized by hyper for this head, holds the reply's.
    let CallHeaders { call_id, attempt, deadline: time_left, user, activity, .. } = headers;
    let mut reply_headers = std::mem::take(&mut parts.headers);
    reply_headers.clear();
    let activity = activity.unwrap_or_default();
    if let Some(call_id) = call_id {
        span.record("call_id", tracing::field::display(call_id));
    }
    span.record("activity_id", tracing::field::display(&activity));
    span.record("attempt", attempt);
    #[cfg(feature = "otel")]
    if let Some(trace) = &trace {
        crate::otel::continue_trace(&span, trace);
    }
    if time_left.is_some_and(|left| left.is_zero()) {
        let message =
            format!("{}.{} arrived after its caller's deadline; it did not run", served.service, served.method);
        return Err(reply::respond_in(reply_headers, framework_error(ErrorKind::DeadlineExceeded, &message, None)));
    }
    // A call id: the store may answer (a replay, a wait, a mismatch) before anything
    // is decoded.
    let dedup = match call_id {
        None => None,
        Some(call_id) => {
            let key = CallKey::new(call_id, served.service, served.method, user.clone());
            let fingerprint = fingerprint(&bytes);
            let early = dedup::before_decoding(served, &state.store, &key, fingerprint, time_left);
            match dedup::store_guarded(served, early).instrument(span.clone()).await {
                Ok(Ok(claimed)) => Some((key, fingerprint, claimed)),
                Ok(Err(reply)) | Err(reply) => return Err(reply::respond_in(reply_headers, reply)),
            }
        }
    };
    let args = match args::decode::<A>(&bytes) {
        Ok(args) => args,
        Err(refusal) => {
            let reply = refusal.encode();
            // The call did not run: a claim made above is released before the reply,
            // so that a retry of the same request meets the same 400, not a 409.
            if let Some((_, _, Some(claim))) = dedup {
                // Boxed: a rare path, kept out of every request's future.
                if let Err(panicked) = Box::pin(dedup::store_guarded(served, claim.finish(&reply))).await {
                    return Err(reply::respond_in(reply_headers, panicked));
                }
            }
            return Err(reply::respond_in(reply_headers, reply));
        }
    };
    // `checked_add`: a huge `x-deadline-ms` is no deadline, not an overflow.
    let deadline = time_left.and_then(|left| arrived.checked_add(left));
    let context = CallContext { user, activity: Some(activity), deadline, trace };
    Ok(Admitted { args, context, span, deadline: time_left, dedup, reply_headers })
}

async fn handle<S, A, T, E, F, Fut>(
    served: ServedMethod,
    state: ServiceState<S>,
    call: F,
    request: Request,
    span: Span,
    in_flight: InFlight,
) -> Response
where
    A: DeserializeOwned,
    T: Serialize + 'static,
    E: Serialize + 'static,
    F: FnOnce(Arc<S>, A) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let Admitted { args, context, span, deadline, dedup, reply_headers } =
        match admit(served, &state, request, span).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
    // The implementation, and every proxy call it makes, runs inside the request's
    // context: same user, same activity, the caller's deadline.
    // The run holds the call's place under `max_in_flight` until it ends, also when it
    // goes on detached after its client left.
    let future = in_flight.during(context.scope(call(state.implementation, args)));
    let reply = match dedup {
        // A plain HTTP client: store nothing, but, as with a call id, a run that has
        // started ends (a client that disconnects does not cut it halfway).
        None => detach::Detachable::new(reply::run(served, future).instrument(span)).await,
        Some((key, fingerprint, claimed)) => {
            let future = future.instrument(span.clone());
            dedup::run_once(served, state.store, key, fingerprint, deadline, claimed, future).instrument(span).await
        }
    };
    reply::respond_in(reply_headers, reply)
}

/// One warning per process: without a secret, context headers are trusted as sent.
fn warn_unsigned_once() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "intercall servers accept calls without signatures: x-user-type/x-user-id are trusted as sent. \
             Fine on a closed network; otherwise set a shared secret (see docs/SECURITY.md)"
        );
    });
}

fn method_not_allowed(served: ServedMethod, method: &Method) -> Response {
    let message = format!("{method} is not allowed; call `POST {}`", path::route(served.service, served.method));
    let mut response = respond(framework_error(ErrorKind::MethodNotAllowed, &message, None));
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

fn unknown_method(service: &str, methods: &[&str], path: &str) -> Response {
    let after_service = path.strip_prefix('/').and_then(|p| p.strip_prefix(service)).unwrap_or("");
    let method = after_service.strip_prefix('/').unwrap_or(after_service);
    let methods = methods.join(", ");
    let message = match method {
        "" => format!("service `{service}` needs a method name: `POST /{service}/{{method}}`, one of: {methods}"),
        method => format!("service `{service}` has no method `{}`; its methods are: {methods}", truncate(method)),
    };
    respond(framework_error(ErrorKind::UnknownMethod, &message, None))
}

/// The fallback for paths no service claims. [`serve`](crate::serve) installs it; add
/// it yourself with `router.fallback(intercall::unknown_service)` when you serve the
/// router another way.
pub async fn unknown_service(request: Request) -> Response {
    let path = request.uri().path();
    // Not `trim_start_matches`: `//Catalog/get` names the empty service, not `Catalog`.
    let service = path.strip_prefix('/').unwrap_or(path).split('/').next().unwrap_or("");
    let message = format!(
        "no service `{}` on this node (path `{}`); intercall paths are `POST /{{service}}/{{method}}`",
        truncate(service),
        truncate(path)
    );
    respond(framework_error(ErrorKind::UnknownService, &message, None))
}

#[cfg(test)]
mod tests {
    use super::host_and_port;

    #[test]
    fn the_server_address_is_read_from_the_authority_the_client_used() {
        assert_eq!(host_and_port("shop.internal:7302"), Some(("shop.internal", Some(7302))));
        assert_eq!(host_and_port("shop.internal"), Some(("shop.internal", None)));
        assert_eq!(host_and_port("127.0.0.1:80"), Some(("127.0.0.1", Some(80))));
        assert_eq!(host_and_port("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(host_and_port("[::1]"), Some(("::1", None)));
        // Not an authority: no address rather than a wrong one.
        for bad in ["", ":80", "host:port", "host:99999", "[::1", "[::1]x", "user@host", "a:1:2"] {
            assert_eq!(host_and_port(bad), None, "{bad:?}");
        }
    }
}
