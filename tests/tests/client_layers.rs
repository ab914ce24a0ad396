//! The open client end to end: tower layers around each attempt, a transport of the
//! user's own (a tower service, or reqwest), and per-call options, over real loopback
//! sockets, observed where the server receives the requests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{Next, from_fn};
use axum::response::IntoResponse;
use intercall::client::{BoxError, CallInfo, HttpClient, HttpRequest, HyperTransport, ReqwestTransport};
use intercall::{CallError, CallOptions, Invoker, Security, UserContext};
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower::layer::layer_fn;
use tower::util::MapRequestLayer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EchoError {
    Empty,
    Unavailable(CallError),
}

impl From<CallError> for EchoError {
    fn from(error: CallError) -> Self {
        EchoError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Echo {
    /// The text back; `Empty` for an empty one.
    async fn echo(&self, text: String) -> Result<String, EchoError>;
    /// The user id the server saw.
    async fn whoami(&self) -> Result<Option<String>, EchoError>;
    /// The milliseconds left of the deadline the request carried.
    async fn remaining_ms(&self) -> Result<Option<u64>, EchoError>;
}

struct Echoes;

impl Echo for Echoes {
    async fn echo(&self, text: String) -> Result<String, EchoError> {
        if text.is_empty() { Err(EchoError::Empty) } else { Ok(text) }
    }

    async fn whoami(&self) -> Result<Option<String>, EchoError> {
        Ok(UserContext::current().and_then(|user| user.user_id().map(str::to_owned)))
    }

    async fn remaining_ms(&self) -> Result<Option<u64>, EchoError> {
        Ok(intercall::CallContext::current().remaining().map(|left| left.as_millis() as u64))
    }
}

/// What the server received: the headers of every request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<HeaderMap>>>);

impl Received {
    fn all(&self) -> Vec<HeaderMap> {
        self.0.lock().unwrap().clone()
    }
}

/// A server that records every request's headers, answers `401` without
/// `authorization: Bearer t` when `auth` is set, `503` to a request carrying
/// `x-fail: 1`, and `503` to the first `fail_first` requests.
async fn server(security: Security, auth: bool, fail_first: u32) -> (TestServer, Received) {
    let received = Received::default();
    let seen = received.clone();
    let failures = Arc::new(AtomicU32::new(fail_first));
    let router =
        EchoServer::new(Echoes).security(security).into_router().layer(from_fn(move |request: Request, next: Next| {
            let (seen, failures) = (seen.clone(), Arc::clone(&failures));
            async move {
                seen.0.lock().unwrap().push(request.headers().clone());
                let headers = request.headers();
                if auth && headers.get("authorization").is_none_or(|v| v != "Bearer t") {
                    return (StatusCode::UNAUTHORIZED, "missing bearer token").into_response();
                }
                let first = failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if first || headers.get("x-fail").is_some_and(|v| v == "1") {
                    return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
                }
                next.run(request).await
            }
        }));
    (spawn(router).await, received)
}

fn unavailable(result: Result<impl std::fmt::Debug, EchoError>) -> CallError {
    match result {
        Err(EchoError::Unavailable(error)) => error,
        other => panic!("expected a CallError, got {other:?}"),
    }
}

fn auth_layer() -> MapRequestLayer<impl Fn(HttpRequest) -> HttpRequest + Clone> {
    MapRequestLayer::new(|mut request: HttpRequest| {
        request.headers_mut().insert("authorization", "Bearer t".parse().unwrap());
        request
    })
}

#[tokio::test]
async fn a_layer_adds_the_auth_header_a_gateway_requires() {
    let (server, received) = server(Security::none(), true, 0).await;
    let bare = EchoProxy::new(Invoker::builder().service("Echo", server.url()).build().unwrap()).unwrap();
    let error = unavailable(bare.echo("hi".into()).await);
    assert!(error.is_status(), "{error}");
    assert_eq!(error.status_code(), Some(401), "{error}");

    let invoker = Invoker::builder().service("Echo", server.url()).layer(auth_layer()).build().unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    assert_eq!(proxy.echo("hi".into()).await, Ok("hi".to_owned()));
    assert_eq!(proxy.echo(String::new()).await, Err(EchoError::Empty), "typed errors pass through layers");
    assert_eq!(received.all().last().unwrap()["authorization"], "Bearer t");
}

/// A layer that records the [`CallInfo`] of every request it passes on.
fn recording(log: Arc<Mutex<Vec<CallInfo>>>) -> impl tower::Layer<HttpClient, Service = HttpClient> + Clone {
    layer_fn(move |inner: HttpClient| {
        let log = Arc::clone(&log);
        HttpClient::new(tower::service_fn(move |request: HttpRequest| {
            log.lock().unwrap().push(request.extensions().get::<CallInfo>().expect("a CallInfo").clone());
            inner.clone().oneshot(request)
        }))
    })
}

#[tokio::test]
async fn layers_see_each_attempt_with_the_calls_info() {
    let (server, received) = server(Security::none(), false, 1).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let invoker = Invoker::builder()
        .service("Echo", server.url())
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .layer(recording(Arc::clone(&log)))
        .build()
        .unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    assert_eq!(proxy.echo("again".into()).await, Ok("again".to_owned()));
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "the 503 was retried once: {log:?}");
    let sent_id = received.all()[0]["x-call-id"].to_str().unwrap().to_owned();
    for (info, attempt) in log.iter().zip(1..) {
        assert_eq!((info.service(), info.method(), info.attempt()), ("Echo", "echo", attempt));
        assert_eq!(info.call_id(), sent_id, "every attempt carries the call id that was sent");
    }
}

#[tokio::test]
async fn a_layer_refuses_a_call_with_a_call_error_of_its_own() {
    let (server, received) = server(Security::none(), false, 0).await;
    let refusal = CallError::new_status("Echo", "echo", 429).with_message("client-side rate limit");
    let given = refusal.clone();
    let refuse = layer_fn(move |_: HttpClient| {
        let given = given.clone();
        HttpClient::new(tower::service_fn(move |_: HttpRequest| {
            let given = given.clone();
            async move { Err::<intercall::client::HttpResponse, BoxError>(Box::new(given)) }
        }))
    });
    let invoker = Invoker::builder().service("Echo", server.url()).layer(refuse).build().unwrap();
    let error = unavailable(EchoProxy::new(invoker).unwrap().echo("hi".into()).await);
    assert_eq!(error, refusal, "the caller gets the layer's error as it is");
    assert_eq!(error.attempts(), 1, "a refusal is not retried");
    assert!(received.all().is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn invoker_layers_wrap_service_layers_and_other_services_layers_stay_out() {
    let (server, _) = server(Security::none(), false, 0).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mark = |name: &'static str| {
        let order = Arc::clone(&order);
        MapRequestLayer::new(move |request: HttpRequest| {
            order.lock().unwrap().push(name);
            request
        })
    };
    let invoker = Invoker::builder()
        .service("Echo", server.url())
        .service("Other", server.url())
        .layer(mark("outer"))
        .layer(mark("second"))
        .service_layer("Echo", mark("echo's own"))
        .service_layer("Other", mark("other's own"))
        .build()
        .unwrap();
    EchoProxy::new(invoker).unwrap().echo("hi".into()).await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["outer", "second", "echo's own"]);
}

#[tokio::test]
async fn calls_are_signed_after_the_layers() {
    let secret = Security::shared_secret("layers-and-signing-0123456789").unwrap();
    let (server, received) = server(secret.clone(), false, 0).await;
    // A gateway-style layer that sets the user: the signature must cover what it set.
    let as_gateway = MapRequestLayer::new(|mut request: HttpRequest| {
        request.headers_mut().insert("x-user-type", "integration".parse().unwrap());
        request.headers_mut().insert("x-user-id", "gateway".parse().unwrap());
        request.headers_mut().insert("x-unsigned-extra", "yes".parse().unwrap());
        request
    });
    let invoker = Invoker::builder().service("Echo", server.url()).security(secret).layer(as_gateway).build().unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    assert_eq!(proxy.whoami().await, Ok(Some("gateway".to_owned())), "the server verified the layer's user");
    let headers = received.all().pop().unwrap();
    assert!(headers.contains_key("x-intercall-signature"));
    assert_eq!(headers["x-unsigned-extra"], "yes");
}

#[tokio::test]
async fn a_transport_of_your_own_carries_the_calls() {
    let (server, _) = server(Security::none(), false, 0).await;
    let carried = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&carried);
    let hyper = HyperTransport::new();
    let transport = tower::service_fn(move |request: HttpRequest| {
        count.fetch_add(1, Ordering::SeqCst);
        hyper.clone().oneshot(request)
    });
    let invoker = Invoker::builder().service("Echo", server.url()).transport(transport).build().unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    assert_eq!(proxy.echo("mine".into()).await, Ok("mine".to_owned()));
    assert_eq!(proxy.echo(String::new()).await, Err(EchoError::Empty));
    assert_eq!(carried.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_keys_are_refused_beside_a_transport_of_your_own() {
    let error = Invoker::builder()
        .service("Echo", "http://127.0.0.1:1/")
        .service_http2("Echo", true)
        .transport(HyperTransport::new())
        .build()
        .unwrap_err();
    assert!(error.is_config());
    let message = error.to_string();
    assert!(message.contains("`services.Echo.http2`") && message.contains("transport of its own"), "{message}");
}

#[tokio::test]
async fn reqwest_carries_calls_results_and_typed_errors() {
    let (server, received) = server(Security::none(), true, 0).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let invoker = Invoker::builder()
        .service("Echo", server.url())
        .transport(ReqwestTransport::new(client))
        .layer(auth_layer())
        .build()
        .unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    assert_eq!(proxy.echo("via reqwest".into()).await, Ok("via reqwest".to_owned()));
    assert_eq!(proxy.echo(String::new()).await, Err(EchoError::Empty));
    assert_eq!(received.all().len(), 2);

    let dead = intercall_tests::dead_url().await;
    let client = reqwest::Client::new();
    let invoker = Invoker::builder().service("Echo", dead).tries(1).transport(ReqwestTransport::new(client)).build();
    let error = unavailable(EchoProxy::new(invoker.unwrap()).unwrap().echo("x".into()).await);
    assert!(error.is_connect(), "{error}");
}

#[tokio::test]
async fn call_options_set_the_timeout_beyond_the_configured_one_and_add_headers() {
    let (server, received) = server(Security::none(), false, 0).await;
    let invoker = Invoker::builder().service("Echo", server.url()).timeout(Duration::from_millis(400)).build();
    let proxy = EchoProxy::new(invoker.unwrap()).unwrap();
    let configured = proxy.remaining_ms().await.unwrap().expect("a deadline");
    assert!(configured <= 400, "{configured}");

    let options = CallOptions::new().timeout(Duration::from_secs(60)).header("x-priority", "low").unwrap();
    let longer = options.clone().scope(proxy.remaining_ms()).await.unwrap().expect("a deadline");
    assert!(longer > 30_000, "the server was told the longer timeout: {longer} ms");
    assert_eq!(received.all().last().unwrap()["x-priority"], "low");

    // A deadline still bounds a longer timeout.
    let bounded = intercall::with_deadline(Duration::from_millis(300), options.scope(proxy.remaining_ms())).await;
    assert!(bounded.unwrap().unwrap() <= 300);
    // Outside the scope, nothing is left of it.
    proxy.echo("after".into()).await.unwrap();
    assert!(received.all().last().unwrap().get("x-priority").is_none());
}

#[tokio::test]
async fn call_options_set_the_tries() {
    let (server, received) = server(Security::none(), false, 0).await;
    let invoker = Invoker::builder()
        .service("Echo", server.url())
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let proxy = EchoProxy::new(invoker).unwrap();
    let failing = CallOptions::new().header("x-fail", "1").unwrap();
    let error = unavailable(failing.clone().scope(proxy.echo("x".into())).await);
    assert_eq!((error.attempts(), received.all().len()), (3, 3), "the configured tries: {error}");
    let error = unavailable(failing.tries(1).scope(proxy.echo("x".into())).await);
    assert_eq!((error.attempts(), received.all().len()), (1, 4), "one try: {error}");
}

#[test]
fn connection_keys_are_validated_like_the_rest() {
    let text = "[services.Echo]\nurl = \"http://127.0.0.1:1/\"\npool_idle_timeout_ms = 0\n";
    let message = Invoker::from_toml(text).unwrap_err().to_string();
    assert!(message.contains("at line 3"), "{message}");
    assert!(message.contains("`services.Echo.pool_idle_timeout_ms` is 0; write a positive number"), "{message}");

    let text = "[defaults]\nhttp2 = \"yes\"\n[services.Echo]\nurl = \"http://127.0.0.1:1/\"\n";
    let message = Invoker::from_toml(text).unwrap_err().to_string();
    assert!(message.contains("at line 2") && message.contains("`defaults.http2`"), "{message}");

    let error = Invoker::builder().service("Echo", "http://127.0.0.1:1/").pool_max_idle_per_host(0).build();
    let message = error.unwrap_err().to_string();
    assert!(message.contains("`defaults.pool_max_idle_per_host` is 0"), "{message}");

    let text = "[defaults]\nhttp2 = true\npool_idle_timeout_ms = 1000\npool_max_idle_per_host = 4\n[services.Echo]\nurl = \"http://127.0.0.1:1/\"\nhttp2 = false\n";
    assert!(Invoker::from_toml(text).is_ok());
}

/// A TCP forwarder in front of a server that counts the connections it accepts and the
/// ones that have ended.
struct Forwarder {
    url: String,
    accepted: Arc<AtomicU32>,
    closed: Arc<AtomicU32>,
}

impl Forwarder {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (accepted, closed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (count, ended) = (Arc::clone(&accepted), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let ended = Arc::clone(&ended);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, accepted, closed }
    }

    fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// `n` concurrent echo calls, all of which must succeed.
async fn burst(proxy: &EchoProxy, n: usize) {
    let calls = (0..n).map(|i| {
        let proxy = proxy.clone();
        async move { proxy.echo(format!("call {i}")).await }
    });
    let replies = futures_util::future::join_all(calls).await;
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");
}

#[tokio::test]
async fn http2_carries_concurrent_calls_on_one_connection_where_http1_opens_several() {
    let (server, received) = server(Security::none(), false, 0).await;
    for (http2, expect_one) in [(true, true), (false, false)] {
        let forwarder = Forwarder::start(server.addr).await;
        let invoker = Invoker::builder().service("Echo", &forwarder.url).http2(http2).build().unwrap();
        burst(&EchoProxy::new(invoker).unwrap(), 32).await;
        let connections = forwarder.accepted();
        assert_eq!(connections == 1, expect_one, "http2 = {http2}: {connections} connections for 32 calls");
    }
    assert_eq!(received.all().len(), 64);
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_idle_connections_per_host() {
    let (server, _) = server(Security::none(), false, 0).await;
    for max_idle in [None, Some(1)] {
        let forwarder = Forwarder::start(server.addr).await;
        let builder = Invoker::builder().service("Echo", &forwarder.url);
        let builder = match max_idle {
            Some(n) => builder.pool_max_idle_per_host(n),
            None => builder,
        };
        let proxy = EchoProxy::new(builder.build().unwrap()).unwrap();
        burst(&proxy, 8).await;
        let first = forwarder.accepted();
        assert!(first > 1, "a burst of 8 opens several connections: {first}");
        burst(&proxy, 8).await;
        let second = forwarder.accepted() - first;
        match max_idle {
            None => assert_eq!(second, 0, "every connection of the first burst was kept"),
            Some(_) => assert!(second >= first - 1, "one of {first} kept, so {second} new ones"),
        }
    }
}

#[tokio::test]
async fn the_pool_closes_a_connection_idle_longer_than_its_timeout() {
    let (server, _) = server(Security::none(), false, 0).await;
    let forwarder = Forwarder::start(server.addr).await;
    let invoker =
        Invoker::builder().service("Echo", &forwarder.url).pool_idle_timeout(Duration::from_millis(50)).build();
    let proxy = EchoProxy::new(invoker.unwrap()).unwrap();
    proxy.echo("once".into()).await.unwrap();
    // Bounded polling: the client drops its idle connection, the forwarder sees it end.
    let closed = async {
        while forwarder.closed.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed).await.expect("the idle connection was closed");
    assert_eq!(forwarder.accepted(), 1);
}
