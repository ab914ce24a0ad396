//! The `#[intercall::service]` attribute. Use it through the `intercall` crate, which
//! documents it and re-exports everything the generated code needs.

mod ast;
mod attr;
mod client;
mod debug;
mod errors;
mod expand;
mod fallback;
mod server;
mod trait_def;
mod valid;

use proc_macro::TokenStream;

/// Turns a trait into a remote service: see the `intercall` crate's documentation.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service(args.into(), input.into()).into()
}
