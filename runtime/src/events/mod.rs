//! Events: one-way notifications on Redis Streams, the asynchronous half of intercall
//! (docs/EVENTS.md).
//!
//! `#[intercall::events]` on a trait generates `{Trait}Publisher`, which implements
//! the trait by appending each call to the trait's stream (`XADD`), and
//! `{Trait}Consumer<T>`, which reads the stream for a named subscriber group
//! (`XREADGROUP`) and calls the matching method of a plain `impl` of the trait. Every
//! group gets every event; the consumers of one group share its events. Delivery is
//! at least once, and a group skips an event its handler already processed (by event
//! id), so a handler that returns `Ok` runs once per event and group, short of the
//! limits EVENTS.md §6 lists.
//!
//! The Redis side needs intercall's `events` feature; without it the generated types
//! still compile, and building one is an error that says to enable it.

use std::sync::Arc;

pub use ordering_key::OrderingKey;

pub use crate::config::{
    DEFAULT_BATCH_SIZE, DEFAULT_CLAIM_IDLE, DEFAULT_EVENTS_PREFIX as DEFAULT_PREFIX, DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_LEN, DEFAULT_OP_TIMEOUT, DEFAULT_PROCESSED_TTL, DEFAULT_RETRY_BACKOFF,
};

#[cfg(feature = "events")]
mod consumer;
#[cfg(not(feature = "events"))]
mod disabled;
#[cfg(feature = "events")]
mod lease;
mod ordering_key;
#[cfg(feature = "events")]
mod partitions;
#[cfg(feature = "events")]
mod publisher;
#[cfg(feature = "events")]
mod stream;

/// The contract with `#[intercall::events]`'s generated code (through
/// `intercall::__private::events`). Not a public API.
#[doc(hidden)]
pub mod codegen {
    use super::Arc;

    #[cfg(feature = "events")]
    pub use super::consumer::{Consumer, consumer};
    #[cfg(not(feature = "events"))]
    pub use super::disabled::{Consumer, Publisher, consumer, publisher};
    pub use super::ordering_key::OrderingKey;
    #[cfg(feature = "events")]
    pub use super::publisher::{Publisher, publisher};

    /// What a generated dispatcher makes of one event: the handler's future, or why
    /// there is none.
    pub enum Dispatch {
        /// The handler, called with the decoded arguments; `Err` holds the handler's
        /// error as JSON.
        Run(crate::__private::BoxFuture<'static, Result<(), String>>),
        /// The payload does not decode into the method's arguments.
        Undecodable(String),
        /// The trait has no such method (in this build).
        UnknownMethod,
    }

    /// A generated dispatcher: the implementation, the method's name, the payload.
    pub type DispatchFn<T> = fn(&Arc<T>, &str, &str) -> Dispatch;

    /// Decodes a payload, naming the argument that does not fit.
    pub fn decode<A: serde::de::DeserializeOwned>(payload: &str) -> Result<A, String> {
        let mut json = serde_json::Deserializer::from_str(payload);
        serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let path = e.path().to_string();
            let message = crate::protocol::shorten(&e.inner().to_string()).into_owned();
            if path == "." { message } else { format!("argument `{path}`: {message}") }
        })
    }

    /// A publish's result as the method's own error type (spanned at it, so a type
    /// without `From<CallError>` is reported there).
    pub fn published<E: crate::ServiceError>(result: Result<(), crate::CallError>) -> Result<(), E> {
        result.map_err(E::from)
    }

    /// A handler's result, its error as JSON (what the dead-letter entry records).
    pub fn outcome<E: serde::Serialize>(result: Result<(), E>) -> Result<(), String> {
        result.map_err(|error| {
            serde_json::to_string(&error).unwrap_or_else(|e| format!("(an error that does not serialize: {e})"))
        })
    }
}

/// The error `XPublisher::new` and `XConsumer::new` give when the configuration has no
/// `[events]` table.
#[cfg(feature = "events")]
pub(crate) fn no_events_table(name: &str, source: &crate::config::Source) -> crate::Error {
    let fix = match source {
        crate::config::Source::Builder => "call `.events(\"redis://127.0.0.1:6379/0\")` on the builder".to_owned(),
        _ => "add an `[events]` table with `url = \"redis://127.0.0.1:6379/0\"`".to_owned(),
    };
    crate::Error::config(format!(
        "events `{name}` need a Redis: `{source}` has no `[events]` table; {fix}, or set INTERCALL_EVENTS__URL"
    ))
}
