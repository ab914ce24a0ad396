//! What the example's nodes show an operator (README, "Observability").
//!
//! - **Metrics.** intercall records through the `metrics` facade (feature `metrics`);
//!   each node installs `metrics-exporter-prometheus` as the recorder and serves
//!   `GET /metrics` in the Prometheus text format, with Prometheus's naming (counters
//!   end in `_total`, a unit in its suffix: `rpc_server_call_duration_seconds`) and the
//!   call durations as histograms ([`DURATION_BUCKETS`]).
//! - **Traces** (`--features otel`). intercall's spans go through `tracing-opentelemetry`
//!   to an OpenTelemetry tracer: exported by OTLP over HTTP when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set (a collector, Jaeger, Tempo), and printed one
//!   line per span otherwise. The trace context crosses every hop as `traceparent`.
//! - **Logs** go to stderr at the level of `RUST_LOG` (default `warn`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::Failure;

/// The path each node serves its metrics at. One segment, so it cannot clash with an
/// intercall route (`/{service}/{method}`).
pub const METRICS_PATH: &str = "/metrics";

/// The bucket bounds, in seconds, of the call durations (`rpc.client.call.duration`,
/// `rpc.server.call.duration`): the bounds the OpenTelemetry semantic conventions advise
/// for HTTP request durations. Without buckets the exporter renders a histogram as a
/// summary, whose quantiles cannot be added up across replicas; buckets can
/// (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))`).
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The durations intercall records, each given [`DURATION_BUCKETS`].
const DURATIONS: [&str; 2] = ["rpc.client.call.duration", "rpc.server.call.duration"];

/// The installed recorder and tracer of one process; [`shutdown`](Self::shutdown) sends
/// the spans still buffered.
pub struct Observability {
    prometheus: PrometheusHandle,
    #[cfg(feature = "otel")]
    tracer: opentelemetry_sdk::trace::SdkTracerProvider,
}

/// Installs the metrics recorder and the tracing subscriber of a process named `role`.
/// Called once, before the first call: intercall registers each method's series on its
/// first call, with the recorder installed then.
pub fn install(role: &str) -> Result<Observability, Failure> {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for name in DURATIONS {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), &DURATION_BUCKETS)?;
    }
    let prometheus = builder.install_recorder().map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()));
    #[cfg(feature = "otel")]
    {
        let tracer = traces::provider(role)?;
        let spans = traces::layer(&tracer, role);
        tracing_subscriber::registry().with(logs).with(spans).try_init()?;
        Ok(Observability { prometheus, tracer })
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = role;
        tracing_subscriber::registry().with(logs).try_init()?;
        Ok(Observability { prometheus })
    }
}

impl Observability {
    /// `GET /metrics`: the Prometheus text of every series recorded so far.
    pub fn metrics_route(&self) -> intercall::Router {
        let handle = self.prometheus.clone();
        intercall::Router::new().route(METRICS_PATH, axum::routing::get(move || async move { handle.render() }))
    }

    /// Sends the spans still buffered (a no-op without `otel`).
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Err(error) = self.tracer.shutdown() {
            eprintln!("spans not all exported: {error}");
        }
    }
}

#[cfg(feature = "otel")]
mod traces {
    use std::fmt::Write;

    use opentelemetry::trace::{SpanId, TracerProvider};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::registry::LookupSpan;

    use crate::Failure;

    /// The environment variable that switches printing to OTLP export.
    const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

    pub fn provider(role: &str) -> Result<SdkTracerProvider, Failure> {
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(format!("example-{role}")).build();
        let builder = SdkTracerProvider::builder().with_resource(resource);
        let builder = if std::env::var_os(OTLP_ENDPOINT).is_some() {
            // Reads the endpoint, headers and timeout from the OTEL_EXPORTER_OTLP_* variables.
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
            builder.with_batch_exporter(exporter)
        } else {
            builder.with_simple_exporter(PrintedSpans { role: role.to_owned() })
        };
        Ok(builder.build())
    }

    /// intercall's spans (target `intercall`, level info) to the tracer.
    pub fn layer<S>(provider: &SdkTracerProvider, role: &str) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let tracer = provider.tracer(format!("example-{role}"));
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target("intercall", tracing::Level::INFO))
    }

    /// Prints one line per finished span: who, what, how it ended, and its place in
    /// the trace (trace id, span id, parent span id).
    #[derive(Debug)]
    struct PrintedSpans {
        role: String,
    }

    impl SpanExporter for PrintedSpans {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            for span in batch {
                println!("{}", self.line(&span));
            }
            Ok(())
        }
    }

    impl PrintedSpans {
        fn line(&self, span: &SpanData) -> String {
            let context = &span.span_context;
            let parent = match span.parent_span_id {
                SpanId::INVALID => "root".to_owned(),
                parent => parent.to_string(),
            };
            let trace = context.trace_id().to_string();
            let mut line = format!(
                "span {} {} trace {}.. id {} parent {parent}",
                self.role,
                span.name,
                &trace[..8],
                context.span_id()
            );
            const SHOWN: [&str; 7] =
                ["rpc.service", "rpc.method", "attempt", "outcome", "error.type", "replayed", "waited"];
            for attribute in span.attributes.iter().filter(|a| SHOWN.contains(&a.key.as_str())) {
                let _ = write!(line, " {}={}", attribute.key, attribute.value);
            }
            line
        }
    }
}
