//! A method's return type, `Result<T, E>`: reading `T` and `E`, and rejecting what the
//! macro cannot use, spanned at the type: an alias of `Result` (a proc macro sees only
//! tokens, so it cannot resolve one to find `E`) and an error type from another crate
//! (the orphan rule forbids its `impl From<CallError>`).

use syn::{GenericArgument, PathArguments, ReturnType, Signature, Type};

use crate::errors::shown;

/// `T` and `E` of a return type written `Result<T, E>` (with any path to `Result`), or
/// an error that says what to write instead.
pub(crate) fn parse<'a>(
    sig: &'a Signature,
    reject: &mut impl FnMut(&dyn quote::ToTokens, &str),
) -> Option<(&'a Type, &'a Type)> {
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
    if let Some(message) = crate::stream::misdeclared(&sig.output) {
        reject(ty, &message);
        return None;
    }
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
    } else if NOT_ALIASES.iter().chain(PRIMITIVES).any(|name| last.ident == name) {
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

/// Return types that are surely not an alias of `Result`, beside the primitives.
const NOT_ALIASES: &[&str] = &[
    "Option", "Vec", "VecDeque", "Box", "Arc", "Rc", "Cow", "String", "HashMap", "BTreeMap", "HashSet", "BTreeSet",
    "Pin", "Self",
];

const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
    "f32", "f64",
];

/// An error type from another crate (`String`, `Box<dyn Error>`, `anyhow::Error`) cannot
/// implement `From<CallError>`: the orphan rule forbids the impl, so the hint rustc would
/// give (`impl From<CallError> for String`) cannot be followed. The common ones are named
/// here; any other still meets `ServiceError`'s note.
pub(crate) fn check_error_type(err: &Type, reject: &mut impl FnMut(&dyn quote::ToTokens, &str)) {
    if is_foreign(err) {
        let name = shown(err);
        reject(
            err,
            &format!(
                "`{name}` cannot be an intercall error type: it is not a type of your crate, so the orphan rule forbids the `impl From<intercall::CallError> for {name}` that a transport failure needs; define your own error enum with a variant holding the `CallError` (`enum MyError {{ .., Unavailable(intercall::CallError) }}`) and `impl From<intercall::CallError> for MyError`"
            ),
        );
    }
}

fn is_foreign(ty: &Type) -> bool {
    const STD: &[&str] = &["std", "core", "alloc"];
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
