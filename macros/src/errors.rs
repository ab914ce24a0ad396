//! Collects every independent error, so one compile shows them all.

use proc_macro2::TokenStream;
use std::fmt::Display;

#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
    /// Reporting on an event trait: the shared rules' messages speak of events.
    events: bool,
}

/// The service rules' words and an event trait's. The rules are the same (ast.rs,
/// result_type.rs, attr.rs); only what the messages call the things differs.
const EVENT_WORDS: &[(&str, &str)] = &[
    ("a service trait", "an event trait"),
    ("A service trait", "An event trait"),
    ("a service method", "an event method"),
    ("service methods", "event methods"),
    ("#[intercall::service", "#[intercall::events"),
    ("the service name in URLs", "the name in stream keys"),
    ("invalid service name", "invalid events name"),
    (
        "is the service's name in URLs (`POST /",
        "is the events' name in stream keys and must be ASCII too (like a service's in `POST /",
    ),
    (
        "is its URL path segment (`POST /{service}/",
        "is its name in an event entry and must be ASCII too (like a service method's in `POST /{service}/",
    ),
];

impl Errors {
    /// Collects errors about an event trait.
    pub(crate) fn for_events() -> Self {
        Self { errors: Vec::new(), events: true }
    }

    /// Records an error spanned at `tokens` (the place the user must edit).
    pub(crate) fn at(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        let message = self.worded(message.to_string());
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error whose message is already in the item's own words.
    pub(crate) fn at_verbatim(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        if self.events {
            let message = self.worded(error.to_string());
            self.errors.push(syn::Error::new(error.span(), message));
        } else {
            self.errors.push(error);
        }
    }

    fn worded(&self, mut message: String) -> String {
        if self.events {
            for (service, event) in EVENT_WORDS {
                message = message.replace(service, event);
            }
        }
        message
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
