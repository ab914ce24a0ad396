//! Tests and fuzzing only: a value that makes every call of serde's data model, so the
//! differential tests and the fuzz target can compare [`super::to_writer`] with
//! `serde_json::to_writer` on any shape, the odd ones included (map keys of every kind,
//! length hints that lie, `collect_str` in pieces, serde_json's `RawValue` and its
//! private structs spelled by hand).

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple};
use serde::ser::{SerializeTupleStruct, SerializeTupleVariant};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Field and variant names: `&'static str`s, some of them needing escapes.
pub(crate) const NAMES: [&str; 8] = ["a", "field", "with \"quote\"", "tab\tand\\", "\u{0}\u{1f}", "ünïcödé", "😀", ""];

/// One call of serde's data model (`Serializer`'s methods), with what it carries.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    I128(i128),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    U128(u128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Node>),
    Unit,
    UnitStruct,
    UnitVariant(usize),
    NewtypeStruct(Box<Node>),
    NewtypeVariant(usize, Box<Node>),
    /// A sequence with the length hint given (which may be wrong, or absent).
    Seq(Option<usize>, Vec<Node>),
    Tuple(Vec<Node>),
    TupleStruct(Vec<Node>),
    TupleVariant(usize, Vec<Node>),
    /// A map with the length hint given, and keys of any kind.
    Map(Option<usize>, Vec<(Node, Node)>),
    /// A struct whose fields are named from [`NAMES`] by index.
    Struct(Vec<(usize, Node)>),
    StructVariant(usize, Vec<(usize, Node)>),
    /// `collect_str` of a `Display` that writes these pieces one at a time.
    Display(Vec<String>),
    /// serde_json's `RawValue`.
    Raw(Box<RawValue>),
    /// One of serde_json's private structs spelled by hand: `serialize_struct` with the
    /// `Number` token (`number`) or the `RawValue` one, then one field named as the token
    /// (`field` `None`) or from [`NAMES`], holding `text` through `serialize_str` or
    /// `collect_str`.
    Token {
        number: bool,
        field: Option<usize>,
        text: String,
        via_collect_str: bool,
    },
}

fn name(index: usize) -> &'static str {
    NAMES[index % NAMES.len()]
}

/// A `Display` that writes its pieces in as many `write_str` calls.
struct Pieces<'a>(&'a [String]);

impl fmt::Display for Pieces<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|piece| f.write_str(piece))
    }
}

/// A string through `serialize_str`, or through `collect_str` when `via_collect_str`.
struct Text<'a> {
    text: &'a str,
    via_collect_str: bool,
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.via_collect_str { s.collect_str(self.text) } else { s.serialize_str(self.text) }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Bool(v) => s.serialize_bool(*v),
            Node::I8(v) => s.serialize_i8(*v),
            Node::I16(v) => s.serialize_i16(*v),
            Node::I32(v) => s.serialize_i32(*v),
            Node::I64(v) => s.serialize_i64(*v),
            Node::I128(v) => s.serialize_i128(*v),
            Node::U8(v) => s.serialize_u8(*v),
            Node::U16(v) => s.serialize_u16(*v),
            Node::U32(v) => s.serialize_u32(*v),
            Node::U64(v) => s.serialize_u64(*v),
            Node::U128(v) => s.serialize_u128(*v),
            Node::F32(v) => s.serialize_f32(*v),
            Node::F64(v) => s.serialize_f64(*v),
            Node::Char(v) => s.serialize_char(*v),
            Node::Str(v) => s.serialize_str(v),
            Node::Bytes(v) => s.serialize_bytes(v),
            Node::None => s.serialize_none(),
            Node::Some(v) => s.serialize_some(v),
            Node::Unit => s.serialize_unit(),
            Node::UnitStruct => s.serialize_unit_struct("UnitStruct"),
            Node::UnitVariant(i) => s.serialize_unit_variant("Enum", *i as u32, name(*i)),
            Node::NewtypeStruct(v) => s.serialize_newtype_struct("Newtype", v),
            Node::NewtypeVariant(i, v) => s.serialize_newtype_variant("Enum", *i as u32, name(*i), v),
            Node::Seq(hint, items) => {
                let mut seq = s.serialize_seq(*hint)?;
                items.iter().try_for_each(|item| seq.serialize_element(item))?;
                seq.end()
            }
            Node::Tuple(items) => {
                let mut tuple = s.serialize_tuple(items.len())?;
                items.iter().try_for_each(|item| tuple.serialize_element(item))?;
                tuple.end()
            }
            Node::TupleStruct(items) => {
                let mut tuple = s.serialize_tuple_struct("TupleStruct", items.len())?;
                items.iter().try_for_each(|item| tuple.serialize_field(item))?;
                tuple.end()
            }
            Node::TupleVariant(i, items) => {
                let mut tuple = s.serialize_tuple_variant("Enum", *i as u32, name(*i), items.len())?;
                items.iter().try_for_each(|item| tuple.serialize_field(item))?;
                tuple.end()
            }
            Node::Map(hint, entries) => {
                let mut map = s.serialize_map(*hint)?;
                entries.iter().try_for_each(|(key, value)| map.serialize_entry(key, value))?;
                map.end()
            }
            Node::Struct(fields) => {
                let mut object = s.serialize_struct("Struct", fields.len())?;
                fields.iter().try_for_each(|(i, value)| object.serialize_field(name(*i), value))?;
                object.end()
            }
            Node::StructVariant(i, fields) => {
                let mut object = s.serialize_struct_variant("Enum", *i as u32, name(*i), fields.len())?;
                fields.iter().try_for_each(|(i, value)| object.serialize_field(name(*i), value))?;
                object.end()
            }
            Node::Display(pieces) => s.collect_str(&Pieces(pieces)),
            Node::Raw(raw) => raw.serialize(s),
            Node::Token { number, field, text, via_collect_str } => {
                let token = if *number { super::NUMBER_TOKEN } else { super::RAW_VALUE_TOKEN };
                let mut object = s.serialize_struct(token, 1)?;
                object.serialize_field(field.map_or(token, name), &Text { text, via_collect_str: *via_collect_str })?;
                object.end()
            }
        }
    }
}

/// Compares intercall's encoder with serde_json's on `value`: the same bytes, or the same
/// error (words, `classify()`, line and column) and the same bytes written before it. Panics with both outputs otherwise.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // The words, the category (`is_syntax()`, `is_data()`) and the position.
    let error = |e: serde_json::Error| (e.to_string(), e.classify(), e.line(), e.column());
    let our_result = super::to_writer(&mut ours, value).map_err(error);
    let their_result = serde_json::to_writer(&mut theirs, value).map_err(error);
    assert!(
        our_result == their_result && ours == theirs,
        "json_writer: {our_result:?} {:?}\nserde_json:  {their_result:?} {:?}",
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs),
    );
    if our_result.is_ok() {
        let text = super::to_string(value).expect("encodes once, encodes twice");
        assert_eq!(text.as_bytes(), theirs, "to_string");
    }
}

/// Reads a [`Node`] from fuzzer bytes: a byte picks the kind, the next bytes give its
/// value, its length or its children (at most `depth` levels deep). Running out of
/// bytes reads as zeros, so every input makes a value.
pub(crate) fn node_from_bytes(data: &mut &[u8], depth: u32) -> Node {
    fn byte(data: &mut &[u8]) -> u8 {
        let (&first, rest) = data.split_first().unwrap_or((&0, &[]));
        *data = rest;
        first
    }
    fn bytes<const N: usize>(data: &mut &[u8]) -> [u8; N] {
        std::array::from_fn(|_| byte(data))
    }
    fn text(data: &mut &[u8]) -> String {
        // Up to 255 bytes; the fuzz target encodes its whole input as one string too.
        let len = usize::from(byte(data)).min(data.len());
        let (head, rest) = data.split_at(len);
        *data = rest;
        String::from_utf8_lossy(head).into_owned()
    }
    fn count(data: &mut &[u8]) -> usize {
        usize::from(byte(data) % 6)
    }
    let depth = depth.saturating_sub(1);
    let kind = byte(data);
    let leaf_only = depth == 0;
    match kind % 35 {
        0 => Node::Bool(byte(data) & 1 == 1),
        1 => Node::I8(i8::from_le_bytes(bytes(data))),
        2 => Node::I16(i16::from_le_bytes(bytes(data))),
        3 => Node::I32(i32::from_le_bytes(bytes(data))),
        4 => Node::I64(i64::from_le_bytes(bytes(data))),
        5 => Node::I128(i128::from_le_bytes(bytes(data))),
        6 => Node::U8(byte(data)),
        7 => Node::U16(u16::from_le_bytes(bytes(data))),
        8 => Node::U32(u32::from_le_bytes(bytes(data))),
        9 => Node::U64(u64::from_le_bytes(bytes(data))),
        10 => Node::U128(u128::from_le_bytes(bytes(data))),
        11 => Node::F32(f32::from_le_bytes(bytes(data))),
        12 => Node::F64(f64::from_le_bytes(bytes(data))),
        13 => Node::Char(char::from_u32(u32::from_le_bytes(bytes(data)) % 0x11_0000).unwrap_or('\u{fffd}')),
        14 | 15 => Node::Str(text(data)),
        16 => Node::Bytes(text(data).into_bytes()),
        17 => Node::None,
        18 => Node::Unit,
        19 => Node::UnitStruct,
        20 => Node::UnitVariant(usize::from(byte(data))),
        21 => Node::Display((0..count(data)).map(|_| text(data)).collect()),
        22 => {
            let json = text(data);
            RawValue::from_string(json.clone()).map_or(Node::Str(json), Node::Raw)
        }
        34 => {
            // Bit 0: the Number token (else RawValue's); bit 1: through collect_str;
            // bit 2: the field named from NAMES by the next byte (else the token).
            let how = byte(data);
            let field = (how & 4 != 0).then(|| usize::from(byte(data)));
            Node::Token { number: how & 1 != 0, field, text: text(data), via_collect_str: how & 2 != 0 }
        }
        _ if leaf_only => Node::Str(text(data)),
        23 => Node::Some(Box::new(node_from_bytes(data, depth))),
        24 => Node::NewtypeStruct(Box::new(node_from_bytes(data, depth))),
        25 => Node::NewtypeVariant(usize::from(byte(data)), Box::new(node_from_bytes(data, depth))),
        26 | 27 => {
            let hint = byte(data);
            let items = (0..count(data)).map(|_| node_from_bytes(data, depth)).collect();
            Node::Seq((hint < 200).then_some(usize::from(hint % 4)), items)
        }
        28 => Node::Tuple((0..count(data)).map(|_| node_from_bytes(data, depth)).collect()),
        29 => Node::TupleStruct((0..count(data)).map(|_| node_from_bytes(data, depth)).collect()),
        30 => {
            let variant = usize::from(byte(data));
            Node::TupleVariant(variant, (0..count(data)).map(|_| node_from_bytes(data, depth)).collect())
        }
        31 => {
            let hint = byte(data);
            let entries =
                (0..count(data)).map(|_| (node_from_bytes(data, depth), node_from_bytes(data, depth))).collect();
            Node::Map((hint < 200).then_some(usize::from(hint % 4)), entries)
        }
        32 => Node::Struct((0..count(data)).map(|_| (usize::from(byte(data)), node_from_bytes(data, depth))).collect()),
        _ => {
            let variant = usize::from(byte(data));
            let fields = (0..count(data)).map(|_| (usize::from(byte(data)), node_from_bytes(data, depth))).collect();
            Node::StructVariant(variant, fields)
        }
    }
}
