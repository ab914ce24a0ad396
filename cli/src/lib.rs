//! The `intercall` command's pieces, as a library so that they are tested without a
//! process: where a node is ([`target`]), talking to it ([`remote`]), printing a
//! manifest ([`show`]), the OpenAPI document ([`openapi`]), the compatibility check
//! ([`compat`]) and the exit statuses ([`exit`]). `src/main.rs` is the command line.

pub mod compat;
pub mod exit;
pub mod openapi;
pub mod remote;
pub mod show;
pub mod target;
