//! The clients under test, one per system, all making the same calls and checking the
//! answers.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use intercall::{Invoker, UserContext, UserType};

use crate::payload::{Bench, BenchError, BenchProxy, Blob, Echo};

/// One operation of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Echo,
    Large,
    Fail,
    /// intercall's server with a fresh `x-call-id` on every call (raw client).
    Fresh,
    /// intercall's server with one `x-call-id` and body, answered from its cache.
    Duplicate,
}

impl Op {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "echo" => Op::Echo,
            "large" => Op::Large,
            "fail" => Op::Fail,
            "fresh" => Op::Fresh,
            "duplicate" => Op::Duplicate,
            _ => return None,
        })
    }
}

/// A client of one system.
#[derive(Clone)]
pub enum Client {
    /// reqwest, hand-written requests.
    Floor { http: reqwest::Client, base: Arc<str> },
    /// hyper's own client, hand-written requests.
    Hyper { http: HyperClient<HttpConnector, Full<Bytes>>, base: Arc<str> },
    /// The generated proxy, everything on: call id, user context, activity id.
    Intercall { proxy: BenchProxy, user: UserContext },
}

impl Client {
    pub fn new(system: &str, port: u16) -> Option<Self> {
        let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{port}"));
        Some(match system {
            "floor" => Client::Floor { http: reqwest::Client::new(), base },
            "floor-hyper" => Client::Hyper { http: HyperClient::builder(TokioExecutor::new()).build_http(), base },
            "intercall" => {
                let invoker = Invoker::builder().service("Bench", base.to_string()).build().ok()?;
                let user = UserContext::new(UserType::Customer, "bench-user").ok()?;
                Client::Intercall { proxy: BenchProxy::new(invoker).ok()?, user }
            }
            _ => return None,
        })
    }

    /// Makes one call and checks its answer.
    pub async fn call(&self, op: Op, id: u64) -> Result<(), String> {
        match self {
            Client::Intercall { proxy, user } => {
                let call = async {
                    match op {
                        Op::Echo => check(proxy.echo(Echo::sample(id)).await == Ok(Echo::sample(id))),
                        Op::Large => check(proxy.large(Blob::sample()).await.is_ok_and(|b| b.data.len() == 64 * 1024)),
                        Op::Fail => check(proxy.fail(7).await == Err(BenchError::Rejected { code: 7 })),
                        Op::Fresh | Op::Duplicate => Err("raw-client operation".to_owned()),
                    }
                };
                user.clone().scope(call).await
            }
            _ => self.raw(op, id).await,
        }
    }

    /// A hand-written request; for the floor systems, and the call-id workloads.
    async fn raw(&self, op: Op, id: u64) -> Result<(), String> {
        let (path, body, expect) = match op {
            Op::Echo | Op::Fresh | Op::Duplicate => {
                let id = if op == Op::Duplicate { 1 } else { id };
                ("echo", serde_json::json!({ "msg": Echo::sample(id) }), 200)
            }
            Op::Large => ("large", serde_json::json!({ "blob": Blob::sample() }), 200),
            Op::Fail => ("fail", serde_json::json!({ "code": 7 }), 422),
        };
        let body = Bytes::from(serde_json::to_vec(&body).expect("serializes"));
        let call_id = match op {
            Op::Fresh => Some(uuid::Uuid::new_v4().to_string()),
            Op::Duplicate => Some("9c5b94b1-35ad-49bb-b118-8e8fc24abf80".to_owned()),
            _ => None,
        };
        let (status, reply) = match self {
            Client::Floor { http, base } => {
                let mut request = http.post(format!("{base}/Bench/{path}")).header("content-type", "application/json");
                if let Some(id) = &call_id {
                    request = request.header("x-call-id", id.as_str());
                }
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                (status, response.bytes().await.map_err(|e| e.to_string())?)
            }
            Client::Hyper { http, base } => {
                let mut request =
                    hyper::Request::post(format!("{base}/Bench/{path}")).header("content-type", "application/json");
                if let Some(id) = &call_id {
                    request = request.header("x-call-id", id.as_str());
                }
                let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
                let response = http.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                (status, bytes)
            }
            Client::Intercall { .. } => return Err("the proxy makes its own requests".to_owned()),
        };
        if status != expect {
            return Err(format!("{path}: HTTP {status}"));
        }
        match op {
            Op::Fail => check(reply.windows(8).any(|w| w == b"Rejected")),
            Op::Large => check(reply.len() > 64 * 1024),
            _ => check(serde_json::from_slice::<Echo>(&reply).is_ok()),
        }
    }
}

fn check(ok: bool) -> Result<(), String> {
    if ok { Ok(()) } else { Err("wrong answer".to_owned()) }
}
