//! The fast path checked against serde_json on one text, for the property tests and the
//! `item_json` fuzz target: decoded as each of a set of item types that between them
//! reach every `deserialize_*` hint, the fast path either gives up or gives the value
//! serde_json gives (compared by `Debug`, which tells `-0.0` from `0.0` and prints
//! every `f64` exactly); it never accepts what serde_json refuses.

// The probe types are compared through `Debug`, which the dead-code lint does not count.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// The benchmark's item, and the shape most items have.
#[derive(Debug, Deserialize)]
pub(crate) struct Echo {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) score: f64,
    pub(crate) active: bool,
}

/// Every field optional, each a different hint.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Loose {
    small: Option<i8>,
    unsigned: Option<u16>,
    signed: Option<i64>,
    wide: Option<u64>,
    float: Option<f64>,
    single: Option<f32>,
    huge: Option<i128>,
    letter: Option<char>,
    text: Option<String>,
    flag: Option<bool>,
    unit: Option<()>,
    nothing: Option<Option<u8>>,
    list: Option<Vec<Loose>>,
    pair: Option<(u8, String)>,
    map: Option<BTreeMap<String, i32>>,
    numbered: Option<BTreeMap<u32, bool>>,
    kind: Option<Kind>,
    either: Option<Either>,
    tagged: Option<Tagged>,
    raw: Option<Box<RawValue>>,
    any: Option<Value>,
    bytes: Option<Vec<u8>>,
    wrapped: Option<Wrapped>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    a: u8,
    #[serde(default)]
    b: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Wrapped(u32);

#[derive(Debug, Deserialize)]
pub(crate) enum Kind {
    Unit,
    Newtype(u32),
    Tuple(u8, bool),
    Struct { a: bool },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Either {
    Number(f64),
    Text(String),
    List(Vec<Either>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    A { x: u32 },
    B,
}

/// A lenient field: an error decoding it is swallowed and the default taken, so the
/// decode goes on from wherever the deserializer stopped (serde_json's place, unless the
/// fast path keeps any give-up final).
fn ok_or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(T::deserialize(d).unwrap_or_default())
}

/// An item type that recovers from an error in its first field.
#[derive(Debug, Deserialize)]
pub(crate) struct Lenient {
    #[serde(deserialize_with = "ok_or_default")]
    x: f64,
    y: u8,
}

/// The same with any value.
#[derive(Debug, Deserialize)]
pub(crate) struct LenientValue {
    #[serde(deserialize_with = "ok_or_default")]
    x: Value,
    y: u8,
}

/// An array element that recovers from an error.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct LenientElem(#[serde(deserialize_with = "ok_or_default")] f64);

/// An enum whose variant name is read with `deserialize_unit` by a visitor that also
/// takes strings: serde_json reads a name written as a string (`"A"`) with its main
/// deserializer, which refuses a string for `unit`; as a map key (`{"A":null}`) it hands
/// the string to the visitor.
#[derive(Debug)]
pub(crate) struct OddEnum(String);

impl<'de> Deserialize<'de> for OddEnum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name(String);
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variant name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(Name(name.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Name, E> {
                Ok(Name("()".to_owned()))
            }
        }
        impl<'de> Deserialize<'de> for Name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_unit(NameVisitor)
            }
        }
        struct EnumVisitor;
        impl<'de> Visitor<'de> for EnumVisitor {
            type Value = OddEnum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum")
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, access: A) -> Result<OddEnum, A::Error> {
                let (Name(name), variant) = access.variant::<Name>()?;
                de::VariantAccess::unit_variant(variant)?;
                Ok(OddEnum(name))
            }
        }
        deserializer.deserialize_enum("OddEnum", &["A"], EnumVisitor)
    }
}

/// Whether the fast path decoded `text` as `T`, after checking it against serde_json.
fn agrees<T: DeserializeOwned + Debug>(text: &str) -> bool {
    let Some(fast) = super::from_str::<T>(text) else { return false };
    match serde_json::from_str::<T>(text) {
        Ok(slow) => assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text:?} as {}", std::any::type_name::<T>()),
        Err(e) => {
            panic!("the fast path accepted what serde_json refuses ({e}): {text:?} as {}", std::any::type_name::<T>())
        }
    }
    true
}

/// Checks `text` as every probe type; whether the fast path decoded it as a `Value`.
pub(crate) fn check(text: &str) -> bool {
    agrees::<Echo>(text);
    agrees::<Loose>(text);
    agrees::<Vec<Loose>>(text);
    agrees::<Strict>(text);
    agrees::<Lenient>(text);
    agrees::<LenientValue>(text);
    agrees::<Vec<LenientElem>>(text);
    agrees::<Flattened>(text);
    agrees::<Kind>(text);
    agrees::<Vec<Kind>>(text);
    agrees::<OddEnum>(text);
    agrees::<Either>(text);
    agrees::<Tagged>(text);
    agrees::<Option<f64>>(text);
    agrees::<Option<()>>(text);
    agrees::<Option<Value>>(text);
    agrees::<Option<Option<u8>>>(text);
    agrees::<(u64, i64, f64)>(text);
    agrees::<BTreeMap<String, Vec<u8>>>(text);
    agrees::<BTreeMap<u32, bool>>(text);
    agrees::<BTreeMap<i32, bool>>(text);
    agrees::<String>(text);
    agrees::<Box<RawValue>>(text);
    agrees::<()>(text);
    agrees::<Value>(text)
}
