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
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
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
            Err(e) if stale(&e) => self.client.request(again()).await,
            sent => sent,
        };
        answered(response)
    }
}

/// Whether `error` is a stale pooled connection's: one that had answered before and
/// closed without a reply to this request, which is then resent once.
fn stale(error: &hyper_util::client::legacy::Error) -> bool {
    closed_before_reply(error) && Answered::before(error.connect_info())
}

/// The reply's head, its connection marked as one that answers; or the error with its
/// causes.
fn answered(
    response: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
) -> Result<Response<Incoming>, BoxError> {
    let response = response.map_err(|e| chain(&e))?;
    Answered::mark(response.extensions());
    Ok(response)
}

impl tower_service::Service<HttpRequest> for HyperTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        // Under layers the request arrives built: a copy is kept for a resend.
        let again = Resend::of(&request);
        let response = self.client.request(request);
        TransportFuture { state: State::First { response, again: Some((again, std::sync::Arc::clone(&self.client))) } }
    }
}

/// The reply of one request through [`HyperTransport`]: a named future, so that a
/// boxed client (`HttpClient`) boxes it once, not a box in a box.
#[must_use = "futures do nothing unless polled"]
pub struct TransportFuture {
    state: State,
}

enum State {
    /// The request's first sending, with what a resend needs.
    First { response: ResponseFuture, again: Option<(Resend, std::sync::Arc<Client<Connector, RequestBody>>)> },
    /// Resent once, on a new connection.
    Again(ResponseFuture),
}

impl std::fmt::Debug for TransportFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resent = matches!(self.state, State::Again(_));
        f.debug_struct("TransportFuture").field("resent", &resent).finish_non_exhaustive()
    }
}

impl Future for TransportFuture {
    type Output = Result<HttpResponse, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin` (hyper-util's future is a box).
        let this = &mut *self;
        loop {
            let sent = match &mut this.state {
                State::First { response, again } => match std::task::ready!(Pin::new(response).poll(cx)) {
                    // The same stale connection as in `send`: resent once.
                    Err(e) if stale(&e) && again.is_some() => {
                        let (copy, client) = again.take().expect("checked above");
                        this.state = State::Again(client.request(copy.request()));
                        continue;
                    }
                    sent => sent,
                },
                State::Again(response) => std::task::ready!(Pin::new(response).poll(cx)),
            };
            return Poll::Ready(answered(sent).map(|response| response.map(box_body)));
        }
    }
}

/// What a resend of a built request needs (http's requests are not `Clone`; the body is
/// shared bytes). The headers are kept as a list, one allocation where a cloned map
/// takes two, and rebuilt into the same map (same names, values and order) only when
/// the request is resent. Its extensions are not copied: they are for the layers
/// above, which have run, and hyper reads none.
struct Resend {
    method: hyper::http::Method,
    uri: hyper::http::Uri,
    version: hyper::http::Version,
    headers: Vec<(hyper::http::HeaderName, hyper::http::HeaderValue)>,
    body: RequestBody,
}

impl Resend {
    fn of(request: &HttpRequest) -> Self {
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
            body: request.body().clone(),
        }
    }

    /// The request again.
    fn request(self) -> HttpRequest {
        let mut request = HttpRequest::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        // In the order listed, each name's values in theirs: `append` rebuilds the map.
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        request
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
    if refused(error) {
        return Box::new(ConnectionRefused(message));
    }
    message.into()
}

/// Whether a cause of `error` is the endpoint refusing the connection: then nothing of
/// the request was sent (any transport: hyper's, reqwest's, or one under layers, as long
/// as it keeps the `io::Error` among the causes).
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A connection the endpoint refused: the call was not sent, so it ran nowhere, and its
/// first move to another endpoint takes nothing from the retry budget (RELIABILITY.md,
/// "Shed calls and the retry budget").
#[derive(Debug)]
pub(crate) struct ConnectionRefused(pub(crate) String);

impl std::fmt::Display for ConnectionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectionRefused {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tower_service::Service;

    /// One request as it arrived: its connection, its bytes, and whether it was
    /// swallowed (read, then the connection closed without a reply).
    type Seen = Arc<Mutex<Vec<(usize, Vec<u8>, bool)>>>;

    /// Reads one request (head and `content-length` body); `None` at the end.
    async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut received = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |n| n.trim().parse().unwrap());
                if received.len() >= end + 4 + length {
                    return Some(received);
                }
            }
            match stream.read(&mut chunk).await.unwrap() {
                0 => return None,
                n => received.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A server whose connections each answer one request, then swallow the next:
    /// what a pooled connection the server closed while idle does to a request.
    async fn one_reply_per_connection() -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/Svc/m", listener.local_addr().unwrap());
        let seen = Seen::default();
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            for connection in 0.. {
                let (mut stream, _) = listener.accept().await.unwrap();
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let Some(first) = read_request(&mut stream).await else { return };
                    record.lock().unwrap().push((connection, first, false));
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                    if let Some(second) = read_request(&mut stream).await {
                        record.lock().unwrap().push((connection, second, true));
                    }
                });
            }
        });
        (url, seen)
    }

    /// A layered request (one the transport gets built) that meets a stale pooled
    /// connection is resent once, on a new connection, byte for byte: repeated
    /// headers, their order and the body included. Without the resend, the call that
    /// met the swallowing connection fails.
    #[tokio::test]
    async fn a_built_request_swallowed_by_a_stale_connection_is_resent_the_same() {
        let (url, seen) = one_reply_per_connection().await;
        let mut transport = HyperTransport::new();
        let swallowed = || seen.lock().unwrap().iter().filter(|(.., swallowed)| *swallowed).count();
        // The pool hands an answered connection to a later call; when that is, is the
        // pool's business: calls go on until one met it (every call must succeed).
        for n in 0..50 {
            let mut request = HttpRequest::new(RequestBody::new(Bytes::from(format!("{{\"n\":{n}}}"))));
            *request.method_mut() = hyper::http::Method::POST;
            *request.uri_mut() = url.parse().unwrap();
            let headers = request.headers_mut();
            headers.append("x-a", "1".parse().unwrap());
            headers.append("x-b", format!("{n}").parse().unwrap());
            headers.append("x-a", "3".parse().unwrap());
            let response = transport.call(request).await.unwrap_or_else(|e| panic!("call {n} failed: {e}"));
            assert_eq!(response.status(), 200);
            assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
            if swallowed() > 0 {
                break;
            }
        }
        assert_eq!(swallowed(), 1, "no call met a stale connection in 50");
        let seen = seen.lock().unwrap();
        let at = seen.iter().position(|(.., swallowed)| *swallowed).unwrap();
        let (connection, request, _) = &seen[at];
        let resent = seen[at + 1..].iter().find(|(_, bytes, _)| bytes == request);
        let resent = resent.unwrap_or_else(|| panic!("not resent: {}", String::from_utf8_lossy(request)));
        assert_ne!(resent.0, *connection, "resent on a new connection");
        let text = String::from_utf8_lossy(request);
        assert!(text.contains("x-a: 1\r\nx-a: 3\r\n"), "{text}");
    }
}
