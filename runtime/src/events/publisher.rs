//! Publishing: an event trait's method call becomes one `XADD` to the trait's stream.

use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::stream::{millis, now_ms};
use crate::config::EventsConfig;
use crate::context::CallContext;
use crate::protocol::events::{Event, keyed_stream_key, partition, stream_key};
use crate::{CallError, Error, Invoker, Security};

/// Appends events to one event trait's stream; what a generated `XPublisher` holds.
/// Cheap to clone; clones share one connection.
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
    connection: tokio::sync::OnceCell<ConnectionManager>,
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
    let inner = Inner { name, stream, config, security: invoker.security(), connection: Default::default() };
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
        let payload = serde_json::to_string(args).map_err(|e| {
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
        // A second attempt after an I/O error carries the same event id: if the first
        // was stored after all, consumers skip the duplicate by its id. A timeout is
        // not tried again, so a publish never waits more than one operation timeout
        // twice.
        let partition_stream;
        let stream = match key {
            None => &inner.stream,
            Some(key) => {
                partition_stream = keyed_stream_key(&inner.stream, partition(key));
                &partition_stream
            }
        };
        match self.add(stream, method, &fields).await {
            Err(e) if !e.is_timeout() => self.add(stream, method, &fields).await,
            result => result,
        }
    }

    async fn add(&self, stream: &str, method: &str, fields: &[(&'static str, String)]) -> Result<(), CallError> {
        let inner = &*self.inner;
        let config = &inner.config;
        let unavailable = |message: String| {
            CallError::connect(
                inner.name,
                method,
                format!("Redis at {} did not take the event: {message}", config.address),
            )
        };
        let mut connection = inner
            .connection
            .get_or_try_init(|| async {
                let settings = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.op_timeout))
                    .set_response_timeout(Some(config.op_timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_lazy_with_config(config.client.clone(), settings)
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .clone();
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("MAXLEN").arg("~").arg(config.max_len).arg("*");
        for (name, value) in fields {
            xadd.arg(*name).arg(value);
        }
        match tokio::time::timeout(config.op_timeout, xadd.query_async::<redis::Value>(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e.to_string())),
            Err(_) => Err(CallError::timeout(inner.name, method, config.op_timeout, config.op_timeout).with_message(
                format!("Redis at {} did not answer within {} ms", config.address, millis(config.op_timeout)),
            )),
        }
    }
}
