//! Load shedding: a limit on the calls in flight, for a whole node (`[server]
//! max_in_flight`, shared by every server given the same settings) or for one method
//! (`XServer::method_max_in_flight`). A call over the limit is answered
//! `503 overloaded` with `Retry-After` at once, before its headers are checked, its
//! body read or anything decoded or run: shedding must cost less than serving, or it
//! does not relieve an overloaded node.
//!
//! A call holds its place from its arrival until both its reply is made and its run
//! has ended ([`InFlight`]): a run goes on when its client times out or disconnects
//! (`detach.rs`), and a stream method runs until its last frame, so both count for as
//! long as they run, and the limit bounds the runs at once, not only the requests.
//!
//! Not tower's `LoadShed` over `ConcurrencyLimit`: those shed through `poll_ready` and a
//! boxed error that a `HandleError` layer must turn back into a response, per route,
//! and their permit ends with the response future, not with a run that outlives it;
//! the whole policy is one `try_acquire` on a tokio semaphore, done here
//! (docs/RELIABILITY.md, "Load shedding on the server").

use std::future::Future;
use std::sync::Arc;

use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::Response;
use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServedMethod;
use super::reply::respond;
use crate::protocol::ErrorKind;
use crate::protocol::reply::framework_error;

/// What a shed call's `Retry-After` says, in seconds: the least HTTP can say above
/// zero. An intercall client with another endpoint does not wait for it: it sends its
/// next attempt to another endpoint after its usual backoff.
pub const SHED_RETRY_AFTER_SECS: u64 = 1;

/// A limit on calls in flight; clones share one count, so one limit given to several
/// servers (through [`ServerSettings`](crate::ServerSettings)) bounds them together.
///
/// ```
/// let limit = intercall::MaxInFlight::new(256);
/// assert_eq!(limit.limit(), 256);
/// ```
#[derive(Clone)]
pub struct MaxInFlight {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl MaxInFlight {
    /// At most `limit` calls in flight (at least 1, at most tokio's
    /// `Semaphore::MAX_PERMITS`; values outside are clamped).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self { permits: Arc::new(Semaphore::new(limit)), limit }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many calls are in flight under this limit now: requests not yet answered,
    /// and runs (streams among them) not yet ended.
    pub fn in_flight(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// A place for one more call, held until the returned permit drops; `None` when
    /// the limit is reached.
    pub(crate) fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// [`try_enter`](Self::try_enter), as a place the request and its run share.
    pub(crate) fn try_admit(&self) -> Option<InFlight> {
        self.try_enter().map(|permit| InFlight { _place: Some(Arc::new(permit)) })
    }
}

/// One call's place under a [`MaxInFlight`], shared by its request and its run (`None`
/// without a limit): the place is free again when every clone has dropped, that is
/// when the reply is made *and* the run has ended, even a run that went on detached
/// after its client left, or a stream that ran on after its reply's head was sent.
#[derive(Clone, Default)]
pub(crate) struct InFlight {
    /// Held for its drop, which frees the place when it is the last clone.
    _place: Option<Arc<OwnedSemaphorePermit>>,
}

impl InFlight {
    /// `future`, holding this place until it finishes or is dropped.
    pub(crate) fn during<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        // A combinator, not an `async fn`: an `async fn` keeps its argument beside the
        // future it awaits, so every such level held the run's future twice.
        future.map(move |output| {
            drop(self);
            output
        })
    }
}

impl std::fmt::Debug for MaxInFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxInFlight").field("limit", &self.limit).field("in_flight", &self.in_flight()).finish()
    }
}

/// The reply to a call over its limit.
pub(crate) fn shed(served: ServedMethod, limit: &MaxInFlight) -> Response {
    crate::telemetry::shed(served.service, served.method);
    let message = format!(
        "{}.{} was not run: the server has {} calls in flight, its limit (`max_in_flight`); retry, on another endpoint if there is one",
        served.service,
        served.method,
        limit.limit()
    );
    let mut response = respond(framework_error(ErrorKind::Overloaded, &message, None));
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(SHED_RETRY_AFTER_SECS));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_count_and_a_dropped_permit_frees_its_place() {
        let limit = MaxInFlight::new(2);
        let other = limit.clone();
        let first = limit.try_enter().expect("a place");
        let _second = other.try_enter().expect("a place");
        assert!(limit.try_enter().is_none(), "two in flight across the clones");
        assert_eq!(other.in_flight(), 2);
        drop(first);
        assert!(other.try_enter().is_some(), "the place was freed");
        assert_eq!(MaxInFlight::new(0).limit(), 1, "clamped");
    }

    #[tokio::test]
    async fn a_shared_place_frees_when_the_request_and_the_run_have_both_ended() {
        let limit = MaxInFlight::new(1);
        let request = limit.try_admit().expect("a place");
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(request.clone().during(async move {
            let _ = finished.await;
        }));
        drop(request);
        assert!(limit.try_admit().is_none(), "the run still holds the place after its request ended");
        finish.send(()).unwrap();
        run.await.unwrap();
        assert_eq!(limit.in_flight(), 0, "the run ended: the place is free");
        assert!(limit.try_admit().is_some());
    }
}
