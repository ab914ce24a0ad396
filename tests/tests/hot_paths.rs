//! The hot paths rewritten for speed (hyper's client, the sharded memory store, runs
//! polled in place and detached only when dropped), at their edges: stale keep-alive
//! connections, prefixed and IPv6 base URLs, redirects, stalled and endless replies,
//! deadlines passing mid-run, stores that panic, the memory store's budgets and expiry.
//! Real servers and clients on loopback.
//!
//! Tests documented "Regression:" failed on the first version of the rewrite; "Regression
//! guard:" tests pin behaviour that held and must keep holding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use intercall::calls::{CallKey, CallStore, Claim, MemoryCallStore, StoreError, StoreFuture, StoredReply, Ticket};
use intercall::{CallError, Invoker, ServerSettings};
use intercall_tests::redis_server::RedisServer;
use intercall_tests::{TestServer, spawn};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};

// ---- the service under test ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum HotError {
    Unavailable(CallError),
}

impl From<CallError> for HotError {
    fn from(error: CallError) -> Self {
        HotError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Hot {
    /// Counts one run, returns `2n`.
    async fn echo(&self, n: u64) -> Result<u64, HotError>;
    /// Counts a run, signals `started`, then waits for the test to open the gate.
    async fn gated(&self, n: u64) -> Result<u64, HotError>;
}

struct Counter {
    runs: AtomicU64,
    started: Notify,
    gate: Semaphore,
}

impl Hot for Arc<Counter> {
    async fn echo(&self, n: u64) -> Result<u64, HotError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(2 * n)
    }

    async fn gated(&self, n: u64) -> Result<u64, HotError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        Ok(2 * n)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self { runs: AtomicU64::new(0), started: Notify::new(), gate: Semaphore::new(0) }
    }
}

impl Counter {
    fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A bound on anything a broken build could make wait forever.
const HANG: Duration = Duration::from_secs(30);

const ID: &str = "3f2c8a51-6d0e-4b7a-9c44-0e1d5b7f9a21";

async fn hot_server(store: Arc<dyn CallStore>) -> (Arc<Counter>, TestServer) {
    let counter = Arc::new(Counter::default());
    let settings = ServerSettings { call_store: Some(store), ..ServerSettings::default() };
    let router = HotServer::new(Arc::clone(&counter)).settings(settings).into_router();
    (counter, spawn(router).await)
}

/// A proxy with retries off: any failure of one attempt is the caller's failure.
fn one_try_proxy(url: &str, timeout: Duration) -> HotProxy {
    let invoker = Invoker::builder().service("Hot", url).timeout(timeout).retries(false).build().unwrap();
    HotProxy::new(invoker).unwrap()
}

/// A proxy making three attempts with a tiny backoff.
fn three_try_proxy(url: &str) -> HotProxy {
    let invoker = Invoker::builder()
        .service("Hot", url)
        .tries(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap();
    HotProxy::new(invoker).unwrap()
}

async fn started(counter: &Counter) {
    tokio::time::timeout(HANG, counter.started.notified()).await.expect("the run starts");
}

/// POSTs with a call id and optional extra headers through a plain reqwest client.
async fn post(
    url: &str,
    method: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> reqwest::Result<(u16, serde_json::Value)> {
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let mut request = client
        .post(format!("{url}Hot/{method}"))
        .header("content-type", "application/json")
        .header("x-call-id", ID)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

#[track_caller]
fn call_error<T: std::fmt::Debug>(result: Result<T, HotError>) -> CallError {
    match result {
        Err(HotError::Unavailable(e)) => e,
        other => panic!("expected Err(HotError::Unavailable(_)), got {other:?}"),
    }
}

// ---- raw HTTP/1.1 on sockets ---------------------------------------------------------------------

/// One HTTP/1.1 message with a `content-length` body (or none).
struct Message {
    head: String,
    raw: Vec<u8>,
}

/// Reads one message; `None` at EOF before a head.
async fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("body cut short"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let raw = buffer.drain(..head_end + length).collect();
    Ok(Some(Message { head, raw }))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A transparent HTTP/1.1 front (a balancer) that closes a client connection once it has
/// been idle for a while after a response (a keep-alive timeout, without `connection:
/// close`), counts the connections it accepts, and reports every close it makes.
struct Front {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

impl Front {
    async fn start(upstream: SocketAddr, idle: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (report, closed) = mpsc::unbounded_channel();
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let report = report.clone();
                tokio::spawn(async move {
                    let _ = front_connection(client, upstream, idle).await;
                    let _ = report.send(());
                });
            }
        });
        Self { addr, accepted, closed }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits until the front has closed one more client connection.
    async fn one_closed(&mut self) {
        tokio::time::timeout(HANG, self.closed.recv()).await.expect("the front closes a connection").unwrap();
    }
}

async fn front_connection(mut client: TcpStream, upstream: SocketAddr, idle: Duration) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    // A keep-alive timeout runs between requests, not before a new connection's first one:
    // on a busy machine the client may take longer than `idle` to write it, and closing
    // then would fail a call no real server fails.
    let mut wait = HANG;
    loop {
        if buffer.is_empty() {
            // Wait for the next request's first bytes, at most `wait`.
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(wait, client.read(&mut chunk)).await {
                Err(_) | Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e),
            }
        }
        let Some(request) = read_message(&mut client, &mut buffer).await? else { return Ok(()) };
        let mut server = TcpStream::connect(upstream).await?;
        server.write_all(&request.raw).await?;
        let mut server_buffer = Vec::new();
        let Some(response) = read_message(&mut server, &mut server_buffer).await? else { return Ok(()) };
        client.write_all(&response.raw).await?;
        wait = idle;
    }
}

/// A server that answers every request with `reply` (a whole raw response) and reports
/// each request's head.
async fn raw_server(bind: &str, reply: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                while let Ok(Some(request)) = read_message(&mut socket, &mut buffer).await {
                    let _ = report.send(request.head);
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

// ---- client: keep-alive connections closed by the server ------------------------------------

/// Regression (a race older than the rewrite: reqwest sat on the same hyper-util pool): a
/// pooled connection that the server closed while it sat idle (its keep-alive timeout)
/// is handed to the next call before the client has noticed the close; the request is
/// written to it and closed without a reply. hyper-util resends only requests it never
/// wrote, so with retries off about one call in eight failed here; the transport now
/// resends once when a connection that answered before closes without a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_the_server_closed_while_idle_does_not_fail_the_next_call() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    let mut front = Front::start(server.addr, Duration::from_millis(20)).await;
    let hot = one_try_proxy(&front.url(), Duration::from_secs(5));
    let mut failures = Vec::new();
    for n in 0..100u64 {
        match hot.echo(n).await {
            // The front closes the call's connection once it has been idle a moment.
            Ok(doubled) => {
                assert_eq!(doubled, 2 * n);
                front.one_closed().await;
            }
            // Written to an already closed connection: no new one, nothing to close.
            Err(e) => failures.push((n, e)),
        }
    }
    assert!(failures.is_empty(), "{} of 100 calls failed, e.g. {:?}", failures.len(), failures.first());
    assert_eq!(counter.runs(), 100);
}

/// Regression guard: with retries on, the same race never reaches the caller: the
/// request written to the closed connection is resent (same call id) on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retries_a_connection_closed_while_idle_never_fails_a_call() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    let mut front = Front::start(server.addr, Duration::from_millis(20)).await;
    let invoker = Invoker::builder()
        .service("Hot", front.url())
        .timeout(Duration::from_secs(5))
        .tries(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .retry_budget(1.0, 1_000)
        .build()
        .unwrap();
    let hot = HotProxy::new(invoker).unwrap();
    for n in 0..100u64 {
        assert_eq!(hot.echo(n).await, Ok(2 * n), "call {n}");
        // Every call ends on a connection of its own that the front then closes.
        front.one_closed().await;
    }
    assert_eq!(counter.runs(), 100, "a resent request never ran twice");
}

/// Regression guard: a server restarted on the same port (its graceful shutdown closed
/// the client's idle connection) is reached again; retries on, as by default, since the
/// first call after a restart can meet the race above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_on_the_same_port_is_reached_again() {
    let counter = Arc::new(Counter::default());
    let router = || HotServer::new(Arc::clone(&counter)).into_router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let invoker = Invoker::builder()
        .service("Hot", format!("http://{addr}/"))
        .tries(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .retry_budget(1.0, 1_000)
        .build()
        .unwrap();
    let hot = HotProxy::new(invoker).unwrap();
    let mut listener = Some(listener);
    for round in 0..40u64 {
        let listener = match listener.take() {
            Some(listener) => listener,
            None => TcpListener::bind(addr).await.expect("the port is free again"),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(intercall::serve_with_shutdown(listener, router(), async move {
            let _ = stopped.await;
        }));
        assert_eq!(hot.echo(round).await, Ok(2 * round), "round {round}");
        stop.send(()).unwrap();
        // Graceful shutdown ends once every connection, the client's idle one too, closed.
        tokio::time::timeout(HANG, serving).await.expect("the server stops").unwrap().unwrap();
    }
    assert_eq!(counter.runs(), 40);
}

/// Regression guard: on one thread the client always sees the close before it reuses
/// the connection (or hyper resends the unsent request): no call fails, and every call
/// after a close opens a new connection.
#[tokio::test]
async fn on_one_thread_a_connection_closed_while_idle_is_replaced_not_reused() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    let mut front = Front::start(server.addr, Duration::from_millis(20)).await;
    let hot = one_try_proxy(&front.url(), Duration::from_secs(5));
    for n in 0..30u64 {
        assert_eq!(hot.echo(n).await, Ok(2 * n), "call {n}");
        front.one_closed().await;
    }
    assert_eq!(counter.runs(), 30);
    assert_eq!(front.accepted.load(Ordering::SeqCst), 30, "a new connection after every close");
}

/// Regression guard: a kept-alive connection is reused while the server keeps it open.
#[tokio::test]
async fn calls_reuse_one_kept_alive_connection() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    let front = Front::start(server.addr, HANG).await;
    let hot = one_try_proxy(&front.url(), Duration::from_secs(5));
    for n in 0..20u64 {
        assert_eq!(hot.echo(n).await, Ok(2 * n), "call {n}");
    }
    assert_eq!(counter.runs(), 20);
    assert_eq!(front.accepted.load(Ordering::SeqCst), 1);
}

/// Regression guard: a reply's headers are made in its request's own header map, emptied
/// (`server/reply.rs`, `respond_in`). None of a request's headers may come back, on any
/// path that reuses the map (a run, a replay, a refused argument, a call past its
/// deadline, a call without a call id), and a kept-alive connection's next request must
/// not see the last reply's.
#[tokio::test]
async fn a_reply_carries_none_of_its_request_s_headers() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = Vec::new();
    let request = |call_id: Option<&str>, deadline_ms: u32, body: &str| {
        let call_id = call_id.map_or(String::new(), |id| format!("x-call-id: {id}\r\nx-call-attempt: 1\r\n"));
        format!(
            "POST /Hot/echo HTTP/1.1\r\nhost: hot.test\r\ncontent-type: application/json\r\n{call_id}\
             x-user-type: person\r\nx-user-id: ana\r\nx-activity-id: 0c0d7c1e-3a52-4f0e-9d5b-7a6f1f0c2b11\r\n\
             x-deadline-ms: {deadline_ms}\r\nx-probe: must-not-echo\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let other = "8e1b0f3a-2c4d-4e6f-8a9b-0c1d2e3f4a5b";
    let exchanges = [
        ("a run", request(Some(ID), 30_000, r#"{"n":1}"#), 200, "2"),
        ("a replay", request(Some(ID), 30_000, r#"{"n":1}"#), 200, "2"),
        ("refused arguments", request(Some(other), 30_000, r#"{"n":"one"}"#), 400, "bad_request"),
        ("past its deadline", request(Some(other), 0, r#"{"n":3}"#), 504, "deadline_exceeded"),
        ("no call id", request(None, 30_000, r#"{"n":4}"#), 200, "8"),
    ];
    for (what, request, status, body) in exchanges {
        stream.write_all(request.as_bytes()).await.unwrap();
        let message = tokio::time::timeout(HANG, read_message(&mut stream, &mut buffer))
            .await
            .expect("a reply")
            .unwrap()
            .expect("a reply, not EOF");
        let head = &message.head;
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {head}");
        let mut names: Vec<String> = head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, _)| name.trim().to_ascii_lowercase())
            .collect();
        names.sort();
        assert_eq!(names, ["content-length", "content-type", "date"], "{what}: {head}");
        assert_eq!(header(head, "content-type"), Some("application/json"), "{what}");
        let reply: serde_json::Value = serde_json::from_slice(&message.raw[head.len()..]).unwrap();
        let got = reply.get("kind").cloned().unwrap_or(reply);
        assert_eq!(got.to_string().trim_matches('"'), body, "{what}");
    }
    assert_eq!(counter.runs(), 2, "the replay and the refused call did not run");
}

// ---- client: URLs, redirects, timeouts, limits -----------------------------------------------------

const OK_42: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n42";

/// Regression guard: with a path prefix in the base URL, the request line keeps the
/// prefix (origin form, no double slash) and `host` is the base URL's authority.
#[tokio::test]
async fn a_prefixed_base_url_sends_the_prefixed_path_and_the_authority_as_host() {
    let (addr, mut heads) = raw_server("127.0.0.1:0", OK_42).await;
    let port = addr.port();
    let cases = [
        (format!("http://127.0.0.1:{port}/prefix/v1/"), "/prefix/v1/Hot/echo", format!("127.0.0.1:{port}")),
        (format!("http://localhost:{port}/prefix"), "/prefix/Hot/echo", format!("localhost:{port}")),
    ];
    for (base, path, authority) in cases {
        let hot = one_try_proxy(&base, Duration::from_secs(5));
        assert_eq!(hot.echo(21).await, Ok(42), "via {base}");
        let head = heads.recv().await.unwrap();
        assert_eq!(head.lines().next(), Some(format!("POST {path} HTTP/1.1").as_str()), "{head}");
        assert_eq!(header(&head, "host"), Some(authority.as_str()), "{head}");
        assert_eq!(header(&head, "content-length"), Some("8"), "{head}");
    }
}

/// Regression guard: an IPv6 literal base URL connects (brackets stripped for the
/// socket) and keeps its brackets in `host`.
#[tokio::test]
async fn an_ipv6_base_url_connects_and_sends_a_bracketed_host() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("NOTICE: no IPv6 loopback here; skipped");
        return;
    };
    drop(probe);
    let (addr, mut heads) = raw_server("[::1]:0", OK_42).await;
    let base = format!("http://[::1]:{}/", addr.port());
    let hot = one_try_proxy(&base, Duration::from_secs(5));
    assert_eq!(hot.echo(21).await, Ok(42), "via {base}");
    let head = heads.recv().await.unwrap();
    assert_eq!(header(&head, "host"), Some(format!("[::1]:{}", addr.port()).as_str()), "{head}");
}

/// Regression guard: a redirect is an answer (a status error), never followed: the
/// POST is not replayed at the `location`.
#[tokio::test]
async fn a_redirect_is_a_status_error_and_is_not_followed() {
    let target = Arc::new(Counter::default());
    let target_server = spawn(HotServer::new(Arc::clone(&target)).into_router()).await;
    let location = format!("{}Hot/echo", target_server.url());
    let reply: &'static str = Box::leak(
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (addr, _heads) = raw_server("127.0.0.1:0", reply).await;
    let hot = one_try_proxy(&format!("http://{addr}/"), Duration::from_secs(5));
    let e = call_error(hot.echo(1).await);
    assert!(e.is_status(), "{e:?}");
    assert_eq!(e.status_code(), Some(307), "{e:?}");
    assert_eq!(target.runs(), 0, "the redirect was not followed");
}

/// Serves one canned beginning of a response per connection, then holds the socket
/// open without another byte.
async fn stalling_server(beginning: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                if let Ok(Some(_)) = read_message(&mut socket, &mut buffer).await {
                    let _ = socket.write_all(beginning.as_bytes()).await;
                    // Held open, silent, until the client goes away.
                    let mut sink = [0u8; 64];
                    while let Ok(n @ 1..) = socket.read(&mut sink).await {
                        let _ = n;
                    }
                }
            });
        }
    });
    addr
}

/// Regression guard: the per-attempt timeout covers the whole body, not just the head.
#[tokio::test]
async fn a_reply_whose_body_stalls_times_out_within_the_attempt_timeout() {
    let addr =
        stalling_server("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[1,2,").await;
    let hot = one_try_proxy(&format!("http://{addr}/"), Duration::from_millis(300));
    let began = Instant::now();
    let e = call_error(tokio::time::timeout(HANG, hot.echo(1)).await.expect("the call ends"));
    assert!(e.is_timeout(), "{e:?}");
    assert!(began.elapsed() < Duration::from_secs(5), "took {:?}", began.elapsed());
}

/// Regression guard: an endless chunked reply is refused once it passes
/// `max_reply_bytes`, not read until the timeout, and not retried.
#[tokio::test]
async fn an_endless_chunked_reply_is_refused_at_the_limit_and_not_retried() {
    let router = axum::Router::new().route(
        "/Hot/echo",
        axum::routing::post(|| async {
            let chunks = futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512])));
            (axum::http::StatusCode::OK, axum::body::Body::from_stream(chunks))
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let config = format!(
        "[defaults]\nmax_reply_bytes = 4096\ntimeout_ms = 20000\ntries = 3\n\n[services.Hot]\nurl = \"http://{addr}/\"\n"
    );
    let hot = HotProxy::new(Invoker::from_toml(&config).unwrap()).unwrap();
    let began = Instant::now();
    let e = call_error(tokio::time::timeout(HANG, hot.echo(1)).await.expect("the call ends"));
    assert!(e.is_decode(), "{e:?}");
    assert!(e.message().contains("more than 4096"), "{e}");
    assert_eq!(e.attempts(), 1, "a reply that is too large is not retried: {e:?}");
    assert!(began.elapsed() < Duration::from_secs(10), "refused early, not at the timeout: {:?}", began.elapsed());
}

/// Regression guard: a refused connection and a reply cut mid-body are retryable; each
/// counts as an attempt and the call id makes the retry safe.
#[tokio::test]
async fn refused_connections_and_replies_cut_mid_body_are_retried() {
    let dead = intercall_tests::dead_url().await;
    let e = call_error(three_try_proxy(&dead).echo(1).await);
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(e.attempts(), 3, "{e:?}");

    // A reply whose body ends early (the server closes mid-body) every time.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                if let Ok(Some(_)) = read_message(&mut socket, &mut buffer).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let cut = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n[1,";
                    let _ = socket.write_all(cut.as_bytes()).await;
                }
            });
        }
    });
    let e = call_error(three_try_proxy(&format!("http://{addr}/")).echo(1).await);
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(e.attempts(), 3, "{e:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

// ---- server: detached runs -------------------------------------------------------------------------

/// Regression guard (memory store: claimed before decoding, run polled in place): the
/// owner's own deadline passes mid-run; it gets a retryable 409, the run goes on
/// detached and its result is stored, so the retry replays it without a second run.
#[tokio::test]
async fn an_owner_whose_deadline_passes_gets_409_and_its_run_completes_and_is_stored() {
    let (counter, server) = hot_server(Arc::new(MemoryCallStore::default())).await;
    owner_deadline_passes(&counter, &server).await;
}

/// The same through the Redis store (no `claim_at_once`: the claim is inside the
/// detachable future).
#[tokio::test]
async fn with_redis_an_owner_whose_deadline_passes_gets_409_and_its_run_completes_and_is_stored() {
    let Some(redis) = RedisServer::start("review-deadline") else { return };
    let store = intercall::calls::RedisCallStore::new(&redis.url()).unwrap().prefix("review:deadline:");
    let (counter, server) = hot_server(Arc::new(store)).await;
    owner_deadline_passes(&counter, &server).await;
}

async fn owner_deadline_passes(counter: &Counter, server: &TestServer) {
    let (status, body) = post(&server.url(), "gated", r#"{"n": 4}"#, &[("x-deadline-ms", "100")]).await.unwrap();
    assert_eq!((status, body["kind"].as_str()), (409, Some("in_progress")), "{body}");
    started(counter).await;
    counter.gate.add_permits(1);
    // No deadline: waits for the detached run if it is still going.
    assert_eq!(post(&server.url(), "gated", r#"{"n": 4}"#, &[]).await.unwrap(), (200, serde_json::json!(8)));
    assert_eq!(counter.runs(), 1);
}

/// Regression guard (Redis store): a client that disconnects mid-run cancels neither
/// the run nor the claim; the retry gets the first run's result.
#[tokio::test]
async fn with_redis_a_client_that_disconnects_mid_run_cancels_nothing() {
    let Some(redis) = RedisServer::start("review-disconnect") else { return };
    let store = intercall::calls::RedisCallStore::new(&redis.url()).unwrap().prefix("review:disconnect:");
    let (counter, server) = hot_server(Arc::new(store)).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let first = impatient
        .post(format!("{}Hot/gated", server.url()))
        .header("content-type", "application/json")
        .header("x-call-id", ID)
        .body(r#"{"n": 9}"#)
        .send()
        .await;
    assert!(first.is_err_and(|e| e.is_timeout()), "the first request must give up");
    started(&counter).await;
    counter.gate.add_permits(1);
    let retry = post(&server.url(), "gated", r#"{"n": 9}"#, &[("x-deadline-ms", "10000")]).await.unwrap();
    assert_eq!(retry, (200, serde_json::json!(18)));
    assert_eq!(counter.runs(), 1);
}

// ---- server: panics in the store ---------------------------------------------------------------------

/// Which method of a [`Panicky`] store panics.
#[derive(Clone, Copy, PartialEq)]
enum PanicIn {
    /// `claim` (and `claim_at_once` says "ask `claim`", as a remote store's does).
    Claim,
    ClaimAtOnce,
    /// `release` (and claims are made at once, as the memory store's are).
    Release,
}

/// A memory store with one method that panics, as a buggy custom store can.
struct Panicky {
    inner: MemoryCallStore,
    panics: PanicIn,
}

impl CallStore for Panicky {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        assert!(self.panics != PanicIn::Claim, "a bug in the store's claim");
        self.inner.claim(key, fingerprint)
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>> {
        self.inner.wait(key, fingerprint, timeout)
    }

    fn complete<'a>(&'a self, key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()> {
        self.inner.complete(key, ticket, reply)
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        assert!(self.panics != PanicIn::Release, "a bug in the store's release");
        self.inner.release(key, ticket)
    }

    fn claim_at_once(&self, key: &CallKey, fingerprint: u128) -> Option<Result<Claim, StoreError>> {
        match self.panics {
            PanicIn::Claim => None,
            PanicIn::ClaimAtOnce => panic!("a bug in the store's claim_at_once"),
            PanicIn::Release => self.inner.claim_at_once(key, fingerprint),
        }
    }
}

async fn panicky_server(panics: PanicIn) -> (Arc<Counter>, TestServer) {
    hot_server(Arc::new(Panicky { inner: MemoryCallStore::default(), panics })).await
}

/// Regression guard: a store whose (asynchronous) `claim` panics gets the client a 500
/// `panic` reply: the claim runs inside the `catch_unwind` of `dedup::join`.
#[tokio::test]
async fn a_panic_in_the_stores_claim_is_a_500_panic_reply() {
    let (counter, server) = panicky_server(PanicIn::Claim).await;
    let (status, body) = post(&server.url(), "echo", r#"{"n": 1}"#, &[]).await.expect("the server answers");
    assert_eq!((status, body["kind"].as_str()), (500, Some("panic")), "{body}");
    assert_eq!(counter.runs(), 0);
}

/// Regression: a panic in `claim_at_once` (asked before the body is decoded) is a 500
/// `panic` reply; the first version of the rewrite let it kill the connection's task.
#[tokio::test]
async fn a_panic_in_the_stores_claim_at_once_is_a_500_panic_reply() {
    let (counter, server) = panicky_server(PanicIn::ClaimAtOnce).await;
    let reply = post(&server.url(), "echo", r#"{"n": 1}"#, &[]).await;
    let (status, body) = reply.expect("the server answers (a panic in the store is a 500, not a dropped connection)");
    assert_eq!((status, body["kind"].as_str()), (500, Some("panic")), "{body}");
    assert_eq!(counter.runs(), 0);
}

/// Regression: a store that panics releasing the claim of a body that does not decode
/// still gets the client a reply, not a dropped connection.
#[tokio::test]
async fn a_panic_in_the_stores_release_after_a_bad_body_still_gets_a_reply() {
    let (counter, server) = panicky_server(PanicIn::Release).await;
    let reply = post(&server.url(), "echo", r#"{"n": "one"}"#, &[]).await;
    let (status, body) =
        reply.expect("the server answers (400, or a 500 for the store's panic), not a dropped connection");
    assert!(matches!((status, body["kind"].as_str()), (400, Some("bad_request")) | (500, Some("panic"))), "{body}");
    assert_eq!(counter.runs(), 0);
}

// ---- the memory store ------------------------------------------------------------------------------

fn key(n: u128) -> CallKey {
    CallKey::new(intercall::uuid::Uuid::from_u128(n), "Hot", "echo", None)
}

fn reply(body: impl Into<Bytes>) -> StoredReply {
    StoredReply { status: 200, body: body.into() }
}

async fn run_and_complete(store: &MemoryCallStore, n: u128, body: impl Into<Bytes>) {
    let Claim::Run(ticket) = store.claim(&key(n), 1).await.unwrap() else { panic!("call {n} is fresh") };
    store.complete(&key(n), ticket, reply(body)).await.unwrap();
}

/// Regression: the byte budget is the store's, not a shard's: one 5 MiB reply in a store
/// at 2% of its budget and 1% of its capacity drops no other call (split over 64 shards,
/// it dropped every other call of its shard, whose retries then ran again).
#[tokio::test]
async fn one_large_reply_does_not_drop_recent_calls_from_a_store_far_below_its_budget() {
    let store = MemoryCallStore::new(intercall::calls::DEFAULT_CAPACITY, intercall::calls::DEFAULT_TTL);
    for n in 1..=1_000 {
        run_and_complete(&store, n, Bytes::from_static(b"\"small\"")).await;
    }
    // 5 MiB: within the client's default `max_reply_bytes` (16 MiB), 2% of the store's.
    run_and_complete(&store, 5_000, vec![b' '; 5 << 20]).await;
    let mut dropped = Vec::new();
    for n in 1..=1_000 {
        if !matches!(store.claim(&key(n), 1).await.unwrap(), Claim::Done(_)) {
            dropped.push(n);
        }
    }
    assert!(
        dropped.is_empty(),
        "{} recent calls were dropped, e.g. {:?}",
        dropped.len(),
        &dropped[..dropped.len().min(5)]
    );
}

/// Regression guard: a claim older than the time to live is claimed again; the old
/// run's late finish wakes its own waiters with its own reply but stores nothing, and
/// the new run's waiters and the store get the new run's reply.
#[tokio::test]
async fn a_stale_claim_claimed_again_keeps_each_runs_waiters_apart() {
    let ttl = Duration::from_millis(100);
    let store = MemoryCallStore::new(1_000, ttl);
    let k = key(1);
    let Claim::Run(old) = store.claim(&k, 1).await.unwrap() else { panic!("runs") };
    let old_waiter = store.wait(&k, 1, None);
    // Not synchronisation: the claim has to grow older than the time to live.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let Claim::Run(new) = store.claim(&k, 1).await.unwrap() else { panic!("a stale claim is claimed again") };
    let new_waiter = store.wait(&k, 1, None);
    let mut new_waiter = std::pin::pin!(new_waiter);
    store.complete(&k, old, reply("\"old\"")).await.unwrap();
    assert_eq!(tokio::time::timeout(HANG, old_waiter).await.unwrap().unwrap(), Some(reply("\"old\"")));
    assert_eq!(store.claim(&k, 1).await.unwrap(), Claim::Running, "the old run stored nothing");
    assert!(
        tokio::time::timeout(Duration::from_millis(20), new_waiter.as_mut()).await.is_err(),
        "the new run's waiter still waits"
    );
    store.complete(&k, new, reply("\"new\"")).await.unwrap();
    assert_eq!(tokio::time::timeout(HANG, new_waiter).await.unwrap().unwrap(), Some(reply("\"new\"")));
    assert_eq!(store.claim(&k, 1).await.unwrap(), Claim::Done(reply("\"new\"")));
}

/// Regression guard: a completed call lives `ttl` from its completion, not its claim.
#[tokio::test]
async fn a_completed_call_lives_its_time_to_live_from_completion() {
    let ttl = Duration::from_millis(300);
    let store = MemoryCallStore::new(1_000, ttl);
    let Claim::Run(ticket) = store.claim(&key(1), 1).await.unwrap() else { panic!("runs") };
    // Not synchronisation: a long run, on the clock.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let completed = Instant::now();
    store.complete(&key(1), ticket, reply("1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let found = store.claim(&key(1), 1).await.unwrap();
    if completed.elapsed() < ttl {
        assert_eq!(found, Claim::Done(reply("1")), "400 ms after the claim, 150 ms after completion");
    }
    tokio::time::sleep(ttl).await;
    assert!(matches!(store.claim(&key(1), 1).await.unwrap(), Claim::Run(_)), "expired after its time to live");
}

/// Regression guard (a smoke test) against lost wake-ups: waiters subscribe while the
/// run finishes on another thread; every one of them wakes with the outcome (a reply,
/// or `None` after a release). It catches a missing or misdirected wake-up; a window
/// of nanoseconds between reading the outcome and subscribing is beyond it (that order
/// is checked by reading `MemoryCallStore::wait`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_racing_the_finish_of_a_run_are_always_woken() {
    let store = Arc::new(MemoryCallStore::new(100_000, Duration::from_secs(60)));
    for n in 0..2_000u128 {
        let Claim::Run(ticket) = store.claim(&key(n), 1).await.unwrap() else { panic!("runs") };
        let release = n % 3 == 0;
        let finisher = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                match release {
                    true => store.release(&key(n), ticket).await.unwrap(),
                    false => store.complete(&key(n), ticket, reply(n.to_string())).await.unwrap(),
                }
            })
        };
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let k = key(n);
                    let woke = tokio::time::timeout(HANG, store.wait(&k, 1, None)).await;
                    woke.expect("a waiter is never left behind").unwrap()
                })
            })
            .collect();
        finisher.await.unwrap();
        for waiter in waiters {
            let got = waiter.await.unwrap();
            match release {
                true => assert_eq!(got, None, "call {n}"),
                // Before the completion it is woken with the reply; after, it finds it.
                false => assert_eq!(got, Some(reply(n.to_string())), "call {n}"),
            }
        }
    }
}
