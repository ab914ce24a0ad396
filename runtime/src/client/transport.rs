//! The HTTP client every proxy of a node shares: hyper's pooled client, no more.
//!
//! Not reqwest: the benchmarks (docs/BENCHMARKS.md) measured reqwest's layers (its own
//! request and response types, URL parsing per request, redirect and proxy machinery)
//! at about a third of a small call's client-side cost, and intercall uses none of
//! them: it never follows redirects, never goes through a proxy, and sets its own
//! timeouts. hyper is the client reqwest itself is built on.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connection::{Answered, Tracking};
use crate::body::{BodyError, read_limited};

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<Tracking<HttpConnector>>;
#[cfg(not(feature = "tls"))]
type Connector = Tracking<HttpConnector>;

/// A pooled HTTP/1.1 client; cloning shares the pool.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<Connector, Full<Bytes>>,
}

/// A reply as received, its body read whole within the size limit.
pub(crate) struct ReceivedReply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why an exchange failed before a whole reply arrived.
pub(crate) enum Failure {
    /// No connection, or it broke before or while the reply came: a retry may help.
    Transport(String),
    /// The reply's body is larger than the limit (`size` says how large, as known).
    TooLarge { status: StatusCode, size: String },
}

impl Transport {
    pub(crate) fn new() -> Self {
        let mut http = HttpConnector::new();
        // Small request/response exchanges: Nagle's algorithm would only delay them.
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        #[cfg(feature = "tls")]
        let connector = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(Tracking(http))
        };
        #[cfg(not(feature = "tls"))]
        let connector = Tracking(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self { client }
    }

    /// POSTs `body` to `uri` with `headers()`, and reads the reply: at most `limit` bytes
    /// of body, refused (not buffered) when it declares or streams more.
    pub(crate) async fn post(
        &self,
        uri: &Uri,
        headers: impl Fn() -> HeaderMap,
        body: &Bytes,
        limit: u64,
    ) -> Result<ReceivedReply, Failure> {
        let request = || {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = hyper::http::Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers();
            request
        };
        let response = match self.client.request(request()).await {
            // A pooled connection the server closed while it sat idle (its keep-alive
            // timeout, a restart) takes the request and closes without a reply: on a
            // connection that has answered before, that is a stale connection, not a
            // failed server. It is resent once, on a new connection, whether or not
            // retries are on (see `connection`); with the same call id and body it
            // cannot run twice on a server with a call-id store.
            Err(e) if closed_before_reply(&e) && Answered::before(e.connect_info()) => {
                self.client.request(request()).await
            }
            sent => sent,
        };
        let response: Response<_> = response.map_err(|e| Failure::Transport(chain(&e)))?;
        Answered::mark(response.extensions());
        let (parts, body) = response.into_parts();
        match read_limited(&parts.headers, body, limit).await {
            Ok(body) => Ok(ReceivedReply { status: parts.status, headers: parts.headers, body }),
            Err(BodyError::TooLarge { declared }) => {
                let size = declared.map_or_else(|| format!("more than {limit}"), |n| n.to_string());
                Err(Failure::TooLarge { status: parts.status, size })
            }
            Err(BodyError::Read(e)) => Err(Failure::Transport(chain(&*e))),
        }
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
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
