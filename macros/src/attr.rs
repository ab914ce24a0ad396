//! The arguments of `#[intercall::service(...)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{LitStr, Path};

use crate::errors::Errors;

/// `name = "catalog"` and `crate = "::path::to::intercall"`, both optional.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            if let Err(message) = check_route_segment(&name.value()) {
                return Err(syn::Error::new_spanned(&name, format!("invalid service name: {message}")));
            }
            args.name = Some(name);
        } else if meta.path.is_ident("crate") {
            let path: LitStr = meta.value()?.parse()?;
            args.krate = Some(path.parse()?);
        } else {
            let path = &meta.path;
            let shown = quote::quote!(#path).to_string().replace(' ', "");
            return Err(meta.error(format!(
                "unknown argument `{shown}`; expected `name = \"...\"` (the service name in URLs) or `crate = \"...\"` (the path to a renamed `intercall`)"
            )));
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
    }
    args
}

/// A service or method name is a URL path segment; this is the runtime's rule too.
pub(crate) fn check_route_segment(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty; write a name such as \"catalog\"".to_owned());
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        Some(c) => {
            Err(format!("`{c}` cannot appear in a URL path segment; use only letters, digits, `_`, `.` and `-`"))
        }
        None => Ok(()),
    }
}
