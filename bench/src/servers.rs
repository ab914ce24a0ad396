//! The servers under test: the floor (hand-written axum handlers, the same wire as
//! intercall with nothing added) and intercall's generated router.

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::payload::{BenchServer, Blob, Echo, Echoer};

/// The systems that have a server of their own.
pub fn router(system: &str) -> Option<Router> {
    match system {
        "floor" | "floor-hyper" => Some(floor()),
        "intercall" => Some(BenchServer::new(Echoer).into_router()),
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
