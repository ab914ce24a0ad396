//! The macro's own model of a service trait, parsed from syn's tree. Every node keeps a
//! reference to the syn node it came from, so a later error can point at it. Checks
//! that concern a single item happen here; rules across methods live in `valid.rs`.

use proc_macro2::Ident;
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, Signature, TraitItem, TraitItemFn,
    Type, TypeParamBound, Visibility,
};

use crate::attr::{self, Args};
use crate::cfg::Cfg;
use crate::errors::{Errors, shown};

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
    /// Every attribute of the method, as written; they stay on the trait's method.
    pub(crate) attrs: &'a [Attribute],
    /// When the method exists (its `#[cfg]`s and `#[cfg_attr]`s), for every generated item.
    pub(crate) cfg: Cfg,
    pub(crate) original: &'a TraitItemFn,
}

pub(crate) struct Arg<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
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
        let result = return_types(sig, &mut reject);
        if let Some((_, err)) = result {
            check_error_type(err, &mut reject);
        }
        let (ok_ty, err_ty) = result?;
        ok.then_some(Method {
            ident: &sig.ident,
            name,
            args,
            ok: ok_ty,
            err: err_ty,
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
            ty => Some(Arg { ident, ty }),
        }
    }
}

/// `T` and `E` of a return type written `Result<T, E>` (with any path to `Result`), or
/// an error that says what to write instead.
fn return_types<'a>(sig: &'a Signature, reject: &mut impl FnMut(&dyn quote::ToTokens, &str)) -> Option<(&'a Type, &'a Type)> {
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => {
            reject(
                &sig.ident,
                "a service method needs a return type: add `-> Result<T, E>`, where `E: From<intercall::CallError>`",
            );
            return None;
        }
    };
    let path = match ty {
        Type::Path(path) if path.qself.is_none() => path,
        _ => {
            reject(ty, ANY_OTHER_RETURN);
            return None;
        }
    };
    let last = path.path.segments.last()?;
    let types: Vec<&Type> = match &last.arguments {
        PathArguments::AngleBracketed(generics) => generics
            .args
            .iter()
            .map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect::<Option<_>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    // What to write instead of an alias: its own arguments where they say `T` and `E`.
    let written_out = match types.as_slice() {
        [ok] => format!("Result<{}, YourError>", shown(ok)),
        [ok, err] => format!("Result<{}, {}>", shown(ok), shown(err)),
        _ => "Result<T, E>".to_owned(),
    };
    let alias = shown(ty);
    if last.ident == "Result" {
        if let [ok, err] = types.as_slice() {
            return Some((ok, err));
        }
        // `io::Result<T>`, `anyhow::Result<T>`: the path names an alias.
        reject(
            ty,
            &format!(
                "write `{written_out}` out: `{alias}` is an alias, and the macro cannot see through it to the error type, which must implement `From<intercall::CallError>`"
            ),
        );
    } else if NOT_ALIASES.iter().any(|name| last.ident == name) {
        reject(ty, ANY_OTHER_RETURN);
    } else {
        // A proc macro sees only the tokens: `Res<Product>` may be an alias of `Result`,
        // which it cannot resolve.
        reject(
            ty,
            &format!(
                "write `{written_out}` out: a service method returns `Result<T, E>` by that name, and if `{alias}` is an alias of it, the macro cannot see through the alias to the error type, which must implement `From<intercall::CallError>`"
            ),
        );
    }
    None
}

const ANY_OTHER_RETURN: &str =
    "a service method returns `Result<T, E>`, where `E: From<intercall::CallError>`: a remote call can fail";

/// Return types that are surely not an alias of `Result`.
const NOT_ALIASES: &[&str] = &[
    "Option", "Vec", "VecDeque", "Box", "Arc", "Rc", "Cow", "String", "HashMap", "BTreeMap", "HashSet", "BTreeSet",
    "Pin", "Self", "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// An error type from another crate (`String`, `Box<dyn Error>`, `anyhow::Error`) cannot
/// implement `From<CallError>`: the orphan rule forbids the impl, so the hint rustc would
/// give (`impl From<CallError> for String`) cannot be followed. The common ones are named
/// here; any other still meets `ServiceError`'s note.
fn check_error_type(err: &Type, reject: &mut impl FnMut(&dyn quote::ToTokens, &str)) {
    if is_foreign(err) {
        let name = shown(err);
        reject(
            err,
            &format!(
                "`{name}` cannot be an intercall error type: it comes from another crate, so the orphan rule forbids the `impl From<intercall::CallError> for {name}` that a transport failure needs; define your own error enum with a variant holding the `CallError` (`enum MyError {{ .., Unavailable(intercall::CallError) }}`) and `impl From<intercall::CallError> for MyError`"
            ),
        );
    }
}

fn is_foreign(ty: &Type) -> bool {
    const STD: &[&str] = &["std", "core", "alloc"];
    const PRIMITIVES: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128",
        "isize", "f32", "f64",
    ];
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            let names: Vec<String> = path.path.segments.iter().map(|segment| segment.ident.to_string()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            match names.as_slice() {
                [one] => PRIMITIVES.contains(one) || ["String", "Box", "Vec", "Option"].contains(one),
                [first, .., last] if STD.contains(first) => {
                    ["String", "Box", "Vec", "Option", "Error"].contains(last) || PRIMITIVES.contains(last)
                }
                ["io", "Error"] | ["anyhow", "Error"] | ["eyre", "Report"] | ["color_eyre", "Report"] => true,
                _ => false,
            }
        }
        Type::Reference(_) | Type::TraitObject(_) | Type::Tuple(_) | Type::Slice(_) | Type::Array(_) => true,
        Type::Paren(inner) => is_foreign(&inner.elem),
        _ => false,
    }
}
