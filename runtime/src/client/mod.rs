//! The client side: the [`Invoker`] a node shares, the per-service [`Endpoint`] a
//! generated proxy calls through, and the retry policy and budget.

mod builder;
mod connection;
mod endpoint;
mod invoker;
mod retry;
mod transport;

pub use builder::InvokerBuilder;
pub use endpoint::Endpoint;
pub use invoker::{Invoker, endpoint};
