//! The test harness: real servers on loopback sockets, real clients.
//!
//! Every server binds `127.0.0.1:0` and stops when its [`TestServer`] is dropped.

pub mod faults;
pub mod ledger;
pub mod orders;
pub mod redis_server;
pub mod tally;

use std::net::SocketAddr;
use std::time::Duration;

use intercall::{Invoker, Router};
use tokio::sync::oneshot;

/// A server running on a free loopback port until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// `http://127.0.0.1:port/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `http://127.0.0.1:port/{path}` for raw requests.
    pub fn at(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Serves `router` the way a node does (`intercall::serve_with_shutdown`).
pub async fn spawn(router: Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.await;
        };
        intercall::serve_with_shutdown(listener, router, stop).await.expect("serve");
    });
    TestServer { addr, shutdown: Some(shutdown) }
}

/// Serves `router` with `options` (`intercall::serve_with_graceful_shutdown`).
pub async fn spawn_with(router: Router, options: intercall::ServeOptions) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.await;
        };
        intercall::serve_with_graceful_shutdown(listener, router, options, stop).await.expect("serve");
    });
    TestServer { addr, shutdown: Some(shutdown) }
}

/// An invoker that knows one service at `url`.
pub fn invoker(service: &str, url: &str) -> Invoker {
    Invoker::builder().service(service, url).build().expect("a valid test config")
}

/// An invoker for one service with a short timeout, for tests that expect one.
pub fn invoker_with_timeout(service: &str, url: &str, timeout: Duration) -> Invoker {
    Invoker::builder().service(service, url).service_timeout(service, timeout).build().expect("a valid test config")
}

/// A loopback URL on which nothing listens: bound, then released.
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/")
}

/// A reply as a raw HTTP client sees it.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
}

/// POSTs `body` with `content_type` (none when `None`) using a plain reqwest client.
pub async fn post_raw(url: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> RawReply {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    into_raw(request.send().await.expect("the server answers")).await
}

/// Sends any method with a JSON body.
pub async fn request_raw(method: reqwest::Method, url: &str) -> RawReply {
    let request = reqwest::Client::new().request(method, url).header("content-type", "application/json").body("{}");
    into_raw(request.send().await.expect("the server answers")).await
}

async fn into_raw(response: reqwest::Response) -> RawReply {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.expect("a complete body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    RawReply { status, content_type, body }
}
