//! CI's smoke round: every adapter answers every operation correctly. No timing.

use intercall_bench::clients::{Client, Op};
use intercall_bench::{SYSTEMS, servers};

async fn serve(system: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let system = system.to_owned();
    tokio::spawn(async move { servers::serve(&system, listener, std::future::pending()).await });
    port
}

#[tokio::test]
async fn every_adapter_answers_every_operation_correctly() {
    for system in SYSTEMS {
        let port = serve(system).await;
        let client = Client::new(system, &port).await.expect("a client for the system");
        for op in [Op::Echo, Op::Large, Op::Fail] {
            assert_eq!(client.call(op, 42).await, Ok(()), "{system} {op:?}");
        }
    }
    // intercall's server on the other call-id stores (`bench stores`).
    for system in intercall_bench::STORE_VARIANTS {
        let port = serve(system).await;
        let client = Client::new("intercall", &port).await.expect("a client");
        assert_eq!(client.call(Op::Echo, 42).await, Ok(()), "{system}");
        let raw = Client::new("floor", &port).await.unwrap();
        for op in [Op::Fresh, Op::Duplicate, Op::Duplicate] {
            assert_eq!(raw.call(op, 7).await, Ok(()), "{system} {op:?}");
        }
    }
    // The call-id workloads: a raw client against intercall's server.
    let port = serve("intercall").await;
    let raw = Client::new("floor", &port).await.unwrap();
    for op in [Op::Fresh, Op::Duplicate, Op::Duplicate] {
        assert_eq!(raw.call(op, 7).await, Ok(()), "{op:?}");
    }
    // Issue 18's "everything on": the proxy with one no-op layer. `large` more than once:
    // later replies are encoded in the server's reused scratch buffer.
    let port = serve("intercall").await;
    let all = Client::new("intercall-all", &port).await.expect("a client");
    for op in [Op::Echo, Op::Large, Op::Fail, Op::Large, Op::Large] {
        assert_eq!(all.call(op, 42).await, Ok(()), "intercall-all {op:?}");
    }
    // The balancing client over three servers.
    let ports = [serve("intercall").await, serve("intercall").await, serve("intercall").await].join(",");
    let balanced = Client::new("intercall-3", &ports).await.unwrap();
    for id in 0..30 {
        assert_eq!(balanced.call(Op::Echo, id).await, Ok(()), "intercall-3");
    }
}

#[tokio::test]
async fn a_wrong_answer_is_reported() {
    // The floor client pointed at a server that answers something else must fail.
    let port = serve("floor").await;
    let client = Client::new("floor", &port).await.unwrap();
    let wrong = axum::Router::new().route("/Bench/echo", axum::routing::post(|| async { "not json" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wrong_port = listener.local_addr().unwrap().port();
    tokio::spawn(intercall::serve(listener, wrong));
    assert!(Client::new("floor", &wrong_port.to_string()).await.unwrap().call(Op::Echo, 1).await.is_err());
    assert_eq!(client.call(Op::Echo, 1).await, Ok(()));
}

#[tokio::test]
async fn a_peer_client_refuses_another_wire() {
    // Each peer's client pointed at the floor's server (plain HTTP/1 JSON) must fail, and
    // promptly: on connecting (tonic's HTTP/2 handshake) or on the call.
    let port = serve("floor").await;
    for system in ["jsonrpsee", "tonic", "tarpc"] {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            Client::new(system, &port).await?.call(Op::Echo, 1).await
        })
        .await;
        assert!(matches!(outcome, Ok(Err(_))), "{system}: {outcome:?}");
    }
}
