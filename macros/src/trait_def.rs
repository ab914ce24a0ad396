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
        let Method { ident, attrs, .. } = method;
        let args = typed_args(method);
        let output = output(method);
        quote! {
            #(#attrs)*
            fn #ident(&self, #(#args),*) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
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
//         the twins) and for `Arc<T>` (without boxing).
pub(crate) fn dyn_support(service: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, .. } = service;
    let dyn_trait = dyn_trait_ident(service);
    let doc = format!("Object-safe twin of [`{ident}`] that makes `dyn {ident}` work; generated, not for direct use.");

    let declarations = service.methods.iter().map(|method| {
        let twin = twin_ident(method);
        let args = typed_args(method);
        let output = output(method);
        quote! {
            fn #twin<'__intercall>(&'__intercall self, #(#args),*) -> #krate::__private::BoxFuture<'__intercall, #output>;
        }
    });
    let boxing = service.methods.iter().map(|method| {
        let (name, twin) = (method.ident, twin_ident(method));
        let args = typed_args(method);
        let names = method.args.iter().map(|arg| arg.ident);
        let output = output(method);
        quote! {
            fn #twin<'__intercall>(&'__intercall self, #(#args),*) -> #krate::__private::BoxFuture<'__intercall, #output> {
                ::std::boxed::Box::pin(<__IntercallImpl as #ident>::#name(self, #(#names),*))
            }
        }
    });
    let through_dyn = service.methods.iter().map(|method| {
        let (name, twin) = (method.ident, twin_ident(method));
        let args = typed_args(method);
        let names = method.args.iter().map(|arg| arg.ident);
        let output = output(method);
        quote! {
            fn #name(&self, #(#args),*) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send {
                #dyn_trait::#twin(&**self, #(#names),*)
            }
        }
    });
    let through_dyn = quote!(#(#through_dyn)*);
    let through_arc = service.methods.iter().map(|method| {
        let name = method.ident;
        let args = typed_args(method);
        let names = method.args.iter().map(|arg| arg.ident);
        let output = output(method);
        quote! {
            fn #name(&self, #(#args),*) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send {
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

        impl<__IntercallImpl: #ident> #dyn_trait for __IntercallImpl {
            #(#boxing)*
        }

        // For every object lifetime, not only `'static`: generic code called with
        // `&Arc<dyn Catalog>` inside a spawned task needs the impl for any lifetime.
        impl<'__intercall_dyn> #ident for ::std::sync::Arc<dyn #ident + '__intercall_dyn> {
            #through_dyn
        }

        impl<'__intercall_dyn> #ident for ::std::boxed::Box<dyn #ident + '__intercall_dyn> {
            #through_dyn
        }

        impl<__IntercallImpl: #ident> #ident for ::std::sync::Arc<__IntercallImpl> {
            #(#through_arc)*
        }
    }
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
