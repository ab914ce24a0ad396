//! A node's server settings: how calls are verified, where call ids are recorded, and
//! the stores built from `[server]` in services.toml (which `config` only validates).

use std::sync::{Arc, OnceLock};

use crate::calls::{CallStore, MemoryCallStore, OnStoreError};
use crate::config::{ServerConfig, StoreConfig};
use crate::security::Security;
use crate::server::{MaxInFlight, ServeOptions};

/// The default limit on a request body: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The call-id store of servers that are not given one: one [`MemoryCallStore`] per
/// process, with its default capacity and time to live, shared by every service.
pub fn default_call_store() -> Arc<dyn CallStore> {
    static STORE: OnceLock<Arc<dyn CallStore>> = OnceLock::new();
    Arc::clone(STORE.get_or_init(|| Arc::new(MemoryCallStore::default())))
}

/// The settings a node's configuration gives its servers: how calls are verified,
/// where call ids are recorded, and how connections are served.
/// [`Invoker::server_settings`](crate::Invoker::server_settings) reads them from
/// `services.toml`; `XServer::settings(..)` applies the first three, and
/// [`serve_with`](crate::serve_with) takes [`serve_options`](Self::serve_options).
#[derive(Clone, Default)]
pub struct ServerSettings {
    /// How calls are verified (default: not at all).
    pub security: Security,
    /// Where calls with an `x-call-id` are recorded (default: the process-wide
    /// [`default_call_store`]).
    pub call_store: Option<Arc<dyn CallStore>>,
    /// What to do when the store fails (default: answer 503, run nothing).
    pub on_store_error: OnStoreError,
    /// The connection timeouts and limit of `[server]`, for
    /// [`serve_with`](crate::serve_with) (a router does not hold them: one listener
    /// serves every service of a node).
    pub serve_options: ServeOptions,
    /// The node's limit on calls in flight, shared by every server given these
    /// settings (or a clone of them): over it, a call gets `503 overloaded` with
    /// `Retry-After` before anything is decoded or run (default: none). A method's own
    /// limit (`XServer::method_max_in_flight`) takes its calls out of this count.
    /// A call counts until its reply is made and its run has ended: a run that goes on
    /// after its client left, and a stream until its end, still count.
    pub max_in_flight: Option<MaxInFlight>,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("security", &self.security)
            .field("call_store", &self.call_store.as_ref().map(|_| "custom"))
            .field("on_store_error", &self.on_store_error)
            .field("serve_options", &self.serve_options)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// The server settings of a validated `[server]` table, with its store built (a Redis
/// store connects lazily, on its first call).
pub(crate) fn server_settings(config: &ServerConfig) -> ServerSettings {
    let call_store: Option<Arc<dyn CallStore>> = match &config.store {
        StoreConfig::Default => None,
        StoreConfig::Memory { capacity, ttl, max_bytes } => {
            Some(Arc::new(MemoryCallStore::new(*capacity, *ttl).with_max_bytes(*max_bytes)))
        }
        #[cfg(feature = "redis")]
        StoreConfig::Redis { client, prefix, ttl, lease } => {
            let mut store = crate::calls::RedisCallStore::from_client(client.clone()).ttl(*ttl);
            if let Some(prefix) = prefix {
                store = store.prefix(prefix.clone());
            }
            if let Some(lease) = lease {
                store = store.lease(*lease);
            }
            Some(Arc::new(store))
        }
    };
    ServerSettings {
        security: config.security.clone(),
        call_store,
        on_store_error: config.on_store_error,
        serve_options: config.serve_options,
        max_in_flight: config.max_in_flight.map(MaxInFlight::new),
    }
}
