//! The macro's own model of a service trait, parsed from syn's tree. Every node keeps a
//! reference to the syn node it came from, so a later error can point at it. Checks
//! that concern a single item happen here (the return type's in `result_type.rs`); rules
//! across methods live in `valid.rs`.

use proc_macro2::Ident;
use syn::ext::IdentExt;
use syn::{Attribute, FnArg, ItemTrait, Pat, Signature, TraitItem, TraitItemFn, Type, TypeParamBound, Visibility};

use crate::attr::{self, Args};
use crate::cfg::Cfg;
use crate::errors::Errors;
use crate::result_type;

/// The argument attribute that makes an event method's argument its ordering key.
pub(crate) const ORDERING_KEY: &str = "ordering_key";

pub(crate) struct Service<'a> {
    pub(crate) vis: &'a Visibility,
    pub(crate) ident: &'a Ident,
    /// The name in URLs: the trait's name unless `#[service(name = "...")]` says otherwise.
    pub(crate) name: String,
    /// The path generated code reaches `intercall` through.
    pub(crate) krate: syn::Path,
    pub(crate) docs: Vec<&'a Attribute>,
    pub(crate) methods: Vec<Method<'a>>,
}

pub(crate) struct Method<'a> {
    pub(crate) ident: &'a Ident,
    /// The name in URLs (`r#type` is `type`).
    pub(crate) name: String,
    pub(crate) args: Vec<Arg<'a>>,
    pub(crate) ok: &'a Type,
    pub(crate) err: &'a Type,
    /// `T` of a stream method, whose `ok` is `Streaming<T, E>` (`stream.rs`).
    pub(crate) item: Option<&'a Type>,
    /// Every attribute of the method, as written; they stay on the trait's method.
    pub(crate) attrs: &'a [Attribute],
    /// When the method exists (its `#[cfg]`s and `#[cfg_attr]`s), for every generated item.
    pub(crate) cfg: Cfg,
    pub(crate) original: &'a TraitItemFn,
}

pub(crate) struct Arg<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// `#[ordering_key]` on the argument (events only; `events.rs` checks its use).
    pub(crate) ordering_key: Option<&'a Attribute>,
}

impl<'a> Service<'a> {
    pub(crate) fn parse(item: &'a ItemTrait, args: Args, errors: &mut Errors) -> Self {
        check_trait_header(item, errors);
        if args.name.is_none() {
            check_default_name(&item.ident, errors);
        }
        let methods = item.items.iter().filter_map(|item| Method::parse(item, errors)).collect();
        Service {
            vis: &item.vis,
            ident: &item.ident,
            name: args.name.map_or_else(|| item.ident.unraw().to_string(), |name| name.value()),
            krate: args.krate.unwrap_or_else(|| syn::parse_quote!(::intercall)),
            docs: item.attrs.iter().filter(|attr| attr.path().is_ident("doc")).collect(),
            methods,
        }
    }
}

/// Without `name = ".."`, the trait's name is the service's URL path segment.
fn check_default_name(ident: &Ident, errors: &mut Errors) {
    let name = ident.unraw().to_string();
    if let Some(c) = attr::invalid_segment_char(&name) {
        let suggestion = attr::ascii_name(&name, "catalog");
        errors.at(
            ident,
            format!(
                "the trait name `{name}` is the service's name in URLs (`POST /{name}/{{method}}`), and `{c}` cannot appear in a URL path segment (only `[A-Za-z0-9_.-]`); keep the trait name and give the service an ASCII one: write `#[intercall::service(name = \"{suggestion}\")]`"
            ),
        );
    }
}

fn check_trait_header(item: &ItemTrait, errors: &mut Errors) {
    if let Some(unsafety) = &item.unsafety {
        errors.at(unsafety, "a service trait cannot be `unsafe`; remove `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        errors.at(auto, "a service trait cannot be an auto trait; remove `auto`");
    }
    if !item.generics.params.is_empty() {
        errors.at(
            &item.generics,
            "a service trait cannot be generic: the server and the proxy need concrete types; remove the generic parameters",
        );
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.at(
            where_clause,
            "a service trait cannot have a `where` clause: the proxy and the `dyn` support implement the trait unconditionally; remove the `where` clause (`Send + Sync` is added for you)",
        );
    }
    if let Some(colon) = &item.colon_token {
        let bounds = &item.supertraits;
        let only_send_sync = bounds.iter().all(|bound| match bound {
            TypeParamBound::Trait(t) => t.path.is_ident("Send") || t.path.is_ident("Sync"),
            _ => false,
        });
        if !only_send_sync {
            errors.at(
                quote::quote!(#colon #bounds),
                "a service trait cannot have supertraits (the proxy could not implement them); remove them. `Send + Sync` is added for you",
            );
        }
    }
}

impl<'a> Method<'a> {
    fn parse(item: &'a TraitItem, errors: &mut Errors) -> Option<Self> {
        let TraitItem::Fn(method) = item else {
            errors.at(item, "a service trait holds only `async fn` methods; move this item out of the trait");
            return None;
        };
        let sig = &method.sig;
        let mut ok = true;
        let mut reject = |tokens: &dyn quote::ToTokens, message: &str| {
            errors.at(tokens, message);
            ok = false;
        };

        if sig.asyncness.is_none() {
            reject(&sig.fn_token, "expected `async fn`: service methods are async; write `async fn`");
        }
        if let Some(constness) = &sig.constness {
            reject(constness, "a service method cannot be `const`; write `async fn`");
        }
        if let Some(unsafety) = &sig.unsafety {
            reject(unsafety, "a service method cannot be `unsafe`; remove `unsafe`");
        }
        if let Some(abi) = &sig.abi {
            reject(abi, "a service method cannot have an ABI; remove it");
        }
        if let Some(variadic) = &sig.variadic {
            reject(variadic, "a service method cannot be variadic; pass a `Vec` instead");
        }
        if !sig.generics.params.is_empty() {
            reject(
                &sig.generics,
                "a service method cannot be generic: a remote call needs concrete types; replace the type parameters with concrete types",
            );
        }
        if let Some(where_clause) = &sig.generics.where_clause {
            reject(
                where_clause,
                "a service method cannot have a `where` clause: the server and the proxy call it with concrete types, unconditionally (`where Self: Sized` is added for you); remove the `where` clause",
            );
        }
        let name = sig.ident.unraw().to_string();
        if let Some(c) = attr::invalid_segment_char(&name) {
            let suggestion = attr::ascii_name(&name, "get");
            reject(
                &sig.ident,
                &format!(
                    "the method name `{name}` is its URL path segment (`POST /{{service}}/{name}`), and `{c}` cannot appear in one (only `[A-Za-z0-9_.-]`); rename the method with ASCII letters, such as `{suggestion}`"
                ),
            );
        }
        if let Some(body) = &method.default {
            reject(
                body,
                "a service method cannot have a default body: the proxy and the implementation each define it; remove the body and end the line with `;`",
            );
        }
        check_receiver(sig, &mut reject);
        let args: Vec<_> = sig.inputs.iter().skip(1).filter_map(|arg| Arg::parse(arg, &mut reject)).collect();
        let result = result_type::parse(sig, &mut reject);
        if let Some((_, err)) = result {
            result_type::check_error_type(err, &mut reject);
        }
        let (ok_ty, err_ty) = result?;
        let item = crate::stream::item_type(ok_ty, err_ty, &mut reject).ok()?;
        ok.then_some(Method {
            ident: &sig.ident,
            name,
            args,
            ok: ok_ty,
            err: err_ty,
            item,
            attrs: &method.attrs,
            cfg: Cfg::of(&method.attrs),
            original: method,
        })
    }
}

fn check_receiver(sig: &Signature, reject: &mut impl FnMut(&dyn quote::ToTokens, &str)) {
    const SHARED: &str = "calls run concurrently on one shared implementation; write `&self` and keep mutable state behind a `Mutex` or atomics";
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            if receiver.colon_token.is_some() {
                reject(receiver, &format!("a service method takes plain `&self`, not a typed receiver: {SHARED}"));
            } else if receiver.reference.is_none() {
                reject(receiver, &format!("a service method takes `&self`, not `self`: {SHARED}"));
            } else if receiver.mutability.is_some() {
                reject(receiver, &format!("a service method takes `&self`, not `&mut self`: {SHARED}"));
            } else if let Some((_, Some(lifetime))) = &receiver.reference {
                reject(lifetime, "a service method takes plain `&self`; remove the lifetime");
            }
        }
        _ => {
            let at = sig.paren_token.span.join();
            reject(
                &quote::quote_spanned!(at=> ()),
                "a service method needs `&self` as its first argument: it runs on the implementation; write `(&self, ...)`",
            );
        }
    }
}

impl<'a> Arg<'a> {
    fn parse(arg: &'a FnArg, reject: &mut impl FnMut(&dyn quote::ToTokens, &str)) -> Option<Self> {
        let FnArg::Typed(typed) = arg else {
            reject(arg, "`self` can only be the first argument");
            return None;
        };
        let ident = match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.mutability.is_none() && pat.subpat.is_none() => &pat.ident,
            pat => {
                reject(pat, "an argument must be a plain name (it is the argument's JSON field); write `name: Type`");
                return None;
            }
        };
        match &*typed.ty {
            Type::Reference(reference) => {
                reject(
                    reference,
                    "arguments cross the wire by value; write an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
                );
                None
            }
            Type::ImplTrait(impl_trait) => {
                reject(impl_trait, "a service method cannot take `impl Trait`: a remote call needs a concrete type");
                None
            }
            ty => {
                let mut keys = typed.attrs.iter().filter(|attr| attr.path().is_ident(ORDERING_KEY));
                let ordering_key = keys.next();
                if let Some(attr) = ordering_key
                    && !matches!(attr.meta, syn::Meta::Path(_))
                {
                    reject(attr, "`#[ordering_key]` takes no arguments: write `#[ordering_key] name: Type`");
                }
                if let Some(again) = keys.next() {
                    reject(again, "`#[ordering_key]` is written once; remove this one");
                }
                Some(Arg { ident, ty, ordering_key })
            }
        }
    }
}
