//! `bench run [--quick] [--same-core]`: the comparison. Servers and load generators run
//! as separate processes of this binary, pinned with `taskset` (server on core 0, load
//! on core 1; `--same-core`: both on core 0), each on one tokio worker. Systems run
//! interleaved, round after round, and each is reported as a ratio to the floor
//! measured in the same round:
//!
//! `RESULT <workload> <system> <ratio_to_floor_median> <ratio_min> <ratio_max>`
//!
//! Throughput workloads: throughput / floor's (higher is better). Latency workloads:
//! latency / floor's (lower is better). `*_cpu_per_call`: CPU time per call of one
//! side (from `/proc`) / floor's (lower is better). `dup_hit_vs_fresh`: server CPU per duplicate /
//! per fresh call on intercall (`dup_floor_vs_fresh`: the floor server's CPU per call
//! over that fresh call, the bound no cache can beat). `mem_bytes_per_cached_call`:
//! bytes, not a ratio.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use intercall::calls::{CallKey, Claim, MemoryCallStore, StoredReply};
use intercall_bench::clients::{Client, Op};
use intercall_bench::stores::Store;
use intercall_bench::{cpu_ms_of, load, rss_bytes_of, servers, sockets_of};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(&args[1])),
        Some("load") => runtime.block_on(load_command(&args[1..])),
        Some("mem") => runtime.block_on(mem(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000),
            args.get(2).map_or("intercall", String::as_str),
        )),
        Some("stores") => stores(args.iter().any(|a| a == "--quick")),
        Some("mem-budget") => {
            let arg = |i: usize, default: u64| args.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
            runtime.block_on(mem_budget(arg(1, 32 << 20), arg(2, 4096), arg(3, 40_000)))
        }
        Some("soak") => {
            let options = intercall_bench::soak::Options::parse(&args[1..])?;
            match runtime.block_on(intercall_bench::soak::run(options))? {
                true => Ok(()),
                false => Err("the soak failed: see the SOAK lines".into()),
            }
        }
        Some("soak-serve") => runtime.block_on(intercall_bench::soak::service::serve(&args[1], args.get(2).map(String::as_str))),
        Some("stream-load") => {
            let [system, port, size, count] = &args[1..] else {
                return Err("stream-load <system> <port> small|large <count>".into());
            };
            let (system, port, large, count) = (system.clone(), port.parse()?, size == "large", count.parse()?);
            // The reader runs as a task on the runtime's worker, where a service reads a
            // stream (and where `load` runs its calls), not on the thread that blocks on
            // the runtime: there, every chunk the connection task hands over would cross
            // threads, for either system.
            let reader = runtime.spawn(async move {
                intercall_bench::streams::items_per_second(&system, port, large, count).await
            });
            let rate = runtime.block_on(reader)??;
            println!("{rate}");
            Ok(())
        }
        Some("stream") => stream_run(args.iter().any(|a| a == "--quick")),
        Some("run") => {
            // `--only floor,intercall`: a subset of the systems, for quicker iterations.
            let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1));
            let only: Option<Vec<&str>> = only.map(|list| list.split(',').collect());
            run(args.iter().any(|a| a == "--quick"), args.iter().any(|a| a == "--same-core"), only.as_deref())
        }
        _ => Err("usage: bench run [--quick] [--same-core] [--only a,b] | serve <system> | load <system> <port> <op> <concurrency> <ms> | stream [--quick] | stream-load <system> <port> small|large <count> | mem <n> [store] | stores [--quick] | mem-budget <max_bytes> <reply_bytes> <calls> | soak [--minutes N] [--rate R] [--concurrency C]".into()),
    }
}

/// Serves `system` on a free port until stdin closes (the driver ends).
async fn serve(system: &str) -> Result<(), Failure> {
    let system = observed(system)?;
    if system == "intercall-3" {
        return serve_three_endpoints().await;
    }
    if !intercall_bench::SYSTEMS.contains(&system) && !intercall_bench::STORE_VARIANTS.contains(&system) {
        return Err(format!("no server for `{system}`").into());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ready {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    });
    servers::serve(system, listener, async {
        let _ = stdin_closed.await;
    })
    .await
}

async fn load_command(args: &[String]) -> Result<(), Failure> {
    let [system, port, op, concurrency, millis] = args else { return Err("load <system> <port> <op> <c> <ms>".into()) };
    let client = Client::new(observed(system)?, port).await?;
    let op = Op::parse(op).ok_or_else(|| format!("unknown op `{op}`"))?;
    let mark = |phase: &str| {
        println!("{phase}");
        let _ = std::io::stdout().flush();
    };
    let sample = load::run(client, op, concurrency.parse()?, Duration::from_millis(millis.parse()?), mark).await;
    println!("{}", serde_json::to_string(&sample)?);
    Ok(())
}

/// An observed system (`intercall-observed`, `intercall-metrics-on`,
/// `intercall-otel-on`) is intercall's server or client with the telemetry of
/// `intercall_bench::observed` installed in this process; any other system is itself.
fn observed(system: &str) -> Result<&str, Failure> {
    if !OBSERVED.contains(&system) {
        return Ok(system);
    }
    #[cfg(feature = "telemetry")]
    {
        intercall_bench::observed::install_for(system)?;
        Ok("intercall")
    }
    #[cfg(not(feature = "telemetry"))]
    Err(format!("`{system}` needs the bench built with `--features telemetry`").into())
}

/// The observed systems' names, known with or without feature `telemetry`.
const OBSERVED: [&str; 3] = ["intercall-observed", "intercall-metrics-on", "intercall-otel-on"];

/// intercall's server on three ports of one process (one core, as every server here):
/// three endpoints for the balancing client `intercall-3`, so that its figures differ
/// from `intercall`'s by the client's balancing and its three pools alone.
async fn serve_three_endpoints() -> Result<(), Failure> {
    let mut ports = Vec::new();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port().to_string());
        listeners.push(listener);
    }
    println!("ready {}", ports.join(","));
    std::io::stdout().flush()?;
    let router = servers::router("intercall").ok_or("the intercall router")?;
    let last = listeners.pop().ok_or("three listeners")?;
    for listener in listeners {
        tokio::spawn(intercall::serve(listener, router.clone()));
    }
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    });
    intercall::serve_with_shutdown(last, router, async {
        let _ = stdin_closed.await;
    })
    .await?;
    Ok(())
}

/// Bytes per cached call id in the in-process store of `system` (`intercall`: the
/// runtime's `MemoryCallStore`; or one of [`intercall_bench::STORE_VARIANTS`]), beyond
/// the stored body: the RSS growth of this process after filling it with `n` completed
/// calls.
async fn mem(n: u64, system: &str) -> Result<(), Failure> {
    let store = Store::new(system, n + 1, Duration::from_secs(3600), intercall::calls::DEFAULT_MAX_BYTES);
    let calls = store.call_store();
    let body = bytes::Bytes::from_static(br#"{"id":1}"#);
    let before = rss_bytes_of("self");
    for i in 0..n {
        let key = CallKey::new(uuid::Uuid::from_u128(u128::from(i) + 1), "Bench", "echo", None);
        let Claim::Run(ticket) = calls.claim(&key, 1).await? else { return Err("a fresh key must be claimed".into()) };
        calls.complete(&key, ticket, StoredReply { status: 200, body: body.clone() }).await?;
    }
    // The hand-written store splits its capacity over its shards, so a few hundred of
    // the oldest may go (as in every earlier figure); a store that kept far fewer would
    // flatter itself.
    if store.held() < n * 95 / 100 {
        return Err(format!("{system}: {} of {n} calls kept", store.held()).into());
    }
    let grown = rss_bytes_of("self").saturating_sub(before) as f64;
    println!("{}", grown / n as f64 - body.len() as f64);
    Ok(())
}

/// `bench stores [--quick]`: the call-id store on the runtime's hand-written map, on
/// moka and on quick_cache, in one run. `echo_c64_tput` of intercall's server on each
/// (the proxy as client; as ratios to the floor, and to the hand-written store of the
/// same round), then `mem_bytes_per_cached_call` of each at 100k and (not `--quick`)
/// 1M calls.
fn stores(quick: bool) -> Result<(), Failure> {
    let (rounds, millis) = if quick { (3, 700) } else { (5, 3_000) };
    let mut cases = vec![
        Case { system: "floor", server: "floor", client: "floor", op: "echo" },
        Case { system: "intercall", server: "intercall", client: "intercall", op: "echo" },
    ];
    for system in intercall_bench::STORE_VARIANTS {
        cases.push(Case { system, server: system, client: "intercall", op: "echo" });
    }
    println!("# stores: {rounds} rounds x {millis} ms, echo at c64, server on core 0, load on core 1");
    // tput[round][case]
    let mut tput: Vec<Vec<f64>> = Vec::new();
    for round in 0..rounds {
        let mut this_round = Vec::new();
        for case in &cases {
            let m = measure(*case, 64, millis, "0", "1")?;
            if m.sample.errors > 0 || m.sample.calls == 0 {
                return Err(format!(
                    "round {round}, {}: {} errors: {:?}",
                    case.system, m.sample.errors, m.sample.first_error
                )
                .into());
            }
            this_round.push(m.sample.throughput());
        }
        tput.push(this_round);
    }
    for (i, case) in cases.iter().enumerate().skip(1) {
        for (name, base) in [("echo_c64_tput", 0), ("echo_c64_tput_vs_handwritten", 1)] {
            let ratios: Vec<f64> = tput.iter().map(|round| round[i] / round[base]).collect();
            let (median, min, max) = spread(&ratios);
            println!("RESULT {name} {} {median:.3} {min:.3} {max:.3}", case.system);
        }
    }
    let sizes = if quick { vec![100_000] } else { vec![100_000, 1_000_000] };
    for system in std::iter::once("intercall").chain(intercall_bench::STORE_VARIANTS) {
        let mut values = Vec::new();
        for n in &sizes {
            let out = Command::new(std::env::current_exe()?).args(["mem", &n.to_string(), system]).output()?;
            let text = String::from_utf8(out.stdout)?;
            let bytes: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("mem {n} {system}: `{text}` {}", String::from_utf8_lossy(&out.stderr)))?;
            println!("# mem {system}: {n} cached call ids: {bytes:.0} bytes each beyond the body");
            values.push(bytes);
        }
        let (median, min, max) = spread(&values);
        println!("RESULT mem_bytes_per_cached_call {system} {median:.1} {min:.1} {max:.1}");
    }
    Ok(())
}

/// What a byte budget costs in RSS: this process serves `Bench` with a store of
/// `max_bytes`, and calls `large` `calls` times (each with its own call id, so each
/// reply is kept) with a blob of `reply_bytes`, through the generated proxy over
/// loopback. Prints the RSS growth and its ratio to the budget: the server's real
/// reply path decides the bodies' allocations, which is what the budget must bound.
async fn mem_budget(max_bytes: u64, reply_bytes: u64, calls: u64) -> Result<(), Failure> {
    use intercall_bench::payload::{Bench, BenchProxy, BenchServer, Blob, Echoer};
    let store = MemoryCallStore::new(1_000_000, Duration::from_secs(3600)).with_max_bytes(max_bytes);
    let router = BenchServer::new(Echoer).call_store(std::sync::Arc::new(store)).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(intercall::serve(listener, router));
    let proxy = BenchProxy::new(intercall::Invoker::builder().service("Bench", url).build()?)?;
    let blob = Blob { data: "x".repeat(usize::try_from(reply_bytes)?) };
    // One call first, so the connection and its buffers are not counted.
    proxy.large(blob.clone()).await.map_err(|e| format!("{e:?}"))?;
    let before = rss_bytes_of("self");
    for _ in 0..calls {
        proxy.large(blob.clone()).await.map_err(|e| format!("{e:?}"))?;
    }
    let grown = rss_bytes_of("self").saturating_sub(before);
    println!(
        "budget {max_bytes} B, {calls} replies of {reply_bytes} B: RSS grew {:.1} MiB, {:.2} x the budget",
        grown as f64 / f64::from(1 << 20),
        grown as f64 / max_bytes as f64
    );
    Ok(())
}

/// One measurement: which server, which client, which operation.
#[derive(Clone, Copy)]
struct Case {
    system: &'static str,
    server: &'static str,
    client: &'static str,
    op: &'static str,
}

/// Every system on `echo`, the floor first: the ratios are to it.
const ECHO: [Case; 7] = [
    Case { system: "floor", server: "floor", client: "floor", op: "echo" },
    Case { system: "floor-hyper", server: "floor", client: "floor-hyper", op: "echo" },
    Case { system: "intercall", server: "intercall", client: "intercall", op: "echo" },
    // Issue 18's "everything on": `intercall` and one no-op client layer, with metrics
    // and trace propagation compiled in (as in every build of the bench), nothing
    // installed.
    Case { system: "intercall-all", server: "intercall", client: "intercall-all", op: "echo" },
    Case { system: "jsonrpsee", server: "jsonrpsee", client: "jsonrpsee", op: "echo" },
    Case { system: "tonic", server: "tonic", client: "tonic", op: "echo" },
    Case { system: "tarpc", server: "tarpc", client: "tarpc", op: "echo" },
];

/// intercall's client variants at c64, against intercall's server; the floor first.
const CLIENTS: [Case; 6] = [
    Case { system: "floor", server: "floor", client: "floor", op: "echo" },
    Case { system: "intercall", server: "intercall", client: "intercall", op: "echo" },
    Case { system: "intercall-layer", server: "intercall", client: "intercall-layer", op: "echo" },
    Case { system: "intercall-reqwest", server: "intercall", client: "intercall-reqwest", op: "echo" },
    Case { system: "intercall-h2", server: "intercall", client: "intercall-h2", op: "echo" },
    // Three endpoints (three ports of one server process), balanced by the client.
    Case { system: "intercall-3", server: "intercall-3", client: "intercall-3", op: "echo" },
];

fn with_op(cases: &[Case], op: &'static str) -> Vec<Case> {
    cases.iter().map(|&case| Case { op, ..case }).collect()
}

/// Per system, its ratio in every round.
type Systems = Vec<(String, Vec<f64>)>;

/// A set of cases measured together in each round.
struct Run {
    cases: Vec<Case>,
    concurrency: usize,
}

/// What a reported workload compares, from which run.
#[derive(Clone, Copy)]
enum Metric {
    Throughput,
    Latency(fn(&load::Sample) -> f64),
    /// Server CPU per call of the run's case `n` over its first.
    ServerCpuRatio(usize),
    /// CPU time per call of one side, over the floor's (lower is better).
    ServerCpuPerCall,
    ClientCpuPerCall,
}

struct Measured {
    sample: load::Sample,
    server_cpu_ms: f64,
    /// The server's open connections at the end of the measured part.
    server_connections: usize,
}

fn run(quick: bool, same_core: bool, only: Option<&[&str]>) -> Result<(), Failure> {
    let (rounds, millis) = if quick { (3, 700) } else { (5, 3_000) };
    let (server_core, client_core) = if same_core { ("0", "0") } else { ("0", "1") };
    // The floor always runs: every ratio is to it.
    #[allow(unused_mut)] // pushed to with `telemetry`
    let mut echo: Vec<Case> =
        ECHO.into_iter().filter(|c| c.system == "floor" || only.is_none_or(|o| o.contains(&c.system))).collect();
    #[cfg(feature = "telemetry")]
    for system in intercall_bench::observed::SYSTEMS {
        // Only when asked for: each is a pair of processes more in every run.
        if only.is_some_and(|o| o.contains(&system)) || (only.is_none() && system == intercall_bench::observed::SYSTEM)
        {
            echo.push(Case { system, server: system, client: system, op: "echo" });
        }
    }
    let runs = [
        Run { cases: echo.clone(), concurrency: 1 },
        Run { cases: echo.clone(), concurrency: 64 },
        Run { cases: with_op(&echo, "large"), concurrency: 64 },
        Run { cases: with_op(&echo, "fail"), concurrency: 64 },
        Run {
            cases: vec![
                Case { system: "intercall-fresh", server: "intercall", client: "floor", op: "fresh" },
                Case { system: "intercall", server: "intercall", client: "floor", op: "duplicate" },
                // The transport alone: what any reply costs the server, cache or not.
                Case { system: "floor", server: "floor", client: "floor", op: "echo" },
            ],
            concurrency: 16,
        },
        // The open client's choices, against intercall's own server.
        Run {
            cases: CLIENTS.into_iter().filter(|c| only.is_none_or(|o| o.contains(&c.system))).collect(),
            concurrency: 64,
        },
    ];
    let reports: [(&str, usize, Metric); 12] = [
        ("echo_c1_p50", 0, Metric::Latency(|s| s.p50_us)),
        ("echo_c1_p99", 0, Metric::Latency(|s| s.p99_us)),
        ("echo_c1_p999", 0, Metric::Latency(|s| s.p999_us)),
        ("echo_c64_tput", 1, Metric::Throughput),
        ("echo_c64_server_cpu_per_call", 1, Metric::ServerCpuPerCall),
        ("echo_c64_client_cpu_per_call", 1, Metric::ClientCpuPerCall),
        ("large_c64_tput", 2, Metric::Throughput),
        ("error_c64_tput", 3, Metric::Throughput),
        ("dup_hit_vs_fresh", 4, Metric::ServerCpuRatio(1)),
        // The lower bound of the line above: the floor's server CPU per call (HTTP and
        // TCP, no framework at all) over intercall's fresh call.
        ("dup_floor_vs_fresh", 4, Metric::ServerCpuRatio(2)),
        ("client_c64_tput", 5, Metric::Throughput),
        ("client_c64_client_cpu_per_call", 5, Metric::ClientCpuPerCall),
    ];
    println!("# bench: {rounds} rounds x {millis} ms, server on core {server_core}, load on core {client_core}");

    // measured[round][run][case], systems interleaved within every round.
    let mut measured: Vec<Vec<Vec<Measured>>> = Vec::new();
    for round in 0..rounds {
        let mut this_round = Vec::new();
        for run in &runs {
            let mut cases = Vec::new();
            for case in &run.cases {
                let m = measure(*case, run.concurrency, millis, server_core, client_core)?;
                if m.sample.errors > 0 || m.sample.calls == 0 {
                    let why = format!("{:?}", m.sample.first_error);
                    return Err(format!(
                        "round {round}, {} {}: {} errors: {why}",
                        case.system, case.op, m.sample.errors
                    )
                    .into());
                }
                cases.push(m);
            }
            this_round.push(cases);
        }
        measured.push(this_round);
    }

    let mut chart = Vec::new();
    for (name, run, metric) in reports {
        let value = |m: &Measured| match metric {
            Metric::Throughput => m.sample.throughput(),
            Metric::Latency(pick) => pick(&m.sample),
            Metric::ServerCpuRatio(_) | Metric::ServerCpuPerCall => m.server_cpu_ms / m.sample.calls.max(1) as f64,
            Metric::ClientCpuPerCall => m.sample.cpu_ms / m.sample.calls.max(1) as f64,
        };
        let systems: Systems = match metric {
            Metric::ServerCpuRatio(case) => {
                let ratios = measured.iter().map(|r| value(&r[run][case]) / value(&r[run][0])).collect();
                vec![(runs[run].cases[case].system.to_owned(), ratios)]
            }
            _ => (0..runs[run].cases.len())
                .map(|i| {
                    let ratios = measured.iter().map(|r| value(&r[run][i]) / value(&r[run][0])).collect();
                    (runs[run].cases[i].system.to_owned(), ratios)
                })
                .collect(),
        };
        for (system, ratios) in &systems {
            let (median, min, max) = spread(ratios);
            println!("RESULT {name} {system} {median:.3} {min:.3} {max:.3}");
        }
        chart.push((name, systems));
    }

    // Connections the server held at the end of each client variant's run (c64).
    for (i, case) in runs[5].cases.iter().enumerate() {
        let counts: Vec<f64> = measured.iter().map(|r| r[5][i].server_connections as f64).collect();
        let (median, min, max) = spread(&counts);
        println!("RESULT client_c64_connections {} {median:.0} {min:.0} {max:.0}", case.system);
    }

    let mut mem_values = Vec::new();
    for n in if quick { vec![100_000] } else { vec![100_000, 1_000_000] } {
        let out = Command::new(std::env::current_exe()?).args(["mem", &n.to_string()]).output()?;
        let bytes: f64 = String::from_utf8(out.stdout)?.trim().parse()?;
        println!("# mem: {n} cached call ids: {bytes:.0} bytes each beyond the body");
        mem_values.push(bytes);
    }
    let (median, min, max) = spread(&mem_values);
    println!("RESULT mem_bytes_per_cached_call intercall {median:.1} {min:.1} {max:.1}");
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/ratios.svg", svg(&chart))?;
    println!("# chart: target/bench/ratios.svg");
    Ok(())
}

/// The `stream` run: per round, each system serves one stream of small items and one
/// of 64 KiB items to a reader in another process (server on core 0, reader on core
/// 1); reported as intercall's items per second over tonic's in the same round, and
/// each system's items per second.
///
/// `RESULT stream_<size>_items_per_s <system> <ratio_to_tonic_median> <min> <max>` and
/// `# <size> <system>: <median> items/s`.
fn stream_run(quick: bool) -> Result<(), Failure> {
    use intercall_bench::streams::STREAM_SYSTEMS;
    let rounds = if quick { 3 } else { 7 };
    let sizes = [("small", if quick { 200_000 } else { 1_000_000 }), ("large", if quick { 2_000 } else { 10_000 })];
    println!("# bench stream: {rounds} rounds, server on core 0, reader on core 1");
    let exe = std::env::current_exe()?;
    for (size, count) in sizes {
        // rates[system][round]
        let mut rates = vec![Vec::new(); STREAM_SYSTEMS.len()];
        for _ in 0..rounds {
            for (i, system) in STREAM_SYSTEMS.iter().enumerate() {
                let mut server = Command::new("taskset")
                    .args(["-c", "0"])
                    .arg(&exe)
                    .args(["serve", system])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let port = ready_port(&mut server)?;
                let out = Command::new("taskset")
                    .args(["-c", "1"])
                    .arg(&exe)
                    .args(["stream-load", system, &port.to_string(), size, &count.to_string()])
                    .output()?;
                drop(server.stdin.take());
                let _ = server.kill();
                let _ = server.wait();
                if !out.status.success() {
                    return Err(format!("stream-load {system} {size}: {}", String::from_utf8_lossy(&out.stderr)).into());
                }
                rates[i].push(String::from_utf8(out.stdout)?.trim().parse::<f64>()?);
            }
        }
        for (i, system) in STREAM_SYSTEMS.iter().enumerate() {
            let ratios: Vec<f64> = rates[i].iter().zip(&rates[0]).map(|(rate, base)| rate / base).collect();
            let (median, min, max) = spread(&ratios);
            println!("RESULT stream_{size}_items_per_s {system} {median:.3} {min:.3} {max:.3}");
            let (median, min, max) = spread(&rates[i]);
            println!("# {size} ({count} items) {system}: {median:.0} items/s (min {min:.0}, max {max:.0})");
        }
    }
    Ok(())
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    (median, sorted.first().copied().unwrap_or(f64::NAN), sorted.last().copied().unwrap_or(f64::NAN))
}

/// Starts the server, runs the load against it, and returns both sides' numbers.
fn measure(
    case: Case,
    concurrency: usize,
    millis: u64,
    server_core: &str,
    client_core: &str,
) -> Result<Measured, Failure> {
    let exe = std::env::current_exe()?;
    let mut server = Command::new("taskset")
        .args(["-c", server_core])
        .arg(&exe)
        .args(["serve", case.server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let port = ready_port(&mut server)?;
    let pid = server.id().to_string();
    let mut load = Command::new("taskset")
        .args(["-c", client_core])
        .arg(&exe)
        .args(["load", case.client, &port, case.op, &concurrency.to_string(), &millis.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The server's CPU time over the measured part only: between the load's marks.
    let (mut cpu_before, mut server_cpu_ms, mut result) = (0.0, 0.0, String::new());
    let mut server_connections = 0;
    for line in BufReader::new(load.stdout.take().ok_or("load stdout")?).lines() {
        match line?.as_str() {
            "measuring" => cpu_before = cpu_ms_of(&pid),
            "measured" => {
                server_cpu_ms = cpu_ms_of(&pid) - cpu_before;
                // Less the listener.
                server_connections = sockets_of(&pid).saturating_sub(1);
            }
            other => result.push_str(other),
        }
    }
    let status = load.wait()?;
    drop(server.stdin.take());
    let _ = server.kill();
    let _ = server.wait();
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = load.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr)?;
        }
        return Err(format!("load {}: {stderr}", case.system).into());
    }
    let sample: load::Sample = serde_json::from_str(&result)?;
    Ok(Measured { sample, server_cpu_ms, server_connections })
}

/// The port the server listens on (ports, comma-separated, for `intercall-3`).
fn ready_port(server: &mut Child) -> Result<String, Failure> {
    let stdout = server.stdout.take().ok_or("server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok(line.trim().strip_prefix("ready ").ok_or_else(|| format!("server said `{line}`"))?.to_owned())
}

/// A bar chart of the median ratios with min-max whiskers, one group per workload.
fn svg(chart: &[(&str, Systems)]) -> String {
    let (width, row) = (760.0, 22.0);
    let rows: usize = chart.iter().map(|(_, systems)| systems.len() + 1).sum();
    let height = 40.0 + row * rows as f64;
    let max = chart.iter().flat_map(|(_, s)| s).flat_map(|(_, v)| v.iter().copied()).fold(1.5_f64, f64::max).min(4.0);
    let x = |v: f64| 260.0 + (v.min(max) / max) * (width - 300.0);
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='12'>\n\
         <line x1='{one}' y1='20' x2='{one}' y2='{bottom}' stroke='#999' stroke-dasharray='4'/>\n\
         <text x='{one}' y='14' text-anchor='middle'>1.0 = floor</text>\n",
        one = x(1.0),
        bottom = height - 10.0
    );
    let mut y = 30.0;
    for (name, systems) in chart {
        out.push_str(&format!("<text x='4' y='{}' font-weight='bold'>{name}</text>\n", y + 14.0));
        y += row;
        for (system, values) in systems {
            let (median, min, max_v) = spread(values);
            out.push_str(&format!(
                "<text x='20' y='{ty}'>{system}</text><rect x='260' y='{y}' width='{w:.1}' height='14' fill='#4a7ebb'/>\
                 <line x1='{a:.1}' y1='{my}' x2='{b:.1}' y2='{my}' stroke='#222'/><text x='{t:.1}' y='{ty}'>{median:.2}</text>\n",
                ty = y + 12.0,
                w = x(median) - 260.0,
                a = x(min),
                b = x(max_v),
                my = y + 7.0,
                t = x(max_v) + 6.0,
            ));
            y += row;
        }
    }
    out.push_str("</svg>\n");
    out
}
