//! The `stream` run: items per second of one server stream, intercall's (HTTP/1.1,
//! NDJSON frames) against tonic's (gRPC server streaming over h2c, protobuf), for
//! small items (the `echo` payload, ~80 bytes of JSON) and 64 KiB items. Each
//! measurement is one client reading one stream of `count` items whole, after one
//! warm-up stream on the same connection.

use std::time::Instant;

use intercall::Invoker;

use crate::payload::{Bench, BenchProxy, Blob, Echo};
use crate::peers::tonic;

/// The systems of the `stream` run; the first is the baseline of the ratios.
pub const STREAM_SYSTEMS: [&str; 2] = ["tonic", "intercall"];

/// Reads one stream of `count` items (`large`: 64 KiB each) from `system` at `port`
/// after a warm-up stream of a tenth as many; returns items per second of the measured
/// stream.
pub async fn items_per_second(system: &str, port: u16, large: bool, count: u64) -> Result<f64, String> {
    match system {
        "intercall" => {
            let invoker = Invoker::builder()
                .service("Bench", format!("http://127.0.0.1:{port}/"))
                .build()
                .map_err(|e| e.to_string())?;
            let proxy = BenchProxy::new(invoker).map_err(|e| e.to_string())?;
            read_intercall(&proxy, large, count / 10).await?;
            let started = Instant::now();
            read_intercall(&proxy, large, count).await?;
            Ok(count as f64 / started.elapsed().as_secs_f64())
        }
        "tonic" => {
            let client = tonic::Client::connect(port).await.map_err(|e| e.to_string())?;
            let check = |got: u64, want: u64| if got == want { Ok(()) } else { Err(format!("{got} of {want} items")) };
            check(client.stream(large, count / 10).await.map_err(|e| e.to_string())?, count / 10)?;
            let started = Instant::now();
            check(client.stream(large, count).await.map_err(|e| e.to_string())?, count)?;
            Ok(count as f64 / started.elapsed().as_secs_f64())
        }
        other => Err(format!("no stream client for `{other}`")),
    }
}

/// Reads a whole stream through the generated proxy, checking every item.
async fn read_intercall(proxy: &BenchProxy, large: bool, count: u64) -> Result<(), String> {
    let mut received = 0;
    if large {
        let mut items = proxy.stream_large(count).await.map_err(|e| format!("{e:?}"))?;
        while let Some(item) = items.next().await {
            let item: Blob = item.map_err(|e| format!("{e:?}"))?;
            received += u64::from(item.data.len() == 64 * 1024);
        }
    } else {
        let mut items = proxy.stream_small(count).await.map_err(|e| format!("{e:?}"))?;
        while let Some(item) = items.next().await {
            let item: Echo = item.map_err(|e| format!("{e:?}"))?;
            received += u64::from(item == Echo::sample(received));
        }
    }
    if received == count { Ok(()) } else { Err(format!("{received} of {count} items intact")) }
}
