//! CI's smoke round: every adapter answers every operation correctly. No timing.

use intercall_bench::clients::{Client, Op};
use intercall_bench::servers;

async fn serve(system: &str) -> u16 {
    let router = servers::router(system).expect("a server for the system");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(intercall::serve(listener, router));
    port
}

#[tokio::test]
async fn every_adapter_answers_every_operation_correctly() {
    for system in ["floor", "floor-hyper", "intercall"] {
        let port = serve(system).await;
        let client = Client::new(system, port).expect("a client for the system");
        for op in [Op::Echo, Op::Large, Op::Fail] {
            assert_eq!(client.call(op, 42).await, Ok(()), "{system} {op:?}");
        }
    }
    // The call-id workloads: a raw client against intercall's server.
    let port = serve("intercall").await;
    let raw = Client::new("floor", port).unwrap();
    for op in [Op::Fresh, Op::Duplicate, Op::Duplicate] {
        assert_eq!(raw.call(op, 7).await, Ok(()), "{op:?}");
    }
}

#[tokio::test]
async fn a_wrong_answer_is_reported() {
    // The floor client pointed at a server that answers something else must fail.
    let port = serve("floor").await;
    let client = Client::new("floor", port).unwrap();
    let wrong = axum::Router::new().route("/Bench/echo", axum::routing::post(|| async { "not json" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wrong_port = listener.local_addr().unwrap().port();
    tokio::spawn(intercall::serve(listener, wrong));
    assert!(Client::new("floor", wrong_port).unwrap().call(Op::Echo, 1).await.is_err());
    assert_eq!(client.call(Op::Echo, 1).await, Ok(()));
}
