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
            let error = syn::Error::new_spanned(
                &input,
                "#[intercall::service] goes on a trait: `pub trait Catalog { async fn get(&self, id: String) -> Result<Product, CatalogError>; }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #input);
        }
    };
    let mut errors = Errors::default();
    let args = attr::parse(args, &mut errors);
    let service = Service::parse(&item, args, &mut errors);
    valid::check(&service, &mut errors);
    if let Some(errors) = errors.into_compile_errors() {
        return fallback::emit(&item, &service.krate, errors);
    }

    let assertions = assertions(&service);
    let tokens = [
        trait_def::service_trait(&service, &item),
        trait_def::dyn_support(&service),
        server::server(&service),
        client::proxy(&service),
        assertions,
    ]
    .into_iter()
    .collect();
    debug::print_if_enabled(&item.ident.to_string(), &tokens);
    tokens
}

/// Bound checks at the user's own types, so "`CatalogError` cannot be the error type of
/// an intercall method" is underlined at `CatalogError` in the trait, not somewhere in
/// generated code; likewise for argument and result types.
fn assertions(service: &Service<'_>) -> TokenStream {
    let krate = &service.krate;
    let checks = service.methods.iter().map(|method| {
        let at = |ty: &syn::Type| syn::spanned::Spanned::span(ty);
        let err = method.err;
        let err = quote::quote_spanned!(at(err)=> #krate::__private::assert_service_error::<#err>(););
        let values = method
            .args
            .iter()
            .map(|arg| arg.ty)
            .chain([method.ok])
            .map(|ty| quote::quote_spanned!(at(ty)=> #krate::__private::assert_wire_type::<#ty>();));
        quote!(#err #(#values)*)
    });
    quote! {
        const _: () = { #(#checks)* };
    }
}
