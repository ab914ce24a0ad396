//! Publishing: an event trait's method call becomes one `XADD` to the trait's stream.
//! Concurrent publishes share round trips (group commit): one publish at a time sends
//! every `XADD` waiting (its own first) in one pipeline, and meanwhile the next ones
//! queue up; each publish still returns only once Redis has stored its entry. The one
//! that sent a pipeline hands the next to the first publish waiting, so no extra task
//! sits between a publish and Redis.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::oneshot;

use super::stream::{millis, now_ms};
use crate::config::EventsConfig;
use crate::context::CallContext;
use crate::protocol::events::{Event, keyed_stream_key, partition, stream_key};
use crate::{CallError, Error, Invoker, Security};

/// Appends events to one event trait's stream; what a generated `XPublisher` holds.
/// Cheap to clone; clones share one connection and one queue.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    stream: String,
    config: EventsConfig,
    security: Security,
    /// Made on first use: a `ConnectionManager` needs a running Tokio runtime.
    appender: tokio::sync::OnceCell<Arc<Appender>>,
}

/// The most `XADD`s in one pipeline.
const MAX_PIPELINE: usize = 64;

/// The publishes waiting to be sent, and whether one of them is sending.
struct Appender {
    connection: ConnectionManager,
    max_len: u64,
    op_timeout: Duration,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Append>,
    /// A publish is sending a pipeline (or is told to send the next one).
    sending: bool,
}

/// One event to append, and where its outcome goes: `None` for the publish that
/// sends the pipeline holding it, which learns the outcome itself.
struct Append {
    stream: String,
    fields: Vec<(&'static str, String)>,
    told: Option<oneshot::Sender<Told>>,
}

/// What a waiting publish is told.
enum Told {
    /// Its pipeline was sent: how it went.
    Sent(Result<(), Refused>),
    /// Its event is first in the queue: send the next pipeline.
    Send,
}

/// Why Redis did not take a pipeline of events.
#[derive(Clone)]
enum Refused {
    /// No answer within the operation timeout.
    Timeout,
    /// The connection or Redis failed, with Redis's message.
    Unavailable(String),
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("events", &self.inner.name)
            .field("stream", &self.inner.stream)
            .field("redis", &self.inner.config.address)
            .finish()
    }
}

/// The publisher of the events `name`, from the invoker's `[events]`; an error when
/// there is none.
pub fn publisher(invoker: &Invoker, name: &'static str) -> Result<Publisher, Error> {
    let config = invoker.events_config().ok_or_else(|| super::no_events_table(name, invoker.source()))?.clone();
    let stream = stream_key(&config.prefix, name);
    let inner = Inner { name, stream, config, security: invoker.security(), appender: Default::default() };
    Ok(Publisher { inner: Arc::new(inner) })
}

impl Publisher {
    /// Publishes `method` with `args` (the JSON object of its named arguments), with the
    /// current user and activity (a new activity when there is none), to the trait's
    /// stream, or with an ordering key to its key's partition. Returns once Redis has
    /// stored the entry.
    pub async fn publish<A: serde::Serialize + ?Sized>(
        &self,
        method: &'static str,
        args: &A,
        key: Option<&str>,
    ) -> Result<(), CallError> {
        let inner = &*self.inner;
        let payload = crate::protocol::json_writer::to_string(args).map_err(|e| {
            CallError::encode(inner.name, method, format!("the event's arguments do not serialize: {e}"))
        })?;
        let context = CallContext::current();
        let mut event = Event {
            id: uuid::Uuid::new_v4(),
            method: method.to_owned(),
            payload,
            published_ms: now_ms(),
            user: context.user,
            activity: Some(context.activity.unwrap_or_default()),
            signature: None,
            trace: context.trace,
            key: key.map(str::to_owned),
        };
        if inner.security.is_enabled() {
            event.signature = inner.security.sign_text(&event.canonical(inner.name));
        }
        let fields = event.fields();
        let stream = match key {
            None => inner.stream.clone(),
            Some(key) => keyed_stream_key(&inner.stream, partition(key)),
        };
        let config = &inner.config;
        let unavailable = |message: String| {
            CallError::connect(
                inner.name,
                method,
                format!("Redis at {} did not take the event: {message}", config.address),
            )
        };
        let appender = inner
            .appender
            .get_or_try_init(|| async {
                let settings = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.op_timeout))
                    .set_response_timeout(Some(config.op_timeout))
                    .set_number_of_retries(1);
                let connection = ConnectionManager::new_lazy_with_config(config.client.clone(), settings)?;
                let queue = Mutex::new(Queue::default());
                Ok::<_, redis::RedisError>(Arc::new(Appender {
                    connection,
                    max_len: config.max_len,
                    op_timeout: config.op_timeout,
                    queue,
                }))
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match Appender::append(appender, stream, fields).await {
            Ok(()) => Ok(()),
            Err(Refused::Unavailable(message)) => Err(unavailable(message)),
            Err(Refused::Timeout) => Err(CallError::timeout(inner.name, method, config.op_timeout, config.op_timeout)
                .with_message(format!(
                    "Redis at {} did not answer within {} ms",
                    config.address,
                    millis(config.op_timeout)
                ))),
        }
    }
}

impl Appender {
    /// Queues the event, and sends it: in a pipeline of its own making when no publish
    /// is sending, else in the one the publish before it sends, or (told to) in the next.
    async fn append(this: &Arc<Self>, stream: String, fields: Vec<(&'static str, String)>) -> Result<(), Refused> {
        let (tell, told) = oneshot::channel();
        let send_now = {
            let mut queue = this.queue.lock().unwrap_or_else(|e| e.into_inner());
            let send_now = !std::mem::replace(&mut queue.sending, true);
            queue.waiting.push_back(Append { stream, fields, told: (!send_now).then_some(tell) });
            send_now
        };
        if !send_now {
            let mut waiting = Waiting { told, appender: Some(Arc::clone(this)) };
            match (&mut waiting.told).await {
                Ok(Told::Sent(outcome)) => return outcome,
                Ok(Told::Send) => {}
                Err(_) => return Err(Refused::Unavailable("the publish sending this event stopped".to_owned())),
            }
        }
        // Sent to the end even if this publish is dropped: the others in the pipeline,
        // and the queue behind it, wait for it.
        Detached(Some(Box::pin(Self::send_next(Arc::clone(this))))).await
    }

    /// Sends the queue's first events (this publish's own first) in one pipeline,
    /// tells the others how it went, hands the next pipeline to the first publish
    /// waiting, and returns its own outcome. Events whose publishes were all dropped
    /// while waiting are sent here too, before returning.
    async fn send_next(this: Arc<Self>) -> Result<(), Refused> {
        let (outcome, mut orphaned) = this.send_one().await;
        while orphaned {
            orphaned = this.send_one().await.1;
        }
        outcome
    }

    /// One pipeline; `true` beside the outcome when events are left in the queue with
    /// no publish waiting to send them.
    async fn send_one(&self) -> (Result<(), Refused>, bool) {
        let this = self;
        let batch: Vec<Append> = {
            let mut queue = this.queue.lock().unwrap_or_else(|e| e.into_inner());
            let n = queue.waiting.len().min(MAX_PIPELINE);
            queue.waiting.drain(..n).collect()
        };
        let mut pipe = redis::Pipeline::with_capacity(batch.len());
        for event in &batch {
            let xadd = pipe.cmd("XADD").arg(&event.stream).arg("MAXLEN").arg("~").arg(this.max_len).arg("*");
            for (name, value) in &event.fields {
                xadd.arg(*name).arg(value);
            }
        }
        // A second attempt after an I/O error carries the same event ids: if the first
        // was stored after all, consumers skip the duplicates by their ids. A timeout
        // is not tried again, so a pipeline never waits more than one operation
        // timeout twice.
        let mut connection = this.connection.clone();
        let outcome = match this.send(&pipe, &mut connection).await {
            Err(Refused::Unavailable(_)) => this.send(&pipe, &mut connection).await,
            outcome => outcome,
        };
        for event in batch {
            if let Some(told) = event.told {
                let _ = told.send(Told::Sent(outcome.clone()));
            }
        }
        let mut queue = this.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.waiting.is_empty() {
            queue.sending = false;
            return (outcome, false);
        }
        // The next pipeline goes to the first publish still waiting; a dropped one's
        // event goes out all the same, in it.
        while let Some(i) = queue.waiting.iter().position(|e| e.told.is_some()) {
            queue.waiting.swap(0, i);
            if let Some(told) = queue.waiting[0].told.take()
                && told.send(Told::Send).is_ok()
            {
                return (outcome, false);
            }
        }
        (outcome, true)
    }

    async fn send(&self, pipe: &redis::Pipeline, connection: &mut ConnectionManager) -> Result<(), Refused> {
        match tokio::time::timeout(self.op_timeout, pipe.query_async::<redis::Value>(connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Refused::Unavailable(e.to_string())),
            Err(_) => Err(Refused::Timeout),
        }
    }
}

/// A publish waiting for its pipeline. Dropped after it was told to send the next one
/// but before it began, it sends it from a task of its own, so the queue never stalls.
struct Waiting {
    told: oneshot::Receiver<Told>,
    appender: Option<Arc<Appender>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let (Ok(Told::Send), Some(appender)) = (self.told.try_recv(), self.appender.take()) {
            tokio::spawn(Appender::send_next(appender));
        }
    }
}

/// A future that, dropped before it finished, finishes on a task of its own.
struct Detached<R: Send + 'static>(Option<Pin<Box<dyn Future<Output = R> + Send>>>);

impl<R: Send + 'static> Future for Detached<R> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let Some(future) = self.0.as_mut() else { return Poll::Pending };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<R: Send + 'static> Drop for Detached<R> {
    fn drop(&mut self) {
        if let Some(future) = self.0.take() {
            tokio::spawn(future);
        }
    }
}
