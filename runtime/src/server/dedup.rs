//! The call-id flow: a request with an `x-call-id` runs its method at most once.
//!
//! Claiming the id and running the implementation are [`Detachable`]: a client that
//! gives up and disconnects cancels neither, and leaves no claim behind. Duplicates
//! wait for that run (within their own deadline) or replay its stored reply.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;

use super::ServedMethod;
use super::detach::Detachable;
use super::reply;
use crate::calls::{CallKey, CallStore, Claim, OnStoreError, StoreError, StoredReply, Ticket};
use crate::protocol::ErrorKind;
use crate::protocol::reply::{EncodedReply, framework_error};
use crate::telemetry;

/// What an in-process store can tell before the body is decoded: a duplicate of a
/// finished call is replayed, one of a running call waits for it, and a mismatch is
/// refused, all without decoding the arguments. `Ok(Some(..))`: claimed, decode and
/// run; `Ok(None)`: the store answers only asynchronously, claim after decoding.
pub(crate) async fn before_decoding(
    served: ServedMethod,
    store: &Arc<dyn CallStore>,
    key: &CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
) -> Result<Option<ClaimGuard>, EncodedReply> {
    let outcome = match store.claim_at_once(key, fingerprint).map(settle) {
        // A store failure is left to the claim after decoding, which handles it.
        None | Some(Err(Outcome::StoreFailed(_))) => return Ok(None),
        Some(Ok(ticket)) => {
            return Ok(Some(ClaimGuard { store: Arc::clone(store), key: key.clone(), ticket: Some(ticket) }));
        }
        Some(Err(outcome)) => outcome,
    };
    // Boxed: a duplicate is the rare path, and unboxed its future made every request's
    // future (and so every move of it) larger by a kilobyte.
    let answering =
        Box::pin(answer(served, &**store, key, fingerprint, deadline, std::time::Instant::now(), Ok(outcome)));
    Err(answering.await)
}

/// Runs the call once per call id: `claimed` by [`before_decoding`], or claimed now.
///
/// The run is put in its [`Detachable`] here, before the returned future: an `async
/// fn` would keep `future` among its arguments for as long as it runs, a second copy
/// of the run in every request's future. Await the result at once.
pub(crate) fn run_once<T, E, Fut>(
    served: ServedMethod,
    store: Arc<dyn CallStore>,
    key: CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
    claimed: Option<ClaimGuard>,
    future: Fut,
) -> impl Future<Output = EncodedReply>
where
    T: Serialize + 'static,
    E: Serialize + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let started = std::time::Instant::now();
    // The claim, when not made yet, is part of the detachable future: a caller that
    // disconnects mid-claim cannot leave a claim behind in a store across the network.
    let run = match claimed {
        Some(guard) => Detachable::new(run_claimed(served, guard, future)),
        None => {
            let (store, key) = (Arc::clone(&store), key.clone());
            Detachable::new(async move {
                match settle(store.claim(&key, fingerprint).await) {
                    Ok(ticket) => run_claimed(served, ClaimGuard { store, key, ticket: Some(ticket) }, future).await,
                    Err(Outcome::StoreFailed(e)) => store_failed(served, e, future).await,
                    Err(outcome) => outcome,
                }
            })
        }
    };
    async move {
        match join(served, deadline, run).await {
            Ok(Outcome::Ran(reply)) => reply,
            // Boxed, as in `before_decoding`: only a call that did not run here needs it.
            outcome => Box::pin(answer(served, &*store, &key, fingerprint, deadline, started, outcome)).await,
        }
    }
}

/// The reply to what a claim and its run came to.
pub(super) async fn answer(
    served: ServedMethod,
    store: &dyn CallStore,
    key: &CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
    started: std::time::Instant,
    outcome: Result<Outcome, Joined>,
) -> EncodedReply {
    let event = |event| telemetry::store_event(served.service, served.method, event);
    match outcome {
        Ok(Outcome::Ran(reply)) => reply,
        Ok(Outcome::Done(stored)) => {
            event("replay");
            tracing::Span::current().record("replayed", true);
            stored.into()
        }
        Ok(Outcome::Running) => {
            event("wait");
            tracing::Span::current().record("waited", true);
            // The claim took some of this request's time already.
            let left = deadline.map(|deadline| deadline.saturating_sub(started.elapsed()));
            wait(served, store, key, fingerprint, left).await
        }
        Ok(Outcome::Mismatch) => {
            event("mismatch");
            let message = format!(
                "call id `{}` was already used for {}.{} with a different request body; a new call needs a new call id",
                key.call_id(),
                served.service,
                served.method
            );
            framework_error(ErrorKind::CallIdMismatch, &message, None)
        }
        Ok(Outcome::StoreFailed(e)) => {
            event("store_error");
            store_unavailable(served, &e)
        }
        // The caller stops waiting; the run goes on and its reply is stored.
        Err(Joined::TimedOut) => in_progress(served, key),
        Err(Joined::Panicked(reply)) => reply,
    }
}

/// A claim that does not run the call, as the outcome it comes to; a run's ticket.
pub(super) fn settle(claimed: Result<Claim, StoreError>) -> Result<Ticket, Outcome> {
    match claimed {
        Ok(Claim::Run(ticket)) => Ok(ticket),
        Ok(Claim::Done(stored)) => Err(Outcome::Done(stored)),
        Ok(Claim::Running) => Err(Outcome::Running),
        Ok(Claim::Mismatch) => Err(Outcome::Mismatch),
        Err(e) => Err(Outcome::StoreFailed(e)),
    }
}

/// Runs a claimed call and records its outcome. (A combinator: see [`reply::run`].)
fn run_claimed<T, E, Fut>(served: ServedMethod, guard: ClaimGuard, future: Fut) -> impl Future<Output = Outcome>
where
    T: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<T, E>>,
{
    reply::run(served, future).then(move |reply| async move {
        guard.finish(&reply).await;
        Outcome::Ran(reply)
    })
}

/// The store failed: run without deduplication if the server is set to, else refuse.
async fn store_failed<T, E, Fut>(served: ServedMethod, error: StoreError, future: Fut) -> Outcome
where
    T: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<T, E>>,
{
    if served.on_store_error != OnStoreError::Run {
        return Outcome::StoreFailed(error);
    }
    // Counted here, as `answer` counts the failures that are refused.
    telemetry::store_event(served.service, served.method, "store_error");
    tracing::warn!(
        service = served.service,
        method = served.method,
        "call-id store unavailable ({error}); running without deduplication"
    );
    Outcome::Ran(reply::run(served, future).await)
}

/// Why the run gave no outcome.
pub(super) enum Joined {
    /// The request's deadline came first; the run goes on detached.
    TimedOut,
    /// The store panicked: the `500 panic` reply.
    Panicked(EncodedReply),
}

/// Runs the claim and the run in place, within the request's deadline.
pub(super) async fn join<T: Send + 'static>(
    served: ServedMethod,
    deadline: Option<Duration>,
    run: Detachable<T>,
) -> Result<T, Joined> {
    let run = store_guarded(served, run);
    let joined = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, run).await.map_err(|_| Joined::TimedOut)?,
        None => run.await,
    };
    joined.map_err(Joined::Panicked)
}

/// Runs a call-id store operation with its panics caught: a store that panics gets
/// the request a `500 panic` reply (the message logged), never a dropped connection.
/// (`reply::run` catches the implementation's own panics.)
pub(crate) async fn store_guarded<T>(
    served: ServedMethod,
    operation: impl Future<Output = T>,
) -> Result<T, EncodedReply> {
    AssertUnwindSafe(operation)
        .catch_unwind()
        .await
        .map_err(|panic| reply::panicked(served, reply::panic_message(&*panic)))
}

/// What a claim and its run came to: it ran the call, or the claim said why not.
pub(super) enum Outcome {
    Ran(EncodedReply),
    Done(StoredReply),
    Running,
    Mismatch,
    StoreFailed(StoreError),
}

/// Completes or releases the claim; if the task ends any other way (a panic in the
/// store itself, a runtime shutting down), releases it on drop, so a retry can run.
pub(crate) struct ClaimGuard {
    store: Arc<dyn CallStore>,
    key: CallKey,
    ticket: Option<Ticket>,
}

impl ClaimGuard {
    pub(super) fn new(store: Arc<dyn CallStore>, key: CallKey, ticket: Ticket) -> Self {
        Self { store, key, ticket: Some(ticket) }
    }

    /// Stores `reply` for duplicates, or frees the call id when it is not storable.
    pub(crate) async fn finish(mut self, reply: &EncodedReply) {
        let ticket = self.ticket.take().expect("finished once");
        // Successes and typed errors are stored; anything else frees the id again.
        let recorded = match reply.is_storable() {
            true => self.store.complete(&self.key, ticket, reply.clone().into()).await,
            false => self.store.release(&self.key, ticket).await,
        };
        if let Err(e) = recorded {
            tracing::error!(key = %self.key, "cannot record the outcome of a call in the call-id store: {e}");
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else { return };
        // Best effort, in a task of its own (a remote store needs the network); with
        // no runtime left, the claim's lease (or time to live) frees the id instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key) = (Arc::clone(&self.store), self.key.clone());
            runtime.spawn(async move {
                let _ = store.release(&key, ticket).await;
            });
        }
    }
}

async fn wait(
    served: ServedMethod,
    store: &dyn CallStore,
    key: &CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
) -> EncodedReply {
    match store.wait(key, fingerprint, deadline).await {
        Ok(Some(stored)) => {
            // The run it waited for ended: its reply, as a replay's.
            tracing::Span::current().record("replayed", true);
            stored.into()
        }
        Ok(None) => in_progress(served, key),
        Err(e) => store_unavailable(served, &e),
    }
}

fn in_progress(served: ServedMethod, key: &CallKey) -> EncodedReply {
    let message = format!(
        "call `{}` of {}.{} has no result yet (still running, or its run ended without one); retry with the same call id",
        key.call_id(),
        served.service,
        served.method
    );
    framework_error(ErrorKind::InProgress, &message, None)
}

fn store_unavailable(served: ServedMethod, error: &StoreError) -> EncodedReply {
    tracing::error!(service = served.service, method = served.method, "call-id store unavailable: {error}");
    let message =
        format!("the call-id store is unavailable, so {}.{} did not run; retry", served.service, served.method);
    framework_error(ErrorKind::StoreUnavailable, &message, None)
}
