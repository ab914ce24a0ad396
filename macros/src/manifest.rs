//! `{Trait}Server::manifest()`: the service's manifest at build time, and the builder
//! switch that stops a server from serving it. The runtime builds the values
//! (`intercall::__private::manifest`); this file only lists what the trait says.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Type};

use crate::ast::{Method, Service};

// Input:  /// The catalog.
//         trait Catalog { /// Finds one. async fn get(&self, id: String) -> Result<Product, CatalogError>; }
// Output: impl CatalogServer {      // `CatalogServer<()>`: callable without an implementation
//             pub fn manifest() -> intercall::manifest::ServiceManifest {
//                 service("Catalog", "The catalog.", vec![
//                     #[cfg(..)] method("get", "Finds one.", false,
//                         vec![argument("id", true, ty::<String>("String"))],
//                         ty::<Product>("Product"), ty::<CatalogError>("CatalogError")),
//                 ])
//             }
//         }
//         impl<T: Catalog> CatalogServer<T> { pub fn without_manifest(self) -> Self }
pub(crate) fn manifest(service: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, name, .. } = service;
    let server = format_ident!("{}Server", ident);
    let codegen = quote!(#krate::__private::manifest);
    let service_docs = docs(service.docs.iter().copied());
    let methods = service.methods.iter().map(|method| {
        let Method { name, cfg, .. } = method;
        let method_docs = docs(method.attrs.iter().filter(|attr| attr.path().is_ident("doc")));
        let deprecated = method.attrs.iter().any(|attr| attr.path().is_ident("deprecated"));
        let arguments = method.args.iter().map(|arg| {
            let arg_name = arg.ident.unraw_name();
            let required = !is_option(arg.ty);
            let ty = type_entry(&codegen, arg.ty);
            quote!(#codegen::argument(#arg_name, #required, #ty))
        });
        // A stream method describes its items: `T` of `Result<Streaming<T, E>, E>`.
        let ok = type_entry(&codegen, method.item.unwrap_or(method.ok));
        let err = type_entry(&codegen, method.err);
        let entry = quote!(#codegen::method(#name, #method_docs, #deprecated, ::std::vec![#(#arguments),*], #ok, #err));
        let entry = match method.item {
            Some(_) => quote!(#codegen::streamed(#entry)),
            None => entry,
        };
        quote! {
            #cfg
            #entry,
        }
    });
    let doc = format!(
        "The manifest of `{name}`: its methods, their arguments and types (PROTOCOL.md §11), without a server; \
         with intercall's `schema` feature, a JSON Schema for every type."
    );
    quote! {
        impl #server {
            #[doc = #doc]
            #vis fn manifest() -> #krate::manifest::ServiceManifest {
                #codegen::service(#name, #service_docs, ::std::vec![#(#methods)*])
            }
        }

        impl<__IntercallImpl: #ident + 'static> #server<__IntercallImpl> {
            /// Does not serve the manifest at `/.well-known/intercall/manifest/..`, nor
            /// list this service in the node's index (default: both).
            #vis fn without_manifest(mut self) -> Self {
                self.setup.set_serve_manifest(false);
                self
            }
        }
    }
}

/// `ty::<T>("T")`: the Rust name as written, and the schema when the feature is on.
/// Spanned at the type in the trait, as axum-macros' bound checks are: with the
/// `schema` feature, `ty` requires `JsonSchema`, and "`Query` has no JSON Schema" is
/// underlined there.
fn type_entry(codegen: &TokenStream, ty: &Type) -> TokenStream {
    let rust = type_name(ty);
    quote_spanned!(ty.span()=> #codegen::ty::<#ty>(#rust))
}

/// `Vec < OrderLine >` as `Vec<OrderLine>`: the tokens, without the spaces
/// `to_string` puts between them.
fn type_name(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let mut name = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let previous = name.chars().last();
        let after_opening = previous.is_some_and(|p| "<:([&".contains(p));
        let before_closing = next.is_some_and(|n| "<>:,)];".contains(n));
        if c == ' ' && (after_opening || before_closing) {
            continue;
        }
        name.push(c);
    }
    name
}

/// An argument of type `Option<..>` may be left out of the request (PROTOCOL.md §3).
fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path.qself.is_none() && path.path.segments.last().is_some_and(|s| s.ident == "Option"),
        Type::Group(group) => is_option(&group.elem),
        Type::Paren(paren) => is_option(&paren.elem),
        _ => false,
    }
}

/// The doc comment's lines, each without the one space `///` leaves, joined by `\n`.
fn docs<'a>(attrs: impl Iterator<Item = &'a Attribute>) -> String {
    let lines: Vec<String> = attrs
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }) => Some(text.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').unwrap_or(&line).to_owned())
        .collect();
    lines.join("\n").trim().to_owned()
}

trait UnrawName {
    fn unraw_name(&self) -> String;
}

impl UnrawName for proc_macro2::Ident {
    fn unraw_name(&self) -> String {
        syn::ext::IdentExt::unraw(self).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_read_as_written() {
        let name = |text: &str| type_name(&syn::parse_str(text).unwrap());
        assert_eq!(name("Vec<OrderLine>"), "Vec<OrderLine>");
        assert_eq!(name("Option<String>"), "Option<String>");
        assert_eq!(name("std::collections::HashMap<String, Vec<u8>>"), "std::collections::HashMap<String, Vec<u8>>");
        assert_eq!(name("()"), "()");
        assert_eq!(name("(u8, String)"), "(u8, String)");
        assert_eq!(name("[u8; 4]"), "[u8; 4]");
    }

    #[test]
    fn option_arguments_are_optional() {
        let option = |text: &str| is_option(&syn::parse_str(text).unwrap());
        assert!(option("Option<String>"));
        assert!(option("std::option::Option<u8>"));
        assert!(!option("Vec<Option<u8>>"));
    }
}
