//! W3C trace context across hops (PROTOCOL.md §3.3): a node built without any tracing
//! exporter forwards the `traceparent` and `tracestate` a request carried, unchanged, to
//! the calls it makes on the request's behalf, so that a mesh's traces stay whole.

use intercall::{CallContext, CallError, Invoker};
use intercall_tests::spawn;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum HopError {
    Unavailable(CallError),
}

impl From<CallError> for HopError {
    fn from(error: CallError) -> Self {
        HopError::Unavailable(error)
    }
}

/// The trace headers one hop saw: `(traceparent, tracestate)`.
type Seen = Option<(String, Option<String>)>;

#[intercall::service]
pub trait Back {
    /// The trace context this call arrived with.
    async fn seen(&self) -> Result<Seen, HopError>;
}

#[intercall::service]
pub trait Front {
    /// What `Back` saw when this call, serving a request, called it.
    async fn relay(&self) -> Result<Seen, HopError>;
}

struct BackNode;

impl Back for BackNode {
    async fn seen(&self) -> Result<Seen, HopError> {
        let trace = CallContext::current().trace;
        Ok(trace.map(|t| (t.traceparent().to_owned(), t.tracestate().map(str::to_owned))))
    }
}

struct FrontNode(BackProxy);

impl Front for FrontNode {
    async fn relay(&self) -> Result<Seen, HopError> {
        self.0.seen().await
    }
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_requests_trace_context_reaches_the_next_hop_unchanged() {
    let back = spawn(BackServer::new(BackNode).into_router()).await;
    let invoker = Invoker::builder().service("Back", back.url()).build().unwrap();
    let front = spawn(FrontServer::new(FrontNode(BackProxy::new(invoker.clone()).unwrap())).into_router()).await;

    let relay = |headers: &'static [(&'static str, &'static str)]| {
        let url = front.at("Front/relay");
        async move {
            let mut request = reqwest::Client::new().post(url).header("content-type", "application/json").body("{}");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("the front node answers");
            assert_eq!(response.status(), 200, "tracing never fails a call");
            serde_json::from_slice::<Seen>(&response.bytes().await.expect("a body")).expect("a result")
        }
    };
    let forwarded = relay(&[("traceparent", PARENT), ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")]).await;
    let state = Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned());
    assert_eq!(forwarded, Some((PARENT.to_owned(), state)));
    assert_eq!(relay(&[("traceparent", PARENT)]).await, Some((PARENT.to_owned(), None)));
    // Not W3C: ignored, not refused, and not forwarded.
    const MALFORMED: &str = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    assert_eq!(relay(&[("traceparent", "garbage"), ("tracestate", "a=1")]).await, None);
    assert_eq!(relay(&[("traceparent", MALFORMED)]).await, None);
    assert_eq!(relay(&[]).await, None);

    // A call made outside any request carries none.
    assert_eq!(BackProxy::new(invoker).unwrap().seen().await, Ok(None));
}
