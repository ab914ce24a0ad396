//! intercall's benchmark harness: the systems under test, the load generator, and the
//! driver that runs them as separate pinned processes and reports ratios to the floor.
//!
//! The systems ([`SYSTEMS`]), each a server and a client making the same calls:
//! - `floor`: hand-written axum handlers + reqwest, intercall's wire with nothing added;
//! - `floor-hyper`: the same server, hyper's client;
//! - `intercall`: the generated proxy and router, with call id, user context, activity
//!   id and the call-id cache;
//! - `intercall-all`: issue 18's "everything on": `intercall` with one no-op client
//!   layer (metrics and trace propagation are compiled into every build of the bench,
//!   with no recorder or exporter installed);
//! - `jsonrpsee`: JSON-RPC 2.0 over HTTP/1, jsonrpsee's server and HTTP client;
//! - `tonic`: gRPC over h2c, protobuf, tonic's server and client;
//! - `tarpc`: tarpc over TCP with bincode frames.
//!
//! Store variants of intercall's server (the `stores` run, [`stores`]):
//! - `intercall-moka`, `intercall-quick-cache`: the call-id store on moka or quick_cache.
//!
//! Client variants of intercall, against intercall's server (the `clients` run):
//! - `intercall-layer`: one no-op client layer (what the layered path costs);
//! - `intercall-reqwest`: the proxy over `ReqwestTransport` (a default `reqwest::Client`);
//! - `intercall-h2`: the proxy over HTTP/2 (h2c, prior knowledge).
//!
//! With feature `telemetry`, the observed systems ([`observed`]): intercall with a
//! metrics recorder (`intercall-metrics-on`), an OpenTelemetry tracer
//! (`intercall-otel-on`), or both (`intercall-observed`) installed on both sides.
//!
//! The `stream` run ([`streams`]): items per second of one server stream, intercall
//! against tonic, for small and 64 KiB items.

pub mod clients;
pub mod load;
#[cfg(feature = "telemetry")]
pub mod observed;
pub mod payload;
pub mod peers;
pub mod servers;
pub mod soak;
pub mod stores;
pub mod streams;

/// Every system under test, the floor first.
pub const SYSTEMS: [&str; 6] = ["floor", "floor-hyper", "intercall", "jsonrpsee", "tonic", "tarpc"];

/// intercall's server on another call-id store ([`stores`]), for `bench stores`.
pub const STORE_VARIANTS: [&str; 2] = ["intercall-moka", "intercall-quick-cache"];

/// CPU time (user + system) of a process, in milliseconds, from `/proc/{pid}/stat`;
/// `pid` may be `self`. 0 where `/proc` is missing.
pub fn cpu_ms_of(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    (ticks(11) + ticks(12)) * 1000.0 / clock_ticks_per_second()
}

/// Resident memory of a process in bytes, from `/proc/{pid}/status`.
pub fn rss_bytes_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on; `getconf` confirms it.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Open sockets of a process (its listener and its connections), from `/proc/{pid}/fd`;
/// 0 where `/proc` is missing.
pub fn sockets_of(pid: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}
