//! What carries a service's attempts: the built-in transport alone, or the user's
//! layers around signing around a transport.
//!
//! Order, outermost first: the invoker's layers (in the order given), the service's own
//! layers, signing, the transport. Signing comes after every layer, so a layer may add
//! headers (a bearer token) or delay a call (a rate limit) and the signature still
//! covers exactly what the protocol signs, at the time the request leaves.

use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::http::HeaderMap;
use tower_service::Service;

use super::http::{BoxError, CallInfo, HttpClient, HttpRequest};
use super::transport::HyperTransport;
use crate::protocol::headers::names;
use crate::protocol::signing::SignedFields;
use crate::security::Security;

/// One client layer, boxed: turns the client below it into the client above.
pub(crate) type BoxLayer = Arc<dyn Fn(HttpClient) -> HttpClient + Send + Sync>;

/// What carries one service's attempts.
#[derive(Clone)]
pub(crate) enum Carrier {
    /// The built-in transport and nothing else: no boxing, no extensions, signing done
    /// by the caller. What a node without layers or a transport of its own pays.
    Direct(HyperTransport),
    /// Layers (or a transport of the user's), with signing inside them.
    Layered(HttpClient),
}

impl Carrier {
    /// The carrier of a service: `layers` outermost first, over signing, over `transport`.
    pub(crate) fn new(transport: Transport, layers: &[BoxLayer], security: &Security) -> Self {
        let inner = match transport {
            Transport::Builtin(transport) if layers.is_empty() => return Carrier::Direct(transport),
            Transport::Builtin(transport) => HttpClient::new(transport),
            Transport::Custom(client) => client,
        };
        let signed = match security.is_enabled() {
            true => HttpClient::new(Signer { inner, security: security.clone() }),
            false => inner,
        };
        Carrier::Layered(layers.iter().rev().fold(signed, |client, layer| layer(client)))
    }
}

/// The transport under the layers.
#[derive(Clone)]
pub(crate) enum Transport {
    Builtin(HyperTransport),
    Custom(HttpClient),
}

/// The lowercase hex SHA-256 of a signed call's body, computed once per call and
/// carried to the signer in the request's extensions.
#[derive(Clone)]
pub(crate) struct BodyDigest(pub(crate) Arc<str>);

/// Signs each request as it leaves the layers.
#[derive(Clone)]
struct Signer {
    inner: HttpClient,
    security: Security,
}

impl Service<HttpRequest> for Signer {
    type Response = <HttpClient as Service<HttpRequest>>::Response;
    type Error = BoxError;
    type Future = <HttpClient as Service<HttpRequest>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        let extensions = request.extensions();
        if let (Some(info), Some(digest)) = (extensions.get::<CallInfo>(), extensions.get::<BodyDigest>()) {
            let (service, method, digest) = (info.service, info.method, Arc::clone(&digest.0));
            sign(&self.security, request.headers_mut(), service, method, &digest);
        }
        self.inner.call(request)
    }
}

/// Adds the signature headers for the call `headers` describe: the protocol's signed
/// fields are read from the headers as they are now, so what is signed is what is sent.
pub(crate) fn sign(security: &Security, headers: &mut HeaderMap, service: &str, method: &str, body_sha256: &str) {
    let text = |name| headers.get(name).and_then(|v: &hyper::http::HeaderValue| std::str::from_utf8(v.as_bytes()).ok());
    let signed = security.sign(&SignedFields {
        service,
        method,
        call_id: text(&names::CALL_ID),
        user_type: text(&names::USER_TYPE),
        user_id: text(&names::USER_ID),
        activity: text(&names::ACTIVITY_ID),
        body_sha256,
    });
    if let Some((timestamp, signature)) = signed {
        crate::protocol::headers::write_signature(headers, timestamp, &signature);
    }
}
