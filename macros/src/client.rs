//! `{Trait}Proxy`: the same trait, implemented by calling the remote server.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned;

use crate::ast::{Method, Service};
use crate::trait_def::{output, typed_args};

// Input:  trait Catalog { async fn get(&self, id: String) -> Result<P, E>; }
// Output: #[derive(Clone, Debug)] pub struct CatalogProxy { .. }
//         impl CatalogProxy { pub fn new(invoker: Invoker) -> Result<Self, intercall::Error> }
//         impl Catalog for CatalogProxy {
//             async fn get(&self, id: String) -> Result<P, E> { /* POST {"id": ..} to /Catalog/get */ }
//         }
//         A method's `#[cfg]` goes on its proxy method and on its entry in the method list.
pub(crate) fn proxy(service: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, name, docs, .. } = service;
    let proxy = format_ident!("{}Proxy", ident);
    let method_names = service.methods.iter().map(|m| {
        let (cfg, name) = (&m.cfg, &m.name);
        quote!(#cfg #name,)
    });
    let methods = service
        .methods
        .iter()
        .enumerate()
        .map(|(position, method)| proxy_method(service, index(&service.methods[..position]), method));
    let doc = format!("Calls a remote [`{ident}`] (service `{name}`) over HTTP; it is a `{ident}` itself.");

    quote! {
        #[doc = #doc]
        ///
        #(#docs)*
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #proxy {
            endpoint: #krate::__private::Endpoint,
        }

        impl #proxy {
            #[doc = concat!("Resolves service `", #name, "` in the invoker's configuration.")]
            ///
            /// Fails, naming the service and the configuration's source, when the
            /// configuration has no entry for it. Every proxy built from one invoker shares
            /// its connection pool.
            #vis fn new(invoker: #krate::Invoker) -> ::core::result::Result<Self, #krate::Error> {
                let endpoint = #krate::__private::endpoint(&invoker, #name, &[#(#method_names)*])?;
                ::core::result::Result::Ok(Self { endpoint })
            }
        }

        #[allow(deprecated)] // implements the user's methods; their callers get the warnings
        impl #ident for #proxy {
            #(#methods)*
        }
    }
}

/// A method's index into the method list given to `__private::endpoint`, where
/// `Endpoint::call(index, ..)` reads its name. The list leaves out a method whose
/// `#[cfg]` is false, so the index is not the method's position in the trait but the
/// number of methods before it that exist in this build: each gated one counts as
/// `cfg!(its condition) as usize`, in a `const` block. (Calling by name would
/// need no counting, but would change the runtime's contract.)
///
/// Input:  the methods before this one: `a`, `#[cfg(c)] b`, `d`
/// Output: `const { 2 + (::core::cfg!(c) as usize) }`, or a literal when none is gated
fn index(before: &[Method<'_>]) -> TokenStream {
    let always = before.iter().filter(|method| method.cfg.count().is_none()).count();
    let gated: Vec<TokenStream> = before.iter().filter_map(|method| method.cfg.count()).collect();
    let always = Literal::usize_unsuffixed(always);
    if gated.is_empty() { quote!(#always) } else { quote!(const { #always #(+ #gated)* }) }
}

fn proxy_method(service: &Service<'_>, index: TokenStream, method: &Method<'_>) -> TokenStream {
    let krate = &service.krate;
    let serde_crate = LitStr::new(&format!("{}::__private::serde", quote!(#krate)), Span::call_site());
    let Method { ident, attrs, cfg, .. } = method;
    let docs = attrs.iter().filter(|attr| attr.path().is_ident("doc"));
    let args = typed_args(method);
    let output = output(method);
    let fields = method.args.iter().map(|arg| {
        let (field, ty) = (arg.ident, arg.ty);
        quote!(#field: &'__intercall #ty)
    });
    let names: Vec<_> = method.args.iter().map(|arg| arg.ident).collect();
    // A struct without fields cannot declare an unused lifetime.
    let lifetime = (!names.is_empty()).then(|| quote!(<'__intercall>));
    // Spanned at the error type: if it lacks `From<CallError>`, rustc reports the same
    // error as the macro's own assertion there, and merges the two.
    let call = match method.item {
        None => quote_spanned!(method.err.span()=> call),
        Some(_) => quote_spanned!(method.err.span()=> call_stream),
    };
    quote! {
        #(#docs)*
        #cfg
        async fn #ident(&self, #(#args),*) -> #output {
            #[derive(#krate::__private::serde::Serialize)]
            #[serde(crate = #serde_crate)]
            struct __IntercallArgs #lifetime { #(#fields),* }

            self.endpoint.#call(#index, &__IntercallArgs { #(#names: &#names),* }).await
        }
    }
}
