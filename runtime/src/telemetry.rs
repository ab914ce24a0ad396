//! Metrics (feature `metrics`): what every call records through the `metrics` facade,
//! on both sides. Without the feature these functions are empty and inline away, so a
//! build without it pays nothing; with it and no recorder installed, each call does a
//! few label-building allocations that the facade then drops (docs/BENCHMARKS.md).
//!
//! Names follow the OpenTelemetry RPC semantic conventions where they have one
//! (`rpc.client.call.duration`, `rpc.server.call.duration`, in seconds), with
//! `rpc.system = "intercall"`, `rpc.service` and `rpc.method` on every series.
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
//! `CallError` kind (`timeout`, `connect`, `status`, `decode`, `encode`, `lookup`); a
//! server's is `ok`, `service_error` or `framework_error`.

use std::future::Future;
use std::time::Instant;

use axum::response::Response;

/// The outcome label of a call.
pub(crate) type Outcome = &'static str;

/// A call in flight on one side: counted in the in-flight gauge until dropped.
pub(crate) struct InFlight {
    #[cfg(feature = "metrics")]
    gauge: metrics::Gauge,
}

#[cfg(feature = "metrics")]
mod recorded {
    use super::*;

    const SYSTEM: (&str, &str) = ("rpc.system", "intercall");

    fn labels(service: &'static str, method: &'static str) -> [(&'static str, &'static str); 3] {
        [SYSTEM, ("rpc.service", service), ("rpc.method", method)]
    }

    pub(crate) fn client_started(service: &'static str, method: &'static str) -> InFlight {
        let gauge = metrics::gauge!("intercall.client.in_flight", &labels(service, method));
        gauge.increment(1.0);
        InFlight { gauge }
    }

    pub(crate) fn client_attempt(service: &'static str, method: &'static str, attempt: u32) {
        metrics::counter!("intercall.client.attempts", &labels(service, method)).increment(1);
        if attempt > 1 {
            metrics::counter!("intercall.client.retries", &labels(service, method)).increment(1);
        }
    }

    pub(crate) fn store_event(service: &'static str, method: &'static str, event: &'static str) {
        let [system, service, method] = labels(service, method);
        metrics::counter!("intercall.server.call_id_store", &[system, service, method, ("event", event)]).increment(1);
    }

    pub(crate) fn client_budget_exhausted(service: &'static str, method: &'static str) {
        metrics::counter!("intercall.client.retry_budget_exhausted", &labels(service, method)).increment(1);
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

    pub(crate) fn client_finished(service: &'static str, method: &'static str, outcome: Outcome, started: Instant) {
        let [system, service, method] = labels(service, method);
        let labels = [system, service, method, ("outcome", outcome)];
        metrics::histogram!("rpc.client.call.duration", &labels).record(started.elapsed().as_secs_f64());
        metrics::counter!("intercall.client.calls", &labels).increment(1);
    }

    /// A reply that carries the method's typed error, marked where it is made, since
    /// `call_id_mismatch` shares the typed error's status.
    #[derive(Clone, Copy)]
    struct ServiceErrorReply;

    pub(crate) fn mark_typed_error(mut response: Response, typed_error: bool) -> Response {
        if typed_error {
            response.extensions_mut().insert(ServiceErrorReply);
        }
        response
    }

    /// `handling`, a request's handling, counted in flight and recorded when it ends.
    pub(crate) async fn served<F>(service: &'static str, method: &'static str, handling: F) -> Response
    where
        F: Future<Output = Response>,
    {
        let started = Instant::now();
        let gauge = metrics::gauge!("intercall.server.in_flight", &labels(service, method));
        gauge.increment(1.0);
        let _in_flight = InFlight { gauge };
        let response = handling.await;
        let status = response.status().as_u16();
        let outcome = match status {
            200 => "ok",
            _ if response.extensions().get::<ServiceErrorReply>().is_some() => "service_error",
            _ => "framework_error",
        };
        server_finished(service, method, outcome, status, started);
        response
    }

    fn server_finished(service: &'static str, method: &'static str, outcome: Outcome, status: u16, started: Instant) {
        let [system, service, method] = labels(service, method);
        let status = status.to_string();
        let labels = [
            metrics::Label::new(system.0, system.1),
            metrics::Label::new(service.0, service.1),
            metrics::Label::new(method.0, method.1),
            metrics::Label::new("outcome", outcome),
            metrics::Label::new("http.response.status_code", status),
        ];
        metrics::histogram!("rpc.server.call.duration", labels.iter()).record(started.elapsed().as_secs_f64());
        metrics::counter!("intercall.server.calls", labels.iter()).increment(1);
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            self.gauge.decrement(1.0);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod recorded {
    use super::*;

    #[inline(always)]
    pub(crate) fn client_started(_: &'static str, _: &'static str) -> InFlight {
        InFlight {}
    }

    #[inline(always)]
    pub(crate) fn client_attempt(_: &'static str, _: &'static str, _: u32) {}

    #[inline(always)]
    pub(crate) fn client_budget_exhausted(_: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn shed(_: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn client_circuit_open(_: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn client_ejected(_: &str, _: &str) {}

    #[inline(always)]
    pub(crate) fn store_event(_: &'static str, _: &'static str, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn client_finished(_: &'static str, _: &'static str, _: Outcome, _: Instant) {}

    #[inline(always)]
    pub(crate) fn mark_typed_error(response: Response, _: bool) -> Response {
        response
    }

    #[inline(always)]
    pub(crate) fn served<F: Future<Output = Response>>(_: &'static str, _: &'static str, handling: F) -> F {
        handling
    }
}

pub(crate) use recorded::*;
