//! A fault-injecting HTTP/1.1 proxy on loopback, between a real client and a real
//! server: it forwards each request, and per request (decided by a policy that sees
//! the call headers) passes the response, drops it after the server has run the
//! method, cuts it halfway, answers in the server's place, or answers in its place
//! after it ran (a gateway that gave up).
//!
//! It understands just enough HTTP for intercall's traffic: requests and responses
//! with `content-length` bodies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// One request as the policy sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// 0 for the first request through the proxy, then 1, 2, ...
    pub index: usize,
    pub path: String,
    pub call_id: Option<String>,
    pub attempt: Option<u32>,
    pub body: Vec<u8>,
}

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward it and pass the response back.
    Pass,
    /// Forward it (the server runs the method), then close the client's connection
    /// without a response.
    DropResponse,
    /// Forward it, then send the first half of the response and close.
    CutResponse,
    /// Do not forward it; answer with this status, extra header lines and JSON body.
    Respond { status: u16, headers: Vec<(String, String)>, body: String },
    /// Forward it (the server runs the method), then discard the server's response and
    /// answer with this status, these header lines (no `content-type` unless given) and
    /// body: a gateway that gave up on the reply.
    Replace { status: u16, headers: Vec<(String, String)>, body: String },
}

/// Decides, per request, which upstream gets it and what fault applies.
type Policy = dyn Fn(&Seen) -> (usize, Fault) + Send + Sync;

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<AtomicUsize>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream`.
    pub async fn start(upstream: SocketAddr, policy: impl Fn(&Seen) -> Fault + Send + Sync + 'static) -> Self {
        Self::start_routed(vec![upstream], move |seen| (0, policy(seen))).await
    }

    /// Starts a balancer in front of several `upstreams`: the policy picks, per
    /// request, the index of the upstream that gets it, and the fault.
    pub async fn start_routed(
        upstreams: Vec<SocketAddr>,
        policy: impl Fn(&Seen) -> (usize, Fault) + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(upstreams, policy, false).await
    }

    /// Starts a balancer that fails over as nginx's `proxy_next_upstream error` does:
    /// when the upstream the policy picks refuses the connection (its process is dead),
    /// the request goes to the next one that accepts. Nothing was sent to a refusing
    /// upstream, so this is always safe; a request already forwarded is never resent.
    pub async fn start_failover(
        upstreams: Vec<SocketAddr>,
        policy: impl Fn(&Seen) -> (usize, Fault) + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(upstreams, policy, true).await
    }

    async fn start_inner(
        upstreams: Vec<SocketAddr>,
        policy: impl Fn(&Seen) -> (usize, Fault) + Send + Sync + 'static,
        failover: bool,
    ) -> Self {
        let upstreams: Arc<[SocketAddr]> = upstreams.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let policy: Arc<Policy> = Arc::new(policy);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(AtomicUsize::new(0));
        let (seen_in, faults_in) = (Arc::clone(&seen), Arc::clone(&faults));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (policy, seen, faults) = (Arc::clone(&policy), Arc::clone(&seen_in), Arc::clone(&faults_in));
                let upstreams = Arc::clone(&upstreams);
                tokio::spawn(async move {
                    let _ = serve_connection(client, &upstreams, failover, &*policy, &seen, &faults).await;
                });
            }
        })
        .abort_handle();
        Self { addr, seen, faults, accept }
    }

    /// `http://127.0.0.1:port/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request that reached the proxy, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests got a fault other than `Pass`.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve_connection(
    mut client: TcpStream,
    upstreams: &[SocketAddr],
    failover: bool,
    policy: &Policy,
    seen: &Mutex<Vec<Seen>>,
    faults: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_message(&mut client, &mut buffer).await? else { return Ok(()) };
        let head = String::from_utf8_lossy(&request.head).into_owned();
        let seen_now = {
            let mut seen = seen.lock().unwrap();
            let entry = Seen {
                index: seen.len(),
                path: head.split_whitespace().nth(1).unwrap_or("").to_owned(),
                call_id: header(&head, "x-call-id").map(str::to_owned),
                attempt: header(&head, "x-call-attempt").and_then(|v| v.parse().ok()),
                body: request.body.clone(),
            };
            seen.push(entry.clone());
            entry
        };
        let (upstream, fault) = policy(&seen_now);
        let first = upstream % upstreams.len();
        if !matches!(fault, Fault::Pass) {
            faults.fetch_add(1, Ordering::SeqCst);
        }
        if let Fault::Respond { status, headers, body } = &fault {
            let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
            let response = format!(
                "HTTP/1.1 {status} Fault\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes()).await?;
            continue;
        }
        let mut server = connect(upstreams, first, failover).await?;
        server.write_all(&request.head).await?;
        server.write_all(&request.body).await?;
        let mut server_buffer = Vec::new();
        let Some(response) = read_message(&mut server, &mut server_buffer).await? else { return Ok(()) };
        let mut whole = response.head;
        whole.extend_from_slice(&response.body);
        match fault {
            Fault::Pass => client.write_all(&whole).await?,
            Fault::DropResponse => return Ok(()),
            Fault::CutResponse => {
                client.write_all(&whole[..whole.len() / 2]).await?;
                return Ok(());
            }
            Fault::Replace { status, headers, body } => {
                let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
                let response =
                    format!("HTTP/1.1 {status} Gateway\r\ncontent-length: {}\r\n{extra}\r\n{body}", body.len());
                client.write_all(response.as_bytes()).await?;
            }
            Fault::Respond { .. } => unreachable!("answered above"),
        }
    }
}

/// Connects to `upstreams[first]`, or with `failover`, to the first of the others (in
/// order after it) that accepts.
async fn connect(upstreams: &[SocketAddr], first: usize, failover: bool) -> std::io::Result<TcpStream> {
    let tries = if failover { upstreams.len() } else { 1 };
    let mut last = None;
    for i in 0..tries {
        match TcpStream::connect(upstreams[(first + i) % upstreams.len()]).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no upstream")))
}

struct Message {
    /// The start line and headers, with the final blank line.
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 message with a `content-length` body; `None` at a clean EOF.
async fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    const MAX_HEAD: usize = 64 * 1024;
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<u8> = buffer.drain(..head_end).collect();
    let text = String::from_utf8_lossy(&head);
    let length: usize = header(&text, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("body cut short"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer.drain(..length).collect();
    Ok(Some(Message { head, body }))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}
