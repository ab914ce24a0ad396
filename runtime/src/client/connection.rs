//! Which pooled connections have carried an exchange before, so that a request that
//! meets one the server closed while it sat idle can be told from one that reached a
//! server which then failed.
//!
//! hyper resends a request only when it never wrote it. A keep-alive connection that
//! the server closed (its idle timeout, a restart) takes the request and closes without
//! a reply; on a connection that has answered before, that means the request met a
//! stale connection, not a failed server, and it is safe and right to resend it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::http::{Extensions, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// Set once a connection has answered a request: carried in every response's
/// extensions and every error's connection info.
#[derive(Clone, Default)]
pub(crate) struct Answered(Arc<AtomicBool>);

impl Answered {
    /// Marks the connection behind `extensions` (a response's) as one that answers.
    pub(crate) fn mark(extensions: &Extensions) {
        if let Some(answered) = extensions.get::<Answered>() {
            answered.0.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the connection an error happened on had answered before.
    pub(crate) fn before(connected: Option<&Connected>) -> bool {
        let mut extensions = Extensions::new();
        if let Some(connected) = connected {
            connected.get_extras(&mut extensions);
        }
        extensions.get::<Answered>().is_some_and(|answered| answered.0.load(Ordering::Relaxed))
    }
}

/// A connector whose connections carry an [`Answered`] flag.
#[derive(Clone)]
pub(crate) struct Tracking<C>(pub(crate) C);

impl<C> tower_service::Service<Uri> for Tracking<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = Tracked<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(Tracked { io: connecting.await?, answered: Answered::default() }) })
    }
}

/// A connection with its [`Answered`] flag; reads and writes go straight through.
pub(crate) struct Tracked<T> {
    io: T,
    answered: Answered,
}

impl<T: Connection> Connection for Tracked<T> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.answered.clone())
    }
}

impl<T: Read + Unpin> Read for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
