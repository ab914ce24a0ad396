//! The accept loop behind [`serve`](crate::serve): HTTP/1.1 and HTTP/2 (h2c, prior
//! knowledge) on one port, with a timer, so that no connection is held open forever.
//!
//! `axum::serve` builds hyper's connections without a timer, which silently disables
//! hyper's header-read timeout, and has no body or idle limit: a client sending a
//! header byte a second, or half a body, held its connection (and a file descriptor)
//! for good. Here every connection has:
//!
//! - a **header-read timeout** (hyper's, HTTP/1.1): the whole request head must arrive
//!   within it, counted from the connection's opening or the end of its previous
//!   reply, so it also closes an idle HTTP/1.1 keep-alive connection (hyper sets the
//!   deadline through a [`HeadTimer`]; the connection's watchdog enforces it);
//! - a **body-read timeout**: the handler reads the body within it, or answers
//!   `408 request_timeout` and closes the connection (the request carries the limit to
//!   the handler in a [`ServeTimings`] extension);
//! - an **idle timeout**: a connection with no request in flight for this long is shut
//!   down gracefully (HTTP/2 gets a GOAWAY);
//! - a **stream keep-alive interval**: a stream reply silent for this long is sent a
//!   keep-alive frame (PROTOCOL.md §4.3; also in the [`ServeTimings`] extension);
//! - a **connection limit**: over it, the loop stops accepting until a connection
//!   ends; new connections wait in the kernel's backlog. By default it is derived from
//!   the process's file-descriptor limit ([`default_max_connections`]), so that
//!   connections held open by slow or hostile clients cannot take the descriptors the
//!   server's own work needs (its store, its client connections, its files).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower_service::Service;

use super::side_wake::SideWake;

/// The default [`ServeOptions::header_read_timeout`]: 30 seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`ServeOptions::body_read_timeout`]: 30 seconds.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`ServeOptions::idle_timeout`]: 90 seconds, above the intercall
/// client's 20-second pool idle timeout, so that the client drops an idle connection
/// before the server does (an idle HTTP/1.1 connection is also closed by the header-read
/// timeout, 30 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most connections the default limit allows, however high the process's
/// file-descriptor limit: 10,000. The default itself is [`default_max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The least connections the default limit allows, however low the process's
/// file-descriptor limit.
const MIN_DEFAULT_MAX_CONNECTIONS: usize = 32;
/// The fewest file descriptors the default limit leaves for everything but served
/// connections: the listener, the runtime's own, the call-id store's and the event
/// streams' Redis connections, the client's pooled connections to other services, log
/// and other files.
const MIN_RESERVED_DESCRIPTORS: u64 = 64;

/// The default connection limit of [`ServeOptions`]: the process's file-descriptor
/// limit (the soft `RLIMIT_NOFILE`, what `ulimit -n` shows) less a reserve of a quarter
/// of it (at least 64 descriptors) for the server's own work, at least 32 and at most
/// [`DEFAULT_MAX_CONNECTIONS`] (which is also the default when the limit is unlimited
/// or cannot be read, as off Unix). So under the common limit of 1,024 descriptors it
/// is 768, under 256 (macOS's default) 192, and from 13,333 descriptors up 10,000.
///
/// Why: served connections past the file-descriptor limit do not wait in the backlog
/// as connections past this limit do; they make `accept` fail, and while they are held
/// (a slow client, half a request) every call that needs a descriptor of its own (a
/// store, a connection to another service, a file) fails too. Read when the server
/// starts, so a limit raised before then counts.
///
/// ```
/// let limit = intercall::default_max_connections();
/// assert!((32..=intercall::DEFAULT_MAX_CONNECTIONS).contains(&limit));
/// assert_eq!(intercall::ServeOptions::default().get_max_connections(), Some(limit));
/// ```
pub fn default_max_connections() -> usize {
    max_connections_for_descriptors(descriptor_limit())
}

/// The default connection limit under a soft file-descriptor limit of `limit` (`None`:
/// unlimited, or unknown).
fn max_connections_for_descriptors(limit: Option<u64>) -> usize {
    let Some(limit) = limit else { return DEFAULT_MAX_CONNECTIONS };
    let reserve = (limit / 4).max(MIN_RESERVED_DESCRIPTORS);
    let available = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    available.clamp(MIN_DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS)
}

/// The process's soft file-descriptor limit; `None` when unlimited or unknown.
#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes one `rlimit` through a pointer to a valid, owned one.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    // `rlim_t` is `u64` on most targets, `u32` on a few 32-bit ones.
    #[allow(clippy::useless_conversion)]
    let soft = u64::from(limit.rlim_cur);
    Some(soft)
}

/// No `RLIMIT_NOFILE` to read off Unix.
#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// A connection limit as set: derived from the file-descriptor limit when the server
/// starts, or set explicitly (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionLimit {
    FromDescriptorLimit,
    Set(Option<usize>),
}

impl ConnectionLimit {
    fn resolve(self) -> Option<usize> {
        match self {
            ConnectionLimit::FromDescriptorLimit => Some(default_max_connections()),
            ConnectionLimit::Set(limit) => limit,
        }
    }
}

/// How [`serve_with`](crate::serve_with) treats connections: its timeouts and its
/// connection limit. `[server]` in services.toml sets them (`header_read_timeout_ms`,
/// `body_read_timeout_ms`, `idle_timeout_ms`, `max_connections`), and
/// [`ServerSettings::serve_options`](crate::ServerSettings::serve_options) carries them.
///
/// ```
/// use std::time::Duration;
/// let options = intercall::ServeOptions::default()
///     .header_read_timeout(Duration::from_secs(10))
///     .max_connections(Some(2_000));
/// assert_eq!(options.get_max_connections(), Some(2_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    idle_timeout: Duration,
    stream_keepalive: Duration,
    max_connections: ConnectionLimit,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stream_keepalive: crate::protocol::stream::KEEPALIVE_INTERVAL,
            max_connections: ConnectionLimit::FromDescriptorLimit,
        }
    }
}

impl ServeOptions {
    /// How long a client may take to send a whole HTTP/1.1 request head, counted from
    /// the connection's opening or the end of its previous reply; then the connection
    /// is closed without a reply. So an idle HTTP/1.1 keep-alive connection is closed
    /// after the shorter of this and [`idle_timeout`](Self::idle_timeout). A zero
    /// duration is taken as 1 ms.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a request's whole body may take to arrive once its head has: past it,
    /// the request gets `408 request_timeout`, nothing runs, and the connection is
    /// closed. A zero duration is taken as 1 ms.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a connection may go without a request in flight before it is shut
    /// down gracefully (HTTP/2: a GOAWAY). A zero duration is taken as 1 ms.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a stream reply may stay silent before the server sends a keep-alive
    /// frame (`{}`, PROTOCOL.md §4.3; default 15 s): below the idle timeout of any
    /// proxy or load balancer between the server and its clients. A zero duration is
    /// taken as 1 ms.
    pub fn stream_keepalive(mut self, interval: Duration) -> Self {
        self.stream_keepalive = interval.max(Duration::from_millis(1));
        self
    }

    /// The most connections served at once (`None`: no limit), in place of the default
    /// derived from the process's file-descriptor limit ([`default_max_connections`]).
    /// At the limit, no new connection is accepted until one ends: new ones wait in the
    /// listener's backlog (and are refused by the kernel when it is full). Keep it well
    /// below the file-descriptor limit (`ulimit -n`), so that the server's store, its
    /// connections to other services and its files still get descriptors when every
    /// connection is taken. `Some(0)` is taken as 1.
    pub fn max_connections(mut self, limit: Option<usize>) -> Self {
        self.max_connections = ConnectionLimit::Set(limit.map(|n| n.max(1)));
        self
    }

    /// The header-read timeout.
    pub fn get_header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// The body-read timeout.
    pub fn get_body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// The idle timeout.
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The connection limit: the one set, or the default derived from the process's
    /// file-descriptor limit now ([`default_max_connections`]).
    pub fn get_max_connections(&self) -> Option<usize> {
        self.max_connections.resolve()
    }
}

/// The body-read timeout and the stream keep-alive interval, handed to the handler in
/// each request's extensions (one extension, so one insertion per request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeTimings {
    pub(crate) body_read: Duration,
    pub(crate) stream_keepalive: Duration,
    /// The address the connection was accepted on (the server span's `server.address`
    /// when a request names none).
    pub(crate) local_addr: Option<std::net::SocketAddr>,
}

/// Serves `router` on `listener` with `options` until `shutdown` completes, then stops
/// accepting, lets every connection finish the requests it has in flight, and returns.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    // HTTP/1.1's timer is set per connection (`Connection::serve`): a `HeadTimer`.
    builder.http1().header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    // The default is read now, from the file-descriptor limit the server starts under.
    let limit = options.get_max_connections().map(|n| Arc::new(Semaphore::new(n)));
    // Every connection holds a receiver; `closed()` on the sender waits for them all.
    let (closing, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = match &limit {
            None => None,
            Some(limit) => tokio::select! {
                permit = Arc::clone(limit).acquire_owned() => Some(permit.expect("the semaphore is never closed")),
                () = &mut shutdown => break,
            },
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if accept_error_pause(&e) {
                        // Out of file descriptors, say: wait rather than spin.
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = Connection { builder: builder.clone(), router: router.clone(), options, _permit: permit };
        tokio::spawn(connection.serve(stream, closing_rx.clone()));
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing.send(true);
    closing.closed().await;
    Ok(())
}

/// Whether an accept error calls for a pause: not for a connection that failed
/// before it was accepted (the next one is fine), but for a shortage of file
/// descriptors or memory.
fn accept_error_pause(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return false;
    }
    tracing::error!("intercall server: cannot accept a connection: {error}; retrying in 1 s");
    true
}

/// One accepted connection and what it is served with.
struct Connection {
    builder: Builder<TokioExecutor>,
    router: Router,
    options: ServeOptions,
    /// The connection's slot under the limit, freed when the connection ends.
    _permit: Option<OwnedSemaphorePermit>,
}

/// When a connection last had no request in flight, and how many it has.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the last request ended.
    idle_since_ms: AtomicU64,
    /// While hyper reads an HTTP/1.1 request head: when it must have arrived, in
    /// nanoseconds after `started` (hyper's header-read deadline); 0 when no head is
    /// being read. Set through [`HeadTimer`], cleared when the head's request arrives.
    head_deadline_ns: AtomicU64,
}

impl Activity {
    /// The deadline of the request head hyper is reading, if it is reading one.
    fn head_deadline(&self) -> Option<Instant> {
        match self.head_deadline_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.started + Duration::from_nanos(ns)),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.started + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)))
    }
}

/// hyper's HTTP/1.1 timer, one per connection, used for its header-read timeout only.
///
/// hyper asks for a sleep until the head's deadline each time it starts reading a
/// request head, and drops it once the head has arrived. A Tokio sleep registered and
/// deregistered in the timer wheel for every request (hyper-util's `TokioTimer`, plus a
/// boxed sleep) was about 3% of a small call's server instructions. This timer only
/// records the deadline on the connection's [`Activity`], and its sleep is a unit that
/// never completes (boxing it allocates nothing). The connection's own watchdog, which
/// never sleeps past a head's deadline, closes the connection when the head is late:
/// the same deadline, counted from the same moment, with the same effect (the
/// connection closed without a reply) as hyper's own timer.
struct HeadTimer(Arc<Activity>);

/// The sleep [`HeadTimer`] gives hyper: the watchdog acts on the deadline instead.
struct HeadSleep;

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        let after = deadline.saturating_duration_since(self.0.started.into_std());
        let ns = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.0.head_deadline_ns.store(ns, Ordering::Release);
        Box::pin(HeadSleep)
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// Counts a request in flight on its connection, from its head to its reply.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        // Its head has arrived: no head is being read until hyper starts the next one.
        activity.head_deadline_ns.store(0, Ordering::Release);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.fetch_max(elapsed, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A reply body that keeps its request counted in flight until it ends.
struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut closing: watch::Receiver<bool>) {
        // Replies are written whole; without Nagle they leave at once.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_deadline_ns: AtomicU64::new(0),
        });
        let mut builder = self.builder;
        builder.http1().timer(HeadTimer(Arc::clone(&activity)));
        let head_timeout = self.options.header_read_timeout;
        let timings = ServeTimings {
            body_read: self.options.body_read_timeout,
            stream_keepalive: self.options.stream_keepalive,
            local_addr: stream.local_addr().ok(),
        };
        let router = self.router;
        let requests = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(timings);
            let in_flight = InFlight::new(&requests);
            let reply = router.clone().call(request.map(Body::new));
            async move {
                let mut reply = reply.await;
                // A stream's reply is in flight until its body ends, not when its head
                // leaves: the idle timeout must not close a connection mid-stream.
                if let Ok(response) = &mut reply {
                    if response.extensions().get::<super::stream::StreamReply>().is_some() {
                        let body = std::mem::take(response.body_mut());
                        *response.body_mut() = Body::new(InFlightBody { body, _in_flight: in_flight });
                        return reply;
                    }
                }
                drop(in_flight);
                reply
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let idle = self.options.idle_timeout;
        // The watchdog never sleeps longer than the header-read timeout, so it wakes by
        // the deadline of any head hyper starts reading meanwhile (that deadline is at
        // least one header-read timeout away), without being reset for every request.
        let watchdog = tokio::time::sleep(idle.min(head_timeout));
        tokio::pin!(watchdog);
        // Completes when the server shuts down; polled until it has, once.
        let shutdown = closing.changed();
        tokio::pin!(shutdown);
        let (side, side_waker) = SideWake::new();
        let mut shutting_down = false;
        // After an idle connection's graceful shutdown: when it is dropped if still open.
        let mut drop_at: Option<Instant> = None;
        loop {
            // The connection at every wake-up; its watchers only when one of them woke
            // the task, or after one fired or was changed (`side_wake.rs`).
            let event = std::future::poll_fn(|cx| {
                let watchers_due = side.due(cx);
                if connection.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Watched::Ended);
                }
                if watchers_due {
                    let mut watching = Context::from_waker(&side_waker);
                    if !shutting_down && shutdown.as_mut().poll(&mut watching).is_ready() {
                        return Poll::Ready(Watched::Shutdown);
                    }
                    if watchdog.as_mut().poll(&mut watching).is_ready() {
                        return Poll::Ready(Watched::Watchdog);
                    }
                }
                Poll::Pending
            })
            .await;
            side.poll_again();
            match event {
                Watched::Ended => break,
                // A shutdown: finish what is in flight, take nothing new.
                Watched::Shutdown => {
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                Watched::Watchdog => {
                    let now = Instant::now();
                    let head = activity.head_deadline();
                    // A request head late (HTTP/1.1, hyper's header-read timeout): the
                    // connection is closed, also during a shutdown. An idle connection
                    // that has not closed one more idle period after its graceful
                    // shutdown (an HTTP/2 peer that never answers the GOAWAY's ping) is
                    // dropped.
                    if head.is_some_and(|deadline| deadline <= now) || drop_at.is_some_and(|at| at <= now) {
                        break;
                    }
                    let next = match (drop_at, activity.idle_since()) {
                        (Some(at), _) => at,
                        // Shutting down: only request heads are watched.
                        _ if shutting_down => now + head_timeout,
                        (None, Some(since)) if since + idle <= now => {
                            connection.as_mut().graceful_shutdown();
                            shutting_down = true;
                            drop_at = Some(now + idle);
                            now + idle
                        }
                        (None, Some(since)) => since + idle,
                        (None, None) => now + idle,
                    };
                    let next = next.min(now + head_timeout);
                    watchdog.as_mut().reset(head.map_or(next, |deadline| next.min(deadline)));
                }
            }
        }
    }
}

/// What ended a wait of a connection's task.
enum Watched {
    /// The connection is done.
    Ended,
    /// The server is shutting down.
    Shutdown,
    /// The watchdog's sleep ended: a head may be late, the connection idle.
    Watchdog,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's shutdown and the watchdog's sleep end in the same timer tick: one
    /// poll finds both ready and returns the shutdown. The watchdog, fired (its waker
    /// taken) but not polled, must still be polled after that (`side.poll_again()`):
    /// it alone closes a stalled head after a graceful shutdown. Paused time: the
    /// clock moves only when every task waits.
    #[tokio::test(start_paused = true)]
    async fn a_shutdown_in_the_watchdog_s_tick_still_leaves_the_watchdog_watching() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (idle, head) = (Duration::from_secs(1), Duration::from_secs(5));
        let t0 = Instant::now();
        let options = ServeOptions::default().idle_timeout(idle).header_read_timeout(head);
        // The signal's sleep is registered before the connection's watchdog, for the
        // same tick.
        let signal = async move { tokio::time::sleep_until(t0 + idle).await };
        let serving = tokio::spawn(crate::serve_with_graceful_shutdown(listener, Router::new(), options, signal));
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(Instant::now(), t0, "the connection started at t0");
        let mut buffer = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match slow.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a stalled head outlived a graceful shutdown by a minute");
        assert!(Instant::now() - t0 <= Duration::from_secs(6), "{:?}", Instant::now() - t0);
        let _ = tokio::time::timeout(Duration::from_secs(60), serving).await;
    }

    /// The shutdown signal's future completes once and is never polled again (polling it
    /// again panics and ends the connection's task): after the signal, the connection
    /// keeps serving the call it has in flight, across the wake-ups that follow.
    #[tokio::test(start_paused = true)]
    async fn after_the_shutdown_signal_the_call_in_flight_is_still_answered() {
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::sync::Notify;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (entering, releasing) = (Arc::clone(&entered), Arc::clone(&release));
        let router = Router::new().route(
            "/hold",
            axum::routing::post(move || async move {
                entering.notify_one();
                releasing.notified().await;
                "released"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let serving =
            tokio::spawn(crate::serve_with_graceful_shutdown(listener, router, ServeOptions::default(), signal));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"POST /hold HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), entered.notified()).await.expect("the call started");
        stop.send(()).unwrap();
        // The accept loop and the connection see the signal, and the connection's task
        // is polled again while the call is held.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut reply))
            .await
            .expect("the connection closes after its reply")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200 ") && reply.ends_with("released"), "{reply}");
        tokio::time::timeout(Duration::from_secs(60), serving).await.expect("the server stopped").unwrap().unwrap();
    }

    #[test]
    fn the_default_connection_limit_leaves_a_quarter_of_the_descriptors_to_the_server() {
        let derived = |limit| max_connections_for_descriptors(Some(limit));
        // The common limit, and macOS's default.
        assert_eq!(derived(1_024), 768);
        assert_eq!(derived(256), 192);
        // Below 256 descriptors the reserve is 64; the limit never goes under 32.
        assert_eq!(derived(200), 136);
        assert_eq!(derived(96), 32);
        assert_eq!(derived(10), 32);
        assert_eq!(derived(0), 32);
        // High limits stop at the ceiling.
        assert_eq!(derived(13_332), 9_999);
        assert_eq!(derived(13_333), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derived(1_048_576), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derived(u64::MAX), DEFAULT_MAX_CONNECTIONS);
        // Unlimited, or unknown.
        assert_eq!(max_connections_for_descriptors(None), DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn the_default_is_this_process_s_and_an_explicit_limit_wins() {
        let limit = descriptor_limit();
        assert_eq!(ServeOptions::default().get_max_connections(), Some(max_connections_for_descriptors(limit)));
        assert_eq!(ServeOptions::default().max_connections(Some(5)).get_max_connections(), Some(5));
        assert_eq!(ServeOptions::default().max_connections(None).get_max_connections(), None);
        assert_eq!(ServeOptions::default().max_connections(Some(0)).get_max_connections(), Some(1));
    }
}
