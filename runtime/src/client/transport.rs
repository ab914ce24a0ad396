//! intercall's own transport: hyper-util's pooled client, no more, as a tower service
//! that layers can wrap and that [`InvokerBuilder::transport`](super::InvokerBuilder::transport)
//! can replace.
//!
//! Not reqwest by default: the benchmarks (docs/BENCHMARKS.md) measured reqwest's layers
//! (its own request and response types, URL parsing per request, redirect and proxy
//! machinery) at about a third of a small call's client-side cost, and intercall uses
//! none of them: it never follows redirects, never goes through a proxy, and sets its
//! own timeouts. hyper is the client reqwest itself is built on; a user who needs
//! reqwest's proxies or middleware plugs their own client in (feature `reqwest`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::Response;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connection::{Answered, Tracking};
use super::http::{BoxError, HttpRequest, HttpResponse, RequestBody, box_body};

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<Tracking<HttpConnector>>;
#[cfg(not(feature = "tls"))]
type Connector = Tracking<HttpConnector>;

/// How the built-in transport of a service connects: what `services.toml` says about
/// connections rather than calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnectionSettings {
    /// HTTP/2: prior knowledge over `http://`, offered by ALPN over `https://`.
    pub(crate) http2: bool,
    /// How long an idle pooled connection is kept.
    pub(crate) pool_idle_timeout: Duration,
    /// How many idle connections per host the pool keeps.
    pub(crate) pool_max_idle_per_host: usize,
    /// Roots and a client certificate (feature `tls`).
    pub(crate) tls: super::tls::TlsSettings,
}

/// The pool's idle timeout unless configured.
///
/// Below the 30 s after which an intercall server closes an idle HTTP/1.1 connection
/// (its header-read timeout covers the wait for the next request), so that the client
/// closes first and a request never meets a connection the server is closing.
pub(crate) const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            http2: false,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: usize::MAX,
            tls: super::tls::TlsSettings::default(),
        }
    }
}

/// intercall's built-in transport: hyper-util's pooled client over HTTP/1.1 (or
/// HTTP/2, per service), with TLS under the `tls` feature. Cloning shares the pool.
///
/// It is what carries calls unless [`InvokerBuilder::transport`](super::InvokerBuilder::transport)
/// gives another; a layer can wrap it like any tower service.
#[derive(Clone)]
pub struct HyperTransport {
    client: std::sync::Arc<Client<Connector, RequestBody>>,
}

impl std::fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperTransport").finish_non_exhaustive()
    }
}

impl Default for HyperTransport {
    fn default() -> Self {
        Self::with_settings(&ConnectionSettings::default()).expect("the default settings name no files")
    }
}

impl HyperTransport {
    /// The transport with the default settings: HTTP/1.1, a pool whose idle
    /// connections live 20 s, and (feature `tls`) the platform's roots.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_settings(settings: &ConnectionSettings) -> Result<Self, crate::Error> {
        let mut http = HttpConnector::new();
        // Small request/response exchanges: Nagle's algorithm would only delay them.
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        // The TLS connector above it takes `https://` URIs to this connector too.
        #[cfg(feature = "tls")]
        http.enforce_http(false);
        #[cfg(feature = "tls")]
        let connector = super::tls::connector(&settings.tls, settings.http2, Tracking(http))?;
        #[cfg(not(feature = "tls"))]
        let connector = Tracking(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            // h2 by prior knowledge over plain HTTP, and the only protocol ALPN offers
            // over TLS: a service configured for h2 speaks h2.
            .http2_only(settings.http2)
            .build(connector);
        Ok(Self { client: std::sync::Arc::new(client) })
    }

    /// Sends `request` and returns the reply's head; the body is read by the caller.
    /// `again` rebuilds the request if it must be resent.
    pub(crate) async fn send(
        &self,
        request: HttpRequest,
        again: impl FnOnce() -> HttpRequest,
    ) -> Result<Response<Incoming>, BoxError> {
        // A pooled connection the server closed while it sat idle (its keep-alive
        // timeout, a restart) takes the request and closes without a reply: on a
        // connection that has answered before, that is a stale connection, not a failed
        // server. It is resent once, on a new connection, whether or not retries are on
        // (see `connection`); with the same call id and body it cannot run twice on a
        // server with a call-id store.
        let response = match self.client.request(request).await {
            Err(e) if closed_before_reply(&e) && Answered::before(e.connect_info()) => {
                self.client.request(again()).await
            }
            sent => sent,
        };
        let response = response.map_err(|e| chain(&e))?;
        Answered::mark(response.extensions());
        Ok(response)
    }
}

/// The same request again (http's requests are not `Clone`; the body is shared bytes).
/// Its extensions are not copied: they are for the layers above, which have run, and
/// hyper reads none.
fn resend_copy(request: &HttpRequest) -> HttpRequest {
    let mut copy = HttpRequest::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

impl tower_service::Service<HttpRequest> for HyperTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let this = self.clone();
        // Under layers the request arrives built: a copy is kept for a resend.
        let again = resend_copy(&request);
        Box::pin(async move { Ok(this.send(request, || again).await?.map(box_body)) })
    }
}

/// Whether the connection closed before any reply arrived ("connection closed before
/// message completed").
fn closed_before_reply(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_incomplete_message) {
            return true;
        }
        source = error.source();
    }
    false
}

/// An error with its causes: hyper's outermost message ("client error (Connect)") says
/// little; the cause (refused, reset) is further down the chain, and the reader needs it.
/// A TLS failure also says what it means and how to fix it.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> BoxError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    #[cfg(feature = "tls")]
    if let Some(hint) = super::tls::hint(error) {
        message.push_str(": ");
        message.push_str(hint);
        return Box::new(CertificateRejected(message));
    }
    message.into()
}

/// A TLS handshake that failed over a certificate (untrusted, or refused by the
/// server): another attempt would meet the same certificate, so none is made.
#[derive(Debug)]
pub(crate) struct CertificateRejected(pub(crate) String);

impl std::fmt::Display for CertificateRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CertificateRejected {}
