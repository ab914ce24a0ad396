//! The observed systems (feature `telemetry`): intercall with what an operator turns on,
//! in both processes, one piece at a time or all of it:
//! - `intercall-metrics-on`: its metrics recorded by the Prometheus recorder of
//!   `metrics-exporter-prometheus`;
//! - `intercall-otel-on`: its spans sent through `tracing-opentelemetry` to an
//!   OpenTelemetry tracer whose batch exporter drops them;
//! - `intercall-observed`: both.
//!
//! `metrics` and `otel` are compiled into every build of the bench (Cargo.toml), so beside
//! `intercall` of the same build (both compiled in, nothing installed) these give what
//! each costs when on.

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Both installed: the system's name in the harness.
pub const SYSTEM: &str = "intercall-observed";

/// Every observed system, all of it first.
pub const SYSTEMS: [&str; 3] = [SYSTEM, "intercall-metrics-on", "intercall-otel-on"];

/// Installs what `system` (one of [`SYSTEMS`]) turns on, for this process: the
/// recorder, the tracer, or both. The provider is leaked: it lives as long as the
/// process, as in a node.
pub fn install_for(system: &str) -> Result<(), String> {
    let (metrics, otel) = match system {
        SYSTEM => (true, true),
        "intercall-metrics-on" => (true, false),
        "intercall-otel-on" => (false, true),
        _ => return Err(format!("`{system}` is not an observed system")),
    };
    if metrics {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    }
    if otel {
        let provider = SdkTracerProvider::builder().with_batch_exporter(Dropped).build();
        let tracer = provider.tracer("intercall-bench");
        std::mem::forget(provider);
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("intercall", tracing::Level::INFO));
        tracing_subscriber::registry().with(spans).try_init().map_err(|e| format!("cannot install the tracer: {e}"))?;
    }
    Ok(())
}

/// Installs both the recorder and the tracer (`intercall-observed`).
pub fn install() -> Result<(), String> {
    install_for(SYSTEM)
}

/// An exporter that drops every span: the cost measured is intercall's and the SDK's,
/// not a collector's.
#[derive(Debug)]
struct Dropped;

impl SpanExporter for Dropped {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}
