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
use crate::peers;
use crate::peers::jsonrpsee::BenchRpcClient as _;

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
    /// jsonrpsee's HTTP client, through the methods its `rpc` macro generates.
    Jsonrpsee { http: Arc<jsonrpsee_http_client::HttpClient> },
    /// tonic's generated client; clones share one HTTP/2 connection.
    Tonic(peers::tonic::Client),
    /// tarpc's generated client; clones share one TCP connection.
    Tarpc(peers::tarpc::BenchRpcClient),
}

impl Client {
    /// The client of `system` for a server on `ports` (one port, or several separated
    /// by commas for `intercall-3`, the balancing client); the tonic and tarpc clients
    /// connect here, the others on their first call.
    pub async fn new(system: &str, ports: &str) -> Result<Self, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{system} client: {e}");
        let ports: Vec<u16> = ports.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|e| failed(&e))?;
        let port = ports[0];
        let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{port}"));
        Ok(match system {
            "floor" => Client::Floor { http: reqwest::Client::new(), base },
            "floor-hyper" => Client::Hyper { http: HyperClient::builder(TokioExecutor::new()).build_http(), base },
            "intercall" | "intercall-all" | "intercall-layer" | "intercall-reqwest" | "intercall-h2"
            | "intercall-3" => {
                let builder = Invoker::builder().service("Bench", base.to_string());
                let builder = match system {
                    "intercall-3" => {
                        builder.service_urls("Bench", ports.iter().map(|port| format!("http://127.0.0.1:{port}/")))
                    }
                    // One layer that does nothing: what the layered path itself costs;
                    // issue 18's "everything on" has one.
                    "intercall-layer" | "intercall-all" => builder.layer(tower::layer::util::Identity::new()),
                    "intercall-reqwest" => {
                        builder.transport(intercall::client::ReqwestTransport::new(reqwest::Client::new()))
                    }
                    "intercall-h2" => builder.http2(true),
                    _ => builder,
                };
                let invoker = builder.build().map_err(|e| failed(&e))?;
                let user = UserContext::new(UserType::Customer, "bench-user").map_err(|e| failed(&e))?;
                Client::Intercall { proxy: BenchProxy::new(invoker).map_err(|e| failed(&e))?, user }
            }
            "jsonrpsee" => {
                Client::Jsonrpsee { http: Arc::new(peers::jsonrpsee::client(port).map_err(|e| failed(&e))?) }
            }
            "tonic" => Client::Tonic(peers::tonic::Client::connect(port).await.map_err(|e| failed(&e))?),
            "tarpc" => Client::Tarpc(peers::tarpc::client(port).await.map_err(|e| failed(&e))?),
            _ => return Err(format!("no client for `{system}`")),
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
            Client::Jsonrpsee { http } => match op {
                Op::Echo => check(http.echo(Echo::sample(id)).await.map_err(text)? == Echo::sample(id)),
                Op::Large => check(http.large(Blob::sample()).await.map_err(text)?.data.len() == 64 * 1024),
                Op::Fail => match http.fail(7).await {
                    Err(e) if peers::jsonrpsee::is_rejected_7(&e) => Ok(()),
                    Err(e) => Err(e.to_string()),
                    Ok(_) => check(false),
                },
                Op::Fresh | Op::Duplicate => Err("raw-client operation".to_owned()),
            },
            Client::Tonic(grpc) => match op {
                Op::Echo => check(grpc.echo(id).await.map_err(text)?),
                Op::Large => check(grpc.large().await.map_err(text)?),
                Op::Fail => check(grpc.fail().await.map_err(text)?),
                Op::Fresh | Op::Duplicate => Err("raw-client operation".to_owned()),
            },
            Client::Tarpc(client) => {
                let context = ::tarpc::context::current();
                match op {
                    Op::Echo => check(client.echo(context, Echo::sample(id)).await.map_err(text)? == Echo::sample(id)),
                    Op::Large => {
                        check(client.large(context, Blob::sample()).await.map_err(text)?.data.len() == 64 * 1024)
                    }
                    Op::Fail => {
                        check(client.fail(context, 7).await.map_err(text)? == Err(BenchError::Rejected { code: 7 }))
                    }
                    Op::Fresh | Op::Duplicate => Err("raw-client operation".to_owned()),
                }
            }
            Client::Floor { .. } | Client::Hyper { .. } => self.raw(op, id).await,
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
            _ => return Err("only the floor clients make hand-written requests".to_owned()),
        };
        if status != expect {
            return Err(format!("{path}: HTTP {status}"));
        }
        match op {
            // Decoded as a hand-written client would, into the types the caller wants:
            // the comparison with the generated proxy is only fair that way.
            Op::Fail => {
                let error: ErrorReply = serde_json::from_slice(&reply).map_err(text)?;
                check(error.kind == "service" && error.value == BenchError::Rejected { code: 7 })
            }
            Op::Large => check(serde_json::from_slice::<Blob>(&reply).map_err(text)?.data.len() == 64 * 1024),
            _ => check(serde_json::from_slice::<Echo>(&reply).is_ok()),
        }
    }
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

fn check(ok: bool) -> Result<(), String> {
    if ok { Ok(()) } else { Err("wrong answer".to_owned()) }
}

/// The typed-error reply as a hand-written client reads it.
#[derive(serde::Deserialize)]
struct ErrorReply {
    kind: String,
    value: BenchError,
}
