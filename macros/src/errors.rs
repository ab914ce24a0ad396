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
