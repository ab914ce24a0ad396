//! `{Trait}Server`: the real implementation behind an axum `Router`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::LitStr;

use crate::ast::Service;

// Input:  trait Catalog { async fn get(&self, id: String) -> Result<P, E>; }
// Output: pub struct CatalogServer<T> { .. }
//         impl<T: Catalog + 'static> CatalogServer<T> { new, from_arc, max_body_bytes, .., into_router }
//         into_router() routes `POST /Catalog/get` to a handler that decodes `{"id": ..}`
//         and calls `T::get`; a method's route and its name in the list carry its `#[cfg]`:
//             let router = ServiceRouter::new("Catalog", &[#[cfg(c)] "get"], ..);
//             #[cfg(c)] let router = router.method("get", ..);
pub(crate) fn server(service: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, name, .. } = service;
    let server = format_ident!("{}Server", ident);
    let serde_crate = LitStr::new(&format!("{}::__private::serde", quote!(#krate)), proc_macro2::Span::call_site());
    let method_names = service.methods.iter().map(|m| {
        let (cfg, name) = (&m.cfg, &m.name);
        quote!(#cfg #name,)
    });

    // One statement per route rather than one `.method(..)` chain, so that a route can
    // carry its method's `#[cfg]`.
    let routes = service.methods.iter().map(|method| {
        let (method_ident, method_name, cfg) = (method.ident, &method.name, &method.cfg);
        let args_struct = format_ident!("__IntercallArgs_{}", method_name);
        let fields = method.args.iter().map(|arg| {
            let (field, ty) = (arg.ident, arg.ty);
            quote!(#field: #ty)
        });
        let names = method.args.iter().map(|arg| arg.ident);
        let add = match method.item {
            None => quote!(method),
            Some(_) => quote!(stream_method),
        };
        quote! {
            #cfg
            let __intercall_router = __intercall_router.#add(#method_name, {
                #[derive(#krate::__private::serde::Deserialize)]
                #[serde(crate = #serde_crate)]
                #[allow(non_camel_case_types)]
                struct #args_struct { #(#fields),* }

                |implementation: ::std::sync::Arc<__IntercallImpl>, args: #args_struct| async move {
                    <__IntercallImpl as #ident>::#method_ident(&*implementation, #(args.#names),*).await
                }
            });
        }
    });

    let doc = format!(
        "Serves a [`{ident}`] implementation over HTTP: `POST /{name}/{{method}}` with a JSON object of the named arguments."
    );
    let route_docs = service.methods.iter().map(|m| m.cfg.doc(&format!("- `POST /{name}/{}`", m.name)));
    quote! {
        #[doc = #doc]
        ///
        /// Merge several servers' routers with `Router::merge` and serve them with
        /// `intercall::serve`.
        #vis struct #server<__IntercallImpl = ()> {
            implementation: ::std::sync::Arc<__IntercallImpl>,
            setup: #krate::__private::ServerSetup,
        }

        // The handlers call the user's methods; a `#[deprecated]` one warns at the user's
        // own calls, not here.
        #[allow(deprecated)]
        impl<__IntercallImpl: #ident + 'static> #server<__IntercallImpl> {
            /// Wraps the real implementation.
            #vis fn new(implementation: __IntercallImpl) -> Self {
                Self::from_arc(::std::sync::Arc::new(implementation))
            }

            /// Wraps an implementation the node also uses elsewhere.
            #vis fn from_arc(implementation: ::std::sync::Arc<__IntercallImpl>) -> Self {
                Self { implementation, setup: ::core::default::Default::default() }
            }

            /// The largest request body accepted, in bytes (default 2 MiB); a larger one
            /// gets `413 payload_too_large` and the implementation does not run.
            #vis fn max_body_bytes(mut self, limit: usize) -> Self {
                self.setup.set_max_body_bytes(limit);
                self
            }

            /// Verifies signed calls: with a shared secret, unsigned, forged or stale
            /// calls get `401` and nothing runs (default: none; pass the node's
            /// `invoker.security()`).
            #vis fn security(mut self, security: #krate::Security) -> Self {
                self.setup.set_security(security);
                self
            }

            /// Applies a node's server settings at once (security, call-id store, what to
            /// do when the store fails): usually `invoker.server_settings()`.
            #vis fn settings(mut self, settings: #krate::ServerSettings) -> Self {
                self.setup.set_settings(settings);
                self
            }

            /// A limit on this method's calls in flight, in place of the node's
            /// `max_in_flight` for it: a call over it gets `503 overloaded` with
            /// `Retry-After` before anything is decoded or run. Its calls no longer count
            /// against the node's limit.
            ///
            /// # Panics
            ///
            /// `into_router` panics when the trait has no method named `method`.
            #vis fn method_max_in_flight(mut self, method: &str, limit: usize) -> Self {
                self.setup.set_method_max_in_flight(method, limit);
                self
            }

            /// Where calls with an `x-call-id` are recorded, so that a retried call runs
            /// once (default: the process-wide `intercall::default_call_store()`).
            #vis fn call_store(mut self, store: ::std::sync::Arc<dyn #krate::calls::CallStore>) -> Self {
                self.setup.set_call_store(store);
                self
            }

            #[doc = "The routes:"]
            #[doc = ""]
            #(#route_docs)*
            #vis fn into_router(self) -> #krate::Router {
                let __intercall_router = #krate::__private::ServiceRouter::new(
                    #name,
                    &[#(#method_names)*],
                    self.implementation,
                    self.setup,
                );
                #(#routes)*
                let __intercall_router = __intercall_router.manifest(#server::manifest());
                __intercall_router.finish()
            }
        }
    }
}
