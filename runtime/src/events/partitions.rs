//! Ordering keys, the consuming side: the events with a key are spread over
//! [`KEY_PARTITIONS`] streams by their key's hash, and each partition is read by one
//! consumer of a group at a time, the one holding its *owner* lease. Consumers register
//! in a sorted set with an expiry, and each takes `ceil(partitions / live consumers)`
//! of them: a new consumer gets its share as the others give theirs up, and a dead
//! one's leases run out and are taken over. A partition's new owner first handles what
//! the previous one left pending, in stream order, then reads on (EVENTS.md §5a).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::RedisResult;
use redis::aio::MultiplexedConnection;

use super::lease::{release_if_held, renew_if_held};
use super::stream::{millis, now_ms};
use crate::protocol::events::{KEY_PARTITIONS, consumers_key, keyed_stream_key, partition_owner_key};

/// One partition this consumer holds.
pub(crate) struct Held {
    /// The partition's stream.
    pub(crate) stream: Arc<str>,
    owner_key: String,
    /// While catching up on what was left pending: where `XAUTOCLAIM` goes on.
    pub(crate) recovering: Option<String>,
}

/// The partitions one consumer holds for its group.
pub(crate) struct Partitions {
    base: String,
    group: String,
    consumer: String,
    /// `{consumer} {random}`: this run's own marker in the owner keys.
    holder: String,
    held: BTreeMap<u64, Held>,
    next_rebalance: Option<Instant>,
}

impl Partitions {
    pub(crate) fn new(base: &str, group: &str, consumer: &str) -> Self {
        Partitions {
            base: base.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            holder: format!("{consumer} {}", uuid::Uuid::new_v4().simple()),
            held: BTreeMap::new(),
            next_rebalance: None,
        }
    }

    /// Every partition's stream (to create the group on each).
    pub(crate) fn all_streams(&self) -> impl Iterator<Item = String> + '_ {
        (0..KEY_PARTITIONS).map(|p| keyed_stream_key(&self.base, p))
    }

    pub(crate) fn held_mut(&mut self) -> impl Iterator<Item = &mut Held> {
        self.held.values_mut()
    }

    /// The owner keys of the partitions held, and the marker in them (what a running
    /// handler's heartbeat renews).
    pub(crate) fn leases(&self) -> (Vec<String>, &str) {
        (self.held.values().map(|h| h.owner_key.clone()).collect(), &self.holder)
    }

    /// After a Redis error: what was read may not have been handled, so every held
    /// partition first catches up on its pending entries again.
    pub(crate) fn recover_all(&mut self) {
        for held in self.held.values_mut() {
            held.recovering = Some("0-0".to_owned());
        }
    }

    /// A partition whose entry was left pending catches up before it reads on, so
    /// that its order holds.
    pub(crate) fn recover(&mut self, stream: &str) {
        if let Some(held) = self.held.values_mut().find(|h| &*h.stream == stream) {
            held.recovering = Some("0-0".to_owned());
        }
    }

    /// Registers this consumer, renews what it holds, gives up what is over its share
    /// and takes free partitions up to it; at most every third of `claim_idle`.
    pub(crate) async fn rebalance(
        &mut self,
        conn: &mut MultiplexedConnection,
        claim_idle: Duration,
    ) -> RedisResult<()> {
        if self.next_rebalance.is_some_and(|next| Instant::now() < next) {
            return Ok(());
        }
        let ttl = millis(claim_idle);
        let now = now_ms();
        let registry = consumers_key(&self.base, &self.group);
        let (live,): (u64,) = redis::pipe()
            .cmd("ZADD")
            .arg(&registry)
            .arg(now.saturating_add(ttl))
            .arg(&self.consumer)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&registry)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&registry)
            .arg(ttl.saturating_mul(10))
            .ignore()
            .cmd("ZCARD")
            .arg(&registry)
            .query_async(conn)
            .await?;
        let share = KEY_PARTITIONS.div_ceil(live.max(1));
        let mut lost = Vec::new();
        for (&partition, held) in &self.held {
            if !renew_if_held(conn, &held.owner_key, &self.holder, ttl).await? {
                lost.push(partition);
            }
        }
        for partition in lost {
            tracing::warn!(stream = %self.base, group = %self.group, partition, "lost a partition's lease (a stall longer than claim_idle_ms); another consumer reads it now");
            self.held.remove(&partition);
        }
        while self.held.len() as u64 > share {
            let Some((_, held)) = self.held.pop_last() else { break };
            release_if_held(conn, &held.owner_key, &self.holder).await?;
        }
        // Start the search at a place of our own, so consumers do not all race for
        // partition 0.
        let start = crate::protocol::events::partition(&self.consumer);
        for i in 0..KEY_PARTITIONS {
            if self.held.len() as u64 >= share {
                break;
            }
            let partition = (start + i) % KEY_PARTITIONS;
            if self.held.contains_key(&partition) {
                continue;
            }
            let owner_key = partition_owner_key(&self.base, partition, &self.group);
            let taken: Option<String> = redis::cmd("SET")
                .arg(&owner_key)
                .arg(&self.holder)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async(conn)
                .await?;
            if taken.is_some() {
                let stream = keyed_stream_key(&self.base, partition).into();
                self.held.insert(partition, Held { stream, owner_key, recovering: Some("0-0".to_owned()) });
            }
        }
        self.next_rebalance = Some(Instant::now() + claim_idle / 3);
        Ok(())
    }

    /// On shutdown: gives every partition up and leaves the registry, so the others
    /// take over at once instead of after the claim idle time.
    pub(crate) async fn leave(&mut self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        for held in std::mem::take(&mut self.held).into_values() {
            release_if_held(conn, &held.owner_key, &self.holder).await?;
        }
        redis::cmd("ZREM").arg(consumers_key(&self.base, &self.group)).arg(&self.consumer).query_async::<()>(conn).await
    }
}

/// Renews the partitions' owner leases while a handler runs (between reads, the
/// rebalance renews them).
pub(crate) async fn renew(
    conn: &mut MultiplexedConnection,
    owner_keys: &[String],
    holder: &str,
    ttl: Duration,
) -> RedisResult<()> {
    for key in owner_keys {
        renew_if_held(conn, key, holder, millis(ttl)).await?;
    }
    Ok(())
}
