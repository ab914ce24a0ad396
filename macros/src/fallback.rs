//! What the macro emits beside its errors: the user's trait as written and inert
//! stand-ins for the generated types, so code that uses them does not add a wave of
//! "cannot find type" errors to the one real mistake.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ItemTrait, Pat, TraitItem};

// Input:  a trait the macro rejected, and the errors.
// Output: the errors, the trait unchanged, and `{Trait}Server` / `{Trait}Proxy` stubs
//         with the real constructors' signatures.
pub(crate) fn emit(item: &ItemTrait, krate: &syn::Path, errors: TokenStream) -> TokenStream {
    let (vis, ident) = (&item.vis, &item.ident);
    let item = without_argument_patterns(item);
    let server = format_ident!("{}Server", ident);
    let proxy = format_ident!("{}Proxy", ident);
    quote! {
        #errors

        #[allow(async_fn_in_trait, unused_variables)]
        #item

        #vis struct #server<__IntercallImpl>(::core::marker::PhantomData<__IntercallImpl>);

        #[allow(unused_variables, clippy::all)]
        impl<__IntercallImpl> #server<__IntercallImpl> {
            #vis fn new(implementation: __IntercallImpl) -> Self { ::core::unreachable!() }
            #vis fn from_arc(implementation: ::std::sync::Arc<__IntercallImpl>) -> Self { ::core::unreachable!() }
            #vis fn max_body_bytes(self, limit: usize) -> Self { ::core::unreachable!() }
            #vis fn security(self, security: #krate::Security) -> Self { ::core::unreachable!() }
            #vis fn settings(self, settings: #krate::ServerSettings) -> Self { ::core::unreachable!() }
            #vis fn call_store(self, store: ::std::sync::Arc<dyn #krate::calls::CallStore>) -> Self { ::core::unreachable!() }
            #vis fn into_router(self) -> #krate::Router { ::core::unreachable!() }
        }

        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #proxy;

        #[allow(unused_variables, clippy::all)]
        impl #proxy {
            #vis fn new(invoker: #krate::Invoker) -> ::core::result::Result<Self, #krate::Error> { ::core::unreachable!() }
        }
    }
}

/// The trait with every argument pattern that is not a plain name replaced by `_`:
/// rustc rejects patterns in bodiless methods (E0642), and the macro has already
/// reported them.
fn without_argument_patterns(item: &ItemTrait) -> ItemTrait {
    let mut item = item.clone();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else { continue };
        if method.default.is_some() {
            continue;
        }
        for input in &mut method.sig.inputs {
            if let FnArg::Typed(typed) = input
                && !matches!(&*typed.pat, Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none())
            {
                *typed.pat = Pat::Wild(syn::PatWild { attrs: Vec::new(), underscore_token: Default::default() });
            }
        }
    }
    item
}
