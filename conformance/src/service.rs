//! The conformance service as Rust: the trait every peer implements or calls, and the
//! reference implementation `serve-reference` serves with intercall's generated
//! server. The wire shapes are in docs/CONFORMANCE.md; the server of client mode
//! (`client_mode::server`) writes them by hand instead of using these types.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What `echo` returns: its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Echo {
    /// The `text` argument.
    pub text: String,
    /// The `note` argument; `null` when it was missing.
    pub note: Option<String>,
}

/// What `context` returns: the call context the method ran in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Seen {
    /// The `x-user-type` the request carried.
    pub user_type: Option<String>,
    /// The `x-user-id` the request carried.
    pub user_id: Option<String>,
    /// The activity the method ran in: the request's, or one the server minted.
    pub activity_id: Option<String>,
    /// Milliseconds left of the request's deadline when the method ran.
    pub deadline_ms: Option<u64>,
}

/// The conformance service's typed error. On the wire it has three variants, one of
/// each serde shape; `Unavailable` carries a client's transport failures and is never
/// sent by a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ConformanceError {
    /// A unit variant: `"Refused"`.
    Refused,
    /// A struct variant: `{"NotFound":{"id":"..."}}`.
    NotFound {
        /// The `key` argument of `fail`.
        id: String,
    },
    /// A newtype variant: `{"Invalid":"..."}`.
    Invalid(String),
    /// A failed call (client side only).
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for ConformanceError {
    fn from(error: intercall::CallError) -> Self {
        ConformanceError::Unavailable(error)
    }
}

/// The conformance service (docs/CONFORMANCE.md has its wire shapes).
#[intercall::service]
pub trait Conformance {
    /// Returns its arguments.
    async fn echo(&self, text: String, note: Option<String>) -> Result<Echo, ConformanceError>;

    /// Adds one to counter `key` when given, then returns the error `variant` names
    /// (`Refused`, `NotFound { id: key }`, `Invalid(key)`), or `()` for any other name.
    async fn fail(&self, variant: String, key: Option<String>) -> Result<(), ConformanceError>;

    /// Adds one to counter `key`, then sleeps `sleep_ms` (at most 10 s), then returns
    /// the counter: a side effect the suite can count.
    async fn count(&self, key: String, sleep_ms: Option<u64>) -> Result<u64, ConformanceError>;

    /// Reads counter `key` (0 when never counted).
    async fn counter(&self, key: String) -> Result<u64, ConformanceError>;

    /// Adds one to counter `key`, then panics with [`PANIC_DETAIL`](crate::spec::PANIC_DETAIL).
    async fn panic(&self, key: String) -> Result<(), ConformanceError>;

    /// Returns the user, activity and deadline the method ran with.
    async fn context(&self) -> Result<Seen, ConformanceError>;

    /// A stream (PROTOCOL.md §4.3): `0..count`, then the end `end` names: `"Refused"`
    /// ends with the typed error `Refused`, `"panic"` with a crash, anything else
    /// cleanly; `"before"` is the error `Refused` before the first item.
    async fn stream(
        &self,
        count: u64,
        end: String,
    ) -> Result<intercall::Streaming<u64, ConformanceError>, ConformanceError>;
}

/// The reference implementation: counters in memory.
#[derive(Debug, Default)]
pub struct Reference {
    counters: Mutex<HashMap<String, u64>>,
}

impl Reference {
    fn bump(&self, key: &str) -> u64 {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let count = counters.entry(key.to_owned()).or_default();
        *count += 1;
        *count
    }
}

impl Conformance for Reference {
    async fn echo(&self, text: String, note: Option<String>) -> Result<Echo, ConformanceError> {
        Ok(Echo { text, note })
    }

    async fn fail(&self, variant: String, key: Option<String>) -> Result<(), ConformanceError> {
        if let Some(key) = &key {
            self.bump(key);
        }
        let key = key.unwrap_or_default();
        match variant.as_str() {
            "Refused" => Err(ConformanceError::Refused),
            "NotFound" => Err(ConformanceError::NotFound { id: key }),
            "Invalid" => Err(ConformanceError::Invalid(key)),
            _ => Ok(()),
        }
    }

    async fn count(&self, key: String, sleep_ms: Option<u64>) -> Result<u64, ConformanceError> {
        let count = self.bump(&key);
        tokio::time::sleep(Duration::from_millis(sleep_ms.unwrap_or(0).min(10_000))).await;
        Ok(count)
    }

    async fn counter(&self, key: String) -> Result<u64, ConformanceError> {
        Ok(self.counters.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied().unwrap_or(0))
    }

    async fn panic(&self, key: String) -> Result<(), ConformanceError> {
        self.bump(&key);
        panic!("{}", crate::spec::PANIC_DETAIL);
    }

    async fn stream(
        &self,
        count: u64,
        end: String,
    ) -> Result<intercall::Streaming<u64, ConformanceError>, ConformanceError> {
        if end == "before" {
            return Err(ConformanceError::Refused);
        }
        // Polled as the stream is read: the panic happens mid-stream, after the items.
        let items = (0..=count).filter_map(move |n| match (n < count, end.as_str()) {
            (true, _) => Some(Ok(n)),
            (false, "Refused") => Some(Err(ConformanceError::Refused)),
            (false, "panic") => panic!("{}", crate::spec::PANIC_DETAIL),
            (false, _) => None,
        });
        Ok(intercall::Streaming::iter(items))
    }

    async fn context(&self) -> Result<Seen, ConformanceError> {
        let context = intercall::CallContext::current();
        let user = context.user.as_ref();
        Ok(Seen {
            user_type: user.map(|u| u.user_type().as_str().to_owned()),
            user_id: user.and_then(|u| u.user_id()).map(str::to_owned),
            activity_id: context.activity.map(|a| a.to_string()),
            deadline_ms: context.remaining().map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}
