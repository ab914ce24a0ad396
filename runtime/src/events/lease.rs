//! Processed once per group, with one key per event and group, its *record*
//! (`{stream}:processed:{group}:{id}`, EVENTS.md §5). Before its handler runs, a
//! consumer takes the record as a lease: `SET {record} "lease {consumer} {random}" NX
//! PX {claim_idle}`, renewed while it works. So a live consumer's event that another
//! consumer claims (`XAUTOCLAIM` after a stall, or a second entry with the same event
//! id) is skipped there, not run twice. The lease of a dead consumer runs out with its
//! entry's idle time, and whoever claims the entry then takes it. Success overwrites
//! the lease with `done {consumer}` for the processed-record lifetime before the
//! entry is acknowledged: a crash between the two leaves an entry whose record says
//! done, which the next delivery acknowledges without running. So acknowledgements can
//! wait and go out together (`consumer/held.rs`).

use std::sync::LazyLock;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script, Value};

/// What taking the lease found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Ours: run the handler.
    Taken,
    /// The group already processed this event.
    Processed,
    /// Another live consumer holds it: leave the entry pending, do not run.
    HeldElsewhere,
}

/// The prefix of a record's value while a consumer runs the event; any other value
/// means processed.
const LEASE_PREFIX: &str = "lease ";

/// One event's record for one group, as this consumer's lease.
pub(crate) struct Lease {
    record: String,
    /// `lease {consumer} {random}`: this handling's own marker, so a late consumer
    /// never drops or renews a lease that passed to another.
    holder: String,
    /// `done {consumer}`: the record's value once processed.
    done: String,
}

/// KEYS[1] a key held with a marker; ARGV[1] the marker; ARGV[2] milliseconds. 1 if
/// the key still holds the marker and was renewed.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// KEYS[1] a key held with a marker; ARGV[1] the marker. Deletes the key if it still
/// holds the marker.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Extends `key` by `ttl_ms` if it still holds `marker` (an event's lease, a key
/// partition's owner); `false` when it no longer does.
pub(crate) async fn renew_if_held(
    conn: &mut MultiplexedConnection,
    key: &str,
    marker: &str,
    ttl_ms: u64,
) -> RedisResult<bool> {
    let renewed: i64 = RENEW.key(key).arg(marker).arg(ttl_ms).invoke_async(conn).await?;
    Ok(renewed == 1)
}

/// Deletes `key` if it still holds `marker`.
pub(crate) async fn release_if_held(conn: &mut MultiplexedConnection, key: &str, marker: &str) -> RedisResult<()> {
    RELEASE.key(key).arg(marker).invoke_async::<i64>(conn).await.map(drop)
}

impl Lease {
    pub(crate) fn new(record: String, consumer: &str) -> Self {
        Lease {
            record,
            holder: format!("{LEASE_PREFIX}{consumer} {}", uuid::Uuid::new_v4().simple()),
            done: format!("done {consumer}"),
        }
    }

    /// Takes each lease for `ttl_ms`: one round trip for a whole batch, and a second
    /// one only for the records that were there already (processed, or leased).
    pub(crate) async fn claim_all(
        conn: &mut MultiplexedConnection,
        leases: &[&Lease],
        ttl_ms: u64,
    ) -> RedisResult<Vec<Claim>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut take = redis::pipe();
        for lease in leases {
            take.cmd("SET").arg(&lease.record).arg(&lease.holder).arg("NX").arg("PX").arg(ttl_ms);
        }
        let taken: Vec<Value> = take.query_async(conn).await?;
        let existing: Vec<usize> = (0..leases.len()).filter(|&i| matches!(taken.get(i), Some(Value::Nil))).collect();
        let mut claims: Vec<Claim> = leases.iter().map(|_| Claim::Taken).collect();
        if !existing.is_empty() {
            let mut read = redis::pipe();
            for &i in &existing {
                read.cmd("GET").arg(&leases[i].record);
            }
            let values: Vec<Option<String>> = read.query_async(conn).await?;
            for (&i, value) in existing.iter().zip(values) {
                claims[i] = match value {
                    Some(value) if !value.starts_with(LEASE_PREFIX) => Claim::Processed,
                    // Leased by another, or gone again in between: it comes back later.
                    _ => Claim::HeldElsewhere,
                };
            }
        }
        Ok(claims)
    }

    /// Extends the lease by `ttl_ms`; `false` when it is no longer ours (it ran out).
    pub(crate) async fn renew(&self, conn: &mut MultiplexedConnection, ttl_ms: u64) -> RedisResult<bool> {
        renew_if_held(conn, &self.record, &self.holder, ttl_ms).await
    }

    /// Adds the `SET {record} "done {consumer}" PX {record_ttl_ms}` that records the
    /// event as processed (over the lease) to `pipe`; the consumer acknowledges the
    /// entry in the same pipeline or a later one.
    pub(crate) fn record_done(&self, pipe: &mut redis::Pipeline, record_ttl_ms: u64) {
        pipe.cmd("SET").arg(&self.record).arg(&self.done).arg("PX").arg(record_ttl_ms).ignore();
    }

    /// Drops the lease if it is still ours (after a dead letter, or when the entry is
    /// gone), so a replay of the event runs.
    pub(crate) async fn release(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        release_if_held(conn, &self.record, &self.holder).await
    }
}
