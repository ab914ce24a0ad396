//! What the macro emits beside its errors: the user's trait as written and inert
//! stand-ins for the generated types, so code that uses them does not add a wave of
//! "cannot find type" or "no method" errors to the one real mistake.

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{FnArg, ItemTrait, Pat, ReturnType, TraitItem, TypeParamBound};

use crate::cfg::Cfg;

// Input:  a trait the macro rejected, and the errors.
// Output: the errors, the trait as written (minus forms rustc would reject a second
//         time), `{Trait}Server` / `{Trait}Proxy` stubs with the real items' public
//         signatures, and `impl Trait for {Trait}Proxy` with `unreachable!()` bodies.
pub(crate) fn emit(item: &ItemTrait, krate: &syn::Path, errors: TokenStream) -> TokenStream {
    let (vis, ident) = (&item.vis, &item.ident);
    let item = without_reported_forms(item);
    let server = format_ident!("{}Server", ident);
    let proxy = format_ident!("{}Proxy", ident);
    let proxy_impl = proxy_impl(&item, &proxy);
    quote! {
        #errors

        #[allow(async_fn_in_trait, unused_variables)]
        #item

        #vis struct #server<__IntercallImpl = ()>(::core::marker::PhantomData<__IntercallImpl>);

        impl #server {
            #vis fn manifest() -> #krate::manifest::ServiceManifest { ::core::unreachable!() }
        }

        #[allow(unused_variables, clippy::all)]
        impl<__IntercallImpl> #server<__IntercallImpl> {
            #vis fn new(implementation: __IntercallImpl) -> Self { ::core::unreachable!() }
            #vis fn from_arc(implementation: ::std::sync::Arc<__IntercallImpl>) -> Self { ::core::unreachable!() }
            #vis fn max_body_bytes(self, limit: usize) -> Self { ::core::unreachable!() }
            #vis fn security(self, security: #krate::Security) -> Self { ::core::unreachable!() }
            #vis fn settings(self, settings: #krate::ServerSettings) -> Self { ::core::unreachable!() }
            #vis fn method_max_in_flight(self, method: &str, limit: usize) -> Self { ::core::unreachable!() }
            #vis fn call_store(self, store: ::std::sync::Arc<dyn #krate::calls::CallStore>) -> Self { ::core::unreachable!() }
            #vis fn without_manifest(self) -> Self { ::core::unreachable!() }
            #vis fn into_router(self) -> #krate::Router { ::core::unreachable!() }
        }

        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #proxy;

        #[allow(unused_variables, clippy::all)]
        impl #proxy {
            #vis fn new(invoker: #krate::Invoker) -> ::core::result::Result<Self, #krate::Error> { ::core::unreachable!() }
        }

        #proxy_impl
    }
}

/// What `#[intercall::events]` emits beside its errors: the trait, and stubs of the
/// publisher (implementing the trait, as the proxy's stub does) and the consumer.
pub(crate) fn emit_events(item: &ItemTrait, krate: &syn::Path, errors: TokenStream) -> TokenStream {
    let (vis, ident) = (&item.vis, &item.ident);
    let item = without_reported_forms(item);
    let publisher = format_ident!("{}Publisher", ident);
    let consumer = format_ident!("{}Consumer", ident);
    let publisher_impl = proxy_impl(&item, &publisher);
    quote! {
        #errors

        #[allow(async_fn_in_trait, unused_variables)]
        #item

        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #publisher;

        #[allow(unused_variables, clippy::all)]
        impl #publisher {
            #vis fn new(invoker: #krate::Invoker) -> ::core::result::Result<Self, #krate::Error> { ::core::unreachable!() }
        }

        #publisher_impl

        #vis struct #consumer<__IntercallImpl>(::core::marker::PhantomData<__IntercallImpl>);

        #[allow(unused_variables, clippy::all)]
        impl<__IntercallImpl> #consumer<__IntercallImpl> {
            #vis fn new(invoker: #krate::Invoker, group: impl ::core::convert::Into<::std::string::String>, implementation: __IntercallImpl) -> ::core::result::Result<Self, #krate::Error> { ::core::unreachable!() }
            #vis fn from_arc(invoker: #krate::Invoker, group: impl ::core::convert::Into<::std::string::String>, implementation: ::std::sync::Arc<__IntercallImpl>) -> ::core::result::Result<Self, #krate::Error> { ::core::unreachable!() }
            #vis fn consumer_name(self, name: impl ::core::convert::Into<::std::string::String>) -> Self { ::core::unreachable!() }
            #vis fn only_new_events(self) -> Self { ::core::unreachable!() }
            #vis async fn run<F: ::core::future::Future<Output = ()> + ::core::marker::Send>(self, shutdown: F) { ::core::unreachable!() }
        }
    }
}

// Input:  the trait as emitted: `trait Shop { async fn get(&self, _: &str) -> R; fn f(&self) {..} }`
// Output: `impl Shop for ShopProxy { async fn get(&self, _: &str) -> R { unreachable!() } }`,
//         so `proxy.get(..)` in the user's code is not a second error. Methods with a
//         default body keep it. Nothing when the impl would bring errors of its own: a
//         generic trait, a `where` clause or supertraits the stub lacks, an associated
//         const or bounded type it cannot give a value, an `impl Trait` return that
//         `unreachable!()` does not satisfy.
fn proxy_impl(item: &ItemTrait, proxy: &Ident) -> Option<TokenStream> {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() || item.auto_token.is_some() {
        return None;
    }
    // The stub is a unit struct deriving `Clone` and `Debug`.
    let implemented = |bound: &TypeParamBound| match bound {
        TypeParamBound::Trait(bound) => bound.path.segments.last().is_some_and(|last| {
            ["Send", "Sync", "Clone", "Debug"].iter().any(|name| last.ident == name) && last.arguments.is_empty()
        }),
        TypeParamBound::Lifetime(_) => true,
        _ => false,
    };
    if !item.supertraits.iter().all(implemented) {
        return None;
    }
    let mut stubs = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(method) if method.default.is_some() => {}
            TraitItem::Fn(method) => {
                let returns_impl =
                    matches!(&method.sig.output, ReturnType::Type(_, ty) if mentions_impl(ty.to_token_stream()));
                if returns_impl || method.sig.variadic.is_some() {
                    return None;
                }
                let (cfg, sig) = (Cfg::of(&method.attrs), &method.sig);
                stubs.push(quote!(#cfg #sig { ::core::unreachable!() }));
            }
            TraitItem::Type(ty) if ty.default.is_none() && ty.bounds.is_empty() && ty.generics.params.is_empty() => {
                let (cfg, name) = (Cfg::of(&ty.attrs), &ty.ident);
                stubs.push(quote!(#cfg type #name = ();));
            }
            _ => return None,
        }
    }
    let (unsafety, ident) = (&item.unsafety, &item.ident);
    Some(quote! {
        #[allow(unused_variables, deprecated, clippy::all)]
        #unsafety impl #ident for #proxy {
            #(#stubs)*
        }
    })
}

fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

/// The trait without what rustc would reject again after the macro reported it: every
/// argument pattern that is not a plain name becomes `_` (rustc rejects patterns in
/// bodiless methods, E0642), and `const fn` loses its `const` (E0379).
fn without_reported_forms(item: &ItemTrait) -> ItemTrait {
    let mut item = item.clone();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else { continue };
        method.sig.constness = None;
        if method.default.is_some() {
            continue;
        }
        for input in &mut method.sig.inputs {
            if let FnArg::Typed(typed) = input {
                typed.attrs.retain(|attr| !attr.path().is_ident(crate::ast::ORDERING_KEY));
            }
            if let FnArg::Typed(typed) = input
                && !matches!(&*typed.pat, Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none())
            {
                *typed.pat = Pat::Wild(syn::PatWild { attrs: Vec::new(), underscore_token: Default::default() });
            }
        }
    }
    item
}
