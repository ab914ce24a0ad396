//! The tarpc peer: tarpc's generated service and client over TCP, length-delimited
//! bincode frames, every call multiplexed over one connection.
//!
//! The operations take and return the payload types as they are (they derive serde);
//! `fail` returns `Result<Echo, BenchError>` and the client checks it got back
//! `Err(Rejected { code: 7 })`.

use std::future::{Future, ready};

use ::tarpc::client::Config;
use ::tarpc::context::Context;
use ::tarpc::serde_transport::tcp;
use ::tarpc::server::{BaseChannel, Channel};
use ::tarpc::tokio_serde::formats::Bincode;
use futures_util::StreamExt;

use crate::payload::{BenchError, Blob, Echo};

/// The benchmark service, as a tarpc service.
#[::tarpc::service]
pub trait BenchRpc {
    async fn echo(msg: Echo) -> Echo;
    async fn large(blob: Blob) -> Blob;
    async fn fail(code: u32) -> Result<Echo, BenchError>;
}

/// The implementation the tarpc server runs.
#[derive(Clone)]
struct Echoer;

impl BenchRpc for Echoer {
    async fn echo(self, _: Context, msg: Echo) -> Echo {
        msg
    }

    async fn large(self, _: Context, blob: Blob) -> Blob {
        blob
    }

    async fn fail(self, _: Context, code: u32) -> Result<Echo, BenchError> {
        Err(BenchError::Rejected { code })
    }
}

/// Serves the tarpc peer on `listener` until `shutdown` completes: a channel per
/// connection, a task per request (tarpc's own examples' way).
pub async fn serve(listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let incoming = tcp::listen_on(listener, Bincode::default).await?;
    let accept = incoming.filter_map(|transport| ready(transport.ok())).for_each(|transport| async move {
        let requests = BaseChannel::with_defaults(transport).execute(Echoer.serve());
        tokio::spawn(requests.for_each(|response| async move {
            tokio::spawn(response);
        }));
    });
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
    Ok(())
}

/// Connects the generated client; clones share its connection.
pub async fn client(port: u16) -> std::io::Result<BenchRpcClient> {
    let transport = tcp::connect(("127.0.0.1", port), Bincode::default).await?;
    Ok(BenchRpcClient::new(Config::default(), transport).spawn())
}
