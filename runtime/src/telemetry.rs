//! Metrics (feature `metrics`): what every call records through the `metrics` facade,
//! on both sides. Without the feature these types are empty and their methods inline
//! away, so a build without it pays nothing. With it, each method's handles are
//! registered with the recorder on its first call and kept, so a call allocates
//! nothing for its metrics (docs/BENCHMARKS.md): install the recorder before the first
//! call, as every exporter's setup does. A rarer outcome (a failure) registers its
//! series when it happens.
//!
//! Names follow the OpenTelemetry RPC semantic conventions where they have one
//! (`rpc.client.call.duration`, `rpc.server.call.duration`, in seconds), with
//! `rpc.system = "intercall"`, `rpc.service` and `rpc.method` on every series. Every
//! metric is described to the recorder (`describe_*!`: its unit and meaning) with a
//! method's first call, so an exporter can name the durations in seconds; how it
//! buckets them is the exporter's setting (the example system's `observability.rs`).
//!
//! | metric | kind | labels beyond system, service, method |
//! |---|---|---|
//! | `rpc.client.call.duration` | histogram (s) | `outcome` |
//! | `intercall.client.calls` | counter | `outcome` |
//! | `intercall.client.attempts` | counter | |
//! | `intercall.client.retries` | counter | |
//! | `intercall.client.retry_budget_exhausted` | counter | |
//! | `intercall.client.in_flight` | gauge | |
//! | `rpc.server.call.duration` | histogram (s) | `outcome`, `http.response.status_code` |
//! | `intercall.server.calls` | counter | `outcome`, `http.response.status_code` |
//! | `intercall.server.in_flight` | gauge | |
//! | `intercall.server.call_id_store` | counter | `event`: `replay`, `wait`, `mismatch`, `store_error` |
//! | `intercall.server.shed` | counter | (calls answered `503 overloaded`, `max_in_flight`) |
//! | `intercall.client.ejections` | counter | `endpoint` (no `rpc.method`: per service) |
//! | `intercall.client.circuit_open` | counter | (calls failed at once: every endpoint ejected) |
//!
//! A client call's `outcome` is `ok`, `service_error` (the method's typed error), or the
//! `CallError` kind (`timeout`, `connect`, `status`, `decode`, `encode`, `lookup`), or
//! `cancelled` for a stream its caller dropped before its end (a stream's call is
//! recorded, and in flight, until the stream ends, on both sides); a
//! server's is `ok`, `service_error` or `framework_error`, or `cancelled` for a stream
//! whose client left before its final frame. A server records a stream when it ends
//! (its final frame, or its client leaving), not when its reply's head leaves: the
//! stream is in flight until then, and its duration is the whole stream's.

use std::time::Instant;

/// The outcome label of a call.
pub(crate) type Outcome = &'static str;

#[cfg(feature = "metrics")]
mod recorded {
    use std::sync::OnceLock;

    use metrics::{Counter, Gauge, Histogram, Label};

    use super::*;

    const SYSTEM: (&str, &str) = ("rpc.system", "intercall");

    fn labels(service: &'static str, method: &'static str) -> [(&'static str, &'static str); 3] {
        [SYSTEM, ("rpc.service", service), ("rpc.method", method)]
    }

    /// Tells the recorder every metric's unit and meaning, so that an exporter can name
    /// and bucket the series (Prometheus: `rpc_server_call_duration_seconds`, with
    /// buckets it is given). Done with each method's handles, on its first call: a
    /// recorder installed then hears it, and describing again changes nothing.
    fn describe() {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_histogram!(
            "rpc.client.call.duration",
            Unit::Seconds,
            "Duration of a call made through a proxy, every attempt and wait between them included"
        );
        describe_counter!("intercall.client.calls", Unit::Count, "Calls made through a proxy, by outcome");
        describe_counter!("intercall.client.attempts", Unit::Count, "Attempts of proxy calls, the first ones included");
        describe_counter!("intercall.client.retries", Unit::Count, "Attempts of proxy calls after the first");
        describe_counter!(
            "intercall.client.retry_budget_exhausted",
            Unit::Count,
            "Retries not made because the invoker's retry budget was spent"
        );
        describe_gauge!("intercall.client.in_flight", Unit::Count, "Proxy calls in flight");
        describe_counter!("intercall.client.ejections", Unit::Count, "Endpoints ejected after consecutive failures");
        describe_counter!(
            "intercall.client.circuit_open",
            Unit::Count,
            "Calls failed at once because every endpoint of their service was ejected"
        );
        describe_histogram!(
            "rpc.server.call.duration",
            Unit::Seconds,
            "Duration of a served call, from its request's arrival to its reply (a stream's: to its end)"
        );
        describe_counter!("intercall.server.calls", Unit::Count, "Served calls, by outcome and status");
        describe_gauge!("intercall.server.in_flight", Unit::Count, "Served calls in flight");
        describe_counter!(
            "intercall.server.call_id_store",
            Unit::Count,
            "Answers of the call-id store other than a first run: replay, wait, mismatch, store_error"
        );
        describe_counter!("intercall.server.shed", Unit::Count, "Calls answered 503 overloaded (max_in_flight)");
    }

    /// A call in flight on one side: counted in the in-flight gauge until dropped.
    pub(crate) struct InFlight<'a>(&'a Gauge);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }

    /// One method's client metrics.
    pub(crate) struct ClientMetrics {
        service: &'static str,
        method: &'static str,
        handles: OnceLock<ClientHandles>,
    }

    /// Registered on the first call: every series a successful call touches.
    struct ClientHandles {
        in_flight: Gauge,
        attempts: Counter,
        retries: Counter,
        ok: (Counter, Histogram),
        service_error: (Counter, Histogram),
    }

    impl ClientMetrics {
        pub(crate) fn new(service: &'static str, method: &'static str) -> Self {
            Self { service, method, handles: OnceLock::new() }
        }

        fn handles(&self) -> &ClientHandles {
            self.handles.get_or_init(|| {
                describe();
                let labels = labels(self.service, self.method);
                ClientHandles {
                    in_flight: metrics::gauge!("intercall.client.in_flight", &labels),
                    attempts: metrics::counter!("intercall.client.attempts", &labels),
                    retries: metrics::counter!("intercall.client.retries", &labels),
                    ok: self.finished_handles("ok"),
                    service_error: self.finished_handles("service_error"),
                }
            })
        }

        fn finished_handles(&self, outcome: Outcome) -> (Counter, Histogram) {
            let [system, service, method] = labels(self.service, self.method);
            let labels = [system, service, method, ("outcome", outcome)];
            (
                metrics::counter!("intercall.client.calls", &labels),
                metrics::histogram!("rpc.client.call.duration", &labels),
            )
        }

        pub(crate) fn started(&self) -> InFlight<'_> {
            let gauge = &self.handles().in_flight;
            gauge.increment(1.0);
            InFlight(gauge)
        }

        /// A stream's reply came: the call stays in flight until [`stream_ended`](Self::stream_ended).
        pub(crate) fn stream_started(&self) {
            self.handles().in_flight.increment(1.0);
        }

        /// A stream whose reply came has ended (or was dropped).
        pub(crate) fn stream_ended(&self) {
            self.handles().in_flight.decrement(1.0);
        }

        pub(crate) fn attempt(&self, attempt: u32) {
            let handles = self.handles();
            handles.attempts.increment(1);
            if attempt > 1 {
                handles.retries.increment(1);
            }
        }

        pub(crate) fn budget_exhausted(&self) {
            metrics::counter!("intercall.client.retry_budget_exhausted", &labels(self.service, self.method))
                .increment(1);
        }

        pub(crate) fn finished(&self, outcome: Outcome, started: Instant) {
            let elapsed = started.elapsed().as_secs_f64();
            let record = |(calls, duration): &(Counter, Histogram)| {
                duration.record(elapsed);
                calls.increment(1);
            };
            match outcome {
                "ok" => record(&self.handles().ok),
                "service_error" => record(&self.handles().service_error),
                failure => record(&self.finished_handles(failure)),
            }
        }
    }

    /// One method's server metrics. Clones share the handles: each request's handler
    /// holds a clone.
    #[derive(Clone)]
    pub(crate) struct ServerMetrics {
        service: &'static str,
        method: &'static str,
        handles: std::sync::Arc<OnceLock<ServerHandles>>,
    }

    struct ServerHandles {
        in_flight: Gauge,
        /// `outcome = ok`, status 200.
        ok: (Counter, Histogram),
    }

    impl ServerMetrics {
        pub(crate) fn new(service: &'static str, method: &'static str) -> Self {
            Self { service, method, handles: Default::default() }
        }

        fn handles(&self) -> &ServerHandles {
            self.handles.get_or_init(|| {
                describe();
                ServerHandles {
                    in_flight: metrics::gauge!("intercall.server.in_flight", &labels(self.service, self.method)),
                    ok: self.finished_handles("ok", 200),
                }
            })
        }

        fn finished_handles(&self, outcome: Outcome, status: u16) -> (Counter, Histogram) {
            let [system, service, method] = labels(self.service, self.method);
            let labels = [
                Label::new(system.0, system.1),
                Label::new(service.0, service.1),
                Label::new(method.0, method.1),
                Label::new("outcome", outcome),
                Label::new("http.response.status_code", status.to_string()),
            ];
            (
                metrics::counter!("intercall.server.calls", labels.iter()),
                metrics::histogram!("rpc.server.call.duration", labels.iter()),
            )
        }

        /// A request's handling begins: counted in flight until the [`Serving`] is
        /// dropped, and recorded by [`Serving::finish`].
        pub(crate) fn start(&self) -> Serving {
            self.handles().in_flight.increment(1.0);
            Serving { metrics: self.clone(), started: Instant::now() }
        }
    }

    /// One request being served: in flight until dropped. A unary call is finished when
    /// its reply is made, a stream when its final frame is (or when its client left).
    pub(crate) struct Serving {
        metrics: ServerMetrics,
        started: Instant,
    }

    impl Serving {
        /// Records the call's duration and count under `outcome` and `status`.
        pub(crate) fn finish(self, outcome: Outcome, status: u16) {
            let elapsed = self.started.elapsed().as_secs_f64();
            let handles = self.metrics.handles();
            let record = |(calls, duration): &(Counter, Histogram)| {
                duration.record(elapsed);
                calls.increment(1);
            };
            match (outcome, status) {
                ("ok", 200) => record(&handles.ok),
                (outcome, status) => record(&self.metrics.finished_handles(outcome, status)),
            }
        }
    }

    impl Drop for Serving {
        fn drop(&mut self) {
            self.metrics.handles().in_flight.decrement(1.0);
        }
    }

    /// A call-id store's answer other than a first run (a replay, a wait, a mismatch, a
    /// store error): rarer than calls, so registered as it happens.
    pub(crate) fn store_event(service: &'static str, method: &'static str, event: &'static str) {
        let [system, service, method] = labels(service, method);
        metrics::counter!("intercall.server.call_id_store", &[system, service, method, ("event", event)]).increment(1);
    }

    pub(crate) fn shed(service: &'static str, method: &'static str) {
        metrics::counter!("intercall.server.shed", &labels(service, method)).increment(1);
    }

    pub(crate) fn client_circuit_open(service: &'static str, method: &'static str) {
        metrics::counter!("intercall.client.circuit_open", &labels(service, method)).increment(1);
    }

    pub(crate) fn client_ejected(service: &str, endpoint: &str) {
        let (service, endpoint) = (service.to_owned(), endpoint.to_owned());
        metrics::counter!("intercall.client.ejections", "rpc.system" => SYSTEM.1, "rpc.service" => service, "endpoint" => endpoint)
            .increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
mod recorded {
    use super::*;

    /// Nothing to count without the feature.
    pub(crate) struct InFlight;

    /// One method's client metrics: none without the feature.
    pub(crate) struct ClientMetrics;

    impl ClientMetrics {
        #[inline(always)]
        pub(crate) fn new(_: &'static str, _: &'static str) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn started(&self) -> InFlight {
            InFlight
        }

        #[inline(always)]
        pub(crate) fn stream_started(&self) {}

        #[inline(always)]
        pub(crate) fn stream_ended(&self) {}

        #[inline(always)]
        pub(crate) fn attempt(&self, _: u32) {}

        #[inline(always)]
        pub(crate) fn budget_exhausted(&self) {}

        #[inline(always)]
        pub(crate) fn finished(&self, _: Outcome, _: Instant) {}
    }

    /// One method's server metrics: none without the feature, and nothing to share (a
    /// clone of a unit struct is free).
    #[derive(Clone)]
    pub(crate) struct ServerMetrics;

    impl ServerMetrics {
        #[inline(always)]
        pub(crate) fn new(_: &'static str, _: &'static str) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn start(&self) -> Serving {
            Serving
        }
    }

    /// One request being served: nothing to record without the feature.
    pub(crate) struct Serving;

    impl Serving {
        #[inline(always)]
        pub(crate) fn finish(self, _: Outcome, _: u16) {}
    }

    #[inline(always)]
    pub(crate) fn shed(_: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn client_circuit_open(_: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn client_ejected(_: &str, _: &str) {}

    #[inline(always)]
    pub(crate) fn store_event(_: &'static str, _: &'static str, _: &'static str) {}
}

pub(crate) use recorded::*;
