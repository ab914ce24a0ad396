//! `bench soak [--minutes N] [--rate R] [--concurrency C]`: a bounded load with faults
//! against real server processes, watching what must not grow (docs/RELIABILITY.md,
//! "Soak").
//!
//! It starts a server process with the memory store and, when `redis-server` is on the
//! PATH, one with the Redis store on a Redis of its own, which it SIGKILLs and restarts
//! six times over the run. Both get the same mix of calls and faults ([`faults`]) at
//! `R` calls/s in all from `C` loops. Every interval it prints, per server: RSS, open
//! file descriptors, and the store's size (the memory store: completed calls, bytes of
//! replies and running claims; Redis: its keys). At the end it applies the rule of
//! [`gauges`] to every series, prints the outcomes by kind, and exits non-zero when a
//! gauge grew, a bound was passed, or an interval went by without one good call to the
//! memory server. It stops by itself after `N` minutes (default 10).

pub mod faults;
pub mod gauges;
pub mod service;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intercall::calls::MemoryStoreUsage;
use intercall_tests::redis_server::RedisServer;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::{rss_bytes_of, soak::gauges::Unit};
use faults::Target;
use gauges::Gauge;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The soak's settings, from its command line.
pub struct Options {
    pub duration: Duration,
    pub rate: f64,
    pub concurrency: usize,
}

impl Options {
    /// `--minutes N` (default 10, fractions allowed), `--rate R` calls/s (default 300),
    /// `--concurrency C` (default 16).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let value = |flag: &str, default: f64| -> Result<f64, String> {
            match args.iter().position(|a| a == flag) {
                None => Ok(default),
                Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or(format!("{flag} needs a number")),
            }
        };
        let minutes = value("--minutes", 10.0)?;
        let (rate, concurrency) = (value("--rate", 300.0)?, value("--concurrency", 16.0)?);
        if !(minutes > 0.0 && rate > 0.0 && concurrency >= 1.0) {
            return Err("--minutes, --rate and --concurrency must be positive".to_owned());
        }
        Ok(Self { duration: Duration::from_secs_f64(minutes * 60.0), rate, concurrency: concurrency as usize })
    }
}

/// A server process under soak.
struct Server {
    target: Arc<Target>,
    child: Child,
    pid: String,
    /// The memory store's latest usage line.
    usage: Arc<Mutex<Option<MemoryStoreUsage>>>,
}

impl Server {
    async fn start(name: &'static str, args: &[&str]) -> Result<Self, Failure> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("soak-serve")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the server exited at once")?.to_string();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("server stdout")?).lines();
        let ready = lines.next_line().await?.unwrap_or_default();
        let port: u16 = ready.strip_prefix("ready ").ok_or_else(|| format!("{name} server said `{ready}`"))?.parse()?;
        let usage = Arc::new(Mutex::new(None));
        let latest = Arc::clone(&usage);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let numbers: Vec<u64> = line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
                if let [completed, bytes, running] = numbers[..] {
                    *latest.lock().expect("not poisoned") = Some(MemoryStoreUsage { completed, bytes, running });
                }
            }
        });
        Ok(Self { target: Arc::new(Target::new(name, port)?), child, pid, usage })
    }

    fn usage(&self) -> Option<MemoryStoreUsage> {
        *self.usage.lock().expect("not poisoned")
    }
}

/// Open file descriptors of a process, from `/proc/<pid>/fd`.
fn open_fds(pid: &str) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(f64::NAN, |entries| entries.count() as f64)
}

/// Runs the soak; `Ok(false)` when a gauge failed its rule.
pub async fn run(options: Options) -> Result<bool, Failure> {
    let interval = (options.duration / 100).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let memory = Server::start("memory", &["memory"]).await?;
    let redis = RedisServer::start("soak").map(|redis| Arc::new(Mutex::new(redis)));
    let redis_server = match &redis {
        Some(redis) => {
            let url = redis.lock().expect("not poisoned").url();
            Some(Server::start("redis", &["redis", &url]).await?)
        }
        None => None,
    };
    println!(
        "# soak: {:.1} min, {} calls/s from {} loops, a sample every {:?}; memory store: {} calls, {} MiB, ttl {:?}; {}",
        options.duration.as_secs_f64() / 60.0,
        options.rate,
        options.concurrency,
        interval,
        service::CAPACITY,
        service::MAX_BYTES >> 20,
        service::TTL,
        if redis.is_some() { "Redis store: restarted 6 times" } else { "no redis-server on PATH: memory store only" },
    );

    let started = Instant::now();
    let end = started + options.duration;
    let targets: Vec<Arc<Target>> =
        std::iter::once(&memory).chain(redis_server.as_ref()).map(|s| Arc::clone(&s.target)).collect();
    let loops: Vec<_> = (0..options.concurrency)
        .map(|worker| {
            let targets = targets.clone();
            let period = Duration::from_secs_f64(options.concurrency as f64 / options.rate);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = worker;
                while Instant::now() < end {
                    ticks.tick().await;
                    // Four calls in five to the memory server, when there are two.
                    let target = &targets[usize::from(n % 5 == 4) % targets.len()];
                    // Bounded: no call may hold a loop past the soak's end by much.
                    let _ = tokio::time::timeout(Duration::from_secs(30), target.one()).await;
                    n += options.concurrency;
                }
            })
        })
        .collect();

    let restarts = redis.as_ref().map(|redis| {
        let redis = Arc::clone(redis);
        let every = options.duration / 7;
        tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(every).await;
                let redis = Arc::clone(&redis);
                let restarted = tokio::task::spawn_blocking(move || redis.lock().expect("not poisoned").restart());
                match restarted.await {
                    Ok(()) => println!("# redis-server SIGKILLed and restarted (empty)"),
                    Err(e) => println!("# redis-server did not restart: {e}"),
                }
            }
        })
    });

    let mut gauges = vec![
        Gauge::new("memory server RSS", Unit::Bytes, 8.0 * f64::from(1 << 20), None),
        Gauge::new("memory server fds", Unit::Count, 32.0, None),
        Gauge::new("memory store completed", Unit::Count, 64.0, Some(service::CAPACITY as f64)),
        Gauge::new("memory store bytes", Unit::Bytes, 256.0 * 1024.0, Some(service::MAX_BYTES as f64)),
        Gauge::new("memory store running", Unit::Count, 64.0, None),
    ];
    if redis_server.is_some() {
        gauges.push(Gauge::new("redis server RSS", Unit::Bytes, 8.0 * f64::from(1 << 20), None));
        gauges.push(Gauge::new("redis server fds", Unit::Count, 32.0, None));
        gauges.push(Gauge::new("redis keys", Unit::Count, 2000.0, None));
    }
    let mut idle_intervals = 0;
    let mut last_ok = 0;
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    while Instant::now() < end {
        ticks.tick().await;
        let usage = memory.usage();
        let mut values = vec![
            rss_bytes_of(&memory.pid) as f64,
            open_fds(&memory.pid),
            usage.map_or(f64::NAN, |u| u.completed as f64),
            usage.map_or(f64::NAN, |u| u.bytes as f64),
            usage.map_or(f64::NAN, |u| u.running as f64),
        ];
        if let (Some(server), Some(redis)) = (&redis_server, &redis) {
            values.push(rss_bytes_of(&server.pid) as f64);
            values.push(open_fds(&server.pid));
            values.push(redis_keys(redis).await);
        }
        for (gauge, value) in gauges.iter_mut().zip(values) {
            gauge.samples.push(value);
        }
        let (ok, failed) = memory.target.tally.totals();
        if ok == last_ok {
            idle_intervals += 1;
        }
        last_ok = ok;
        let mut line = format!("[{:>5.0}s]", started.elapsed().as_secs_f64());
        for gauge in &gauges {
            line.push_str(&format!(" {}={}", gauge.name.replace(' ', "_"), gauge.latest()));
        }
        line.push_str(&format!(" memory_calls_ok={ok} memory_calls_failed={failed}"));
        if let Some(server) = &redis_server {
            let (ok, failed) = server.target.tally.totals();
            line.push_str(&format!(" redis_calls_ok={ok} redis_calls_failed={failed}"));
        }
        println!("{line}");
    }
    for handle in loops {
        let _ = handle.await;
    }
    if let Some(restarts) = restarts {
        restarts.abort();
    }

    let mut held = idle_intervals == 0;
    println!(
        "# verdict (warm-up: the first fifth; a gauge fails if the last third's peak > the first third's x 1.1 + slack)"
    );
    for gauge in &gauges {
        match gauge.verdict() {
            None => println!("SOAK {:<24} not judged: too few samples", gauge.name),
            Some(verdict) => {
                held &= verdict.problem.is_none();
                println!(
                    "SOAK {:<24} first third peak {:>10}, last third peak {:>10}, limit {:>10}: {}",
                    gauge.name,
                    gauge.show(verdict.first_peak),
                    gauge.show(verdict.last_peak),
                    gauge.show(verdict.limit),
                    verdict.problem.as_deref().unwrap_or("held")
                );
            }
        }
    }
    if idle_intervals > 0 {
        println!("SOAK {idle_intervals} intervals went by without one good call to the memory server");
    }
    for server in std::iter::once(&memory).chain(redis_server.as_ref()) {
        for ((kind, outcome), count) in server.target.tally.counts() {
            println!("CALLS {} {kind}: {count} {outcome}", server.target.name);
        }
    }
    for mut server in std::iter::once(memory).chain(redis_server) {
        drop(server.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await.is_err() {
            let _ = server.child.kill().await;
        }
    }
    println!("SOAK {}", if held { "PASSED" } else { "FAILED" });
    Ok(held)
}

/// The Redis store's keys (`DBSIZE`); not a number while Redis restarts.
async fn redis_keys(redis: &Arc<Mutex<RedisServer>>) -> f64 {
    let redis = Arc::clone(redis);
    let reply = tokio::task::spawn_blocking(move || redis.lock().expect("not poisoned").command(&["DBSIZE"]));
    match reply.await {
        Ok(reply) => reply.trim().trim_start_matches(':').parse().unwrap_or(f64::NAN),
        Err(_) => f64::NAN,
    }
}
