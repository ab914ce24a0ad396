//! The spans a call opens, as a tracing subscriber sees them: OpenTelemetry RPC fields
//! on both sides, one attempt span per attempt, and the client call's outcome.

use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, stream};
use intercall::{CallError, Invoker, Streaming};
use intercall_tests::spawn;
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum GreetError {
    Nobody,
    Unavailable(CallError),
}

impl From<CallError> for GreetError {
    fn from(error: CallError) -> Self {
        GreetError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Greeter {
    async fn greet(&self, name: String) -> Result<String, GreetError>;
}

struct Greetings;

impl Greeter for Greetings {
    async fn greet(&self, name: String) -> Result<String, GreetError> {
        if name.is_empty() { Err(GreetError::Nobody) } else { Ok(format!("hello {name}")) }
    }
}

#[intercall::service]
pub trait Ticker {
    /// `0..to`, then a clean end.
    async fn count(&self, to: u64) -> Result<Streaming<u64, GreetError>, GreetError>;
    /// One item, then `GreetError::Nobody`.
    async fn broken(&self) -> Result<Streaming<u64, GreetError>, GreetError>;
    /// One item, then a panic.
    async fn panics(&self) -> Result<Streaming<u64, GreetError>, GreetError>;
    /// One item, then nothing for ever.
    async fn forever(&self) -> Result<Streaming<u64, GreetError>, GreetError>;
}

struct Ticks;

impl Ticker for Ticks {
    async fn count(&self, to: u64) -> Result<Streaming<u64, GreetError>, GreetError> {
        Ok(Streaming::new(stream::iter((0..to).map(Ok))))
    }

    async fn broken(&self) -> Result<Streaming<u64, GreetError>, GreetError> {
        Ok(Streaming::new(stream::iter([Ok(0), Err(GreetError::Nobody)])))
    }

    async fn panics(&self) -> Result<Streaming<u64, GreetError>, GreetError> {
        Ok(Streaming::new(stream::iter(0..2u64).map(|n| {
            assert!(n == 0, "the stream breaks");
            Ok(n)
        })))
    }

    async fn forever(&self) -> Result<Streaming<u64, GreetError>, GreetError> {
        Ok(Streaming::new(stream::iter([Ok(0)]).chain(stream::pending())))
    }
}

#[intercall::service]
pub trait Held {
    /// Signals `entered`, then waits for a permit of `release`.
    async fn hold(&self, n: u64) -> Result<u64, GreetError>;
}

struct Holding {
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl Default for Holding {
    fn default() -> Self {
        Self { entered: tokio::sync::Notify::new(), release: tokio::sync::Semaphore::new(0) }
    }
}

/// The served implementation: a handle on the test's [`Holding`].
struct Holder(Arc<Holding>);

impl Held for Holder {
    async fn hold(&self, n: u64) -> Result<u64, GreetError> {
        self.0.entered.notify_one();
        self.0.release.acquire().await.expect("never closed").forget();
        Ok(n)
    }
}

/// One span as recorded: its name and every field given or recorded, as text.
#[derive(Debug, Clone)]
struct Recorded {
    name: &'static str,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// How the call ended: `outcome`, `error.type`, `http.response.status_code`.
    fn ended(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (self.field("outcome"), self.field("error.type"), self.field("http.response.status_code"))
    }
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(Id, Recorded)>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Vec::new();
        attributes.record(&mut Fields(&mut fields));
        let recorded = Recorded { name: attributes.metadata().name(), fields };
        self.0.lock().unwrap().push((id.clone(), recorded));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, recorded)) = spans.iter_mut().rev().find(|(known, _)| known == id) {
            values.record(&mut Fields(&mut recorded.fields));
        }
    }
}

#[tokio::test]
async fn calls_open_spans_with_rpc_fields_attempts_and_the_outcome() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));

    let server = spawn(GreeterServer::new(Greetings).into_router()).await;
    let proxy = GreeterProxy::new(Invoker::builder().service("Greeter", server.url()).build().unwrap()).unwrap();
    assert_eq!(proxy.greet("ada".into()).await, Ok("hello ada".to_owned()));
    assert_eq!(proxy.greet(String::new()).await, Err(GreetError::Nobody));

    let all: Vec<Recorded> = spans.0.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
    let named = |name| all.iter().filter(move |r| r.name == name).collect::<Vec<_>>();
    let calls = named("intercall.call");
    assert_eq!(calls.len(), 2, "{all:?}");
    for call in &calls {
        assert_eq!(call.field("otel.kind"), Some("client"));
        assert_eq!(call.field("rpc.system"), Some("intercall"));
        assert_eq!((call.field("rpc.service"), call.field("rpc.method")), (Some("Greeter"), Some("greet")));
        assert_eq!(call.field("server.address"), Some("127.0.0.1"));
    }
    let outcomes: Vec<_> = calls.iter().map(|call| call.field("outcome")).collect();
    assert_eq!(outcomes, [Some("ok"), Some("service_error")]);
    let attempts = named("intercall.attempt");
    assert_eq!(attempts.iter().map(|a| a.field("attempt")).collect::<Vec<_>>(), [Some("1"), Some("1")]);
    // The activity id, the business-level id, is on every span of a call.
    for (call, attempt) in calls.iter().zip(&attempts) {
        assert!(call.field("activity_id").is_some_and(|id| id.len() == 36), "{call:?}");
        assert_eq!(attempt.field("activity_id"), call.field("activity_id"));
    }
    let served = named("intercall.serve");
    assert_eq!(served.len(), 2, "{all:?}");
    assert!(served.iter().all(|s| s.field("otel.kind") == Some("server") && s.field("rpc.method") == Some("greet")));
    assert!(served.iter().all(|s| s.field("replayed").is_none()), "nothing was replayed yet");
    // The outcome on both sides: the typed error's type and variant, and the status.
    assert_eq!(calls[0].ended(), (Some("ok"), None, None));
    assert_eq!(calls[1].ended(), (Some("service_error"), Some("GreetError::Nobody"), Some("422")));
    assert_eq!(served[0].ended(), (Some("ok"), None, Some("200")));
    assert_eq!(served[1].ended(), (Some("service_error"), Some("GreetError::Nobody"), Some("422")));

    // The same call id and body again: the server's span says it was replayed.
    for _ in 0..2 {
        let request =
            reqwest::Client::new().post(server.at("Greeter/greet")).header("content-type", "application/json");
        let request = request.header("x-call-id", "67e55044-10b1-426f-9247-bb680e5fe0c8").body(r#"{"name":"bo"}"#);
        assert_eq!(request.send().await.expect("the server answers").status(), 200);
    }
    let all: Vec<Recorded> = spans.0.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
    let replayed: Vec<_> = all.iter().filter(|r| r.name == "intercall.serve").map(|r| r.field("replayed")).collect();
    assert_eq!(replayed[2..], [None, Some("true")], "{all:?}");
}

#[tokio::test]
async fn a_server_span_ends_with_the_outcome_of_refusals_failures_and_replays() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let server = spawn(GreeterServer::new(Greetings).into_router()).await;
    let post = |body: &'static str, call_id: Option<&'static str>| {
        let request =
            reqwest::Client::new().post(server.at("Greeter/greet")).header("content-type", "application/json");
        let request = match call_id {
            Some(id) => request.header("x-call-id", id),
            None => request,
        };
        async move { request.body(body).send().await.expect("the server answers").status().as_u16() }
    };
    // Refused before any check passed: a bad header; then a bad argument.
    let bad_header = reqwest::Client::new()
        .post(server.at("Greeter/greet"))
        .header("content-type", "application/json")
        .header("x-call-id", "not-a-uuid")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_header.status(), 400);
    assert_eq!(post(r#"{"name":7}"#, None).await, 400);
    // A typed error, then its replay from the call-id store.
    let id = Some("0b6c3f52-7d0e-4c4e-9a43-2f1f8f5d1e01");
    assert_eq!(post(r#"{"name":""}"#, id).await, 422);
    assert_eq!(post(r#"{"name":""}"#, id).await, 422);

    let all: Vec<Recorded> = spans.0.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
    let ended: Vec<_> = all.iter().filter(|span| span.name == "intercall.serve").map(Recorded::ended).collect();
    assert_eq!(
        ended,
        [
            (Some("framework_error"), Some("bad_request"), Some("400")),
            (Some("framework_error"), Some("bad_request"), Some("400")),
            (Some("service_error"), Some("GreetError::Nobody"), Some("422")),
            (Some("service_error"), Some("GreetError::Nobody"), Some("422")),
        ],
        "{all:?}"
    );
}

/// Regression: a stream's spans were given their outcome when the reply's head left (on
/// the server) or arrived (on the client), so a stream that then failed, or that its
/// client dropped, said `ok`.
#[tokio::test]
async fn a_stream_s_span_ends_with_how_the_stream_ended() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let server = spawn(TickerServer::new(Ticks).into_router()).await;
    let proxy = TickerProxy::new(Invoker::builder().service("Ticker", server.url()).build().unwrap()).unwrap();
    let served = |method: &str| -> Vec<Recorded> {
        let all = spans.0.lock().unwrap();
        let served = all.iter().map(|(_, r)| r).filter(|r| r.name == "intercall.serve");
        served.filter(|r| r.field("rpc.method") == Some(method)).cloned().collect()
    };
    let calls = |method: &str| -> Vec<(Option<String>, Option<String>)> {
        let all = spans.0.lock().unwrap();
        let calls = all.iter().map(|(_, r)| r).filter(|r| r.name == "intercall.call");
        let calls = calls.filter(|r| r.field("rpc.method") == Some(method));
        calls.map(|r| (r.field("outcome").map(str::to_owned), r.field("error.type").map(str::to_owned))).collect()
    };
    let call = |o: &str, e: Option<&str>| (Some(o.to_owned()), e.map(str::to_owned));
    let ended = |method: &str| {
        served(method)
            .iter()
            .map(|r| r.ended())
            .map(|(o, e, s)| (o.map(str::to_owned), e.map(str::to_owned), s.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    let owned = |o: &str, e: Option<&str>| (Some(o.to_owned()), e.map(str::to_owned), Some("200".to_owned()));

    // Running: the head has left and an item arrived, but the stream has not ended.
    let mut forever = proxy.forever().await.unwrap();
    assert_eq!(forever.next().await, Some(Ok(0)));
    assert_eq!(ended("forever"), [(None, None, None)], "no outcome before the stream ends");
    assert_eq!(calls("forever"), [(None, None)], "nor on the caller's side");
    // Dropped by its client: cancelled, on both sides.
    drop(forever);
    assert_eq!(calls("forever"), [call("cancelled", Some("cancelled"))]);
    for _ in 0..500 {
        if ended("forever")[0].0.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(ended("forever"), [owned("cancelled", Some("cancelled"))]);

    // A clean end, a typed error item, a panic.
    assert_eq!(proxy.count(3).await.unwrap().collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(ended("count"), [owned("ok", None)]);
    assert_eq!(proxy.broken().await.unwrap().collect::<Vec<_>>().await, [Ok(0), Err(GreetError::Nobody)]);
    assert_eq!(ended("broken"), [owned("service_error", Some("GreetError::Nobody"))]);
    let items: Vec<_> = proxy.panics().await.unwrap().collect().await;
    assert!(matches!(&items[..], [Ok(0), Err(GreetError::Unavailable(_))]), "{items:?}");
    assert_eq!(ended("panics"), [owned("framework_error", Some("panic"))]);
    assert_eq!(calls("count"), [call("ok", None)]);
    assert_eq!(calls("broken"), [call("service_error", Some("GreetError::Nobody"))]);
    assert_eq!(calls("panics"), [call("status", Some("status"))]);

    // The request's deadline ends a stream: read whole, as curl would.
    let reply = reqwest::Client::new()
        .post(server.at("Ticker/forever"))
        .header("content-type", "application/json")
        .header("x-deadline-ms", "200")
        .body("{}")
        .send()
        .await
        .unwrap();
    let text = reply.text().await.unwrap();
    assert!(text.contains("deadline_exceeded"), "{text}");
    assert_eq!(ended("forever")[1], owned("framework_error", Some("deadline_exceeded")));
}

/// The server span names the server as its client addressed it (`server.address`,
/// `server.port`: the `Host` header, else the address the connection was accepted on),
/// and a duplicate that waited for its call's run and got that run's reply says so
/// (`waited`, `replayed`). Both were missing: the server span had no address, and a
/// waiter's span looked like a first run's.
#[tokio::test]
async fn a_server_span_names_its_address_and_marks_a_duplicate_that_waited_for_the_run() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let holding = Arc::new(Holding::default());
    let server = spawn(HeldServer::new(Holder(Arc::clone(&holding))).into_router()).await;
    let served = || -> Vec<Recorded> {
        let all = spans.0.lock().unwrap();
        all.iter().map(|(_, r)| r).filter(|r| r.name == "intercall.serve").cloned().collect()
    };
    let port = server.addr.port().to_string();

    // The first run of a call id holds; a duplicate arrives while it runs, and waits.
    let id = "5d1c8f3e-2b4a-4c6d-9e8f-0a1b2c3d4e5f";
    let post = |id: &'static str| {
        let request = reqwest::Client::new().post(server.at("Held/hold")).header("content-type", "application/json");
        let request = request.header("x-call-id", id).body(r#"{"n":4}"#);
        async move {
            let reply = request.send().await.expect("the server answers");
            (reply.status().as_u16(), reply.text().await.unwrap())
        }
    };
    let entered = holding.entered.notified();
    let first = tokio::spawn(post(id));
    entered.await;
    let duplicate = tokio::spawn(post(id));
    // Bounded polling: the duplicate's span says it waits once the store told it so.
    for _ in 0..500 {
        if served().iter().any(|span| span.field("waited").is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    holding.release.add_permits(1);
    assert_eq!(first.await.unwrap(), (200, "4".to_owned()));
    assert_eq!(duplicate.await.unwrap(), (200, "4".to_owned()), "the run's reply, not a second run");
    let spans_now = served();
    assert_eq!(spans_now.len(), 2, "{spans_now:?}");
    let marks = |span: &Recorded| (span.field("waited").map(str::to_owned), span.field("replayed").map(str::to_owned));
    assert_eq!(marks(&spans_now[0]), (None, None), "the run itself");
    assert_eq!(marks(&spans_now[1]), (Some("true".into()), Some("true".into())), "{:?}", spans_now[1]);
    assert_eq!(spans_now[1].ended(), (Some("ok"), None, Some("200")));
    // reqwest sends `Host: 127.0.0.1:port`.
    for span in &spans_now {
        assert_eq!((span.field("server.address"), span.field("server.port")), (Some("127.0.0.1"), Some(&port[..])));
    }

    // A name the client used, and a request without `Host` (the accepted address).
    let raw = |host: &'static str| {
        let addr = server.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let body = r#"{"n":1}"#;
            let head = format!(
                "POST /Held/hold HTTP/1.1\r\n{host}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all((head + body).as_bytes()).await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        }
    };
    holding.release.add_permits(2);
    assert!(raw("host: shop.internal:7302\r\n").await.starts_with("HTTP/1.1 200"));
    assert!(raw("").await.starts_with("HTTP/1.1 200"));
    let spans_now = served();
    let address = |span: &Recorded| {
        (span.field("server.address").map(str::to_owned), span.field("server.port").map(str::to_owned))
    };
    assert_eq!(address(&spans_now[2]), (Some("shop.internal".into()), Some("7302".into())));
    assert_eq!(address(&spans_now[3]), (Some("127.0.0.1".into()), Some(port.clone())));
}
