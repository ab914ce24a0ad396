//! How a host name becomes endpoints, for services with `dns_refresh_ms`: a resolver
//! (the system's by default, any async function in tests) from `(host, port)` to
//! socket addresses.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;
type Resolve = dyn Fn(&str, u16) -> Resolving + Send + Sync;

/// Resolves a host name and port to addresses; cloning shares it.
#[derive(Clone)]
pub(crate) struct Resolver(Arc<Resolve>);

impl Resolver {
    pub(crate) fn new<F, Fut>(resolve: F) -> Self
    where
        F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        Self(Arc::new(move |host, port| Box::pin(resolve(host, port))))
    }

    /// The system's resolver, through tokio.
    pub(crate) fn system() -> Self {
        Self::new(|host: &str, port| {
            let target = format!("{host}:{port}");
            async move { Ok(tokio::net::lookup_host(target).await?.collect()) }
        })
    }

    pub(crate) async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        (self.0)(host, port).await
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}
