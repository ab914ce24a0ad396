//! Reading a group's events: connect, create the group (on the trait's stream and, with
//! ordering keys, on every key partition), rebalance the partitions, claim what dead
//! consumers left (`XAUTOCLAIM`), recover a taken-over partition in order, then read
//! new entries (`XREADGROUP`) from the trait's stream and the partitions held.

use std::sync::Arc;
use std::time::Instant;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use super::{Consumer, Delivery, MAX_BLOCK, State};
use crate::events::stream::{self, Entry, millis};

impl<T: Send + Sync + 'static> Consumer<T> {
    /// Connects and creates the group when needed, claims what dead consumers left
    /// (at most every half claim-idle time), else reads new events, blocking briefly.
    pub(super) async fn next_batch(&self, state: &mut State) -> Result<(MultiplexedConnection, Vec<Delivery>), String> {
        let block = (self.config.claim_idle / 2).min(MAX_BLOCK);
        let connection = match &state.connection {
            Some(connection) => connection.clone(),
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.config.op_timeout))
                    .set_response_timeout(Some(block + self.config.op_timeout));
                let connection = self
                    .bounded(self.config.client.get_multiplexed_async_connection_with_config(&config))
                    .await
                    .map_err(|e| format!("Redis at {}: {e}", self.config.address))?;
                state.connection = Some(connection.clone());
                connection
            }
        };
        let mut conn = connection.clone();
        if !state.group_ready {
            let start = if self.only_new { "$" } else { "0" };
            let partitions: Vec<String> =
                state.partitions.as_ref().map(|p| p.all_streams().collect()).unwrap_or_default();
            for stream in std::iter::once(self.stream.to_string()).chain(partitions) {
                let mut create = redis::cmd("XGROUP");
                create.arg("CREATE").arg(&stream).arg(&self.group).arg(start).arg("MKSTREAM");
                match self.bounded(create.query_async::<Value>(&mut conn)).await {
                    Ok(_) => {}
                    Err(e) if e.contains("BUSYGROUP") => {}
                    Err(e) => return Err(format!("creating group `{}` on `{stream}`: {e}", self.group)),
                }
            }
            state.group_ready = true;
        }
        if let Some(partitions) = &mut state.partitions {
            self.bounded(partitions.rebalance(&mut conn, self.config.claim_idle)).await?;
        }
        let claim_every = self.config.claim_idle / 2;
        if state.last_claim.is_none_or(|last| last.elapsed() >= claim_every) {
            state.last_claim = Some(Instant::now());
            let mut claim = redis::cmd("XAUTOCLAIM");
            claim
                .arg(&*self.stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(millis(self.config.claim_idle))
                .arg("0-0")
                .arg("COUNT")
                .arg(self.config.batch_size);
            let reply = self.bounded(claim.query_async::<Value>(&mut conn)).await?;
            let (_, claimed) = stream::autoclaim_reply(&reply)?;
            if !claimed.is_empty() {
                let batch = self.claimed(&mut conn, &self.stream, claimed).await;
                return Ok((connection, batch));
            }
        }
        // A partition this consumer took over: first what its last owner left pending,
        // in stream order (whatever its idle time: the owner lease says it is ours).
        let mut reading: Vec<Arc<str>> = vec![Arc::clone(&self.stream)];
        if let Some(partitions) = &mut state.partitions {
            for held in partitions.held_mut() {
                let Some(cursor) = &held.recovering else {
                    reading.push(Arc::clone(&held.stream));
                    continue;
                };
                let mut claim = redis::cmd("XAUTOCLAIM");
                claim
                    .arg(&*held.stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(0)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(self.config.batch_size);
                let reply = self.bounded(claim.query_async::<Value>(&mut conn)).await?;
                let (next, claimed) = stream::autoclaim_reply(&reply)?;
                held.recovering = (next != "0-0").then_some(next);
                if !claimed.is_empty() {
                    let stream = Arc::clone(&held.stream);
                    let batch = self.claimed(&mut conn, &stream, claimed).await;
                    return Ok((connection, batch));
                }
                if held.recovering.is_none() {
                    reading.push(Arc::clone(&held.stream));
                }
            }
        }
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.config.batch_size)
            .arg("BLOCK")
            .arg(millis(block))
            .arg("STREAMS");
        for stream in &reading {
            read.arg(&**stream);
        }
        for _ in &reading {
            read.arg(">");
        }
        let reply =
            match tokio::time::timeout(block + self.config.op_timeout, read.query_async::<Value>(&mut conn)).await {
                Ok(reply) => reply.map_err(|e| e.to_string())?,
                Err(_) => return Err(format!("Redis at {}: a read got no answer in time", self.config.address)),
            };
        let mut batch = Vec::new();
        for (name, entries) in stream::read_reply(&reply)? {
            let Some(stream) = reading.iter().find(|s| ***s == *name) else { continue };
            batch.extend(entries.into_iter().map(|entry| Delivery {
                stream: Arc::clone(stream),
                entry,
                deliveries: 1,
            }));
        }
        Ok((connection, batch))
    }

    /// Entries `XAUTOCLAIM` gave this consumer, with their delivery counts.
    async fn claimed(&self, conn: &mut MultiplexedConnection, stream: &Arc<str>, claimed: Vec<Entry>) -> Vec<Delivery> {
        let mut batch = Vec::with_capacity(claimed.len());
        for entry in claimed {
            // XAUTOCLAIM counted this delivery; a failed lookup counts it as the last.
            let deliveries = self.delivery_count(conn, stream, &entry.id).await.unwrap_or(u64::MAX);
            tracing::info!(events = self.name, group = %self.group, entry = %entry.id, deliveries, "claimed an event a consumer left pending");
            batch.push(Delivery { stream: Arc::clone(stream), entry, deliveries });
        }
        batch
    }

    async fn delivery_count(&self, conn: &mut MultiplexedConnection, stream: &str, entry_id: &str) -> Option<u64> {
        let mut pending = redis::cmd("XPENDING");
        pending.arg(stream).arg(&self.group).arg(entry_id).arg(entry_id).arg(1);
        let reply = self.bounded(pending.query_async::<Value>(conn)).await.ok()?;
        stream::delivery_count(&reply)
    }
}
