//! What the macro emits beside its errors: the user's trait as written and inert
//! stand-ins for the generated types, so code that uses them does not add a wave of
//! "cannot find type" errors to the one real mistake.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemTrait;

// Input:  a trait the macro rejected, and the errors.
// Output: the errors, the trait unchanged, and `{Trait}Server` / `{Trait}Proxy` stubs
//         with the real constructors' signatures.
pub(crate) fn emit(item: &ItemTrait, krate: &syn::Path, errors: TokenStream) -> TokenStream {
    let (vis, ident) = (&item.vis, &item.ident);
    let server = format_ident!("{}Server", ident);
    let proxy = format_ident!("{}Proxy", ident);
    quote! {
        #errors

        #[allow(async_fn_in_trait)]
        #item

        #vis struct #server<__IntercallImpl>(::core::marker::PhantomData<__IntercallImpl>);

        #[allow(unused_variables, clippy::all)]
        impl<__IntercallImpl> #server<__IntercallImpl> {
            #vis fn new(implementation: __IntercallImpl) -> Self { ::core::unreachable!() }
            #vis fn from_arc(implementation: ::std::sync::Arc<__IntercallImpl>) -> Self { ::core::unreachable!() }
            #vis fn max_body_bytes(self, limit: usize) -> Self { ::core::unreachable!() }
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
