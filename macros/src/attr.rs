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
            if name.value() == ".well-known" {
                return Err(syn::Error::new_spanned(
                    &name,
                    "invalid service name: `.well-known` is reserved for the manifest (`/.well-known/intercall/manifest`); choose another name",
                ));
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
    match invalid_segment_char(name) {
        Some(c) => {
            Err(format!("`{c}` cannot appear in a URL path segment; use only ASCII letters, digits, `_`, `.` and `-`"))
        }
        None => Ok(()),
    }
}

/// The first character of `name` outside `[A-Za-z0-9_.-]`, the characters of a path segment.
pub(crate) fn invalid_segment_char(name: &str) -> Option<char> {
    name.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
}

/// An ASCII name to suggest for `name`: `Katalög` becomes `Katalog`, `größe` `grosse`.
/// Accented Latin letters lose their accents; other characters that cannot appear in a
/// path segment are dropped, and if nothing is left the suggestion is `otherwise`.
pub(crate) fn ascii_name(name: &str, otherwise: &str) -> String {
    const FOLDS: &[(&str, &str)] = &[
        ("àáâãäåāăą", "a"),
        ("çćĉċč", "c"),
        ("ďđ", "d"),
        ("èéêëēĕėęě", "e"),
        ("ĝğġģ", "g"),
        ("ĥħ", "h"),
        ("ìíîïĩīĭįı", "i"),
        ("ĵ", "j"),
        ("ķ", "k"),
        ("ĺļľŀł", "l"),
        ("ñńņňŉ", "n"),
        ("òóôõöøōŏő", "o"),
        ("ŕŗř", "r"),
        ("śŝşš", "s"),
        ("ţťŧ", "t"),
        ("ùúûüũūŭůűų", "u"),
        ("ŵ", "w"),
        ("ýÿŷ", "y"),
        ("źżž", "z"),
        ("ß", "ss"),
        ("æ", "ae"),
        ("œ", "oe"),
        ("þ", "th"),
    ];
    let mut ascii = String::new();
    for c in name.chars() {
        if invalid_segment_char(c.encode_utf8(&mut [0; 4])).is_none() {
            ascii.push(c);
            continue;
        }
        let lower = c.to_lowercase().next().unwrap_or(c);
        if let Some((_, folded)) = FOLDS.iter().find(|(letters, _)| letters.contains(lower)) {
            if c.is_uppercase() {
                let mut chars = folded.chars();
                ascii.extend(chars.next().map(|first| first.to_ascii_uppercase()));
                ascii.extend(chars);
            } else {
                ascii.push_str(folded);
            }
        }
    }
    if ascii.is_empty() { otherwise.to_owned() } else { ascii }
}

#[cfg(test)]
mod tests {
    use super::ascii_name;

    #[test]
    fn ascii_names_drop_accents() {
        assert_eq!(ascii_name("Katalög", "catalog"), "Katalog");
        assert_eq!(ascii_name("größe", "get"), "grosse");
        assert_eq!(ascii_name("Ærø_2", "x"), "Aero_2");
        assert_eq!(ascii_name("日本", "catalog"), "catalog");
    }
}
