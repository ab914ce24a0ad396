//! `cargo run --release -p intercall-bench --bin events [--quick]`: events per second
//! published and consumed through intercall (`#[intercall::events]`: lease, processed
//! record, context, one `XADD` per publish), against a floor written directly with the
//! `redis` crate (`XADD` per event; `XREADGROUP` batches; the handler; `XACK` per entry,
//! so both acknowledge each event after its handler, the at-least-once contract).
//!
//! One `redis-server` (pinned to core 0 with `taskset` when it exists), started here;
//! both systems run in this process, on the same runtime, interleaved round after round
//! on fresh keys, and each round reports intercall's rate over the floor's:
//!
//! `RESULT events_per_sec <system> <ratio_median> <ratio_min> <ratio_max>`
//!
//! plus the rates and Redis's CPU time per event (from `/proc`) of each system.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use intercall_bench::cpu_ms_of;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Publishing tasks, each awaiting its publishes one after the other.
const PUBLISHERS: u64 = 8;
/// Consumers of the one group.
const CONSUMERS: usize = 3;
/// Events a consumer reads at once, in both systems (intercall's default).
const BATCH: u64 = 10;

#[derive(Debug, Serialize, Deserialize)]
pub enum BenchError {
    Unavailable(intercall::CallError),
}

impl From<intercall::CallError> for BenchError {
    fn from(error: intercall::CallError) -> Self {
        BenchError::Unavailable(error)
    }
}

/// The benchmark's event: an order, as the example's.
#[intercall::events]
pub trait BenchEvents {
    async fn placed(&self, order_id: String, total_cents: u64, lines: u32) -> Result<(), BenchError>;
}

/// The floor's payload: the same arguments, decoded the same way.
#[derive(Deserialize)]
struct Placed {
    order_id: String,
    total_cents: u64,
    lines: u32,
}

/// Counts handled events and wakes the driver at the last one.
struct Counter {
    handled: AtomicU64,
    target: u64,
    done: Notify,
}

impl Counter {
    fn new(target: u64) -> Arc<Self> {
        Arc::new(Counter { handled: AtomicU64::new(0), target, done: Notify::new() })
    }

    fn handled(&self, order_id: &str, total_cents: u64, lines: u32) {
        std::hint::black_box((order_id, total_cents, lines));
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.done.notify_one();
        }
    }
}

impl BenchEvents for Arc<Counter> {
    async fn placed(&self, order_id: String, total_cents: u64, lines: u32) -> Result<(), BenchError> {
        self.handled(&order_id, total_cents, lines);
        Ok(())
    }
}

fn main() -> Result<(), Failure> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, events) = if quick { (3, 5_000) } else { (5, 20_000) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut redis = RedisProcess::start()?;
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let result = runtime.block_on(compare(&url, redis.pid(), rounds, events));
    redis.stop();
    result
}

async fn compare(url: &str, redis_pid: u32, rounds: usize, events: u64) -> Result<(), Failure> {
    let client = redis::Client::open(url)?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let (mut ratios, mut floor_rates, mut intercall_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_cpu, mut intercall_cpu) = (Vec::new(), Vec::new());
    let (mut floor_self, mut intercall_self) = (Vec::new(), Vec::new());
    // One unmeasured round of each, to warm connections, scripts and allocators.
    floor(&client, "warm", events / 10).await?;
    intercall(url, "warm:", events / 10).await?;
    for round in 0..rounds {
        redis::cmd("FLUSHALL").query_async::<()>(&mut admin).await?;
        let (cpu, own) = (cpu_ms_of(&redis_pid.to_string()), cpu_ms_of("self"));
        let floor_rate = floor(&client, &format!("floor{round}"), events).await?;
        floor_cpu.push((cpu_ms_of(&redis_pid.to_string()) - cpu) * 1000.0 / events as f64);
        floor_self.push((cpu_ms_of("self") - own) * 1000.0 / events as f64);
        redis::cmd("FLUSHALL").query_async::<()>(&mut admin).await?;
        let (cpu, own) = (cpu_ms_of(&redis_pid.to_string()), cpu_ms_of("self"));
        let intercall_rate = intercall(url, &format!("r{round}:"), events).await?;
        intercall_cpu.push((cpu_ms_of(&redis_pid.to_string()) - cpu) * 1000.0 / events as f64);
        intercall_self.push((cpu_ms_of("self") - own) * 1000.0 / events as f64);
        println!(
            "round {round}: floor {floor_rate:.0} events/s, intercall {intercall_rate:.0} events/s, ratio {:.2}",
            intercall_rate / floor_rate
        );
        ratios.push(intercall_rate / floor_rate);
        floor_rates.push(floor_rate);
        intercall_rates.push(intercall_rate);
    }
    let (median, min, max) = summary(&mut ratios);
    println!("RESULT events_per_sec intercall {median:.3} {min:.3} {max:.3}");
    println!(
        "rates (median): floor {:.0} events/s, intercall {:.0} events/s; Redis CPU per event (median): floor {:.1} us, intercall {:.1} us; publishers' and consumers' CPU per event (median): floor {:.1} us, intercall {:.1} us",
        summary(&mut floor_rates).0,
        summary(&mut intercall_rates).0,
        summary(&mut floor_cpu).0,
        summary(&mut intercall_cpu).0,
        summary(&mut floor_self).0,
        summary(&mut intercall_self).0
    );
    Ok(())
}

fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

/// intercall: `PUBLISHERS` tasks on one `BenchEventsPublisher`, `CONSUMERS` consumers of
/// one group; events per second from the first publish to the last handler.
async fn intercall(url: &str, prefix: &str, events: u64) -> Result<f64, Failure> {
    let invoker = intercall::Invoker::builder()
        .events(url)
        .events_prefix(prefix)
        .events_batch_size(BATCH)
        .environment(false)
        .build()?;
    let counter = Counter::new(events);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        let consumer =
            BenchEventsConsumer::new(invoker.clone(), "bench", Arc::clone(&counter))?.consumer_name(format!("c{i}"));
        let mut stop = stop_tx.subscribe();
        consumers.push(tokio::spawn(consumer.run(async move {
            let _ = stop.recv().await;
        })));
    }
    let publisher = BenchEventsPublisher::new(invoker)?;
    let started = Instant::now();
    let done = counter.done.notified();
    let mut publishing = Vec::new();
    for p in 0..PUBLISHERS {
        let publisher = publisher.clone();
        publishing.push(tokio::spawn(async move {
            for i in (p..events).step_by(PUBLISHERS as usize) {
                publisher.placed(format!("o-{i}"), i, 3).await.map_err(|e| format!("{e:?}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in publishing {
        task.await??;
    }
    wait(done, &counter).await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    for consumer in consumers {
        consumer.await?;
    }
    Ok(rate)
}

/// The floor: the same publishes and reads, with the `redis` crate alone.
async fn floor(client: &redis::Client, stream: &str, events: u64) -> Result<f64, Failure> {
    let connection = client.get_multiplexed_async_connection().await?;
    let mut create = connection.clone();
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("bench")
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut create)
        .await?;
    let counter = Counter::new(events);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        // Each consumer has a connection of its own, as each intercall consumer does.
        let conn = client.get_multiplexed_async_connection().await?;
        consumers.push(tokio::spawn(floor_consumer(
            conn,
            stream.to_owned(),
            format!("c{i}"),
            Arc::clone(&counter),
            Arc::clone(&stop),
        )));
    }
    let started = Instant::now();
    let done = counter.done.notified();
    let mut publishing = Vec::new();
    for p in 0..PUBLISHERS {
        let mut conn = connection.clone();
        let stream = stream.to_owned();
        publishing.push(tokio::spawn(async move {
            for i in (p..events).step_by(PUBLISHERS as usize) {
                let payload = serde_json::json!({ "order_id": format!("o-{i}"), "total_cents": i, "lines": 3 });
                redis::cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(100_000)
                    .arg("*")
                    .arg("method")
                    .arg("placed")
                    .arg("payload")
                    .arg(payload.to_string())
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in publishing {
        task.await??;
    }
    wait(done, &counter).await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for consumer in consumers {
        consumer.await??;
    }
    Ok(rate)
}

async fn floor_consumer(
    mut conn: MultiplexedConnection,
    stream: String,
    name: String,
    counter: Arc<Counter>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("bench")
            .arg(&name)
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        for key in reply.keys {
            for entry in key.ids {
                let payload: String = entry.get("payload").ok_or("an entry without a payload")?;
                let placed: Placed = serde_json::from_str(&payload).map_err(|e| e.to_string())?;
                counter.handled(&placed.order_id, placed.total_cents, placed.lines);
                redis::cmd("XACK")
                    .arg(&stream)
                    .arg("bench")
                    .arg(&entry.id)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Waits for the last handler, at most a minute (a broken build must not hang).
async fn wait(done: tokio::sync::futures::Notified<'_>, counter: &Counter) -> Result<(), Failure> {
    if counter.handled.load(Ordering::Relaxed) >= counter.target {
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(60), done).await.map_err(|_| {
        format!("only {} of {} events handled in a minute", counter.handled.load(Ordering::Relaxed), counter.target)
    })?;
    Ok(())
}

/// A `redis-server` on a free port, pinned to core 0 when `taskset` exists.
struct RedisProcess {
    port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    fn start() -> Result<Self, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let args = ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let pinned =
            Command::new("taskset").arg("-c").arg("0").arg("redis-server").args(args).stdout(Stdio::piped()).spawn();
        let mut child = match pinned {
            Ok(child) => child,
            Err(_) => Command::new("redis-server").args(args).stdout(Stdio::piped()).spawn()?,
        };
        let stdout = child.stdout.take().ok_or("redis-server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|line| line.contains("Ready to accept connections"));
        std::thread::spawn(move || lines.for_each(drop));
        if !ready {
            let _ = child.kill();
            return Err("redis-server did not start (is it installed?)".into());
        }
        Ok(RedisProcess { port, child: Some(child) })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
