//! Issue 17 item 1: the server's connection limits, over real loopback sockets with a
//! raw `TcpStream` client. Each limit is configured small (200 ms) and each wait is
//! bounded generously (10 s): the tests assert what happened (the connection was
//! closed, a 408 came), never how long it took.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use intercall::{CallError, Security, ServeOptions};
use intercall_tests::{TestServer, spawn_with};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// The bound on every wait: a guard against hangs, not a measurement.
const BOUND: Duration = Duration::from_secs(10);
/// A limit under test.
const SHORT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum GateError {
    Unavailable(CallError),
}

impl From<CallError> for GateError {
    fn from(error: CallError) -> Self {
        GateError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Gate {
    /// Answers at once.
    async fn ping(&self) -> Result<String, GateError>;
    /// Signals `entered`, waits for a permit of `release`, then counts itself finished.
    async fn hold(&self) -> Result<String, GateError>;
}

/// What a test observes of the `hold` runs.
struct Observed {
    entered: Notify,
    release: Semaphore,
    finished: AtomicUsize,
    finished_notify: Notify,
    cancelled: AtomicUsize,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            entered: Notify::new(),
            release: Semaphore::new(0),
            finished: AtomicUsize::new(0),
            finished_notify: Notify::new(),
            cancelled: AtomicUsize::new(0),
        }
    }
}

struct TestGate(Arc<Observed>);

/// Counts a `hold` run dropped before its end.
struct CancelGuard(Arc<Observed>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
            self.0.finished_notify.notify_one();
        }
    }
}

impl Gate for TestGate {
    async fn ping(&self) -> Result<String, GateError> {
        Ok("pong".into())
    }

    async fn hold(&self) -> Result<String, GateError> {
        let mut guard = CancelGuard(Arc::clone(&self.0), false);
        self.0.entered.notify_one();
        self.0.release.acquire().await.expect("never closed").forget();
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        guard.1 = true;
        self.0.finished_notify.notify_one();
        Ok("released".into())
    }
}

fn options() -> ServeOptions {
    // Everything long but the limit under test.
    ServeOptions::default().header_read_timeout(BOUND * 3).body_read_timeout(BOUND * 3).idle_timeout(BOUND * 3)
}

async fn serve(options: ServeOptions) -> (TestServer, Arc<Observed>) {
    let observed = Arc::new(Observed::default());
    let server = spawn_with(GateServer::new(TestGate(Arc::clone(&observed))).into_router(), options).await;
    (server, observed)
}

fn head(path: &str, extra: &str, content_length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: {content_length}\r\n\r\n"
    )
}

/// Reads until the server closes the connection (EOF or reset); what it sent first.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open; it sent: {}", String::from_utf8_lossy(&received));
    received
}

/// `received` as text once it holds a whole HTTP/1.1 response (head and
/// `content-length` body).
fn whole_response(received: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(received);
    let end = text.find("\r\n\r\n")?;
    let length = text[..end]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (received.len() >= end + 4 + length).then(|| text.into_owned())
}

/// Reads one whole HTTP/1.1 response (head and `content-length` body).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(BOUND, async {
        loop {
            let n = stream.read(&mut buffer).await.expect("read a response");
            assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buffer[..n]);
            if let Some(text) = whole_response(&received) {
                return text;
            }
        }
    })
    .await;
    read.expect("a response within the bound")
}

#[tokio::test]
async fn a_slowloris_head_is_closed_after_the_header_timeout() {
    let (server, _) = serve(options().header_read_timeout(SHORT)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = head("/Gate/ping", "", 2) + "{}";
    // One byte per 20 ms: the whole head would take over a second.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0;
    for byte in request.bytes() {
        pace.tick().await;
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        sent += 1;
        // The server may have closed already: stop as soon as it has.
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::ZERO, stream.read(&mut probe)).await {
            break;
        }
    }
    let received = read_until_closed(&mut stream).await;
    assert!(sent < request.len(), "the whole request was sent ({sent} bytes) before the server closed");
    assert!(!String::from_utf8_lossy(&received).contains("200 OK"), "the slow request was served");
}

/// The header-read timeout counts again from the end of each reply: a kept-alive
/// connection whose next head stalls is closed too.
#[tokio::test]
async fn a_stalled_second_head_is_closed_after_the_header_timeout() {
    let (server, _) = serve(options().header_read_timeout(SHORT)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all((head("/Gate/ping", "", 2) + "{}").as_bytes()).await.unwrap();
    let reply = read_response(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("pong"), "{reply}");
    // Part of a second head, then nothing.
    stream.write_all(b"POST /Gate/ping HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let after = read_until_closed(&mut stream).await;
    assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
}

/// A graceful shutdown waits for the requests in flight, not for a head that does not
/// come: the header-read timeout still closes it, and the server stops.
#[tokio::test]
async fn a_stalled_head_does_not_hold_a_graceful_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = GateServer::new(TestGate(Arc::default())).into_router();
    let serving = tokio::spawn(intercall::serve_with_graceful_shutdown(
        listener,
        router,
        options().header_read_timeout(SHORT),
        async move {
            let _ = stopped.await;
        },
    ));
    // A fresh connection with part of a head.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /Gate/ping HTTP/1.1\r\n").await.unwrap();
    // A later connection served: the loop has accepted the first one before it.
    let mut other = TcpStream::connect(addr).await.unwrap();
    other.write_all((head("/Gate/ping", "connection: close\r\n", 2) + "{}").as_bytes()).await.unwrap();
    let reply = read_response(&mut other).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    stop.send(()).unwrap();
    let after = read_until_closed(&mut slow).await;
    assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
    tokio::time::timeout(BOUND, serving).await.expect("the server stopped").unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_the_connection_is_closed() {
    let (server, _) = serve(options().body_read_timeout(SHORT)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // The head promises 100 bytes; 2 come, then nothing.
    stream.write_all((head("/Gate/ping", "", 100) + "{ ").as_bytes()).await.unwrap();
    let received = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains(r#""kind":"request_timeout""#), "{received}");
    assert!(received.contains("body-read timeout of 200 ms"), "{received}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (server, _) = serve(options().idle_timeout(SHORT)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all((head("/Gate/ping", "", 2) + "{}").as_bytes()).await.unwrap();
    let reply = read_response(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("pong"), "{reply}");
    // Kept alive after the reply, then closed for want of a next request.
    let after = read_until_closed(&mut stream).await;
    assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
}

#[tokio::test]
async fn an_idle_http2_connection_gets_a_goaway() {
    let (server, _) = serve(options().idle_timeout(SHORT)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // h2c with prior knowledge: the preface and an empty SETTINGS frame.
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let received = read_until_closed(&mut stream).await;
    // Frames: 3 bytes of length, 1 of type. The server's SETTINGS (4), then GOAWAY (7).
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= received.len() {
        let length =
            usize::from(received[at]) << 16 | usize::from(received[at + 1]) << 8 | usize::from(received[at + 2]);
        types.push(received[at + 3]);
        at += 9 + length;
    }
    assert_eq!(types.first(), Some(&4), "the server speaks HTTP/2: {received:?}");
    assert!(types.contains(&7), "no GOAWAY before the close: frame types {types:?}");
}

#[tokio::test]
async fn over_the_connection_limit_a_connection_waits_for_a_free_slot() {
    let (server, _) = serve(options().max_connections(Some(2))).await;
    let request = head("/Gate/ping", "", 2) + "{}";
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    // Both are served (so both hold a slot).
    for stream in [&mut first, &mut second] {
        stream.write_all(request.as_bytes()).await.unwrap();
        assert!(read_response(stream).await.contains("pong"));
    }
    // A third connects (the kernel's backlog) but is not served while both are open.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(request.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "the third connection was served over the limit of 2: {early:?}");
    // One closes: the third gets its slot and its reply.
    drop(first);
    assert!(read_response(&mut third).await.contains("pong"));
    // The second still works.
    second.write_all(request.as_bytes()).await.unwrap();
    assert!(read_response(&mut second).await.contains("pong"));
}

#[tokio::test]
async fn a_signed_server_refuses_an_unsigned_request_before_its_body() {
    let observed = Arc::new(Observed::default());
    let security = Security::shared_secret("a secret of at least 16 bytes").unwrap();
    let router = GateServer::new(TestGate(Arc::clone(&observed))).security(security).into_router();
    let server = spawn_with(router, options()).await;
    for extra in ["", "x-intercall-timestamp: 1\r\nx-intercall-signature: v1=00\r\n"] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // 1 MiB announced, none of it sent: the reply cannot wait for it.
        stream.write_all(head("/Gate/ping", extra, 1 << 20).as_bytes()).await.unwrap();
        let reply = read_response(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 401") && reply.contains(r#""kind":"unauthorized""#), "{extra}: {reply}");
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_a_call_in_flight_finish() {
    let observed = Arc::new(Observed::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = GateServer::new(TestGate(Arc::clone(&observed))).into_router();
    let serving = tokio::spawn(intercall::serve_with_graceful_shutdown(listener, router, options(), async move {
        let _ = stopped.await;
    }));
    let gate = GateProxy::new(intercall_tests::invoker("Gate", &url)).unwrap();
    let call = tokio::spawn(async move { gate.hold().await });
    tokio::time::timeout(BOUND, observed.entered.notified()).await.expect("the call started");
    stop.send(()).unwrap();
    observed.release.add_permits(1);
    let reply = tokio::time::timeout(BOUND, call).await.expect("the call ended").unwrap();
    assert_eq!(reply, Ok("released".to_owned()));
    tokio::time::timeout(BOUND, serving).await.expect("the server stopped").unwrap().unwrap();
}

/// Issue 17 item 7: a call without a call id was cancelled halfway when its client
/// disconnected. It now runs to its end, as a call with a call id does.
#[tokio::test]
async fn a_plain_call_whose_client_disconnects_runs_to_its_end() {
    // One connection at a time: the second connection is served only once the server
    // has dropped the first, so the run is past its connection when it is released.
    let (server, observed) = serve(options().max_connections(Some(1))).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client.write_all((head("/Gate/hold", "", 2) + "{}").as_bytes()).await.unwrap();
    tokio::time::timeout(BOUND, observed.entered.notified()).await.expect("the run started");
    drop(client);
    let mut next = TcpStream::connect(server.addr).await.unwrap();
    next.write_all((head("/Gate/ping", "", 2) + "{}").as_bytes()).await.unwrap();
    assert!(read_response(&mut next).await.contains("pong"), "the server dropped the first connection");
    observed.release.add_permits(1);
    tokio::time::timeout(BOUND, async {
        while observed.finished.load(Ordering::SeqCst) + observed.cancelled.load(Ordering::SeqCst) == 0 {
            observed.finished_notify.notified().await;
        }
    })
    .await
    .expect("the run ended one way or the other");
    assert_eq!(observed.cancelled.load(Ordering::SeqCst), 0, "the run was cancelled when its client left");
    assert_eq!(observed.finished.load(Ordering::SeqCst), 1);
}

/// Issue 17 item 3, the documented gap (docs/SECURITY.md): a signed call replayed
/// unchanged within the window runs again when it has no `x-call-id`, and does not
/// when it has one (the store answers the replay).
#[tokio::test]
async fn a_signed_replay_runs_again_only_without_a_call_id() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    const SECRET: &str = "a secret of at least 16 bytes";
    let observed = Arc::new(Observed::default());
    let router = GateServer::new(TestGate(Arc::clone(&observed)))
        .security(Security::shared_secret(SECRET).unwrap())
        .into_router();
    let server = spawn_with(router, options()).await;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let signed = |call_id: &str| {
        let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        let body_sha = hex(&Sha256::digest(b"{}"));
        let canonical = format!("intercall-v1\nGate/hold\n{timestamp}\n{call_id}\n\n\n\n{body_sha}");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(canonical.as_bytes());
        let id = if call_id.is_empty() { String::new() } else { format!("x-call-id: {call_id}\r\n") };
        let extra = format!(
            "{id}x-intercall-timestamp: {timestamp}\r\nx-intercall-signature: v1={}\r\n",
            hex(&mac.finalize().into_bytes())
        );
        head("/Gate/hold", &extra, 2) + "{}"
    };
    observed.release.add_permits(100);
    for (call_id, runs) in [("", 2), ("67e55044-10b1-426f-9247-bb680e5fe0c8", 1)] {
        let before = observed.finished.load(Ordering::SeqCst);
        let request = signed(call_id);
        for _ in 0..2 {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let reply = read_response(&mut stream).await;
            assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("released"), "{reply}");
        }
        assert_eq!(observed.finished.load(Ordering::SeqCst) - before, runs, "call id `{call_id}`");
    }
}

/// Issue 17 item 1, "defaults that are safe": under a low file-descriptor limit, the
/// default connection limit (derived from it) leaves descriptors for the server's own
/// work, so a call that needs one still runs while half-sent requests hold every
/// connection the server takes. With the old fixed default of 10,000, the server
/// accepted until it had no descriptor left, and the call could not open its file.
/// The server is a child process started with `RLIMIT_NOFILE` = 256 (its default limit
/// is then 192); the half-sent requests outnumber the descriptors.
#[cfg(target_os = "linux")]
#[test]
fn under_a_low_descriptor_limit_the_default_connection_limit_keeps_descriptors_for_calls() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    const DESCRIPTORS: libc::rlim_t = 256;
    const EXPECTED_LIMIT: usize = 192;
    const HELD: usize = 300;

    /// The child, killed when the test ends however it ends.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let mut command = Command::new(env!("CARGO_BIN_EXE_fd_limited_server"));
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // SAFETY: between fork and exec the closure calls only `getrlimit` and `setrlimit`,
    // which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = DESCRIPTORS;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Child(command.spawn().expect("start fd_limited_server"));
    let pid = child.0.id();
    let stdout = child.0.stdout.take().expect("piped");
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx.recv_timeout(BOUND).expect("the server says where it listens");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (addr, limit) = match words[..] {
        ["listening", addr, "max_connections", limit] => (addr.to_owned(), limit.to_owned()),
        _ => panic!("unexpected first line: {line:?}"),
    };

    // The child's sockets before any connection: its listener, and whatever its runtime
    // holds (tokio's signal driver, in a build where the feature is on, holds a
    // socketpair). Every socket past these is a connection it accepted.
    let sockets = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| {
                let links = entries.filter_map(Result::ok).filter_map(|entry| std::fs::read_link(entry.path()).ok());
                links.filter(|link| link.to_string_lossy().starts_with("socket:")).count()
            })
            .unwrap_or(0)
    };
    let own_sockets = sockets();
    let accepted = || sockets().saturating_sub(own_sockets);

    // A good client's connection, made before the flood and kept alive.
    let mut good = std::net::TcpStream::connect(&addr).unwrap();
    good.set_read_timeout(Some(BOUND)).unwrap();
    let call = head("/Descriptors/open_file", "", 2) + "{}";
    // One request on `stream`, and its whole response (head and `content-length` body).
    let roundtrip = |stream: &mut std::net::TcpStream| {
        stream.write_all(call.as_bytes()).unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(text) = whole_response(&received) {
                return text;
            }
            match stream.read(&mut buffer) {
                // Closed, or the read timeout (BOUND): what came, for the assertion.
                Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let reply = roundtrip(&mut good);
    assert!(reply.starts_with("HTTP/1.1 200"), "before the flood: {reply}");

    // More half-sent requests than the server has descriptors: each sends a head
    // without its end, and holds its connection (the header timeout is 30 s).
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(b"POST /Descriptors/open_file HTTP/1.1\r\nhost: x\r\n").unwrap();
        held.push(stream);
    }
    // Wait (bounded) until the server has taken every connection it will: as many as
    // its limit, or (with the old default of 10,000) as many as its descriptors allowed.
    let started = std::time::Instant::now();
    while accepted() < EXPECTED_LIMIT && started.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(accepted() >= EXPECTED_LIMIT, "the server took only {} connections", accepted());

    // The good client's call needs one more descriptor: the reserve has it.
    let reply = roundtrip(&mut good);
    assert!(reply.starts_with("HTTP/1.1 200"), "with every connection taken, the call failed: {reply}");
    assert_eq!(limit, EXPECTED_LIMIT.to_string(), "the default limit under {DESCRIPTORS} descriptors");
    assert_eq!(accepted(), EXPECTED_LIMIT, "the held connections past the limit wait in the backlog");
    drop(held);
}
