//! The server side: the axum routes a generated `XServer::into_router` builds, and the
//! request flow every method shares: checks (`request`), the call-id flow (`dedup`),
//! the run and the replies (`reply`).

mod dedup;
mod detach;
mod reply;
mod request;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::http::header::{ALLOW, HeaderValue};
use axum::response::Response;
use axum::routing::{any, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::calls::{CallKey, CallStore, MemoryCallStore, OnStoreError, fingerprint};
use crate::context::CallContext;
use crate::security::Security;
use crate::wire::ErrorKind;
use reply::truncate;
use request::{CallHeaders, Rejection};

/// The default limit on a request body: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The call-id store of servers that are not given one: one [`MemoryCallStore`] per
/// process, with its default capacity and time to live, shared by every service.
pub fn default_call_store() -> Arc<dyn CallStore> {
    static STORE: OnceLock<Arc<dyn CallStore>> = OnceLock::new();
    Arc::clone(STORE.get_or_init(|| Arc::new(MemoryCallStore::default())))
}

/// What a generated `XServer` has been told before `into_router`: its own body limit
/// and the node's [`ServerSettings`]. Generated builder methods call these setters, so
/// the fields can change without touching generated code.
#[doc(hidden)]
#[derive(Clone)]
pub struct ServerSetup {
    max_body_bytes: usize,
    settings: ServerSettings,
}

impl Default for ServerSetup {
    fn default() -> Self {
        Self { max_body_bytes: DEFAULT_MAX_BODY_BYTES, settings: ServerSettings::default() }
    }
}

impl ServerSetup {
    pub fn set_max_body_bytes(&mut self, limit: usize) {
        self.max_body_bytes = limit;
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
}

/// The settings a node's configuration gives its servers: how calls are verified and
/// where call ids are recorded. [`Invoker::server_settings`](crate::Invoker::server_settings)
/// reads them from `services.toml`; `XServer::settings(..)` applies them.
#[derive(Clone, Default)]
pub struct ServerSettings {
    /// How calls are verified (default: not at all).
    pub security: Security,
    /// Where calls with an `x-call-id` are recorded (default: the process-wide
    /// [`default_call_store`]).
    pub call_store: Option<Arc<dyn CallStore>>,
    /// What to do when the store fails (default: answer 503, run nothing).
    pub on_store_error: OnStoreError,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("security", &self.security)
            .field("call_store", &self.call_store.as_ref().map(|_| "custom"))
            .field("on_store_error", &self.on_store_error)
            .finish()
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
    router: Router,
}

/// Which method a request is for; shared by every request to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MethodInfo {
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
        let ServerSettings { security, call_store, on_store_error } = setup.settings;
        let store = call_store.unwrap_or_else(default_call_store);
        if !security.is_enabled() {
            warn_unsigned_once();
        }
        let security = Arc::new(security);
        let max_body_bytes = setup.max_body_bytes;
        let router = Router::new();
        Self { service, methods, implementation, max_body_bytes, store, on_store_error, security, router }
    }

    /// Adds `POST /{service}/{method}`, which decodes the arguments as `A` and runs
    /// `call`.
    pub fn method<A, T, E, F, Fut>(mut self, method: &'static str, call: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize + 'static,
        E: Serialize + 'static,
        F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let info = MethodInfo {
            service: self.service,
            method,
            max_body_bytes: self.max_body_bytes,
            on_store_error: self.on_store_error,
        };
        let shared = Shared {
            implementation: Arc::clone(&self.implementation),
            store: Arc::clone(&self.store),
            security: Arc::clone(&self.security),
        };
        let handler = move |request: Request| handle(info, shared.clone(), call.clone(), request);
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

/// What every request to one service shares.
struct Shared<S> {
    implementation: Arc<S>,
    store: Arc<dyn CallStore>,
    security: Arc<Security>,
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self {
            implementation: Arc::clone(&self.implementation),
            store: Arc::clone(&self.store),
            security: Arc::clone(&self.security),
        }
    }
}

async fn handle<S, A, T, E, F, Fut>(info: MethodInfo, shared: Shared<S>, call: F, request: Request) -> Response
where
    A: DeserializeOwned,
    T: Serialize + 'static,
    E: Serialize + 'static,
    F: FnOnce(Arc<S>, A) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let checked = async {
        request::check_content_type(&parts.headers)?;
        let call = CallHeaders::parse(&parts.headers)?;
        let bytes = request::read_body(&parts.headers, body, info.max_body_bytes).await?;
        call.verify(&shared.security, info.service, info.method, &parts.headers, &bytes)?;
        Ok::<_, Rejection>((call, bytes))
    };
    let (headers, bytes) = match checked.await {
        Ok(checked) => checked,
        Err(rejection) => return rejection.into_reply().into_response(),
    };
    let activity = headers.activity.unwrap_or_default();
    let span = tracing::info_span!(
        "intercall.serve",
        service = info.service,
        method = info.method,
        call_id = headers.call_id.map(tracing::field::display),
        activity_id = %activity,
        attempt = headers.attempt,
    );
    if headers.deadline.is_some_and(|left| left.is_zero()) {
        let message = format!("{}.{} arrived after its caller's deadline; it did not run", info.service, info.method);
        return reply::error(ErrorKind::DeadlineExceeded, &message, None).into_response();
    }
    // A call id: the store may answer (a replay, a wait, a mismatch) before anything
    // is decoded.
    let dedup = match headers.call_id {
        None => None,
        Some(call_id) => {
            let key = CallKey::new(call_id, info.service, info.method, headers.user.clone());
            let fingerprint = fingerprint(&bytes);
            let early = dedup::before_decoding(info, &shared.store, &key, fingerprint, headers.deadline);
            match dedup::store_guarded(info, early).instrument(span.clone()).await {
                Ok(Ok(claimed)) => Some((key, fingerprint, claimed)),
                Ok(Err(reply)) | Err(reply) => return reply.into_response(),
            }
        }
    };
    let args = match request::decode_args::<A>(&bytes) {
        Ok(args) => args,
        Err(rejection) => {
            let reply = rejection.into_reply();
            // The call did not run: a claim made above is released before the reply,
            // so that a retry of the same request meets the same 400, not a 409.
            if let Some((_, _, Some(claim))) = dedup {
                if let Err(panicked) = dedup::store_guarded(info, claim.finish(&reply)).await {
                    return panicked.into_response();
                }
            }
            return reply.into_response();
        }
    };
    // `checked_add`: a huge `x-deadline-ms` is no deadline, not an overflow.
    let deadline = headers.deadline.and_then(|left| arrived.checked_add(left));
    let context = CallContext { user: headers.user, activity: Some(activity), deadline };
    // The implementation, and every proxy call it makes, runs inside the request's
    // context: same user, same activity, the caller's deadline.
    let future = context.scope(call(shared.implementation, args));
    let reply = match dedup {
        // A plain HTTP client: run inline, store nothing.
        None => reply::run(info, future).instrument(span).await,
        Some((key, fingerprint, claimed)) => {
            let future = future.instrument(span.clone());
            dedup::run_once(info, shared.store, key, fingerprint, headers.deadline, claimed, future)
                .instrument(span)
                .await
        }
    };
    reply.into_response()
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

fn method_not_allowed(info: MethodInfo, method: &Method) -> Response {
    let message = format!("{method} is not allowed; call `POST /{}/{}`", info.service, info.method);
    let mut response = reply::error(ErrorKind::MethodNotAllowed, &message, None).into_response();
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
    reply::error(ErrorKind::UnknownMethod, &message, None).into_response()
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
    reply::error(ErrorKind::UnknownService, &message, None).into_response()
}
