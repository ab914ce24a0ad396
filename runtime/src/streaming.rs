//! [`Streaming`]: what a stream method returns, on both sides of the wire.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

/// The items of a stream method, in order: what the implementation returns and what
/// the proxy gives the caller, so a call site is the same for both.
///
/// A method declared `async fn watch(&self, ..) -> Result<Streaming<T, E>, E>` answers
/// with many items. An `Err` of the method itself is an error before the first item;
/// an `Err(E)` item is an error mid-stream, and ends the stream. Through a proxy, a
/// failure of the connection mid-stream is an `Err(E::from(CallError))` item, and
/// ends the stream too: the stream ends with `None` only when the server said it ended.
/// A `Streaming` ends after its first `Err` item whatever the wrapped stream would
/// yield next, so a local implementation behaves as a remote one does.
///
/// ```
/// use futures_util::stream;
/// # #[derive(Debug)] struct JobError;
/// # async fn example() {
/// // An implementation returns any `Stream` of `Result<T, E>`, wrapped:
/// let mut progress = intercall::Streaming::new(stream::iter([Ok::<u32, JobError>(50), Ok(100)]));
/// // The caller reads it the same way, local or remote:
/// while let Some(item) = progress.next().await {
///     println!("{}%", item.unwrap());
/// }
/// # }
/// ```
pub struct Streaming<T, E> {
    /// `None` once the stream has ended (its end, or its first error): dropped then.
    inner: Option<BoxStream<Result<T, E>>>,
}

type BoxStream<Item> = Pin<Box<dyn Stream<Item = Item> + Send + 'static>>;

impl<T, E> Streaming<T, E> {
    /// Wraps any stream of results: `futures_util::stream::unfold`, a channel's
    /// receiver stream, `async_stream::stream!`, ...
    pub fn new(stream: impl Stream<Item = Result<T, E>> + Send + 'static) -> Self {
        Self { inner: Some(Box::pin(stream)) }
    }

    /// The items of an iterator, all ready at once.
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = Result<T, E>>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures_util::stream::iter(items))
    }

    /// The next item; `None` once the stream has ended. (The same as
    /// `StreamExt::next`, without importing it.)
    pub async fn next(&mut self) -> Option<Result<T, E>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T, E> Stream for Streaming<T, E> {
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = inner.as_mut().poll_next(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.inner = None;
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), |inner| inner.size_hint())
    }
}

impl<T, E> fmt::Debug for Streaming<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming").finish_non_exhaustive()
    }
}
