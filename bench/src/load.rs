//! The load generator: `concurrency` loops making calls back to back for a fixed time.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clients::{Client, Op};

/// What one load run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    pub calls: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// CPU time this process used, in milliseconds.
    pub cpu_ms: f64,
    /// The first error, if any, for the report.
    pub first_error: Option<String>,
}

impl Sample {
    pub fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `op` against `client` from `concurrency` loops for `duration`, after a short
/// warm-up that is not measured. `mark` is called with `"measuring"` when the measured
/// part starts and `"measured"` when its last call has returned, so that the driver can
/// read the server's CPU time over exactly that part.
pub async fn run(client: Client, op: Op, concurrency: usize, duration: Duration, mark: fn(&str)) -> Sample {
    let warm_up = Instant::now() + duration / 5;
    while Instant::now() < warm_up {
        let _ = client.call(op, 0).await;
    }
    mark("measuring");
    let cpu_before = crate::cpu_ms_of("self");
    let start = Instant::now();
    let end = start + duration;
    let loops: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut first_error) = (Vec::with_capacity(4096), 0u64, None);
                let mut id = worker as u64;
                while Instant::now() < end {
                    let begun = Instant::now();
                    match client.call(op, id).await {
                        Ok(()) => latencies.push(begun.elapsed().as_micros() as u32),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                    id += concurrency as u64;
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut sample = Sample::default();
    for handle in loops {
        let (mut lat, errors, first_error) = handle.await.expect("a load loop finished");
        latencies.append(&mut lat);
        sample.errors += errors;
        if sample.first_error.is_none() {
            sample.first_error = first_error;
        }
    }
    sample.seconds = start.elapsed().as_secs_f64();
    sample.cpu_ms = crate::cpu_ms_of("self") - cpu_before;
    mark("measured");
    latencies.sort_unstable();
    sample.calls = latencies.len() as u64;
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
    };
    sample.p50_us = at(0.50);
    sample.p99_us = at(0.99);
    sample.p999_us = at(0.999);
    sample
}
