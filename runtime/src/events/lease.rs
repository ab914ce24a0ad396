//! Processed once per group: before its handler runs, a consumer takes the event's
//! *lease* (`SET {lease} {holder} NX PX {claim_idle}`, renewed while it works), so a
//! live consumer's event that another consumer claims (`XAUTOCLAIM` after a stall, or a
//! second entry with the same event id) is skipped there, not run twice. The lease of a
//! dead consumer runs out with its entry's idle time, and whoever claims the entry then
//! takes the lease over. Success writes the processed record, acknowledges and drops
//! the lease in one script (EVENTS.md §5).
//!
//! The lease is taken before the record is checked, and the record is written before
//! the lease is dropped (atomically), so a consumer that gets the lease always sees a
//! record written by the one before it.

use std::sync::LazyLock;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script};

/// What taking the lease found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Ours: run the handler.
    Taken,
    /// The group already processed this event (our lease is already dropped again).
    Processed,
    /// Another live consumer holds it: leave the entry pending, do not run.
    HeldElsewhere,
}

/// One event's lease for one group, and its processed record.
pub(crate) struct Lease {
    record: String,
    key: String,
    /// `{consumer} {random}`: this handling's own marker, so a late consumer never
    /// drops or renews a lease that passed to another.
    holder: String,
}

/// KEYS[1] lease; ARGV[1] holder; ARGV[2] milliseconds. 1 if still ours and renewed.
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW_LUA));
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// KEYS[1] record, KEYS[2] lease, KEYS[3] stream; ARGV[1] group, ARGV[2] entry,
/// ARGV[3] holder, ARGV[4] record lifetime in ms.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(COMPLETE_LUA));
const COMPLETE_LUA: &str = r"
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
";

/// KEYS[1] lease; ARGV[1] holder. Drops the lease if it is still ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Lease {
    pub(crate) fn new(record: String, key: String, consumer: &str) -> Self {
        Lease { record, key, holder: format!("{consumer} {}", uuid::Uuid::new_v4().simple()) }
    }

    /// Takes each lease for `ttl_ms`, then checks its record: one round trip for a
    /// whole batch (a second one only to drop the leases of events processed before).
    pub(crate) async fn claim_all(
        conn: &mut MultiplexedConnection,
        leases: &[&Lease],
        ttl_ms: u64,
    ) -> RedisResult<Vec<Claim>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for lease in leases {
            pipe.cmd("SET").arg(&lease.key).arg(&lease.holder).arg("NX").arg("PX").arg(ttl_ms);
            pipe.cmd("EXISTS").arg(&lease.record);
        }
        let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        let mut claims = Vec::with_capacity(leases.len());
        for (lease, pair) in leases.iter().zip(replies.chunks(2)) {
            let taken = !matches!(pair[0], redis::Value::Nil);
            let processed = matches!(pair[1], redis::Value::Int(1));
            claims.push(match (taken, processed) {
                (false, _) => Claim::HeldElsewhere,
                (true, false) => Claim::Taken,
                (true, true) => {
                    lease.release(conn).await?;
                    Claim::Processed
                }
            });
        }
        Ok(claims)
    }

    /// Extends the lease by `ttl_ms`; `false` when it is no longer ours (it ran out).
    pub(crate) async fn renew(&self, conn: &mut MultiplexedConnection, ttl_ms: u64) -> RedisResult<bool> {
        let renewed: i64 = RENEW.key(&self.key).arg(&self.holder).arg(ttl_ms).invoke_async(conn).await?;
        Ok(renewed == 1)
    }

    /// Records the event as processed, acknowledges the entry and drops the lease, at once.
    pub(crate) async fn complete(
        &self,
        conn: &mut MultiplexedConnection,
        stream: &str,
        group: &str,
        entry_id: &str,
        record_ttl_ms: u64,
    ) -> RedisResult<()> {
        COMPLETE
            .key(&self.record)
            .key(&self.key)
            .key(stream)
            .arg(group)
            .arg(entry_id)
            .arg(&self.holder)
            .arg(record_ttl_ms)
            .invoke_async::<i64>(conn)
            .await
            .map(drop)
    }

    /// Drops the lease if it is still ours (after a dead letter, or a skip).
    pub(crate) async fn release(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        RELEASE.key(&self.key).arg(&self.holder).invoke_async::<i64>(conn).await.map(drop)
    }
}
