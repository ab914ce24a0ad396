//! The call-id flow: a request with an `x-call-id` runs its method at most once.
//!
//! The first arrival claims the id and runs the implementation in a task of its own,
//! detached from the connection, so a client that gives up and disconnects cancels
//! nothing and leaves no marker behind. Duplicates wait for that run (within their own
//! deadline) or replay its stored reply.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::MethodInfo;
use super::reply::{self, Reply};
use crate::calls::{CallKey, CallStore, Claim};
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
    let ticket = match store.claim(&key, fingerprint).await {
        Ok(Claim::Run(ticket)) => ticket,
        Ok(Claim::Done(stored)) => return stored.into(),
        Ok(Claim::Running) => return wait(info, &*store, &key, deadline).await,
        Ok(Claim::Mismatch) => {
            let message = format!(
                "call id `{}` was already used for {}.{} with a different request body; a new call needs a new call id",
                key.call_id(),
                info.service,
                info.method
            );
            return reply::error(ErrorKind::CallIdMismatch, &message, None);
        }
        Err(e) => return store_unavailable(info, &e),
    };

    let in_progress = in_progress(info, &key);
    let run = async move {
        let reply = reply::run(info, future).await;
        let stored = match reply.is_storable() {
            true => store.complete(&key, ticket, reply.clone().into()).await,
            false => store.release(&key, ticket).await,
        };
        if let Err(e) = stored {
            tracing::error!(%key, "cannot record the outcome of a call in the call-id store: {e}");
        }
        reply
    };
    let task = tokio::spawn(run);
    let finished = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, task).await.ok(),
        None => Some(task.await),
    };
    match finished {
        Some(Ok(reply)) => reply,
        Some(Err(lost)) => reply::internal(info, &format!("the run did not finish: {lost}")),
        // The caller stops waiting; the run goes on and its reply is stored.
        None => in_progress,
    }
}

async fn wait(info: MethodInfo, store: &dyn CallStore, key: &CallKey, deadline: Option<Duration>) -> Reply {
    match store.wait(key, deadline).await {
        Ok(Some(stored)) => stored.into(),
        Ok(None) => in_progress(info, key),
        Err(e) => store_unavailable(info, &e),
    }
}

fn in_progress(info: MethodInfo, key: &CallKey) -> Reply {
    let message = format!(
        "call `{}` of {}.{} is still running; retry with the same call id to get its result",
        key.call_id(),
        info.service,
        info.method
    );
    reply::error(ErrorKind::InProgress, &message, None)
}

fn store_unavailable(info: MethodInfo, error: &crate::calls::StoreError) -> Reply {
    tracing::error!(service = info.service, method = info.method, "call-id store unavailable: {error}");
    let message = format!("the call-id store is unavailable, so {}.{} did not run; retry", info.service, info.method);
    reply::error(ErrorKind::StoreUnavailable, &message, None)
}
