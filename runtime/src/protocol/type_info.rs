//! The type name and enum variant of a service error, read from its own `Serialize`
//! impl: serde passes both to the serializer (`serialize_struct_variant("CatalogError",
//! 1, "NotFound", ..)`), so a serializer that stops at the first call learns them
//! exactly, whatever renames the type uses, without any trait the user must implement.

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

/// What serde says a value's type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TypeInfo {
    /// The container name (after `#[serde(rename)]`); `None` for a primitive, a
    /// sequence or a map.
    pub(crate) name: Option<&'static str>,
    /// The variant name, for an enum.
    pub(crate) variant: Option<&'static str>,
}

/// Reads `value`'s type name and variant without serializing anything else.
pub(crate) fn type_info<T: Serialize + ?Sized>(value: &T) -> TypeInfo {
    match value.serialize(Probe) {
        Ok(info) | Err(Found(info)) => info,
    }
}

struct Probe;

/// The probe's "error": carries the answer out of the first serializer call, which is
/// the quickest way to stop serde from serializing the fields.
#[derive(Debug)]
struct Found(TypeInfo);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Found(TypeInfo::default())
    }
}

fn named(name: &'static str) -> Found {
    Found(TypeInfo { name: Some(name), variant: None })
}

fn variant(name: &'static str, variant: &'static str) -> Found {
    Found(TypeInfo { name: Some(name), variant: Some(variant) })
}

/// The serializer methods of values that have no name.
macro_rules! anonymous {
    ($($method:ident($($ty:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $(_: $ty),*) -> Result<$ret, Found> {
            Err(Found(TypeInfo::default()))
        }
    )*};
}

impl ser::Serializer for Probe {
    type Ok = TypeInfo;
    type Error = Found;
    type SerializeSeq = Impossible<TypeInfo, Found>;
    type SerializeTuple = Impossible<TypeInfo, Found>;
    type SerializeTupleStruct = Impossible<TypeInfo, Found>;
    type SerializeTupleVariant = Impossible<TypeInfo, Found>;
    type SerializeMap = Impossible<TypeInfo, Found>;
    type SerializeStruct = Impossible<TypeInfo, Found>;
    type SerializeStructVariant = Impossible<TypeInfo, Found>;

    anonymous! {
        serialize_bool(bool) -> TypeInfo;
        serialize_i8(i8) -> TypeInfo;
        serialize_i16(i16) -> TypeInfo;
        serialize_i32(i32) -> TypeInfo;
        serialize_i64(i64) -> TypeInfo;
        serialize_i128(i128) -> TypeInfo;
        serialize_u8(u8) -> TypeInfo;
        serialize_u16(u16) -> TypeInfo;
        serialize_u32(u32) -> TypeInfo;
        serialize_u64(u64) -> TypeInfo;
        serialize_u128(u128) -> TypeInfo;
        serialize_f32(f32) -> TypeInfo;
        serialize_f64(f64) -> TypeInfo;
        serialize_char(char) -> TypeInfo;
        serialize_str(&str) -> TypeInfo;
        serialize_bytes(&[u8]) -> TypeInfo;
        serialize_none() -> TypeInfo;
        serialize_unit() -> TypeInfo;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_map(Option<usize>) -> Self::SerializeMap;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<TypeInfo, Found> {
        value.serialize(self)
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<TypeInfo, Found> {
        Err(named(name))
    }

    fn serialize_unit_variant(self, name: &'static str, _: u32, var: &'static str) -> Result<TypeInfo, Found> {
        Err(variant(name, var))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, _: &T) -> Result<TypeInfo, Found> {
        Err(named(name))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        var: &'static str,
        _: &T,
    ) -> Result<TypeInfo, Found> {
        Err(variant(name, var))
    }

    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Found> {
        Err(named(name))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        var: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Found> {
        Err(variant(name, var))
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeStruct, Found> {
        Err(named(name))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        var: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Found> {
        Err(variant(name, var))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    #[allow(dead_code)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, u8),
        Struct { id: String },
    }

    #[derive(serde::Serialize)]
    #[serde(rename = "Renamed")]
    struct Plain {
        reason: String,
    }

    #[test]
    fn reads_every_variant_form() {
        let info = |v: &Shape| type_info(v).variant;
        assert_eq!(info(&Shape::Unit), Some("Unit"));
        assert_eq!(info(&Shape::Newtype(1)), Some("Newtype"));
        assert_eq!(info(&Shape::Tuple(1, 2)), Some("Tuple"));
        assert_eq!(info(&Shape::Struct { id: "x".into() }), Some("Struct"));
        assert_eq!(type_info(&Shape::Unit).name, Some("Shape"));
    }

    #[test]
    fn reads_renamed_structs_and_nothing_from_primitives() {
        let info = type_info(&Plain { reason: "r".into() });
        assert_eq!(info, TypeInfo { name: Some("Renamed"), variant: None });
        assert_eq!(type_info("a string"), TypeInfo::default());
        assert_eq!(type_info(&Some(Shape::Unit)).variant, Some("Unit"));
    }
}
