//! `cargo run --release -p intercall-bench --bin events [--quick]`: events per second
//! published and consumed through intercall (`#[intercall::events]`: lease, processed
//! record, context, one `XADD` per publish), against a floor written directly with the
//! `redis` crate (`XADD` per event; `XREADGROUP` batches; the handler; `XACK` per entry,
//! so both acknowledge each event after its handler, the at-least-once contract).
//!
//! One `redis-server` (pinned to core 0 with `taskset` when it exists), started here;
//! both systems run in this process, on the same runtime, interleaved round after round
//! on fresh keys (the floor, then intercall with `done_records = "per_event"`, the
//! default, then with `"per_batch"`), and each round reports each mode's rate over the
//! round's floor:
//!
//! `RESULT events_per_sec <system> <ratio_median> <ratio_min> <ratio_max>`
//!
//! (`intercall` is the default mode, `intercall_per_batch` the other), plus per event
//! the rates, the CPU time of Redis and of this process (from `/proc`), and counts that
//! do not depend on the load (Redis's commands, read and write syscalls).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use intercall::DoneRecords;
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
    // `--profile floor|intercall|intercall_per_batch`: that system alone, for a profiler (no ratios).
    let profile = std::env::args().skip_while(|a| a != "--profile").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut redis = RedisProcess::start()?;
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let result = match profile.as_deref() {
        Some(system) => runtime.block_on(alone(&url, system, rounds, events)),
        None => runtime.block_on(compare(&url, redis.pid(), rounds, events)),
    };
    redis.stop();
    result
}

/// The systems each round runs after the floor: intercall in each `done_records` mode.
const MODES: [(&str, DoneRecords); 2] = [("per_event", DoneRecords::PerEvent), ("per_batch", DoneRecords::PerBatch)];

async fn compare(url: &str, redis_pid: u32, rounds: usize, events: u64) -> Result<(), Failure> {
    let client = redis::Client::open(url)?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let mut floor_runs = Vec::new();
    let mut mode_runs: [(Vec<f64>, Vec<Run>); 2] = Default::default();
    // One unmeasured round of each, to warm connections, scripts and allocators.
    floor(&client, "warm", events / 10).await?;
    for (name, mode) in MODES {
        intercall(url, &format!("warm-{name}:"), events / 10, mode).await?;
    }
    for round in 0..rounds {
        let floor_run =
            measured(&mut admin, redis_pid, events, floor(&client, &format!("floor{round}"), events)).await?;
        let mut line = format!("round {round}: floor {:.0} events/s", floor_run.rate);
        for ((name, mode), (ratios, runs)) in MODES.into_iter().zip(&mut mode_runs) {
            let prefix = format!("r{round}-{name}:");
            let run = measured(&mut admin, redis_pid, events, intercall(url, &prefix, events, mode)).await?;
            let ratio = run.rate / floor_run.rate;
            line += &format!(", intercall {name} {:.0} events/s (ratio {ratio:.2})", run.rate);
            ratios.push(ratio);
            runs.push(run);
        }
        println!("{line}");
        floor_runs.push(floor_run);
    }
    for ((name, _), (ratios, _)) in MODES.into_iter().zip(&mut mode_runs) {
        let (median, min, max) = summary(ratios);
        let system = if name == "per_event" { "intercall".to_owned() } else { format!("intercall_{name}") };
        println!("RESULT events_per_sec {system} {median:.3} {min:.3} {max:.3}");
    }
    let median_of = |runs: &[Run], f: fn(&Run) -> f64| summary(&mut runs.iter().map(f).collect::<Vec<_>>()).0;
    let systems: [(&str, &[Run]); 3] =
        [("floor", &floor_runs), ("intercall per_event", &mode_runs[0].1), ("intercall per_batch", &mode_runs[1].1)];
    let header = systems.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(" | ");
    // Counts that do not depend on the machine's load: what Redis was asked per event.
    println!("per event (median of the rounds): {header}");
    let rows: [Row; 8] = [
        ("events per second", |r| r.rate),
        ("Redis CPU, us", |r| r.redis_cpu_us),
        ("publishers' and consumers' CPU, us", |r| r.own_cpu_us),
        ("Redis commands", |r| r.commands.values().map(|c| c.0).sum()),
        ("Redis time in commands, us (INFO commandstats)", |r| r.commands.values().map(|c| c.1).sum()),
        ("Redis read syscalls (round trips arriving)", |r| r.redis_reads),
        ("Redis write syscalls (replies sent)", |r| r.redis_writes),
        ("benchmark process read + write syscalls", |r| r.own_syscalls),
    ];
    for (what, f) in rows {
        let values = systems.iter().map(|(_, runs)| format!("{:.2}", median_of(runs, f))).collect::<Vec<_>>();
        println!("  {what}: {}", values.join(" | "));
    }
    let mut names: Vec<&String> =
        systems.iter().flat_map(|(_, runs)| runs.iter()).flat_map(|r| r.commands.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let calls = |runs: &[Run]| {
            summary(&mut runs.iter().map(|r| r.commands.get(name).map_or(0.0, |c| c.0)).collect::<Vec<_>>()).0
        };
        let usec = |runs: &[Run]| {
            summary(&mut runs.iter().map(|r| r.commands.get(name).map_or(0.0, |c| c.1)).collect::<Vec<_>>()).0
        };
        let calls = systems.iter().map(|(_, runs)| format!("{:.3}", calls(runs))).collect::<Vec<_>>();
        let usec = systems.iter().map(|(_, runs)| format!("{:.2}", usec(runs))).collect::<Vec<_>>();
        println!("  {name}: calls {}, us {}", calls.join(" | "), usec.join(" | "));
    }
    Ok(())
}

/// `system` alone for `rounds` rounds, for a profiler.
async fn alone(url: &str, system: &str, rounds: usize, events: u64) -> Result<(), Failure> {
    let client = redis::Client::open(url)?;
    for round in 0..rounds {
        let rate = match system {
            "floor" => floor(&client, &format!("floor{round}"), events).await?,
            "intercall" => intercall(url, &format!("r{round}:"), events, DoneRecords::PerEvent).await?,
            "intercall_per_batch" => intercall(url, &format!("r{round}:"), events, DoneRecords::PerBatch).await?,
            other => return Err(format!("--profile floor|intercall|intercall_per_batch, not `{other}`").into()),
        };
        println!("round {round}: {system} {rate:.0} events/s");
    }
    Ok(())
}

/// A printed per-event figure: its label and how a round gives it.
type Row = (&'static str, fn(&Run) -> f64);

/// One system's round: its rate, and per event the CPU time, Redis's commands (calls
/// and time in them, from `INFO commandstats`) and the syscalls on either side.
struct Run {
    rate: f64,
    redis_cpu_us: f64,
    own_cpu_us: f64,
    /// Per command name: calls per event, microseconds per event.
    commands: std::collections::BTreeMap<String, (f64, f64)>,
    redis_reads: f64,
    redis_writes: f64,
    own_syscalls: f64,
}

/// Runs `system` on fresh keys with Redis's statistics reset, and measures it.
async fn measured(
    admin: &mut MultiplexedConnection,
    redis_pid: u32,
    events: u64,
    system: impl std::future::Future<Output = Result<f64, Failure>>,
) -> Result<Run, Failure> {
    redis::cmd("FLUSHALL").query_async::<()>(admin).await?;
    redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(admin).await?;
    let pid = redis_pid.to_string();
    let (cpu, own, redis_io, own_io) = (cpu_ms_of(&pid), cpu_ms_of("self"), syscalls_of(&pid), syscalls_of("self"));
    let rate = system.await?;
    let (redis_io_after, own_io_after) = (syscalls_of(&pid), syscalls_of("self"));
    let per_event = |v: f64| v / events as f64;
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await?;
    Ok(Run {
        rate,
        redis_cpu_us: per_event((cpu_ms_of(&pid) - cpu) * 1000.0),
        own_cpu_us: per_event((cpu_ms_of("self") - own) * 1000.0),
        commands: command_stats(&stats)
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "config|resetstat" | "info" | "flushall"))
            .map(|(name, (calls, usec))| (name, (per_event(calls), per_event(usec))))
            .collect(),
        redis_reads: per_event(redis_io_after.0 - redis_io.0),
        redis_writes: per_event(redis_io_after.1 - redis_io.1),
        own_syscalls: per_event(own_io_after.0 - own_io.0 + own_io_after.1 - own_io.1),
    })
}

/// `cmdstat_xadd:calls=20000,usec=51234,...` lines: per command, calls and microseconds.
fn command_stats(info: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let value =
                |key: &str| rest.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok());
            Some((name.to_owned(), (value("calls")?, value("usec")?)))
        })
        .collect()
}

/// Read and write syscalls of a process so far (`syscr`, `syscw` of `/proc/{pid}/io`).
fn syscalls_of(pid: &str) -> (f64, f64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field =
        |key: &str| io.lines().find_map(|line| line.strip_prefix(key)?.trim().parse::<f64>().ok()).unwrap_or(0.0);
    (field("syscr:"), field("syscw:"))
}

fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

/// intercall: `PUBLISHERS` tasks on one `BenchEventsPublisher`, `CONSUMERS` consumers of
/// one group; events per second from the first publish to the last handler.
async fn intercall(url: &str, prefix: &str, events: u64, mode: DoneRecords) -> Result<f64, Failure> {
    let invoker = intercall::Invoker::builder()
        .events(url)
        .events_prefix(prefix)
        .events_batch_size(BATCH)
        .events_done_records(mode)
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
