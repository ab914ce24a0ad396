//! Stream methods: `async fn watch(&self, ..) -> Result<Streaming<T, E>, E>`.
//!
//! Why this declaration: it reads as what happens. The method is an `async fn` like
//! every other, so an error before the first item (a bad argument, a missing job) is
//! the method's own typed error, and the caller's `?` handles it as for a unary call;
//! the `Ok` value is the stream of items, each a `Result<T, E>` with the same `E`. One
//! runtime type on both sides keeps the trait the same for the implementation and the
//! proxy. A bare `impl Stream` return type could do neither: a trait method cannot
//! return it for `dyn`, and an error before the first item would become an item.
//!
//! The macro recognises the stream by the name `Streaming` in the `Ok` type, as it
//! recognises `Result`: it sees tokens, not types.

use syn::{GenericArgument, PathArguments, ReturnType, Type};

use crate::errors::shown;

/// The item type `T` of a method whose `Ok` type is `Streaming<T, E>`; `Ok(None)` for
/// a unary method. `Err(())` when the stream type is written wrong (reported).
pub(crate) fn item_type<'a>(
    ok: &'a Type,
    err: &Type,
    reject: &mut impl FnMut(&dyn quote::ToTokens, &str),
) -> Result<Option<&'a Type>, ()> {
    let Some(arguments) = streaming_arguments(ok) else { return Ok(None) };
    let err_text = shown(err);
    match arguments.as_slice() {
        [item, item_err] if shown(item_err) == err_text => Ok(Some(item)),
        [item, item_err] => {
            reject(
                item_err,
                &format!(
                    "a stream's items carry the method's error type: write `Streaming<{}, {err_text}>`; an error before the first item is the method's `Err`, one mid-stream an `Err` item, both `{err_text}`",
                    shown(item)
                ),
            );
            Err(())
        }
        [item] => {
            reject(
                ok,
                &format!(
                    "a stream's items are `Result<T, E>`: write `Streaming<{}, {err_text}>`, with the method's error type",
                    shown(item)
                ),
            );
            Err(())
        }
        _ => {
            reject(ok, &format!("write `Streaming<Item, {err_text}>`: the item type, then the method's error type"));
            Err(())
        }
    }
}

/// The generic arguments of a type named `Streaming` (any path), or `None` for any
/// other type.
fn streaming_arguments(ty: &Type) -> Option<Vec<&Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Streaming" || path.qself.is_some() {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else { return Some(Vec::new()) };
    Some(
        generics
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
    )
}

/// What to write instead of a return type that looks like a stream without the
/// `Result` around it: `Streaming<T, E>` or `impl Stream<..>`.
pub(crate) fn misdeclared(output: &ReturnType) -> Option<String> {
    let ReturnType::Type(_, ty) = output else { return None };
    if let Some(arguments) = streaming_arguments(ty) {
        let written = match arguments.as_slice() {
            [item, err] => format!("Result<Streaming<{}, {}>, {}>", shown(item), shown(err), shown(err)),
            _ => "Result<Streaming<T, E>, E>".to_owned(),
        };
        return Some(format!(
            "a stream method is still an `async fn` that can fail before its first item: write `{written}`"
        ));
    }
    if let Type::ImplTrait(_) = &**ty {
        return Some(
            "a service method cannot return `impl Trait`; to answer with many items, return `Result<intercall::Streaming<T, E>, E>` and wrap the stream with `Streaming::new(..)`".to_owned(),
        );
    }
    None
}
