//! The call-id flow: a request with an `x-call-id` runs its method at most once.
//!
//! Claiming the id and running the implementation happen in one task of their own,
//! detached from the connection: a client that gives up and disconnects cancels
//! neither, and leaves no claim behind. Duplicates wait for that run (within their own
//! deadline) or replay its stored reply.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::MethodInfo;
use super::reply::{self, Reply};
use crate::calls::{CallKey, CallStore, Claim, OnStoreError, StoreError, StoredReply, Ticket};
use crate::wire::ErrorKind;

pub(crate) async fn run_once<T, E, Fut>(
    info: MethodInfo,
    store: Arc<dyn CallStore>,
    key: CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
    future: Fut,
) -> Reply
where
    T: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let detached = {
        let (store, key) = (Arc::clone(&store), key.clone());
        async move {
            let ticket = match store.claim(&key, fingerprint).await {
                Ok(Claim::Run(ticket)) => ticket,
                Ok(Claim::Done(stored)) => return Outcome::Done(stored),
                Ok(Claim::Running) => return Outcome::Running,
                Ok(Claim::Mismatch) => return Outcome::Mismatch,
                Err(e) if info.on_store_error == OnStoreError::Run => {
                    tracing::warn!(%key, "call-id store unavailable ({e}); running without deduplication");
                    return Outcome::Ran(reply::run(info, future).await);
                }
                Err(e) => return Outcome::StoreFailed(e),
            };
            let guard = Release { store: Arc::clone(&store), key: key.clone(), ticket: Some(ticket) };
            let reply = reply::run(info, future).await;
            guard.finish(&reply).await;
            Outcome::Ran(reply)
        }
    };
    let started = std::time::Instant::now();
    let task = tokio::spawn(detached);
    let outcome = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, task).await {
            Ok(joined) => joined,
            // The caller stops waiting; the run goes on and its reply is stored.
            Err(_) => return in_progress(info, &key),
        },
        None => task.await,
    };
    match outcome {
        Ok(Outcome::Ran(reply)) => reply,
        Ok(Outcome::Done(stored)) => stored.into(),
        Ok(Outcome::Running) => {
            // The claim took some of this request's time already.
            let left = deadline.map(|deadline| deadline.saturating_sub(started.elapsed()));
            wait(info, &*store, &key, fingerprint, left).await
        }
        Ok(Outcome::Mismatch) => {
            let message = format!(
                "call id `{}` was already used for {}.{} with a different request body; a new call needs a new call id",
                key.call_id(),
                info.service,
                info.method
            );
            reply::error(ErrorKind::CallIdMismatch, &message, None)
        }
        Ok(Outcome::StoreFailed(e)) => store_unavailable(info, &e),
        // `reply::run` catches panics; this is a panic in the store, or a runtime
        // shutting down. Its message goes to the log, not to the client.
        Err(lost) => reply::panicked(info, &lost.to_string()),
    }
}

/// What the detached task came to: it ran the call, or the claim said why not.
enum Outcome {
    Ran(Reply),
    Done(StoredReply),
    Running,
    Mismatch,
    StoreFailed(StoreError),
}

/// Completes or releases the claim; if the task ends any other way (a panic in the
/// store itself, a runtime shutting down), releases it on drop, so a retry can run.
struct Release {
    store: Arc<dyn CallStore>,
    key: CallKey,
    ticket: Option<Ticket>,
}

impl Release {
    async fn finish(mut self, reply: &Reply) {
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

impl Drop for Release {
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
    info: MethodInfo,
    store: &dyn CallStore,
    key: &CallKey,
    fingerprint: u128,
    deadline: Option<Duration>,
) -> Reply {
    match store.wait(key, fingerprint, deadline).await {
        Ok(Some(stored)) => stored.into(),
        Ok(None) => in_progress(info, key),
        Err(e) => store_unavailable(info, &e),
    }
}

fn in_progress(info: MethodInfo, key: &CallKey) -> Reply {
    let message = format!(
        "call `{}` of {}.{} has no result yet (still running, or its run ended without one); retry with the same call id",
        key.call_id(),
        info.service,
        info.method
    );
    reply::error(ErrorKind::InProgress, &message, None)
}

fn store_unavailable(info: MethodInfo, error: &StoreError) -> Reply {
    tracing::error!(service = info.service, method = info.method, "call-id store unavailable: {error}");
    let message = format!("the call-id store is unavailable, so {}.{} did not run; retry", info.service, info.method);
    reply::error(ErrorKind::StoreUnavailable, &message, None)
}
