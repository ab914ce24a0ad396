//! The peers: other RPC stacks, as crates from the registry, each with its own server and
//! client, serving the same three operations ([`crate::payload`]'s `echo`, `large` and
//! `fail`) with the same answer checks as the floor and intercall.
//!
//! - [`jsonrpsee`](self::jsonrpsee): JSON-RPC 2.0 over HTTP/1, jsonrpsee's server and HTTP client.
//! - [`tonic`](self::tonic): gRPC over h2c (HTTP/2 without TLS), protobuf messages.
//! - [`tarpc`](self::tarpc): tarpc over TCP, bincode frames, one multiplexed connection.

pub mod jsonrpsee;
pub mod tarpc;
pub mod tonic;
