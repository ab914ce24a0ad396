//! A future that runs in place, and goes on as a task of its own if it is dropped
//! before it finishes.
//!
//! A run must never be cut short halfway: a client that gives up or disconnects must
//! cancel neither a call id's claim nor the run, with or without a call id. Spawning every run as a task
//! would give that too, but costs a task, a wake-up and a timer per call; most runs
//! finish on their first poll, so this one is polled by the request's own task, and
//! only a run still pending when the request is dropped moves to a task. The run
//! carries its call's place under `max_in_flight` (`shed.rs`), so a detached run still
//! counts against the limit until it ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// See the module documentation.
pub(crate) struct Detachable<T: Send + 'static>(Option<Boxed<T>>);

impl<T: Send + 'static> Detachable<T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self(Some(Box::pin(future)))
    }
}

impl<T: Send + 'static> Future for Detachable<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Taken out while it is polled: if the poll panics, the future is dropped with
        // the panic (its guards release the claim) rather than detached half-broken.
        let Some(mut future) = self.0.take() else { return Poll::Pending };
        match future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => {
                self.0 = Some(future);
                Poll::Pending
            }
        }
    }
}

impl<T: Send + 'static> Drop for Detachable<T> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else { return };
        // Without a runtime (it is shutting down) the run is dropped: its guard
        // releases the claim, so a retry can run it again.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                future.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_finished_future_gives_its_output_in_place() {
        assert_eq!(Detachable::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_future_dropped_while_pending_goes_on_as_a_task() {
        let (proceed, gate) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let mut run = Detachable::new(async move {
            let _ = gate.await;
            flag.store(true, Ordering::SeqCst);
            let _ = done_tx.send(());
        });
        // Polled once (pending on the gate), then dropped, as a request that times out.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        drop(run);
        proceed.send(()).unwrap();
        done_rx.await.expect("the detached run finished");
        assert!(finished.load(Ordering::SeqCst));
    }
}
