//! The user's trait, rewritten so that it is implementable with plain `async fn`, its
//! futures are `Send`, and it works both as `T: Catalog` and as `Arc<dyn Catalog>`.
//!
//! Why this desugaring: a native `async fn` in a trait gives neither `Send` futures nor
//! `dyn`; boxing every method (async-trait's way) gives both but makes every implementor
//! write `#[async_trait]` and boxes every call, also on the server's hot path. So the
//! trait declares `fn m(..) -> impl Future<Output = ..> + Send where Self: Sized`, which
//! a plain `async fn` implements (and the compiler checks the `Send`), and which the
//! `where Self: Sized` keeps out of the vtable. A hidden supertrait carries a boxed twin
//! of each method, implemented for every `T: Catalog`, so `dyn Catalog` has a vtable;
//! `Arc<dyn Catalog>` and `Box<dyn Catalog>` implement `Catalog` by calling the twins.
//! Only calls through `dyn` pay for the box.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

use crate::ast::{Method, Service};

// Input:  pub trait Catalog { async fn get(&self, id: String) -> Result<P, E>; }
// Output: pub trait Catalog: Send + Sync + __IntercallDynCatalog {
//             fn get(&self, id: String) -> impl Future<Output = Result<P, E>> + Send where Self: Sized;
//         }
pub(crate) fn service_trait(service: &Service<'_>, original: &syn::ItemTrait) -> TokenStream {
    let Service { vis, ident, .. } = service;
    let dyn_trait = dyn_trait_ident(service);
    let attrs = &original.attrs;
    let methods = service.methods.iter().map(|method| {
        let (attrs, signature) = (method.attrs, future_signature(method));
        quote! {
            #(#attrs)*
            #signature
            where
                Self: ::core::marker::Sized;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + #dyn_trait {
            #(#methods)*
        }
    }
}

// Input:  the trait above.
// Output: a hidden object-safe twin with boxed futures, implemented for every sized
//         `T: Catalog`; `Catalog` for `Arc<dyn Catalog>` and `Box<dyn Catalog>` (through
//         the twins) and for `Arc<T>` (without boxing). Each method's items carry its
//         `#[cfg]`: `#[cfg(c)] fn __intercall_get(..)`.
pub(crate) fn dyn_support(service: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, .. } = service;
    let dyn_trait = dyn_trait_ident(service);
    let doc = format!("Object-safe twin of [`{ident}`] that makes `dyn {ident}` work; generated, not for direct use.");

    let declarations = service.methods.iter().map(|method| {
        let (cfg, signature) = (&method.cfg, twin_signature(krate, method));
        quote!(#cfg #signature;)
    });
    let boxing = service.methods.iter().map(|method| {
        let (signature, name, names) = (twin_signature(krate, method), method.ident, arg_names(method));
        let cfg = &method.cfg;
        quote! {
            #cfg
            #signature {
                ::std::boxed::Box::pin(<__IntercallImpl as #ident>::#name(self, #(#names),*))
            }
        }
    });
    let through_dyn = service.methods.iter().map(|method| {
        let (signature, twin, names) = (future_signature(method), twin_ident(method), arg_names(method));
        let cfg = &method.cfg;
        quote! {
            #cfg
            #signature {
                #dyn_trait::#twin(&**self, #(#names),*)
            }
        }
    });
    let through_dyn = quote!(#(#through_dyn)*);
    let through_arc = service.methods.iter().map(|method| {
        let (signature, name, names) = (future_signature(method), method.ident, arg_names(method));
        let cfg = &method.cfg;
        quote! {
            #cfg
            #signature {
                <__IntercallImpl as #ident>::#name(self, #(#names),*)
            }
        }
    });

    quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #vis trait #dyn_trait: ::core::marker::Send + ::core::marker::Sync {
            #(#declarations)*
        }

        // `allow(deprecated)` on each impl: they call or implement the user's methods, and
        // a `#[deprecated]` one must warn at the user's calls, not here.
        #[allow(deprecated)]
        impl<__IntercallImpl: #ident> #dyn_trait for __IntercallImpl {
            #(#boxing)*
        }

        // For every object lifetime, not only `'static`: generic code called with
        // `&Arc<dyn Catalog>` inside a spawned task needs the impl for any lifetime.
        #[allow(deprecated)]
        impl<'__intercall_dyn> #ident for ::std::sync::Arc<dyn #ident + '__intercall_dyn> {
            #through_dyn
        }

        #[allow(deprecated)]
        impl<'__intercall_dyn> #ident for ::std::boxed::Box<dyn #ident + '__intercall_dyn> {
            #through_dyn
        }

        #[allow(deprecated)]
        impl<__IntercallImpl: #ident> #ident for ::std::sync::Arc<__IntercallImpl> {
            #(#through_arc)*
        }
    }
}

/// `fn get(&self, id: String) -> impl Future<Output = Result<P, E>> + Send`
fn future_signature(method: &Method<'_>) -> TokenStream {
    let (name, args, output) = (method.ident, typed_args(method), output(method));
    quote!(fn #name(&self, #(#args),*) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send)
}

/// `fn __intercall_get<'a>(&'a self, id: String) -> BoxFuture<'a, Result<P, E>>`
fn twin_signature(krate: &syn::Path, method: &Method<'_>) -> TokenStream {
    let (twin, args, output) = (twin_ident(method), typed_args(method), output(method));
    quote! {
        fn #twin<'__intercall>(&'__intercall self, #(#args),*) -> #krate::__private::BoxFuture<'__intercall, #output>
    }
}

/// `id, product`: the argument names, to pass the arguments on.
fn arg_names<'a>(method: &'a Method<'_>) -> impl Iterator<Item = &'a syn::Ident> + 'a {
    method.args.iter().map(|arg| arg.ident)
}

fn dyn_trait_ident(service: &Service<'_>) -> syn::Ident {
    format_ident!("__IntercallDyn{}", service.ident.unraw())
}

fn twin_ident(method: &Method<'_>) -> syn::Ident {
    format_ident!("__intercall_{}", method.ident.unraw())
}

/// `id: String, product: Product`: the arguments after `&self`, with the user's spans.
pub(crate) fn typed_args<'a>(method: &'a Method<'_>) -> impl Iterator<Item = TokenStream> + 'a {
    method.args.iter().map(|arg| {
        let (ident, ty) = (arg.ident, arg.ty);
        quote!(#ident: #ty)
    })
}

/// `Result<T, E>` as the user wrote it.
pub(crate) fn output(method: &Method<'_>) -> TokenStream {
    match &method.original.sig.output {
        syn::ReturnType::Type(_, ty) => quote!(#ty),
        syn::ReturnType::Default => unreachable!("methods without a `Result` return type are rejected while parsing"),
    }
}
