//! A conformance suite for the intercall wire protocol (docs/PROTOCOL.md), in the
//! spirit of Connect's: one binary that drives a **server** in any language
//! (`intercall-conformance server URL`) or serves a **client** in any language
//! (`intercall-conformance client -- CMD`), and prints one line per named case.
//!
//! Both sides speak to a small conformance service, specified in
//! docs/CONFORMANCE.md, and implemented here in Rust by [`service`] for the
//! reference peers.

#![warn(missing_docs)]

pub mod client_mode;
pub mod events_mode;
pub mod http;
pub mod report;
pub mod server_mode;
pub mod service;
pub mod signing;
pub mod spec;
