//! `INTERCALL_MACROS_DEBUG=1` prints every expansion, formatted, to the compiler's stderr.

use proc_macro2::TokenStream;

pub(crate) fn print_if_enabled(trait_name: &str, tokens: &TokenStream) {
    let enabled = std::env::var_os("INTERCALL_MACROS_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
    if !enabled {
        return;
    }
    let text = match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    };
    eprintln!("// ---- #[intercall::service] expansion of `{trait_name}` ----\n{text}");
}
