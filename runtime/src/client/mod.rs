//! The client side: the [`Invoker`] a node shares, the per-service endpoint a
//! generated proxy calls through, the retry policy and budget, and what carries each
//! attempt: client layers and transports (tower services from [`HttpRequest`] to
//! [`HttpResponse`]), and per-call [`CallOptions`].

mod balance;
mod builder;
mod connection;
mod ejection;
pub(crate) mod endpoint;
mod http;
pub(crate) mod invoker;
mod options;
#[cfg(feature = "reqwest")]
mod reqwest;
mod resolve;
mod retry;
mod stack;
mod stream;
mod tls;
mod transport;

pub use builder::InvokerBuilder;
pub use http::{BodyError, BoxError, CallInfo, HttpClient, HttpRequest, HttpResponse, RequestBody, ResponseBody};
pub use invoker::Invoker;
pub use options::{CallOptions, with_options};
#[cfg(feature = "reqwest")]
pub use reqwest::ReqwestTransport;
pub(crate) use tls::{PemFiles, TlsKey, TlsSettings};
pub(crate) use transport::ConnectionSettings;
pub use transport::{HyperTransport, TransportFuture};
