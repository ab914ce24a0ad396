//! The `#[intercall::service]` attribute. Use it through the `intercall` crate, which
//! documents it and re-exports everything the generated code needs.

mod ast;
mod attr;
mod cfg;
mod client;
mod debug;
mod errors;
mod events;
mod expand;
mod fallback;
mod manifest;
mod result_type;
mod server;
mod stream;
mod trait_def;
mod valid;

use proc_macro::TokenStream;

/// Turns a trait into a remote service.
///
/// ```ignore
/// #[intercall::service]                  // URL name = trait name
/// #[intercall::service(name = "catalog")] // URL name and services.toml key = "catalog"
/// #[intercall::service(crate = "path")]   // when `intercall` is renamed in Cargo.toml
/// ```
///
/// # What you write
///
/// Every method is `async fn name(&self, arg: Type, ...) -> Result<T, E>`: arguments
/// are named and owned (`String`, not `&str`), `T` and every argument type are
/// `Serialize + Deserialize + Send + Sync + 'static`, and `E` is
/// `Serialize + Deserialize + From<intercall::CallError>`, a type of your own (the
/// orphan rule rules out `String` and other foreign types). `Result` is written out, not
/// through an alias: the macro cannot see through one to `E`. The trait has no generics,
/// `where` clauses, supertraits, associated items or default bodies, and its name (or
/// the `name` given) and its methods' names are ASCII, since they are URL path segments.
/// Anything else is rejected with an error at the offending token saying what to write
/// instead.
///
/// A **stream method** answers with many items: its `Ok` type is
/// `intercall::Streaming<Item, E>` (`-> Result<Streaming<Item, E>, E>`), with the
/// method's own `E`. An error before the first item is the method's `Err`; each item is
/// a `Result<Item, E>`, and an `Err` item ends the stream. The implementation returns
/// `Streaming::new(any_stream)`, the proxy a `Streaming` read from the wire
/// (docs/PROTOCOL.md §4.3).
///
/// A method's `#[cfg(..)]` and `#[cfg_attr(.., cfg(..))]` apply to everything generated
/// for it (its route, its proxy method, its `dyn` support), and a `#[deprecated]`
/// method warns where your code calls it, not in the expansion.
///
/// # What it generates, for `pub trait Catalog`
///
/// - **The trait**, rewritten: each method becomes
///   `fn get(&self, id: String) -> impl Future<Output = Result<T, E>> + Send where Self: Sized`,
///   and the trait gains `Send + Sync` and a hidden supertrait. Implement it with plain
///   `async fn`s; the compiler checks the futures are `Send`.
/// - **`Catalog` for `Arc<dyn Catalog>`, `Box<dyn Catalog>` and `Arc<T: Catalog>`**, so
///   a node can hold the service as a trait object or share one implementation. (`dyn
///   Catalog` is already `Send + Sync`; write `dyn Catalog`, not `dyn Catalog + Send`.)
/// - **`CatalogServer<T: Catalog>`**: `new(T)`, `from_arc(Arc<T>)`,
///   `max_body_bytes(self, usize) -> Self` (default 2 MiB),
///   `method_max_in_flight(self, &str, usize) -> Self` (a method's own limit on calls in
///   flight) and `into_router(self) -> intercall::Router`, with one `POST /{name}/{method}`
///   route per method and `GET /.well-known/intercall/manifest/{name}` (`without_manifest(self)`
///   leaves it out); and `CatalogServer::manifest()`, the service's manifest (methods,
///   argument names, Rust types, and with intercall's `schema` feature a JSON Schema
///   for each type, which every wire type must then have) without a server.
/// - **`CatalogProxy`**: `Clone + Debug`, `new(intercall::Invoker) -> Result<Self,
///   intercall::Error>` (fails when the invoker's configuration has no entry for the
///   service name), and `impl Catalog for CatalogProxy`, which calls the server.
///
/// # Why this desugaring
///
/// A native `async fn` in a trait gives neither `Send` futures nor `dyn Catalog`.
/// Boxing every method (the async-trait way) gives both, but every implementor must
/// write an attribute on its `impl` and every call allocates, also on the server's hot
/// path. Declaring `-> impl Future + Send where Self: Sized` keeps plain `async fn`
/// impls and unboxed generic calls; the `where Self: Sized` keeps those methods out of
/// the vtable, and a hidden supertrait with boxed twins of each method (implemented for
/// every `T: Catalog`) gives `dyn Catalog` a vtable. Only calls through `dyn` box.
///
/// # Debugging
///
/// `INTERCALL_MACROS_DEBUG=1 cargo build` prints every expansion to stderr.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service(args.into(), input.into()).into()
}

/// Turns a trait into events: one-way notifications on Redis Streams.
///
/// ```ignore
/// #[intercall::events]                        // stream `intercall:events:OrderEvents`
/// #[intercall::events(name = "orders")]       // stream `intercall:events:orders`
/// #[intercall::events(crate = "path")]        // when `intercall` is renamed in Cargo.toml
/// ```
///
/// The methods follow the rules of `#[intercall::service]` (`async fn`, `&self`, named
/// owned serde arguments, `E: From<intercall::CallError> + Serialize + Deserialize`),
/// and return `Result<(), E>`: an event has no reply. A method's arguments are its
/// payload.
///
/// # What it generates, for `pub trait OrderEvents`
///
/// - **The trait**, rewritten as `#[intercall::service]` does (plain `async fn` impls,
///   `Send` futures, `dyn OrderEvents`, `Arc<T>`).
/// - **`OrderEventsPublisher`**: `Clone + Debug`, `new(intercall::Invoker) ->
///   Result<Self, intercall::Error>` (fails without an `[events]` table), and `impl
///   OrderEvents`: calling a method appends the event to the stream and returns once
///   Redis has stored it; a failure is `E::from(CallError)`.
/// - **`OrderEventsConsumer<T: OrderEvents>`**: `new(invoker, group, T)`, `from_arc`,
///   `consumer_name`, `only_new_events` and `run(shutdown)`, which reads the group's
///   events and calls `T`'s methods inside the publisher's user and activity.
///
/// A node that runs the subscriber itself passes the implementation wherever an
/// `OrderEvents` is expected, as with a service. Delivery, retries, the dead-letter
/// stream and the entry format: `docs/EVENTS.md`. The publisher and consumer need
/// intercall's `events` feature; without it they compile and `new` fails saying so.
#[proc_macro_attribute]
pub fn events(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::events(args.into(), input.into()).into()
}
