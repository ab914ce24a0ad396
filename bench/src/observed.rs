//! `intercall-observed` (feature `telemetry`): intercall with everything an operator
//! turns on, in both processes: its metrics recorded by the Prometheus recorder of
//! `metrics-exporter-prometheus`, and its spans sent through `tracing-opentelemetry` to
//! an OpenTelemetry tracer whose batch exporter drops them. Beside `intercall` of the
//! same build (both features compiled in, nothing installed) and of a build without the
//! feature, it gives what observability costs when on and when off.

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The system's name in the harness.
pub const SYSTEM: &str = "intercall-observed";

/// Installs the recorder and the tracer for this process. The provider is leaked: it
/// lives as long as the process, as in a node.
pub fn install() -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    let provider = SdkTracerProvider::builder().with_batch_exporter(Dropped).build();
    let tracer = provider.tracer("intercall-bench");
    std::mem::forget(provider);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::Targets::new().with_target("intercall", tracing::Level::INFO));
    tracing_subscriber::registry().with(spans).try_init().map_err(|e| format!("cannot install the tracer: {e}"))
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
