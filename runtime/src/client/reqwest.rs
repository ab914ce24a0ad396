//! [`ReqwestTransport`] (feature `reqwest`): a `reqwest::Client` of the user's own, with
//! its proxies, roots, DNS and middleware, as the transport of an invoker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;

use super::http::{BoxError, HttpRequest, HttpResponse, box_body};

/// Carries calls with a `reqwest::Client`:
/// `Invoker::builder().transport(ReqwestTransport::new(client))`.
///
/// reqwest follows redirects by default; a redirected POST may not reach the same
/// method, so build the client with `redirect(reqwest::redirect::Policy::none())`.
/// intercall sets the timeouts itself; a reqwest timeout shorter than a call's is
/// reported as a failed connection.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
/// let invoker = intercall::Invoker::builder()
///     .service("Catalog", "http://127.0.0.1:8081/")
///     .transport(intercall::client::ReqwestTransport::new(client))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Carries calls with `client` (which shares its pool with its clones).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl tower_service::Service<HttpRequest> for ReqwestTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // A `Full` body is one chunk, there at once.
            let body =
                body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_else(|never| match never {});
            let request = reqwest::Request::try_from(hyper::http::Request::from_parts(parts, body))?;
            let response = client.execute(request).await?;
            Ok(hyper::http::Response::from(response).map(box_body))
        })
    }
}
