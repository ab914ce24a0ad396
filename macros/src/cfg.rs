//! `#[cfg]` and `#[cfg_attr]` on a method, reduced to one condition, so that every item
//! generated for the method (twin, impls, route, proxy method, name in the method list)
//! exists exactly when the trait method does.
//!
//! An attribute macro sees its input before rustc evaluates the `cfg`s inside it, so a
//! method under `#[cfg(feature = "x")]` reaches the macro like any other; without this,
//! the generated items would name a method that is not there.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{Attribute, Meta};

/// The condition under which a method exists; empty when it always does.
#[derive(Clone, Default)]
pub(crate) struct Cfg(Option<TokenStream>);

impl Cfg {
    /// `#[cfg(a)] #[cfg_attr(p, cfg(b))]` is `all(a, any(not(p), b))`. Other attributes
    /// (and whatever else a `cfg_attr` adds, such as a `doc`) do not gate the method.
    pub(crate) fn of(attrs: &[Attribute]) -> Self {
        let conditions: Vec<TokenStream> = attrs.iter().filter_map(attr_condition).collect();
        Cfg(all(conditions))
    }

    /// `#[cfg_attr(condition, doc = line)]`, or `#[doc = line]` when the method always exists.
    pub(crate) fn doc(&self, line: &str) -> TokenStream {
        match &self.0 {
            Some(condition) => quote!(#[cfg_attr(#condition, doc = #line)]),
            None => quote!(#[doc = #line]),
        }
    }

    /// `1` when the method exists in this build, else `0`, as a constant expression:
    /// `::core::cfg!` reads the condition exactly as `#[cfg]` does.
    pub(crate) fn count(&self) -> Option<TokenStream> {
        self.0.as_ref().map(|condition| quote!((::core::cfg!(#condition) as usize)))
    }
}

/// `#[cfg(condition)]`, or nothing when the method always exists.
impl ToTokens for Cfg {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        if let Some(condition) = &self.0 {
            tokens.extend(quote!(#[cfg(#condition)]));
        }
    }
}

fn attr_condition(attr: &Attribute) -> Option<TokenStream> {
    let Meta::List(list) = &attr.meta else { return None };
    let name = list.path.get_ident()?;
    condition(&name.to_string(), list.tokens.clone())
}

/// The condition an attribute `name(tokens)` puts on its item, if any. The tokens are
/// split by hand rather than parsed as `Meta`s: a `cfg_attr` may add any attribute, and
/// a predicate may be `true`, which is not a `Meta`; rustc itself checks the syntax.
fn condition(name: &str, tokens: TokenStream) -> Option<TokenStream> {
    match name {
        "cfg" => Some(tokens),
        "cfg_attr" => {
            let mut parts = split_commas(tokens).into_iter();
            let predicate = parts.next()?;
            let added: Vec<TokenStream> = parts.filter_map(nested_condition).collect();
            let added = all(added)?;
            Some(quote!(any(not(#predicate), #added)))
        }
        _ => None,
    }
}

/// The condition of one attribute inside a `cfg_attr`, written `name(...)`.
fn nested_condition(attr: TokenStream) -> Option<TokenStream> {
    let mut trees = attr.into_iter();
    match (trees.next(), trees.next(), trees.next()) {
        (Some(TokenTree::Ident(name)), Some(TokenTree::Group(group)), None)
            if group.delimiter() == Delimiter::Parenthesis =>
        {
            condition(&name.to_string(), group.stream())
        }
        _ => None,
    }
}

/// `a, b(c, d), e` as `a`, `b(c, d)`, `e`; a trailing comma adds nothing.
fn split_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut parts = vec![TokenStream::new()];
    for tree in tokens {
        match &tree {
            TokenTree::Punct(punct) if punct.as_char() == ',' => parts.push(TokenStream::new()),
            _ => parts.last_mut().expect("starts with one part").extend([tree]),
        }
    }
    parts.retain(|part| !part.is_empty());
    parts
}

/// One condition for several: none, the one, or `all(..)` of them.
fn all(mut conditions: Vec<TokenStream>) -> Option<TokenStream> {
    match conditions.len() {
        0 => None,
        1 => conditions.pop(),
        _ => Some(quote!(all(#(#conditions),*))),
    }
}

#[cfg(test)]
mod tests {
    use super::Cfg;

    fn condition(method: &str) -> Option<String> {
        let method: syn::TraitItemFn = syn::parse_str(method).unwrap();
        Cfg::of(&method.attrs).0.map(|condition| condition.to_string())
    }

    #[test]
    fn cfg_and_cfg_attr_become_one_condition() {
        assert_eq!(condition("/// doc\n#[deprecated] fn f();"), None);
        assert_eq!(condition("#[cfg(unix)] fn f();").as_deref(), Some("unix"));
        assert_eq!(condition("#[cfg_attr(docsrs, doc = \"x\")] fn f();"), None);
        assert_eq!(
            condition("#[cfg(unix)] #[cfg_attr(feature = \"a\", must_use, cfg(test))] fn f();").as_deref(),
            Some("all (unix , any (not (feature = \"a\") , test))"),
        );
        assert_eq!(
            condition("#[cfg_attr(a, cfg_attr(b, cfg(c)), cfg(d),)] fn f();").as_deref(),
            Some("any (not (a) , all (any (not (b) , c) , d))"),
        );
    }
}
