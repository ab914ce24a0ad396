//! Stream methods (PROTOCOL.md §4.3) over real loopback sockets: order, errors before
//! and during the stream, panics, a cut connection, cancellation, backpressure,
//! deadlines, and call ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use intercall::{CallError, Streaming};
use intercall_tests::{TestServer, dead_url, invoker, spawn};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FeedError {
    Refused(String),
    Broke { at: u64 },
    Unavailable(CallError),
}

impl From<CallError> for FeedError {
    fn from(error: CallError) -> Self {
        FeedError::Unavailable(error)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Blob {
    pub n: u64,
    pub padding: String,
}

#[intercall::service]
pub trait Feed {
    /// `0..count`, then a clean end.
    async fn numbers(&self, count: u64) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// Refused before the first item when `at` is 0, else `0..at` and a typed error.
    async fn failing(&self, at: u64) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// `0..at`, then a panic.
    async fn panicking(&self, at: u64) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// Items of `size` bytes for ever, counted as they are produced.
    async fn endless(&self, size: usize) -> Result<Streaming<Blob, FeedError>, FeedError>;
    /// One item every `every_ms` for ever.
    async fn ticks(&self, every_ms: u64) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// `count` items, one every `every_ms`, then a clean end.
    async fn slow(&self, count: u64, every_ms: u64) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// `count` items, each the user the implementation's stream sees as it is polled.
    async fn whoami(&self, count: u64) -> Result<Streaming<String, FeedError>, FeedError>;
    /// Item 0, then silence until the test opens the gate, then item 1 and a clean end.
    async fn pause(&self) -> Result<Streaming<u64, FeedError>, FeedError>;
    /// A unary method beside them.
    async fn ping(&self) -> Result<String, FeedError>;
}

/// What the implementation's streams did, seen from the test.
#[derive(Default)]
struct Counters {
    produced: AtomicU64,
    dropped: AtomicBool,
    /// What `pause` waits on between its items.
    gate: tokio::sync::Notify,
}

#[derive(Clone, Default)]
struct Counting(Arc<Counters>);

/// Sets `dropped` when the implementation's stream is dropped.
struct DropFlag(Arc<Counters>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

impl Feed for Counting {
    async fn numbers(&self, count: u64) -> Result<Streaming<u64, FeedError>, FeedError> {
        Ok(Streaming::new(stream::iter((0..count).map(Ok))))
    }

    async fn failing(&self, at: u64) -> Result<Streaming<u64, FeedError>, FeedError> {
        if at == 0 {
            return Err(FeedError::Refused("nothing to stream".into()));
        }
        Ok(Streaming::new(stream::iter(
            (0..=at).map(move |n| if n < at { Ok(n) } else { Err(FeedError::Broke { at }) }),
        )))
    }

    async fn panicking(&self, at: u64) -> Result<Streaming<u64, FeedError>, FeedError> {
        Ok(Streaming::new(stream::iter(0..=at).map(move |n| {
            assert!(n < at, "the stream breaks at {at}");
            Ok(n)
        })))
    }

    async fn endless(&self, size: usize) -> Result<Streaming<Blob, FeedError>, FeedError> {
        let counters = Arc::clone(&self.0);
        let flag = DropFlag(Arc::clone(&self.0));
        Ok(Streaming::new(stream::unfold((0u64, flag), move |(n, flag)| {
            let counters = Arc::clone(&counters);
            async move {
                counters.produced.fetch_add(1, Ordering::SeqCst);
                Some((Ok(Blob { n, padding: "x".repeat(size) }), (n + 1, flag)))
            }
        })))
    }

    async fn ticks(&self, every_ms: u64) -> Result<Streaming<u64, FeedError>, FeedError> {
        let flag = DropFlag(Arc::clone(&self.0));
        Ok(Streaming::new(stream::unfold((0u64, flag), move |(n, flag)| async move {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
            Some((Ok(n), (n + 1, flag)))
        })))
    }

    async fn slow(&self, count: u64, every_ms: u64) -> Result<Streaming<u64, FeedError>, FeedError> {
        Ok(Streaming::new(stream::iter(0..count).then(move |n| async move {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
            Ok(n)
        })))
    }

    async fn whoami(&self, count: u64) -> Result<Streaming<String, FeedError>, FeedError> {
        Ok(Streaming::new(stream::iter(0..count).then(|_| async {
            tokio::task::yield_now().await;
            let user = intercall::UserContext::current();
            Ok(user.and_then(|u| u.user_id().map(str::to_owned)).unwrap_or_else(|| "nobody".into()))
        })))
    }

    async fn pause(&self) -> Result<Streaming<u64, FeedError>, FeedError> {
        let counters = Arc::clone(&self.0);
        Ok(Streaming::new(stream::iter([0, 1]).then(move |n| {
            let counters = Arc::clone(&counters);
            async move {
                if n == 1 {
                    counters.gate.notified().await;
                }
                Ok(n)
            }
        })))
    }

    async fn ping(&self) -> Result<String, FeedError> {
        Ok("pong".into())
    }
}

async fn feed() -> (TestServer, FeedProxy, Counting) {
    let implementation = Counting::default();
    let server = spawn(FeedServer::new(implementation.clone()).into_router()).await;
    let proxy = FeedProxy::new(invoker("Feed", &server.url())).unwrap();
    (server, proxy, implementation)
}

/// Polls `condition` every 20 ms, at most 10 s; whether it became true.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Polls `counter` until it has not moved for 10 samples 50 ms apart (at most 10 s),
/// and returns where it settled.
async fn settled(counter: &AtomicU64) -> u64 {
    let (mut last, mut still) = (counter.load(Ordering::SeqCst), 0);
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 10 {
            break;
        }
    }
    last
}

fn unavailable(item: Option<Result<impl std::fmt::Debug, FeedError>>) -> CallError {
    match item {
        Some(Err(FeedError::Unavailable(error))) => error,
        other => panic!("expected a transport or framework failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hundred_thousand_items_arrive_in_order_then_the_stream_ends() {
    let (_server, feed, _) = feed().await;
    let mut items = feed.numbers(100_000).await.unwrap();
    let mut expected = 0;
    while let Some(item) = items.next().await {
        assert_eq!(item, Ok(expected));
        expected += 1;
    }
    assert_eq!(expected, 100_000);
    assert!(items.next().await.is_none(), "an ended stream stays ended");
}

#[tokio::test]
async fn the_same_trait_streams_locally_and_remotely() {
    async fn total<F: Feed>(feed: &F) -> Result<u64, FeedError> {
        let mut items = feed.numbers(10).await?;
        let mut sum = 0;
        while let Some(item) = items.next().await {
            sum += item?;
        }
        Ok(sum)
    }
    let (_server, proxy, local) = feed().await;
    assert_eq!(total(&proxy).await, Ok(45));
    assert_eq!(total(&local).await, Ok(45));
    let shared: Arc<dyn Feed> = Arc::new(proxy);
    assert_eq!(total(&shared).await, Ok(45));
}

#[tokio::test]
async fn an_error_before_the_first_item_is_the_method_s_typed_error() {
    let (_server, feed, _) = feed().await;
    let refused = feed.failing(0).await.map(|_| ());
    assert_eq!(refused, Err(FeedError::Refused("nothing to stream".into())));
}

#[tokio::test]
async fn a_typed_error_mid_stream_is_an_err_item_and_ends_the_stream() {
    let (_server, feed, _) = feed().await;
    let items: Vec<_> = feed.failing(3).await.unwrap().collect().await;
    assert_eq!(items, vec![Ok(0), Ok(1), Ok(2), Err(FeedError::Broke { at: 3 })]);
}

#[tokio::test]
async fn a_panic_mid_stream_ends_it_with_a_framework_error_and_the_server_keeps_serving() {
    let (_server, feed, _) = feed().await;
    let mut items = feed.panicking(2).await.unwrap();
    assert_eq!(items.next().await, Some(Ok(0)));
    assert_eq!(items.next().await, Some(Ok(1)));
    let error = unavailable(items.next().await);
    assert!(error.is_status() && !error.is_connect(), "{error}");
    assert_eq!(error.status_code(), Some(500));
    assert!(error.to_string().contains("panic"), "{error}");
    assert!(items.next().await.is_none());
    assert_eq!(feed.ping().await, Ok("pong".into()));
    assert_eq!(feed.numbers(3).await.unwrap().collect::<Vec<_>>().await, vec![Ok(0), Ok(1), Ok(2)]);
}

/// A TCP relay that passes the request on and cuts both connections after `limit`
/// bytes of the response: a connection that breaks mid-stream.
async fn cutting_relay(upstream: std::net::SocketAddr, limit: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let mut passed = 0;
                let mut buffer = vec![0; 4096];
                while passed < limit {
                    let Ok(n @ 1..) = server_read.read(&mut buffer).await else { break };
                    let n = n.min(limit - passed);
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    passed += n;
                }
                requests.abort();
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_cut_connection_is_a_connect_error_not_a_clean_end() {
    let (server, _, _) = feed().await;
    let url = cutting_relay(server.addr, 4_000).await;
    let feed = FeedProxy::new(invoker("Feed", &url)).unwrap();
    let mut items = feed.numbers(100_000).await.unwrap();
    let mut received = 0;
    let error = loop {
        match items.next().await {
            Some(Ok(n)) => {
                assert_eq!(n, received);
                received += 1;
            }
            other => break unavailable(other),
        }
    };
    assert!(received > 0 && received < 100_000, "{received} items before the cut");
    assert!(error.is_connect(), "{error}");
    assert!(items.next().await.is_none());
}

#[tokio::test]
async fn a_failure_before_the_reply_is_retried_then_is_the_method_s_error() {
    let feed = FeedProxy::new(invoker("Feed", &dead_url().await)).unwrap();
    let error = match feed.numbers(3).await {
        Err(FeedError::Unavailable(error)) => error,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert!(error.is_connect(), "{error}");
    assert_eq!(error.attempts(), 3, "retried as a unary call before the first item");
}

#[tokio::test]
async fn dropping_the_stream_stops_the_implementation_s_stream() {
    let (_server, feed, counting) = feed().await;
    let mut items = feed.endless(16).await.unwrap();
    for n in 0..10 {
        assert_eq!(items.next().await.unwrap().unwrap().n, n);
    }
    drop(items);
    assert!(eventually(|| counting.0.dropped.load(Ordering::SeqCst)).await, "the server dropped the stream");
    let at_drop = counting.0.produced.load(Ordering::SeqCst);
    assert_eq!(settled(&counting.0.produced).await, at_drop, "no item is produced after the drop");
}

#[tokio::test]
async fn a_stalled_reader_bounds_what_the_server_produces() {
    const SIZE: usize = 1024;
    let (_server, feed, counting) = feed().await;
    let mut items = feed.endless(SIZE).await.unwrap();
    assert_eq!(items.next().await.unwrap().unwrap().n, 0);
    // The reader stalls: the server fills the buffers between them, then waits.
    let produced = settled(&counting.0.produced).await;
    // Socket buffers on loopback hold a few MiB; an unbounded server would have produced
    // items without end (each one more KiB of memory).
    assert!(produced < 32_000, "{produced} items of {SIZE} bytes produced for a reader that read one");
    for n in 1..100 {
        assert_eq!(items.next().await.unwrap().unwrap().n, n, "the stream goes on where the reader left it");
    }
}

#[tokio::test]
async fn the_caller_s_deadline_ends_a_long_stream() {
    let (_server, feed, counting) = feed().await;
    let items: Vec<_> = intercall::with_deadline(Duration::from_millis(500), async {
        feed.ticks(20).await.unwrap().collect::<Vec<_>>().await
    })
    .await;
    let (last, ticks) = items.split_last().unwrap();
    assert!(!ticks.is_empty() && ticks.iter().all(Result::is_ok), "{items:?}");
    let error = unavailable(Some(last.clone()));
    assert!(error.is_timeout(), "{error}");
    assert!(eventually(|| counting.0.dropped.load(Ordering::SeqCst)).await, "the server ended its stream");
}

/// Regression: the connection counted a stream idle once its head had left, so its
/// idle timeout closed it mid-stream.
#[tokio::test]
async fn a_stream_longer_than_the_idle_timeout_is_not_cut() {
    let options = intercall::ServeOptions::default().idle_timeout(Duration::from_millis(100));
    let server = intercall_tests::spawn_with(FeedServer::new(Counting::default()).into_router(), options).await;
    let feed = FeedProxy::new(invoker("Feed", &server.url())).unwrap();
    // Six idle timeouts long.
    let items: Vec<_> = feed.slow(15, 40).await.unwrap().collect().await;
    assert_eq!(items, (0..15).map(Ok).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_signed_stream_runs_in_the_caller_s_context_for_every_item() {
    let security = intercall::Security::shared_secret("streaming-test-secret-0123456789").unwrap();
    let router = FeedServer::new(Counting::default()).security(security.clone()).into_router();
    let server = spawn(router).await;
    let invoker = intercall::Invoker::builder().service("Feed", server.url()).security(security).build().unwrap();
    let feed = FeedProxy::new(invoker).unwrap();
    let alice = intercall::UserContext::new(intercall::UserType::Customer, "alice").unwrap();
    let items: Vec<_> = alice.scope(async { feed.whoami(3).await.unwrap().collect().await }).await;
    assert_eq!(items, vec![Ok("alice".to_owned()), Ok("alice".into()), Ok("alice".into())]);
    // The signature covers the request: an unsigned one is refused before anything streams.
    let unsigned = post(&server, "Feed/whoami", r#"{"count":3}"#, &[]).await;
    assert_eq!(unsigned.status(), 401);
}

/// A raw request, as curl sends one.
async fn post(server: &TestServer, path: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().post(server.at(path)).header("content-type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn on_the_wire_a_stream_is_ndjson_frames_with_one_final_frame() {
    let (server, _, _) = feed().await;
    let reply = post(&server, "Feed/numbers", r#"{"count":3}"#, &[("x-probe", "must-not-echo")]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/x-ndjson");
    assert_eq!(reply.headers()["cache-control"], "no-store");
    // The reply's headers are made in the request's own map, emptied.
    assert!(reply.headers().get("x-probe").is_none(), "{:?}", reply.headers());
    assert_eq!(reply.text().await.unwrap(), "{\"item\":0}\n{\"item\":1}\n{\"item\":2}\n{\"end\":\"ok\"}\n");

    let reply = post(&server, "Feed/failing", r#"{"at":1}"#, &[]).await;
    assert_eq!(
        reply.text().await.unwrap(),
        "{\"item\":0}\n{\"end\":\"error\",\"error\":{\"kind\":\"service\",\"message\":\"Feed.failing returned FeedError::Broke\",\"type\":\"FeedError\",\"variant\":\"Broke\",\"value\":{\"Broke\":{\"at\":1}}}}\n"
    );

    // Before the first item, an error is an ordinary error reply.
    let reply = post(&server, "Feed/failing", r#"{"at":0}"#, &[("x-probe", "must-not-echo")]).await;
    assert_eq!((reply.status().as_u16(), reply.headers()["content-type"].to_str().unwrap()), (422, "application/json"));
    assert!(reply.headers().get("x-probe").is_none(), "{:?}", reply.headers());
    let reply = post(&server, "Feed/numbers", r#"{"count":"three"}"#, &[]).await;
    assert_eq!(reply.status(), 400);
}

#[tokio::test]
async fn the_request_s_deadline_ends_the_stream_with_a_final_frame() {
    let (server, _, counting) = feed().await;
    let reply = post(&server, "Feed/ticks", r#"{"every_ms":20}"#, &[("x-deadline-ms", "300")]).await;
    assert_eq!(reply.status(), 200);
    let text = reply.text().await.unwrap();
    let last = text.lines().last().unwrap();
    let last: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!((&last["end"], &last["error"]["kind"]), (&"error".into(), &"deadline_exceeded".into()), "{text}");
    assert!(text.lines().count() > 1, "items came before the deadline: {text}");
    assert!(eventually(|| counting.0.dropped.load(Ordering::SeqCst)).await);
}

#[tokio::test]
async fn an_unread_stream_with_a_call_id_does_not_hold_its_claim() {
    let (server, _, _) = feed().await;
    let call_id = uuid::Uuid::new_v4().to_string();
    let headers = [("x-call-id", call_id.as_str())];
    // The first request's stream starts, and nobody reads it.
    let unread = post(&server, "Feed/endless", r#"{"size":1024}"#, &headers).await;
    assert_eq!(unread.status(), 200);
    // A duplicate is answered at once: the items are not kept, nothing runs again.
    let duplicate =
        tokio::time::timeout(Duration::from_secs(10), post(&server, "Feed/endless", r#"{"size":1024}"#, &headers))
            .await
            .expect("the duplicate is answered while the first stream is unread");
    assert_eq!(duplicate.status(), 409);
    let body: serde_json::Value = serde_json::from_slice(&duplicate.bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "stream_started", "{body}");
    drop(unread);
    // Still the same answer once the first stream is gone.
    let again = post(&server, "Feed/endless", r#"{"size":1024}"#, &headers).await;
    assert_eq!(again.status(), 409);
    // Another body under the same id is a mismatch, as for a unary call.
    let other = post(&server, "Feed/endless", r#"{"size":1}"#, &headers).await;
    let other: serde_json::Value = serde_json::from_slice(&other.bytes().await.unwrap()).unwrap();
    assert_eq!(other["kind"], "call_id_mismatch");
}

#[tokio::test]
async fn a_typed_error_before_the_first_item_is_replayed_to_a_duplicate() {
    let (server, _, _) = feed().await;
    let call_id = uuid::Uuid::new_v4().to_string();
    let headers = [("x-call-id", call_id.as_str())];
    let first = post(&server, "Feed/failing", r#"{"at":0}"#, &headers).await;
    let (status, first) = (first.status(), first.bytes().await.unwrap());
    let again = post(&server, "Feed/failing", r#"{"at":0}"#, &headers).await;
    assert_eq!((again.status(), again.bytes().await.unwrap()), (status, first));
    assert_eq!(status, 422);
}

/// A TCP relay that passes everything on both ways and keeps a copy of the response
/// bytes it passed: what the client was sent.
async fn tapping_relay(upstream: std::net::SocketAddr) -> (String, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tapped = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tap = Arc::clone(&tapped);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let tap = Arc::clone(&tap);
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let mut buffer = vec![0; 4096];
                while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                    tap.lock().unwrap().extend_from_slice(&buffer[..n]);
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                requests.abort();
            });
        }
    });
    (format!("http://{addr}/"), tapped)
}

/// A stream idle for longer than the keep-alive interval is sent keep-alive frames,
/// and the client skips them. The interval is short; the implementation stays silent
/// until the test has seen two keep-alives, so nothing depends on timing.
#[tokio::test]
async fn an_idle_stream_is_sent_keep_alive_frames_that_the_client_skips() {
    let options = intercall::ServeOptions::default().stream_keepalive(Duration::from_millis(50));
    let implementation = Counting::default();
    let server = intercall_tests::spawn_with(FeedServer::new(implementation.clone()).into_router(), options).await;
    let two_keepalives = |text: &str| text.split_inclusive('\n').filter(|line| *line == "{}\n").count() >= 2;

    // As curl sees it: keep-alive frames while the stream is idle.
    let mut reply = post(&server, "Feed/pause", "{}", &[]).await;
    assert_eq!(reply.status(), 200);
    let mut text = String::new();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !two_keepalives(&text) {
            let chunk = reply.chunk().await.unwrap().expect("the stream goes on");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await;
    assert!(waited.is_ok(), "no two keep-alive frames within 10 s: {text:?}");
    implementation.0.gate.notify_one();
    text.push_str(&reply.text().await.unwrap());
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.first(), Some(&r#"{"item":0}"#), "{text}");
    assert_eq!(lines[lines.len() - 2..], [r#"{"item":1}"#, r#"{"end":"ok"}"#], "{text}");
    assert!(lines[1..lines.len() - 2].iter().all(|line| *line == "{}"), "{text}");

    // Through the proxy: the keep-alives reach the client, which gives only the items.
    let (url, tapped) = tapping_relay(server.addr).await;
    let feed = FeedProxy::new(invoker("Feed", &url)).unwrap();
    let mut items = feed.pause().await.unwrap();
    assert_eq!(items.next().await, Some(Ok(0)));
    let sent = || String::from_utf8_lossy(&tapped.lock().unwrap()).into_owned();
    assert!(eventually(|| sent().matches("\r\n{}\n\r\n").count() >= 2).await, "no keep-alives sent: {}", sent());
    implementation.0.gate.notify_one();
    assert_eq!(items.next().await, Some(Ok(1)));
    assert_eq!(items.next().await, None);
}
