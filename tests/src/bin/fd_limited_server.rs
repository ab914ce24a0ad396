//! A server for `tests/connections.rs`'s file-descriptor test: its parent starts it
//! with a low `RLIMIT_NOFILE`, and it serves `Descriptors` with
//! `ServeOptions::default()`, so its connection limit is the default derived from that
//! limit. Prints `listening ADDRESS max_connections N` once it accepts, and serves until
//! its stdin closes.

use std::io::{Read, Write};

use intercall::{CallError, ServeOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum DescriptorError {
    /// The file could not be opened (`EMFILE`: no descriptor left), with the reason.
    Open(String),
    Unavailable(CallError),
}

impl From<CallError> for DescriptorError {
    fn from(error: CallError) -> Self {
        DescriptorError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Descriptors {
    /// Opens this program's own file and returns its first byte: a call that needs one
    /// more file descriptor while it runs, as a call that opens a store connection, a
    /// connection to another service or a file does.
    async fn open_file(&self) -> Result<u8, DescriptorError>;
}

struct Files;

impl Descriptors for Files {
    async fn open_file(&self) -> Result<u8, DescriptorError> {
        let path = std::env::current_exe().map_err(|e| DescriptorError::Open(e.to_string()))?;
        let mut file = std::fs::File::open(&path).map_err(|e| DescriptorError::Open(e.to_string()))?;
        let mut byte = [0u8; 1];
        file.read_exact(&mut byte).map_err(|e| DescriptorError::Open(e.to_string()))?;
        Ok(byte[0])
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let options = ServeOptions::default();
    let limit = options.get_max_connections().map_or_else(|| "none".to_owned(), |n| n.to_string());
    println!("listening {} max_connections {limit}", listener.local_addr().expect("a local address"));
    std::io::stdout().flush().expect("stdout");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    });
    tokio::select! {
        served = intercall::serve_with(listener, DescriptorsServer::new(Files).into_router(), options) => {
            served.expect("serve");
        }
        _ = stdin_closed => {}
    }
}
