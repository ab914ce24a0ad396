//! Attributes on service methods, end to end over loopback: a method under a false
//! `#[cfg]` is gone from the server and the proxy while the methods around it keep
//! their routes (and the proxy its indices into the method list), and a `#[deprecated]`
//! method still serves and calls.

use std::sync::Arc;

use intercall::CallError;
use intercall_tests::{invoker, post_raw, spawn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EchoError {
    Unavailable(CallError),
}

impl From<CallError> for EchoError {
    fn from(error: CallError) -> Self {
        EchoError::Unavailable(error)
    }
}

/// Each method answers in its own way, so a call that reached another method's route
/// would show. `Missing` does not exist: a trace of the gated methods would not compile.
#[intercall::service]
pub trait Echo {
    #[cfg(any())]
    async fn gone_first(&self, id: Missing) -> Result<Missing, EchoError>;
    async fn first(&self, text: String) -> Result<String, EchoError>;
    #[cfg_attr(all(), cfg(any()))]
    async fn gone_between(&self) -> Result<(), EchoError>;
    #[cfg(test)]
    async fn second(&self, n: u32) -> Result<u32, EchoError>;
    #[deprecated(note = "use `second`")]
    async fn third(&self) -> Result<String, EchoError>;
}

struct Local;

impl Echo for Local {
    async fn first(&self, text: String) -> Result<String, EchoError> {
        Ok(format!("first: {text}"))
    }

    async fn second(&self, n: u32) -> Result<u32, EchoError> {
        Ok(n + 1)
    }

    async fn third(&self) -> Result<String, EchoError> {
        Ok("third".to_owned())
    }
}

#[tokio::test]
#[allow(deprecated)]
async fn the_methods_around_a_cfg_d_out_one_reach_their_own_routes() {
    let server = spawn(EchoServer::new(Local).into_router()).await;
    let proxy = EchoProxy::new(invoker("Echo", &server.url())).unwrap();
    assert_eq!(proxy.first("a".into()).await, Ok("first: a".to_owned()));
    assert_eq!(proxy.second(2).await, Ok(3));
    assert_eq!(proxy.third().await, Ok("third".to_owned()));

    let shared: Arc<dyn Echo> = Arc::new(proxy);
    assert_eq!(shared.second(41).await, Ok(42));
    assert_eq!(shared.third().await, Ok("third".to_owned()));
}

#[tokio::test]
async fn a_cfg_d_out_method_has_no_route_and_is_not_listed() {
    let server = spawn(EchoServer::new(Local).into_router()).await;
    for gone in ["gone_first", "gone_between"] {
        let reply = post_raw(&server.at(&format!("/Echo/{gone}")), Some("application/json"), "{}").await;
        assert_eq!(reply.status, 404, "{reply:?}");
        assert_eq!(reply.body.get("kind").and_then(Value::as_str), Some("unknown_method"), "{reply:?}");
        let message = reply.body.get("message").and_then(Value::as_str).unwrap();
        assert!(message.ends_with("its methods are: first, second, third"), "{message}");
    }
}
