//! Serving the manifest: each service's router answers `GET` on its own
//! [`service_path`], and `intercall::serve` adds the node's [`INDEX_PATH`], which asks
//! the node's own router for each service's manifest.
//!
//! Why the index asks the router: a node's router is several `XServer` routers merged
//! with `Router::merge`, which cannot hold two routes for one path, and an axum
//! `Router` cannot list its routes. So every service router registers its name here
//! (a process-wide set of names: a few bytes per service), and the index handler sends
//! the node's router one internal request per name; the services of other nodes in the
//! same process answer 404 there and are left out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceExt;

use super::{INDEX_PATH, Manifest, ServiceManifest, service_path};
use crate::protocol::reply::framework_error;
use crate::protocol::signing::{SignedFields, body_sha256};
use crate::protocol::{ErrorKind, headers};
use crate::security::Security;
use crate::server::respond;

/// The largest manifest the index reads back from a service's route.
const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;

/// The names of every service router built in this process that serves its manifest.
static SERVICES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The path a manifest request was signed for, when the index forwards it to a
/// service's route: the client signed the index's path, not the service's.
#[derive(Clone, Copy)]
struct SignedPath(&'static str);

/// Adds `GET {service_path(service)}` to a service's router, answering `manifest`
/// (`service` is the router's own name, which the generated code holds as a literal)
/// (verified with `security` when it has a secret).
pub(crate) fn register(
    router: Router,
    service: &'static str,
    manifest: ServiceManifest,
    security: Arc<Security>,
) -> Router {
    // Poisoning cannot leave a set of names half-written; keep serving.
    SERVICES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(service);
    let body = serde_json::to_vec(&Manifest::new(vec![manifest])).expect("a manifest is plain JSON data");
    let body = bytes::Bytes::from(body);
    let path = service_path(service);
    router.route(
        &path,
        get(move |request: Request| {
            let (body, security) = (body.clone(), Arc::clone(&security));
            async move {
                let signed = request.extensions().get::<SignedPath>().map_or(request.uri().path(), |path| path.0);
                if let Err(reason) = verify(&security, &request, signed) {
                    return respond(framework_error(ErrorKind::Unauthorized, &reason, None));
                }
                json(StatusCode::OK, body)
            }
        }),
    )
}

/// For a service that keeps its manifest to itself (`without_manifest`) on a node with
/// a secret: its manifest path still checks the signature before answering `404`, and
/// the index asks it too, so that an unsigned request for the index is refused (`401`)
/// like any manifest request (PROTOCOL.md §11), not answered with an empty list.
pub(crate) fn register_withheld(router: Router, service: &'static str, security: Arc<Security>) -> Router {
    SERVICES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(service);
    let path = service_path(service);
    router.route(
        &path,
        get(move |request: Request| {
            let security = Arc::clone(&security);
            async move {
                let signed = request.extensions().get::<SignedPath>().map_or(request.uri().path(), |path| path.0);
                if let Err(reason) = verify(&security, &request, signed) {
                    return respond(framework_error(ErrorKind::Unauthorized, &reason, None));
                }
                crate::server::unknown_service(request).await
            }
        }),
    )
}

/// Adds the node's index, [`INDEX_PATH`], to a node's whole router.
pub(crate) fn with_index(router: Router) -> Router {
    let node = router.clone();
    router.route(INDEX_PATH, get(move |request: Request| index(node.clone(), request)))
}

async fn index(node: Router, request: Request) -> Response {
    let names: Vec<&'static str> =
        SERVICES.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().copied().collect();
    let mut services = Vec::new();
    for name in names {
        let mut probe = Request::get(service_path(name)).body(Body::empty()).expect("a path of ASCII segments");
        *probe.headers_mut() = request.headers().clone();
        probe.extensions_mut().insert(SignedPath(INDEX_PATH));
        let Ok(response) = node.clone().oneshot(probe).await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return response,
            // Not a service of this node.
            _ => continue,
        }
        let Ok(bytes) = axum::body::to_bytes(response.into_body(), MAX_MANIFEST_BYTES).await else { continue };
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
            services.extend(manifest.services);
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let body = serde_json::to_vec(&Manifest::new(services)).expect("a manifest is plain JSON data");
    json(StatusCode::OK, body.into())
}

fn json(status: StatusCode, body: bytes::Bytes) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, headers::JSON)], body).into_response()
}

/// A manifest request is signed as a call is (PROTOCOL.md §6), with the request's path
/// without its leading `/` as the `{service}/{method}` line, an empty body, and the
/// call id, user and activity lines as sent (usually empty).
fn verify(security: &Security, request: &Request, path: &str) -> Result<(), String> {
    if !security.is_enabled() {
        return Ok(());
    }
    let (service, method) = manifest_request_line(path);
    let text = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    let empty = body_sha256(b"");
    let fields = SignedFields {
        service,
        method,
        call_id: text(headers::CALL_ID),
        user_type: text(headers::USER_TYPE),
        user_id: text(headers::USER_ID),
        activity: text(headers::ACTIVITY_ID),
        body_sha256: &empty,
    };
    let (timestamp, signature) = headers::signature_headers(request.headers());
    security.verify(&fields, timestamp, signature)
}

/// The `{service}` and `{method}` a manifest request at `path` is signed with (PROTOCOL.md
/// §11): `/.well-known/intercall/manifest` signs as service `.well-known`, method
/// `intercall/manifest`, so that the canonical string's second line is the path
/// without its leading `/`.
pub fn manifest_request_line(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}
