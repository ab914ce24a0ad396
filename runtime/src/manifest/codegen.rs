//! What `XServer::manifest()` is built from: generated code calls these through
//! `intercall::__private::manifest`. With the `schema` feature a type's schema comes
//! from `schemars` and every wire type must implement `JsonSchema`; without it nothing
//! of schemars is compiled and types carry their Rust names only.

use super::{ArgumentManifest, MethodManifest, ServiceManifest, TypeManifest};

pub fn service(name: &str, docs: &str, methods: Vec<MethodManifest>) -> ServiceManifest {
    ServiceManifest { name: name.to_owned(), docs: docs.to_owned(), methods }
}

pub fn method(
    name: &str,
    docs: &str,
    deprecated: bool,
    arguments: Vec<ArgumentManifest>,
    result: TypeManifest,
    error: TypeManifest,
) -> MethodManifest {
    MethodManifest { name: name.to_owned(), docs: docs.to_owned(), deprecated, arguments, result, error, stream: false }
}

/// A stream method's entry: `method`'s, with `result` its items' type.
pub fn streamed(method: MethodManifest) -> MethodManifest {
    MethodManifest { stream: true, ..method }
}

pub fn argument(name: &str, required: bool, ty: TypeManifest) -> ArgumentManifest {
    ArgumentManifest { name: name.to_owned(), required, ty }
}

/// A type's entry: its Rust name and, with the `schema` feature, its JSON Schema.
#[cfg(feature = "schema")]
pub fn ty<T: SchemaType + ?Sized>(rust_type: &str) -> TypeManifest {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    TypeManifest { rust_type: rust_type.to_owned(), schema: Some(schema.to_value()) }
}

/// A type's entry: its Rust name (build with the `schema` feature for its JSON Schema).
#[cfg(not(feature = "schema"))]
pub fn ty<T: ?Sized>(rust_type: &str) -> TypeManifest {
    TypeManifest { rust_type: rust_type.to_owned(), schema: None }
}

/// A type with a JSON Schema: blanket-implemented for every `schemars::JsonSchema`.
#[cfg(feature = "schema")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema, and intercall's `schema` feature needs one for every argument, result and error type",
    label = "this type needs `#[derive(schemars::JsonSchema)]`",
    note = "add `schemars` (version 1) to the API crate's dependencies and derive `schemars::JsonSchema` beside `Serialize` and `Deserialize`; for a type from another crate, enable that crate's schemars support or wrap it in a type of your own"
)]
pub trait SchemaType: schemars::JsonSchema {}

#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema + ?Sized> SchemaType for T {}
