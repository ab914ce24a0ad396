//! Collects every independent error, so one compile shows them all.

use proc_macro2::TokenStream;
use std::fmt::Display;

#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error spanned at `tokens` (the place the user must edit).
    pub(crate) fn at(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// The collected errors as `compile_error!`s, or `None` when there are none.
    pub(crate) fn into_compile_errors(self) -> Option<TokenStream> {
        if self.errors.is_empty() {
            return None;
        }
        Some(self.errors.iter().map(syn::Error::to_compile_error).collect())
    }
}

/// A type as the user would write it (`Res<Product>`, not `Res < Product >`), for messages.
pub(crate) fn shown(ty: &syn::Type) -> String {
    let file: syn::File = syn::parse_quote!(type __Shown = #ty;);
    let text = prettyplease::unparse(&file);
    let text = text.trim().strip_prefix("type __Shown = ").and_then(|text| text.strip_suffix(';'));
    text.map_or_else(|| quote::quote!(#ty).to_string(), str::to_owned)
}
