//! The soak's service and its server process: one method that can pause and answers a
//! body of the size asked for, served with a small call-id store so that the store's
//! bounds are reached within the first minute, and a short header-read timeout so that
//! slow clients are cut off quickly.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use intercall::ServeOptions;
use intercall::calls::{CallStore, MemoryCallStore};
use serde::{Deserialize, Serialize};

/// Completed calls the soak's memory store keeps: reached within seconds at the soak's
/// rate, so that its steady state is the bound, not the time to live.
pub const CAPACITY: u64 = 4096;
/// The soak store's byte budget: 4 MiB, split over 4 shards of 1 MiB.
pub const MAX_BYTES: u64 = 4 << 20;
/// How long a completed call is kept: longer than any retry of the soak.
pub const TTL: Duration = Duration::from_secs(20);
/// The soak servers' header-read timeout: a slow client is cut off after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest reply the method writes.
pub const MAX_REPLY: u32 = 64 * 1024;

/// The soak method's typed error: only transport failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SoakError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for SoakError {
    fn from(error: intercall::CallError) -> Self {
        SoakError::Unavailable(error)
    }
}

/// The service the soak calls.
#[intercall::service]
pub trait Soak {
    /// Waits `pause_ms`, then answers `size` bytes of text (at most [`MAX_REPLY`]).
    async fn work(&self, pause_ms: u64, size: u32) -> Result<String, SoakError>;
}

/// The one implementation.
pub struct Worker;

impl Soak for Worker {
    async fn work(&self, pause_ms: u64, size: u32) -> Result<String, SoakError> {
        if pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(pause_ms.min(5_000))).await;
        }
        Ok("x".repeat(size.min(MAX_REPLY) as usize))
    }
}

/// `soak-serve memory` or `soak-serve redis <url>`: serves [`Soak`] on a free port
/// until stdin closes. Prints `ready <port>`, then, for the memory store, a line
/// `usage <completed> <bytes> <running>` every half second.
pub async fn serve(store: &str, redis_url: Option<&str>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let memory = Arc::new(MemoryCallStore::new(CAPACITY, TTL).with_max_bytes(MAX_BYTES));
    let call_store: Arc<dyn CallStore> = match (store, redis_url) {
        ("memory", _) => memory.clone(),
        ("redis", Some(url)) => Arc::new(intercall::calls::RedisCallStore::new(url)?.ttl(TTL)),
        _ => return Err("soak-serve memory | soak-serve redis <url>".into()),
    };
    let router = SoakServer::new(Worker).call_store(call_store).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    if store == "memory" {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                let usage = memory.usage();
                println!("usage {} {} {}", usage.completed, usage.bytes, usage.running);
                if std::io::stdout().flush().is_err() {
                    return;
                }
            }
        });
    }
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    });
    let options = ServeOptions::default().header_read_timeout(HEADER_READ_TIMEOUT);
    intercall::serve_with_graceful_shutdown(listener, router, options, async {
        let _ = stdin_closed.await;
    })
    .await?;
    Ok(())
}
