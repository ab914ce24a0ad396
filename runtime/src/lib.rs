//! Turn a Rust trait into a remote service.
//!
//! `#[intercall::service]` on a trait generates two things beside it:
//!
//! - `{Trait}Server`: wraps the real implementation and turns into an axum [`Router`]
//!   with one `POST /{service}/{method}` route per method;
//! - `{Trait}Proxy`: implements the same trait by calling that server over HTTP, so the
//!   code that calls the service is the same whether the implementation is local or
//!   remote.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
//! pub struct Product { pub id: String, pub name: String }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! # #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
//! pub enum CatalogError {
//!     NotFound { id: String },
//!     Unavailable(intercall::CallError),
//! }
//!
//! // A transport failure reaches the caller as a value of the method's error type.
//! impl From<intercall::CallError> for CatalogError {
//!     fn from(error: intercall::CallError) -> Self {
//!         CatalogError::Unavailable(error)
//!     }
//! }
//!
//! #[intercall::service]
//! pub trait Catalog {
//!     /// Finds a product by id.
//!     async fn get(&self, id: String) -> Result<Product, CatalogError>;
//! }
//!
//! // The real implementation is a plain `impl` with plain `async fn`s.
//! struct InMemory;
//! impl Catalog for InMemory {
//!     async fn get(&self, id: String) -> Result<Product, CatalogError> {
//!         Err(CatalogError::NotFound { id })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Serve it...
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/", listener.local_addr()?);
//! tokio::spawn(intercall::serve(listener, CatalogServer::new(InMemory).into_router()));
//!
//! // ...and call it through the proxy, which is a `Catalog` too.
//! let invoker = intercall::Invoker::builder().service("Catalog", url).build()?;
//! let catalog = CatalogProxy::new(invoker)?;
//! let reply = catalog.get("p-1".into()).await;
//! assert_eq!(reply, Err(CatalogError::NotFound { id: "p-1".into() }));
//! # Ok(()) }
//! ```
//!
//! Where each service lives comes from `services.toml` (see [`Invoker`]); the wire
//! protocol is specified in `docs/PROTOCOL.md`.

#![warn(missing_docs)]

// Lets the generated code's `::intercall::` paths resolve inside this crate's own tests.
extern crate self as intercall;

mod binary;
mod body;
pub mod calls;
pub mod client;
mod config;
mod context;
mod error;
pub mod events;
pub mod manifest;
#[cfg(feature = "otel")]
mod otel;
/// The fuzz targets' entry points (`fuzz/`): only under cargo-fuzz's `cfg(fuzzing)` and
/// in this crate's tests, never part of the public API.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzzing::*;
}
#[cfg(any(fuzzing, test))]
mod fuzzing;
pub mod protocol;
mod security;
mod server;
mod streaming;
mod telemetry;

use std::future::Future;

pub use axum::Router;
pub use binary::{Bytes, base64};
pub use client::{CallOptions, Invoker, InvokerBuilder, with_options};
pub use config::{DEFAULT_EJECT, DEFAULT_EJECT_AFTER, DEFAULT_MAX_EJECT, DEFAULT_TIMEOUT, DoneRecords, SERVICES_ENV};
pub use context::{
    ActivityId, CallContext, InvalidContext, MAX_USER_FIELD_BYTES, UserContext, UserType, with_deadline,
};
pub use error::{CallError, Error};
pub use events::OrderingKey;
pub use intercall_macros::{events, service};
pub use protocol::trace::TraceContext;
pub use security::{ACCEPTED_SECRET_ENV, DEFAULT_MAX_AGE, MIN_SECRET_BYTES, SECRET_ENV, Security};
pub use server::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, MaxInFlight, SHED_RETRY_AFTER_SECS, ServeOptions, ServerSettings, default_call_store,
    default_max_connections, unknown_service,
};
pub use streaming::Streaming;
/// The `uuid` crate, for [`ActivityId::as_uuid`] and [`calls::CallKey::call_id`].
pub use uuid;

/// Serves `router` on `listener` until the process ends, with intercall's
/// `unknown_service` reply for paths no service claims, and the default
/// [`ServeOptions`] (timeouts on every connection, a connection limit).
///
/// HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both accepted on the port.
/// `router` is usually one `XServer::into_router()` or several merged with
/// [`Router::merge`].
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default()).await
}

/// Like [`serve`], with the connection timeouts and limit of `options` (from code, or
/// from services.toml's `[server]` through `invoker.server_settings().serve_options`).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    serve_with_graceful_shutdown(listener, router, options, std::future::pending()).await
}

/// Like [`serve`], and stops accepting when `shutdown` completes, letting calls in
/// flight finish.
pub async fn serve_with_shutdown<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with_graceful_shutdown(listener, router, ServeOptions::default(), shutdown).await
}

/// [`serve_with`] and [`serve_with_shutdown`] at once: `options` for the connections,
/// and when `shutdown` completes, no new connection or request is taken, the calls in
/// flight finish, and the future returns.
pub async fn serve_with_graceful_shutdown<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    server::serve_connections(listener, manifest::with_index(router).fallback(unknown_service), options, shutdown).await
}

/// Checks that a service's error type can carry transport failures and cross the wire.
///
/// Every method's `E` in `Result<T, E>` must implement `From<CallError>`, `Serialize`
/// and `Deserialize`; this trait has a blanket impl for exactly those types, so you never
/// implement it yourself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of an intercall method",
    label = "this error type needs `From<intercall::CallError>`, `Serialize` and `Deserialize`",
    note = "if `{Self}` is your own type, add `impl From<intercall::CallError> for {Self}` (a transport failure becomes a value of it) and derive `serde::Serialize` and `serde::Deserialize`",
    note = "if `{Self}` is a type from another crate (`String`, `std::io::Error`, `anyhow::Error`, ...), the orphan rule forbids that impl: wrap it in your own error type, with a variant holding the `CallError` (`enum MyError {{ .., Unavailable(intercall::CallError) }}`) and `impl From<intercall::CallError> for MyError`"
)]
pub trait ServiceError: From<CallError> + serde::Serialize + serde::de::DeserializeOwned + Send + 'static {}

impl<E> ServiceError for E where E: From<CallError> + serde::Serialize + serde::de::DeserializeOwned + Send + 'static {}

/// Checks that an argument or result type can cross the wire.
///
/// Blanket-implemented for every `Serialize + DeserializeOwned + Send + Sync + 'static`
/// type; you never implement it yourself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the wire as an intercall argument or result",
    label = "arguments and results need `Serialize`, `Deserialize`, `Send` and `Sync`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, and use owned data (no references)"
)]
pub trait WireType: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}

impl<T> WireType for T where T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}

/// The contract with `#[intercall::service]`'s generated code: exactly what it needs,
/// under paths that do not depend on the user's own dependencies. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::endpoint::Endpoint;
    pub use crate::client::invoker::endpoint;
    pub use crate::server::{ServerSetup, ServiceRouter};
    pub use serde;

    /// What `#[intercall::events]` generates its publisher and consumer on; present
    /// with and without the `events` feature.
    pub use crate::events::codegen as events;

    /// What `XServer::manifest()` is built from.
    pub use crate::manifest::codegen as manifest;

    /// The boxed future of a method called through `dyn Trait`.
    pub type BoxFuture<'a, T> = core::pin::Pin<Box<dyn core::future::Future<Output = T> + Send + 'a>>;

    /// Type assertion the macro emits at the span of each argument and result type.
    pub const fn assert_wire_type<T: crate::WireType>() {}
}

/// The README's Rust examples, compiled and run as doctests. Not with the `schema`
/// feature, which would ask a JSON Schema of their types: a README example shows what
/// a service needs, and CI runs them in a build without it (`.ci/run`).
#[cfg(all(doctest, not(feature = "schema")))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
