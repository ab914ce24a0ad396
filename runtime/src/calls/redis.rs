//! The call-id store shared by the replicas of a service, on Redis.
//!
//! One Redis string per call key, `{prefix}{key}`:
//! - running: `R` + 8-byte claim token + 16-byte body fingerprint, with a *lease* as its
//!   time to live, renewed by the owner while the method runs: a marker whose owner
//!   died expires, and a retry can claim the call again;
//! - done: `D` + fingerprint + 2-byte status + body, with the store's time to live.
//!
//! Claiming is `SET NX PX`. Completing, releasing and renewing are Lua scripts that act
//! only while the key still holds the owner's own marker, so a late owner whose lease
//! was taken over cannot overwrite the new owner's result. Completion and release
//! publish on `{prefix}done:{key}`, which wakes waiting duplicates through the store's
//! one shared subscriber (`subscriber.rs`); they re-read the key at least once per
//! lease, so a dead owner's expired marker is noticed too.

mod subscriber;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use self::subscriber::Subscriber;
use super::{CallKey, CallStore, Claim, StoreError, StoreFuture, StoredReply, Ticket};
use crate::error::Error;

/// Default prefix of every key and channel.
pub const DEFAULT_PREFIX: &str = "intercall:";

/// Default lease of a running call: 10 s, renewed every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Default bound on one Redis operation: a store that does not answer in time is
/// unavailable, never a hang.
const DEFAULT_OP_TIMEOUT: Duration = super::DEFAULT_REDIS_OP_TIMEOUT;

/// A call-id store on Redis, for services that run as several replicas or must keep
/// their guarantee across restarts. Requires intercall's `redis` feature.
///
/// ```no_run
/// # fn main() -> Result<(), intercall::Error> {
/// use std::sync::Arc;
/// let store = intercall::calls::RedisCallStore::new("redis://127.0.0.1:6379/0")?;
/// // CatalogServer::new(catalog).call_store(Arc::new(store))
/// # let _ = Arc::new(store); Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCallStore {
    client: redis::Client,
    /// Made on first use: a `ConnectionManager` needs a running Tokio runtime, which a
    /// node may not have yet while it reads its configuration.
    connection: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    /// The one pub/sub connection its waiting duplicates share; started by the first.
    subscriber: Arc<OnceLock<Subscriber>>,
    /// Where the URL points, without credentials, for messages.
    address: String,
    prefix: Arc<str>,
    ttl: Duration,
    lease: Duration,
    op_timeout: Duration,
}

/// Parses a Redis URL without connecting; the message never echoes the URL, which may
/// hold a password.
pub(crate) fn parse_url(url: &str) -> Result<redis::Client, Error> {
    redis::Client::open(url).map_err(|e| {
        Error::config(format!("invalid Redis URL for the call store: {}", e.to_string().replace(url, "<url>")))
    })
}

impl RedisCallStore {
    /// A store on the Redis at `url` (`redis://host:port/db`). Connects lazily: a
    /// Redis that is down now makes calls answer `503` (or run, with
    /// `on_store_error = "run"`) until it is back.
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self::from_client(parse_url(url)?))
    }

    /// A store on an already parsed client (no connection is made yet).
    pub(crate) fn from_client(client: redis::Client) -> Self {
        let address = client.get_connection_info().addr().to_string();
        Self {
            client,
            connection: Arc::default(),
            subscriber: Arc::default(),
            address,
            prefix: Arc::from(DEFAULT_PREFIX),
            ttl: super::memory::DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            op_timeout: DEFAULT_OP_TIMEOUT,
        }
    }

    /// The prefix of every key and channel (default `intercall:`), so several systems
    /// can share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// How long a finished call is kept (default 5 minutes).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a running call's marker survives its owner (default 10 s). The owner
    /// renews it every third of the lease; if the owner dies, a retry can claim the
    /// call once the lease has run out.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The bound on each Redis operation (default 1 s).
    pub fn op_timeout(mut self, op_timeout: Duration) -> Self {
        self.op_timeout = op_timeout;
        self
    }

    /// The shared, self-reconnecting connection.
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let make = || async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.op_timeout))
                .set_response_timeout(Some(self.op_timeout))
                .set_number_of_retries(1);
            ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|e| StoreError::new(format!("Redis at {}: cannot set up a connection: {e}", self.address)))
        };
        self.connection.get_or_try_init(make).await.cloned()
    }

    /// The shared subscriber, started on first use (inside the runtime).
    fn subscriber(&self) -> &Subscriber {
        self.subscriber.get_or_init(|| Subscriber::start(self.client.clone(), self.op_timeout))
    }

    fn key(&self, key: &CallKey) -> String {
        format!("{}{key}", self.prefix)
    }

    fn channel(&self, key: &CallKey) -> String {
        format!("{}done:{key}", self.prefix)
    }

    /// Runs one Redis operation within the operation timeout.
    async fn bounded<T>(&self, what: &str, op: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.op_timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::new(format!("Redis at {}: {what}: {e}", self.address))),
            Err(_) => Err(StoreError::new(format!(
                "Redis at {}: {what}: no answer within {} ms",
                self.address,
                self.op_timeout.as_millis()
            ))),
        }
    }

    async fn claim_now(&self, key: &CallKey, fingerprint: u128) -> Result<Claim, StoreError> {
        let redis_key = self.key(key);
        let token: u64 = fastrand::u64(..);
        let marker = running_marker(token, fingerprint);
        // The marker may expire between a failed SET NX and the GET; try again then.
        for _ in 0..3 {
            let mut connection = self.connection().await?;
            let mut set = redis::cmd("SET");
            set.arg(&redis_key).arg(&marker).arg("NX").arg("PX").arg(millis(self.lease));
            let claimed = match self.bounded("claim", set.query_async::<Option<String>>(&mut connection)).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    // The SET may have taken effect with its answer lost: release our
                    // token, best effort, so no orphan marker blocks retries for a lease.
                    let (store, key) = (self.clone(), key.clone());
                    tokio::spawn(
                        async move { store.finish_once(&key, &Ticket::new(token), &FinishWith::Release).await },
                    );
                    return Err(e);
                }
            };
            if claimed.is_some() {
                let renewal = self.renew_while_running(redis_key, marker);
                return Ok(Claim::Run(Ticket::with_local(token, Arc::new(renewal))));
            }
            match self.read(&redis_key).await? {
                None => continue,
                Some(Some(Entry::Running { fingerprint: theirs })) if theirs == fingerprint => {
                    return Ok(Claim::Running);
                }
                Some(Some(Entry::Done { fingerprint: theirs, reply })) if theirs == fingerprint => {
                    return Ok(Claim::Done(reply));
                }
                Some(Some(_)) => return Ok(Claim::Mismatch),
                Some(None) => return Err(StoreError::new(format!("Redis at {}: unreadable entry", self.address))),
            }
        }
        Err(StoreError::new(format!("Redis at {}: the claim kept changing under us", self.address)))
    }

    /// The entry at `redis_key`: `None` when there is none, `Some(None)` when it is
    /// unreadable.
    async fn read(&self, redis_key: &str) -> Result<Option<Option<Entry>>, StoreError> {
        let mut connection = self.connection().await?;
        let mut get = redis::cmd("GET");
        get.arg(redis_key);
        let value = self.bounded("read a call", get.query_async::<Option<Vec<u8>>>(&mut connection)).await?;
        Ok(value.as_deref().map(parse))
    }

    /// Renews the lease every third of it until the returned guard is dropped (when
    /// the claim completes or is released) or the marker is no longer ours.
    fn renew_while_running(&self, redis_key: String, marker: Vec<u8>) -> Renewal {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let script = redis::Script::new(RENEW);
            loop {
                tokio::time::sleep(store.lease / 3).await;
                let Ok(mut connection) = store.connection().await else { continue };
                let mut invocation = script.key(&redis_key);
                invocation.arg(&marker).arg(millis(store.lease));
                match store.bounded("renew a lease", invocation.invoke_async::<i64>(&mut connection)).await {
                    Ok(1) => {}
                    Ok(_) => break,
                    Err(e) => tracing::warn!("cannot renew a call's lease: {e}"),
                }
            }
        });
        Renewal(task.abort_handle())
    }

    /// Completes or releases the claim `ticket` holds. The ticket (with its lease
    /// renewal) is dropped when this returns.
    async fn finish(&self, key: &CallKey, ticket: &Ticket, with: FinishWith<'_>) -> Result<(), StoreError> {
        // The scripts are idempotent (they check the token), so a failed attempt is
        // retried for up to a lease, while the ticket keeps the lease renewed: giving
        // up early would let the marker expire and a retry run the method again.
        let give_up = Instant::now() + self.lease;
        loop {
            match self.finish_once(key, ticket, &with).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() + FINISH_RETRY >= give_up => return Err(e),
                Err(e) => {
                    tracing::warn!(%key, "cannot record a call's outcome yet, retrying: {e}");
                    tokio::time::sleep(FINISH_RETRY).await;
                }
            }
        }
    }

    async fn finish_once(&self, key: &CallKey, ticket: &Ticket, with: &FinishWith<'_>) -> Result<(), StoreError> {
        let redis_key = self.key(key);
        let mut connection = self.connection().await?;
        let (script, done) = match with {
            FinishWith::Reply(reply) => (COMPLETE, Some(reply)),
            FinishWith::Release => (RELEASE, None),
        };
        let script = redis::Script::new(script);
        let mut invocation = script.key(&redis_key);
        invocation.arg(ticket.token().to_be_bytes().as_slice()).arg(self.channel(key));
        if let Some(reply) = done {
            invocation.arg(done_tail(reply)).arg(millis(self.ttl));
        }
        let owned: i64 = self.bounded("finish a call", invocation.invoke_async(&mut connection)).await?;
        if owned == 0 && done.is_some() {
            tracing::warn!(%key, "a call finished after its lease was taken over; its result was not stored");
        }
        Ok(())
    }

    async fn wait_for(
        &self,
        key: &CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> Result<Option<StoredReply>, StoreError> {
        let until = timeout.map(|t| Instant::now() + t);
        // Subscribed before reading, so a completion between the two is not missed.
        let subscription = self.subscriber().subscribe(self.channel(key), self.op_timeout).await;
        let redis_key = self.key(key);
        loop {
            // Registered before the read, for the same reason.
            let woken = subscription.notify().notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            match self.read(&redis_key).await? {
                Some(Some(Entry::Done { fingerprint: theirs, reply })) if theirs == fingerprint => {
                    return Ok(Some(reply));
                }
                Some(Some(Entry::Running { fingerprint: theirs })) if theirs == fingerprint => {}
                // Released, expired (its owner died), or now another body's call.
                _ => return Ok(None),
            }
            // Wake on the completion message, or after a lease at the latest to notice
            // an owner that died without a word; while the subscriber is down, poll.
            let mut slice = match subscription.is_live() {
                true => self.lease,
                false => POLL_WHILE_DOWN.min(self.lease),
            };
            if let Some(until) = until {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                slice = slice.min(left);
            }
            let _ = tokio::time::timeout(slice, woken).await;
        }
    }
}

/// How often a waiting duplicate reads its call while the shared subscriber is down.
const POLL_WHILE_DOWN: Duration = Duration::from_millis(200);

/// The pause between attempts to record a call's outcome while Redis is unavailable.
const FINISH_RETRY: Duration = Duration::from_millis(100);

/// Aborts the lease renewal when the claim ends.
struct Renewal(tokio::task::AbortHandle);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum FinishWith<'a> {
    Reply(&'a StoredReply),
    Release,
}

impl CallStore for RedisCallStore {
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim> {
        Box::pin(self.claim_now(key, fingerprint))
    }

    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>> {
        Box::pin(async move {
            match timeout {
                // Connecting and reading count against the waiter's deadline too.
                Some(limit) => {
                    tokio::time::timeout(limit, self.wait_for(key, fingerprint, timeout)).await.unwrap_or(Ok(None))
                }
                None => self.wait_for(key, fingerprint, None).await,
            }
        })
    }

    fn complete<'a>(&'a self, key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.finish(key, &ticket, FinishWith::Reply(&reply)).await })
    }

    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.finish(key, &ticket, FinishWith::Release).await })
    }
}

/// KEYS[1] the call; ARGV[1] the running marker; ARGV[2] the lease in ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// KEYS[1] the call; ARGV[1] the owner's token; ARGV[2] the channel; ARGV[3] status and
/// body; ARGV[4] the time to live in ms. Only the marker holding that token is
/// replaced (keeping its fingerprint): a late owner whose lease was taken over writes
/// nothing.
const COMPLETE: &str = r"
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 1) == 'R' and string.sub(current, 2, 9) == ARGV[1] then
  redis.call('SET', KEYS[1], 'D' .. string.sub(current, 10, 25) .. ARGV[3], 'PX', ARGV[4])
  redis.call('PUBLISH', ARGV[2], 'done')
  return 1
end
return 0";

/// KEYS[1] the call; ARGV[1] the owner's token; ARGV[2] the channel.
const RELEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 1) == 'R' and string.sub(current, 2, 9) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0";

enum Entry {
    Running { fingerprint: u128 },
    Done { fingerprint: u128, reply: StoredReply },
}

fn running_marker(token: u64, fingerprint: u128) -> Vec<u8> {
    let mut marker = Vec::with_capacity(25);
    marker.push(b'R');
    marker.extend_from_slice(&token.to_be_bytes());
    marker.extend_from_slice(&fingerprint.to_be_bytes());
    marker
}

/// Status and body of a done entry; the script puts `D` and the marker's fingerprint
/// in front.
fn done_tail(reply: &StoredReply) -> Vec<u8> {
    let mut tail = Vec::with_capacity(2 + reply.body.len());
    tail.extend_from_slice(&reply.status.to_be_bytes());
    tail.extend_from_slice(&reply.body);
    tail
}

fn parse(value: &[u8]) -> Option<Entry> {
    match value.first()? {
        b'R' if value.len() == 25 => {
            Some(Entry::Running { fingerprint: u128::from_be_bytes(value[9..25].try_into().ok()?) })
        }
        b'D' if value.len() >= 19 => {
            let fingerprint = u128::from_be_bytes(value[1..17].try_into().ok()?);
            let status = u16::from_be_bytes(value[17..19].try_into().ok()?);
            Some(Entry::Done { fingerprint, reply: StoredReply { status, body: Bytes::copy_from_slice(&value[19..]) } })
        }
        _ => None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}
