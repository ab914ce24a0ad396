//! The example system's OTLP export (README, "Observability"), run for real: the demo
//! and its nodes, built with `--features otel` and started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, send their spans by OTLP over HTTP (protobuf) to a
//! tiny collector on a free loopback port. The test decodes what arrives and checks that
//! every process exported under its service name and that the spans of one
//! `Checkout.quote` call form one trace across the processes.
//!
//! ```sh
//! cargo test -p example-node --features remote-catalog,otel --test otlp
//! ```
//!
//! Without `otel` there is nothing to export, and this file is empty.
#![cfg(feature = "otel")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

/// A bound on the whole demo: a guard against a hang, not a measurement.
const BOUND: Duration = Duration::from_secs(180);

/// One exported span, as the collector decoded it.
#[derive(Debug, Clone, Default)]
struct ExportedSpan {
    /// The `service.name` of the resource that exported it.
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_exports_its_spans_by_otlp() {
    // The collector: POST /v1/traces, an ExportTraceServiceRequest in protobuf.
    let received: Arc<Mutex<Vec<ExportedSpan>>> = Arc::default();
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let collector = {
        let (received, requests) = (Arc::clone(&received), Arc::clone(&requests));
        axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| async move {
                let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                requests.lock().unwrap().push(content_type.to_owned());
                match decode_request(&body) {
                    Ok(spans) => {
                        received.lock().unwrap().extend(spans);
                        // An empty ExportTraceServiceResponse: everything accepted.
                        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], Vec::new()).into_response()
                    }
                    Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    // The example's services.toml, on free ports, so the test runs beside anything on
    // 7301/7302.
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let services = std::env::temp_dir().join(format!("example-node-otlp-{}.toml", std::process::id()));
    std::fs::write(
        &services,
        format!(
            "[services.Catalog]\nurl = \"http://127.0.0.1:{}/\"\n\n[services.Checkout]\nurl = \"http://127.0.0.1:{}/\"\n\n\
             [security]\nsecret = \"example-otlp-test-secret-0123456789\"\n",
            port(),
            port()
        ),
    )
    .unwrap();

    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_example-node"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("INTERCALL_SERVICES", &services)
        .env_remove("INTERCALL_EVENTS__URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BOUND, run).await.expect("the demo ends").expect("the demo starts");
    let _ = std::fs::remove_file(&services);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains("span front-end"), "with an endpoint, spans are exported, not printed:\n{stdout}");

    let spans = received.lock().unwrap().clone();
    let content_types = requests.lock().unwrap().clone();
    assert!(!content_types.is_empty(), "no export request arrived");
    assert!(content_types.iter().all(|c| c == "application/x-protobuf"), "{content_types:?}");

    // Every process exported, under its own service name.
    let mut processes = vec!["example-front-end", "example-checkout"];
    if cfg!(feature = "remote-catalog") {
        processes.push("example-catalog");
    }
    for process in &processes {
        assert!(spans.iter().any(|s| s.service == *process), "nothing from {process}: {spans:#?}");
    }
    assert!(spans.iter().all(|s| processes.contains(&s.service.as_str())), "{spans:#?}");

    // One Checkout.quote call: the front end's call, its attempt, and the checkout
    // node's server span under that attempt, in one trace.
    let quote_calls: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "example-front-end" && s.name == "intercall.call")
        .filter(|s| s.attribute("rpc.method") == Some("quote"))
        .collect();
    assert!(!quote_calls.is_empty(), "no front-end call span of Checkout.quote: {spans:#?}");
    for call in quote_calls {
        assert_eq!(call.attribute("rpc.service"), Some("Checkout"));
        assert_eq!(call.attribute("rpc.system"), Some("intercall"));
        let attempt = spans
            .iter()
            .find(|s| s.name == "intercall.attempt" && s.parent_span_id == call.span_id)
            .unwrap_or_else(|| panic!("no attempt span under {call:?}"));
        let served = spans
            .iter()
            .find(|s| {
                s.service == "example-checkout" && s.name == "intercall.serve" && s.parent_span_id == attempt.span_id
            })
            .unwrap_or_else(|| panic!("no checkout server span under {attempt:?}"));
        assert_eq!(served.trace_id, call.trace_id, "one trace across the processes");
        assert_eq!(served.attribute("rpc.method"), Some("quote"));
        assert!(served.attribute("outcome").is_some(), "{served:?}");
    }
    if cfg!(feature = "remote-catalog") {
        let catalog_served = spans.iter().filter(|s| s.service == "example-catalog" && s.name == "intercall.serve");
        assert!(
            catalog_served.clone().any(|s| s.attribute("rpc.method") == Some("get")),
            "no Catalog.get server span from the catalog node: {spans:#?}"
        );
    }
}

/// A field of a protobuf message: its number and value (wire types 0, 1, 2 and 5).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order (the wire format:
/// <https://protobuf.dev/programming-guides/encoding/>).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or("a varint runs past the end")?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let value = match tag & 7 {
            0 => Value::Varint(varint(&mut buf)?),
            1 | 5 => {
                let width = if tag & 7 == 1 { 8 } else { 4 };
                buf = buf.get(width..).ok_or("a fixed-width field runs past the end")?;
                Value::Fixed
            }
            2 => {
                let length = usize::try_from(varint(&mut buf)?).map_err(|e| e.to_string())?;
                let bytes = buf.get(..length).ok_or("a length-delimited field runs past the end")?;
                buf = &buf[length..];
                Value::Bytes(bytes)
            }
            other => return Err(format!("wire type {other} is not used by OTLP")),
        };
        fields.push((tag >> 3, value));
    }
    Ok(fields)
}

/// The length-delimited fields numbered `number` of a message.
fn messages<'a>(fields: &[(u64, Value<'a>)], number: u64) -> Vec<&'a [u8]> {
    fields
        .iter()
        .filter_map(|(n, value)| match value {
            Value::Bytes(bytes) if *n == number => Some(*bytes),
            _ => None,
        })
        .collect()
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// A `KeyValue { key = 1; AnyValue value = 2 }`, its value as text (`AnyValue`:
/// `string_value = 1`, `bool_value = 2`, `int_value = 3`; others as "?").
fn key_value(bytes: &[u8]) -> Result<(String, String), String> {
    let kv = fields(bytes)?;
    let key = messages(&kv, 1).first().map_or(Ok(String::new()), |k| text(k))?;
    let value = match messages(&kv, 2).first() {
        None => String::new(),
        Some(any) => match fields(any)?.first() {
            Some((1, Value::Bytes(s))) => text(s)?,
            Some((2, Value::Varint(b))) => (*b != 0).to_string(),
            Some((3, Value::Varint(i))) => (*i as i64).to_string(),
            _ => "?".to_owned(),
        },
    };
    Ok((key, value))
}

/// The spans of an `ExportTraceServiceRequest`: `resource_spans = 1` of
/// `ResourceSpans { Resource resource = 1 { attributes = 1 }; scope_spans = 2 }`,
/// `ScopeSpans { spans = 2 }`, `Span { trace_id = 1; span_id = 2; parent_span_id = 4;
/// name = 5; attributes = 9 }` (opentelemetry-proto's trace.proto).
fn decode_request(body: &[u8]) -> Result<Vec<ExportedSpan>, String> {
    let mut spans = Vec::new();
    for resource_spans in messages(&fields(body)?, 1) {
        let resource_spans = fields(resource_spans)?;
        let mut service = String::new();
        for resource in messages(&resource_spans, 1) {
            for attribute in messages(&fields(resource)?, 1) {
                let (key, value) = key_value(attribute)?;
                if key == "service.name" {
                    service = value;
                }
            }
        }
        for scope_spans in messages(&resource_spans, 2) {
            for span in messages(&fields(scope_spans)?, 2) {
                let span = fields(span)?;
                let first = |number| messages(&span, number).first().map(|b| b.to_vec()).unwrap_or_default();
                spans.push(ExportedSpan {
                    service: service.clone(),
                    name: text(&first(5))?,
                    trace_id: first(1),
                    span_id: first(2),
                    parent_span_id: first(4),
                    attributes: messages(&span, 9).into_iter().map(key_value).collect::<Result<_, _>>()?,
                });
            }
        }
    }
    Ok(spans)
}
