//! The servers under test: the floor (hand-written axum handlers, the same wire as
//! intercall with nothing added), intercall's generated router, and the peers' own
//! servers ([`crate::peers`]).

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::payload::{BenchServer, Blob, Echo, Echoer};
use crate::peers;

/// Why a server stopped early.
pub type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `system` on `listener` until `shutdown` completes: the axum systems through
/// [`intercall::serve_with_shutdown`], the peers through their own servers.
pub async fn serve<F>(system: &str, listener: tokio::net::TcpListener, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Some(router) = router(system) {
        return Ok(intercall::serve_with_shutdown(listener, router, shutdown).await?);
    }
    match system {
        "jsonrpsee" => Ok(peers::jsonrpsee::serve(listener, shutdown).await?),
        "tonic" => Ok(peers::tonic::serve(listener, shutdown).await?),
        "tarpc" => Ok(peers::tarpc::serve(listener, shutdown).await?),
        _ => Err(format!("no server for `{system}`").into()),
    }
}

/// The axum servers: the floor's (also `floor-hyper`'s) and intercall's.
pub fn router(system: &str) -> Option<Router> {
    match system {
        "floor" | "floor-hyper" => Some(floor()),
        "intercall" => Some(BenchServer::new(Echoer).into_router()),
        "intercall-moka" | "intercall-quick-cache" => Some(
            BenchServer::new(Echoer).call_store(crate::stores::Store::with_defaults(system).call_store()).into_router(),
        ),
        _ => None,
    }
}

#[derive(Deserialize)]
struct EchoArgs {
    msg: Echo,
}

#[derive(Deserialize)]
struct LargeArgs {
    blob: Blob,
}

#[derive(Deserialize)]
struct FailArgs {
    code: u32,
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request() -> Response {
    json(StatusCode::BAD_REQUEST, br#"{"kind":"bad_request","message":"bad body"}"#.to_vec())
}

/// What a team writes by hand without a framework: decode, answer, encode.
fn floor() -> Router {
    Router::new()
        .route(
            "/Bench/echo",
            post(|body: Bytes| async move {
                match serde_json::from_slice::<EchoArgs>(&body) {
                    Ok(args) => json(StatusCode::OK, serde_json::to_vec(&args.msg).expect("serializes")),
                    Err(_) => bad_request(),
                }
            }),
        )
        .route(
            "/Bench/large",
            post(|body: Bytes| async move {
                match serde_json::from_slice::<LargeArgs>(&body) {
                    Ok(args) => json(StatusCode::OK, serde_json::to_vec(&args.blob).expect("serializes")),
                    Err(_) => bad_request(),
                }
            }),
        )
        .route(
            "/Bench/fail",
            post(|body: Bytes| async move {
                match serde_json::from_slice::<FailArgs>(&body) {
                    Ok(args) => {
                        let value = serde_json::json!({
                            "kind": "service", "message": "Bench.fail returned BenchError::Rejected",
                            "type": "BenchError", "variant": "Rejected",
                            "value": {"Rejected": {"code": args.code}},
                        });
                        json(StatusCode::UNPROCESSABLE_ENTITY, serde_json::to_vec(&value).expect("serializes"))
                    }
                    Err(_) => bad_request(),
                }
            }),
        )
}
