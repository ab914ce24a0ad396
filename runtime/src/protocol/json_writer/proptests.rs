//! Differential tests: intercall's encoder against `serde_json::to_writer`, byte for byte
//! and error for error, on strings with every escape at every offset, on arbitrary
//! `serde_json::Value` trees, and on values that make every call of serde's data model
//! ([`Node`]).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::{Node, check};

/// Every character class the escaper tells apart: the 32 control bytes, `"`, `\`, DEL,
/// printable ASCII, and 2-, 3- and 4-byte UTF-8.
fn special_chars() -> Vec<char> {
    let mut chars: Vec<char> = (0u8..0x20).map(char::from).collect();
    chars.extend([
        '"',
        '\\',
        '\u{7f}',
        ' ',
        'a',
        '~',
        '/',
        'é',
        '\u{80}',
        '\u{7ff}',
        '€',
        '\u{ffff}',
        '😀',
        '\u{10ffff}',
    ]);
    chars
}

/// Strings whose escapes sit anywhere: arbitrary text, text of the special characters
/// only, and a clean run, a special character, a clean run (so the escape lands at every
/// offset mod 8 of a word, and at either end).
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(special_chars());
    let clean = prop::sample::select(vec!['a', 'é', '€', '😀', '\u{7f}']);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(special.clone(), 0..40).prop_map(String::from_iter),
        (prop::collection::vec(clean.clone(), 0..40), special, prop::collection::vec(clean, 0..40))
            .prop_map(|(before, escape, after)| before.into_iter().chain([escape]).chain(after).collect()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-finite floats become `null` in a `Value`.
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn float32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        prop::sample::select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
            f32::MAX,
            1e-45
        ])
    ]
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324
        ])
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Node::Bool),
        any::<i8>().prop_map(Node::I8),
        any::<i16>().prop_map(Node::I16),
        any::<i32>().prop_map(Node::I32),
        any::<i64>().prop_map(Node::I64),
        any::<i128>().prop_map(Node::I128),
        any::<u8>().prop_map(Node::U8),
        any::<u16>().prop_map(Node::U16),
        any::<u32>().prop_map(Node::U32),
        any::<u64>().prop_map(Node::U64),
        any::<u128>().prop_map(Node::U128),
        float32().prop_map(Node::F32),
        float64().prop_map(Node::F64),
        prop_oneof![any::<char>(), prop::sample::select(special_chars())].prop_map(Node::Char),
        text().prop_map(Node::Str),
        any::<Vec<u8>>().prop_map(Node::Bytes),
        Just(Node::None),
        Just(Node::Unit),
        Just(Node::UnitStruct),
        any::<usize>().prop_map(Node::UnitVariant),
        prop::collection::vec(text(), 0..4).prop_map(Node::Display),
        // A raw value keeps its text, whitespace inside it included (`from_string` trims
        // the ends): compact, pretty, and pretty with every kind of JSON whitespace.
        (json_value(), 0..3).prop_map(|(value, layout)| {
            let text = match layout {
                0 => serde_json::to_string(&value).unwrap(),
                1 => serde_json::to_string_pretty(&value).unwrap(),
                _ => serde_json::to_string_pretty(&value).unwrap().replace('\n', " \r\n\t"),
            };
            Node::Raw(RawValue::from_string(text).unwrap())
        }),
        (any::<bool>(), prop::option::of(any::<usize>()), text(), any::<bool>())
            .prop_map(|(number, field, text, via_collect_str)| Node::Token { number, field, text, via_collect_str }),
    ];
    let hint = prop::option::of(0..4usize);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        let fields = prop::collection::vec((any::<usize>(), inner.clone()), 0..6);
        prop_oneof![
            inner.clone().prop_map(|v| Node::Some(Box::new(v))),
            inner.clone().prop_map(|v| Node::NewtypeStruct(Box::new(v))),
            (any::<usize>(), inner.clone()).prop_map(|(i, v)| Node::NewtypeVariant(i, Box::new(v))),
            (hint.clone(), items.clone()).prop_map(|(hint, items)| Node::Seq(hint, items)),
            items.clone().prop_map(Node::Tuple),
            items.clone().prop_map(Node::TupleStruct),
            (any::<usize>(), items).prop_map(|(i, items)| Node::TupleVariant(i, items)),
            (hint.clone(), prop::collection::vec((inner.clone(), inner), 0..6))
                .prop_map(|(hint, entries)| Node::Map(hint, entries)),
            fields.clone().prop_map(Node::Struct),
            (any::<usize>(), fields).prop_map(|(i, fields)| Node::StructVariant(i, fields)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn strings_encode_as_serde_json_encodes_them(text in text()) {
        check(&text);
    }

    #[test]
    fn value_trees_encode_as_serde_json_encodes_them(value in json_value()) {
        check(&value);
    }

    /// Every call of the data model, map keys of every kind (errors included), wrong
    /// length hints, `collect_str` in pieces, raw values.
    #[test]
    fn every_shape_encodes_as_serde_json_encodes_it(node in node()) {
        check(&node);
    }
}

/// Each special character at every offset of clean runs of 0 to 40 bytes on either
/// side: every position in a word, in the tail after the last whole word, and at both
/// ends, for every escape class.
#[test]
fn every_escape_at_every_offset() {
    for special in special_chars() {
        for clean in ['a', 'é', '😀'] {
            for before in 0..=40 {
                for after in [0, 1, 7, 8, 9, 17] {
                    let text: String = std::iter::repeat_n(clean, before)
                        .chain([special])
                        .chain(std::iter::repeat_n(clean, after))
                        .collect();
                    check(&text);
                }
            }
        }
    }
}

/// Every byte value that is a character on its own, alone and twice in a row, and a
/// 64 KiB string (the `large` benchmark's) with and without escapes in it.
#[test]
fn every_ascii_byte_and_long_strings() {
    for byte in 0u8..0x80 {
        let c = char::from(byte);
        check(&c.to_string());
        check(&format!("{c}{c}"));
        check(&c);
    }
    let long = "x".repeat(64 << 10);
    check(&long);
    let mut escaped = long.clone();
    for at in [0, 7, 8, 4095, 32768, 65535] {
        escaped.replace_range(at..=at, "\n");
    }
    check(&escaped);
}

/// Typed values of the whole data model, as derives write them.
#[test]
fn typed_values_encode_as_serde_json_encodes_them() {
    #[derive(Serialize)]
    struct UnitStruct;
    #[derive(Serialize)]
    struct Newtype(String);
    #[derive(Serialize)]
    struct Tuple(i8, String, f32);
    #[derive(Serialize)]
    enum Variant {
        Unit,
        Newtype(String),
        Tuple(u8, String),
        Struct { text: Option<String>, number: f64 },
        EmptyStruct {},
        EmptyTuple(),
    }
    #[derive(Serialize)]
    struct Everything {
        none: Option<String>,
        some: Option<String>,
        unit: (),
        unit_struct: UnitStruct,
        newtype: Newtype,
        tuple: Tuple,
        variants: Vec<Variant>,
        int_keys: BTreeMap<i64, &'static str>,
        u128_keys: BTreeMap<u128, bool>,
        i128: i128,
        bool_keys: BTreeMap<bool, char>,
        char_keys: BTreeMap<char, u8>,
        unit_variant_keys: BTreeMap<&'static str, ()>,
        floats: Vec<f64>,
        floats32: Vec<f32>,
        raw: Box<RawValue>,
        value: Value,
        #[serde(flatten)]
        flattened: BTreeMap<String, u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }
    let everything = Everything {
        none: None,
        some: Some("\"quoted\"\n".into()),
        unit: (),
        unit_struct: UnitStruct,
        newtype: Newtype("\u{1}".into()),
        tuple: Tuple(-128, "\\".into(), -0.0),
        variants: vec![
            Variant::Unit,
            Variant::Newtype("n\u{1f}".into()),
            Variant::Tuple(255, "t".into()),
            Variant::Struct { text: None, number: f64::NAN },
            Variant::Struct { text: Some("😀".into()), number: 1e300 },
            Variant::EmptyStruct {},
            Variant::EmptyTuple(),
        ],
        int_keys: [(i64::MIN, "min"), (0, "zero"), (i64::MAX, "max")].into(),
        u128_keys: [(u128::MAX, true)].into(),
        i128: i128::MIN,
        bool_keys: [(false, '\u{0}'), (true, '"')].into(),
        char_keys: [('\n', 1), ('é', 2)].into(),
        unit_variant_keys: [("k", ())].into(),
        floats: vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.1, 1e-7, 1e21, f64::MAX],
        floats32: vec![f32::NAN, f32::INFINITY, -0.0, 0.1, 16777217.0],
        raw: RawValue::from_string(" { \"a\" : [1, 2] } ".into()).unwrap(),
        value: serde_json::json!({"nested": ["\u{0}", 1.5, null, {"": true}]}),
        flattened: [("flat\t".to_owned(), 7)].into(),
        skipped: None,
    };
    check(&everything);
    check(&Variant::Unit);
    check(&Some(Variant::Newtype("x".into())));
    check(&Newtype("newtype".into()));
    check(&UnitStruct);
    check(&());
    check(&'\u{10ffff}');
    check(&[1u8, 2, 3][..]);
    check(&f32::NAN);
    check(&-0.0f64);
    check(&u128::MAX);
    check(&RawValue::from_string("\"raw\"".into()).unwrap());
}

/// Map keys serde_json refuses are refused with its words, after the same bytes.
#[test]
fn refused_map_keys_fail_as_in_serde_json() {
    let refused = [
        Node::Unit,
        Node::None,
        Node::UnitStruct,
        Node::Bytes(vec![1]),
        Node::Seq(None, vec![]),
        Node::Tuple(vec![]),
        Node::Map(Some(0), vec![]),
        Node::Struct(vec![]),
        Node::NewtypeVariant(0, Box::new(Node::Unit)),
        Node::TupleVariant(0, vec![]),
        Node::StructVariant(0, vec![]),
        Node::F64(f64::NAN),
        Node::F64(f64::INFINITY),
        Node::F64(f64::NEG_INFINITY),
        Node::F32(f32::NAN),
        Node::F32(f32::INFINITY),
        Node::F32(f32::NEG_INFINITY),
        Node::Raw(RawValue::from_string("1".into()).unwrap()),
        Node::Token { number: true, field: None, text: "1".into(), via_collect_str: false },
    ];
    for key in refused {
        let map = Node::Map(None, vec![(Node::Str("first".into()), Node::Unit), (key.clone(), Node::Unit)]);
        check(&map);
        assert!(super::to_vec(&map).is_err(), "{key:?} is no key");
    }
    // Keys that are written, quoted: every width of integer, both floats.
    let written = [
        Node::Bool(true),
        Node::Bool(false),
        Node::I8(i8::MIN),
        Node::I16(i16::MIN),
        Node::I32(i32::MIN),
        Node::I64(i64::MIN),
        Node::I128(i128::MIN),
        Node::U8(u8::MAX),
        Node::U16(u16::MAX),
        Node::U32(u32::MAX),
        Node::U64(u64::MAX),
        Node::U128(u128::MAX),
        Node::F32(0.1),
        Node::F32(1.5),
        Node::F32(16777216.0),
        Node::F64(-0.0),
        Node::F64(0.1),
        Node::F64(1e300),
        Node::F64(f64::MAX),
        Node::Char('"'),
        Node::Str("\u{0}é".into()),
        Node::UnitVariant(2),
    ];
    for key in written {
        let map = Node::Map(None, vec![(key.clone(), Node::Unit)]);
        check(&map);
        assert!(super::to_vec(&map).is_ok(), "{key:?} is a key");
    }
    check(&Node::Map(
        None,
        vec![(Node::Some(Box::new(Node::NewtypeStruct(Box::new(Node::UnitVariant(3))))), Node::Unit)],
    ));
    check(&Node::Map(None, vec![(Node::Display(vec!["a\n".into(), "b".into()]), Node::Unit)]));
}

/// serde_json's private structs spelled by hand, field text of every kind (broken JSON
/// included), named right or wrong, given through `serialize_str` or `collect_str`.
fn tokens() -> Vec<Node> {
    let mut tokens = Vec::new();
    for number in [false, true] {
        for field in [None, Some(0), Some(7)] {
            for text in ["1.5", "1]}{\"x", "", " [1, 2] ", "\"\n\""] {
                for via_collect_str in [false, true] {
                    tokens.push(Node::Token { number, field, text: text.into(), via_collect_str });
                }
            }
        }
    }
    tokens
}

/// This build's serde_json has no `arbitrary_precision`: it writes the `Number` token
/// struct as an ordinary object, whatever its field holds, and so does ours (a crafted
/// field text no longer comes out as broken JSON). The raw value's token is written raw.
#[test]
fn serde_json_private_structs_encode_as_serde_json_encodes_them() {
    assert!(!super::arbitrary_precision(), "this workspace builds serde_json without arbitrary_precision");
    for token in tokens() {
        check(&token);
        check(&Node::Seq(None, vec![token.clone(), token.clone()]));
        check(&Node::Map(None, vec![(Node::Str("k".into()), token.clone()), (token, Node::Unit)]));
    }
    let crafted = Node::Token { number: true, field: None, text: "1]}{\"x".into(), via_collect_str: false };
    assert_eq!(super::to_vec(&crafted).unwrap(), br#"{"$serde_json::private::Number":"1]}{\"x"}"#);
}

/// With `arbitrary_precision` (forced on here: this build's serde_json lacks it), the
/// `Number` token struct is its text, written as it is, as serde_json writes it then;
/// another field name is serde_json's "invalid number".
#[test]
fn the_number_token_is_its_digits_with_arbitrary_precision() {
    super::FORCED_ARBITRARY_PRECISION.set(Some(true));
    for via_collect_str in [false, true] {
        let digits = |text: &str| Node::Token { number: true, field: None, text: text.into(), via_collect_str };
        assert_eq!(super::to_vec(&digits("1.5")).unwrap(), b"1.5");
        assert_eq!(super::to_vec(&Node::Seq(None, vec![digits("-0"), digits("1e400")])).unwrap(), b"[-0,1e400]");
        let wrong = Node::Token { number: true, field: Some(0), text: "1".into(), via_collect_str };
        assert_eq!(super::to_vec(&wrong).unwrap_err().to_string(), "invalid number");
    }
    super::FORCED_ARBITRARY_PRECISION.set(None);
}

/// A `Display` that writes, then fails, given to `collect_str` as a value and as a key:
/// serde_json panics after writing `"ab`, ours returns an error after the same bytes (the
/// deliberate difference of the module doc). Fails if either side changes.
#[test]
fn a_failing_display_is_an_error_where_serde_json_panics() {
    struct Failing;
    impl std::fmt::Display for Failing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ab")?;
            Err(std::fmt::Error)
        }
    }
    struct Collected {
        as_key: bool,
    }
    impl Serialize for Collected {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            if !self.as_key {
                return s.collect_str(&Failing);
            }
            let mut map = s.serialize_map(None)?;
            map.serialize_key(&Collected { as_key: false })?;
            map.serialize_value(&())?;
            map.end()
        }
    }
    for (as_key, written) in [(false, &b"\"ab"[..]), (true, b"{\"ab")] {
        let mut ours = Vec::new();
        let error = super::to_writer(&mut ours, &Collected { as_key }).unwrap_err();
        assert_eq!(error.to_string(), "a Display implementation returned an error");
        assert_eq!(ours, written);
        let mut theirs = Vec::new();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            serde_json::to_writer(&mut theirs, &Collected { as_key })
        }));
        assert!(outcome.is_err(), "serde_json no longer panics on a failing Display: {outcome:?}");
        assert_eq!(theirs, written);
    }
}
