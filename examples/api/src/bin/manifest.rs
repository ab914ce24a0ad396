//! Prints the example system's manifest as JSON, without starting a server: what a CI
//! job keeps from each release to check the next one with `intercall compat`.
//!
//! `cargo run -p example-api --features schema --bin manifest > manifest.json`

use example_api::{CatalogServer, CheckoutServer};

fn main() {
    let manifest = intercall::manifest::Manifest::new(vec![CatalogServer::manifest(), CheckoutServer::manifest()]);
    println!("{}", serde_json::to_string_pretty(&manifest).expect("a manifest is plain JSON data"));
}
