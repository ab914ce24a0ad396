//! Parse, validate, generate: the whole macro, one step per line.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemTrait;

use crate::ast::Service;
use crate::errors::Errors;
use crate::{attr, client, debug, fallback, server, trait_def, valid};

pub(crate) fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemTrait = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                item_keyword_span(&input),
                "#[intercall::service] goes on a trait: write `pub trait Name { async fn method(&self, arg: Type) -> Result<T, E>; }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #input);
        }
    };
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    let service = Service::parse(&item, args, &mut errors);
    crate::events::reject_ordering_keys(&service, &mut errors);
    valid::check(&service, "Proxy", &mut errors);
    if let Some(errors) = errors.into_compile_errors() {
        let tokens = fallback::emit(&item, &service.krate, errors);
        debug::print_if_enabled(&item.ident.to_string(), &tokens);
        return tokens;
    }

    let assertions = assertions(&service);
    let tokens = [
        trait_def::service_trait(&service, &item),
        trait_def::dyn_support(&service),
        server::server(&service),
        crate::manifest::manifest(&service),
        client::proxy(&service),
        assertions,
    ]
    .into_iter()
    .collect();
    debug::print_if_enabled(&item.ident.to_string(), &tokens);
    tokens
}

/// `#[intercall::events]`: the same parse and rules as a service's, the event rule, then
/// the trait, its `dyn` support, the publisher and the consumer.
pub(crate) fn events(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemTrait = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                item_keyword_span(&input),
                "#[intercall::events] goes on a trait: write `pub trait Name { async fn event(&self, arg: Type) -> Result<(), E>; }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #input);
        }
    };
    let mut errors = Errors::for_events();
    let args = attr::parse(args, &mut errors);
    let service = Service::parse(&item, args, &mut errors);
    crate::events::check(&service, &mut errors);
    valid::check(&service, "Publisher", &mut errors);
    if let Some(errors) = errors.into_compile_errors() {
        let tokens = fallback::emit_events(&item, &service.krate, errors);
        debug::print_if_enabled(&item.ident.to_string(), &tokens);
        return tokens;
    }
    let tokens = [
        trait_def::service_trait(&service, &item),
        trait_def::dyn_support(&service),
        crate::events::publisher(&service),
        crate::events::consumer(&service),
        assertions(&service),
    ]
    .into_iter()
    .collect();
    debug::print_if_enabled(&item.ident.to_string(), &tokens);
    tokens
}

/// The span of the keyword that says what the item is (`struct`, `fn`, `impl`, ...),
/// where "goes on a trait" belongs.
fn item_keyword_span(input: &TokenStream) -> proc_macro2::Span {
    use syn::spanned::Spanned;
    match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Struct(item)) => item.struct_token.span,
        Ok(syn::Item::Enum(item)) => item.enum_token.span,
        Ok(syn::Item::Fn(item)) => item.sig.fn_token.span,
        Ok(syn::Item::Impl(item)) => item.impl_token.span,
        Ok(syn::Item::Mod(item)) => item.mod_token.span,
        Ok(item) => item.span(),
        Err(_) => proc_macro2::Span::call_site(),
    }
}

/// Bound checks at the user's own types, so "`Query` cannot cross the wire" is
/// underlined at `Query` in the trait, not only somewhere in generated code. (The
/// error type needs none: the proxy's call is spanned at it and bounded by
/// `ServiceError`.) One `const` per method, under the method's `#[cfg]`.
fn assertions(service: &Service<'_>) -> TokenStream {
    let krate = &service.krate;
    let checks = service.methods.iter().map(|method| {
        let at = |ty: &syn::Type| syn::spanned::Spanned::span(ty);
        let values = method
            .args
            .iter()
            .map(|arg| arg.ty)
            .chain([method.item.unwrap_or(method.ok)])
            .map(|ty| quote::quote_spanned!(at(ty)=> #krate::__private::assert_wire_type::<#ty>();));
        let cfg = &method.cfg;
        quote! {
            #cfg
            const _: () = { #(#values)* };
        }
    });
    quote!(#(#checks)*)
}
