use proptest::prelude::*;
use serde_json::Value;

use super::differential::{self, Echo};
use super::from_str;

/// Texts a server's serde_json writes, and some it does not, with what each is.
#[test]
fn the_fast_path_decodes_what_a_server_writes_and_gives_up_on_the_rest() {
    let echo = r#"{"id":7,"name":"benchmark-item-name","tags":["alpha","beta"],"score":0.75,"active":true}"#;
    let item = from_str::<Echo>(echo).expect("the common shape is decoded");
    assert_eq!(
        (item.id, &*item.name, &item.tags[..], item.score, item.active),
        (7, "benchmark-item-name", &["alpha".to_owned(), "beta".to_owned()][..], 0.75, true)
    );
    for decoded in [
        echo,
        " { \"id\" : 1 , \"x\" : [ ] }\n",
        r#"{"a":{"b":[1,-2,3.5,-0.0,1e300,2.2250738585072014e-308,5e-324,null,true,false,"é 日本"]}}"#,
        "18446744073709551615",
        "-9223372036854775808",
        "0.30000000000000004",
        "9007199254740993.0",
        "123456789012345678.9",
        "1e-400",
        "-0.0",
        r#"{"a":1,"a":2}"#,
        "\"\u{7f}\"",
    ] {
        assert!(differential::check(decoded), "decoded: {decoded:?}");
    }
    for given_up in [
        "",
        " ",
        "1.",
        ".5",
        "01",
        "-",
        "1e",
        "+1",
        "-0",
        "1e309",
        "18446744073709551616",
        "-9223372036854775809",
        r#""\ud800""#,
        r#""\u00e9""#,
        r#""a\nb""#,
        "\"a\u{1}b\"",
        "[1,]",
        "{\"a\":1,}",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "nul",
        "truex",
        "[1]]",
        "\"unterminated",
        &"[".repeat(101),
        &format!("{}{}", "[".repeat(101), "]".repeat(101)),
        &format!("{}{}", "[".repeat(200), "]".repeat(200)),
    ] {
        assert!(!differential::check(given_up), "given up: {given_up:?}");
    }
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(differential::check(&nested), "as deep as MAX_DEPTH");
}

/// What a struct's own decoding refuses is refused (the caller's serde_json then says
/// why), and serde_json's own types that it reads its own way are given up.
#[test]
fn refusals_and_serde_json_types_go_to_serde_json() {
    assert!(
        from_str::<Echo>(r#"{"id":1,"id":2,"name":"","tags":[],"score":0,"active":true}"#).is_none(),
        "a duplicate field"
    );
    assert!(from_str::<Echo>(r#"{"id":1}"#).is_none(), "a missing field");
    assert!(from_str::<Echo>(r#"{"id":"1","name":"","tags":[],"score":0,"active":true}"#).is_none(), "a wrong type");
    assert!(from_str::<u8>("256").is_none(), "out of range for the type");
    assert!(from_str::<Box<serde_json::value::RawValue>>("[1]").is_none(), "RawValue");
    assert!(from_str::<f32>("0.5").is_none(), "f32 is parsed to single precision by serde_json");
    assert_eq!(from_str::<Value>("[1,-1,1.5]"), Some(serde_json::json!([1, -1, 1.5])));
}

/// An item type that swallows an error and goes on: the fast path stopped where serde_json
/// would not have (inside `-0`, after a `-` without digits, before an array's end), so
/// any give-up in a decode is final, even one the item type recovered from.
#[test]
fn a_give_up_the_item_type_swallows_still_gives_up() {
    for text in [
        r#"{"x":-0,"y":1}"#,
        r#"{"x":-,"y":1}"#,
        r#"{"x":1e,"y":1}"#,
        r#"{"x":-9223372036854775809,"y":1}"#,
        r#"{"x":-18446744073709551615,"y":1}"#,
        "[-0]",
        "[-]",
        "[1,-,2]",
    ] {
        differential::check(text);
        assert!(from_str::<differential::Lenient>(text).is_none(), "{text:?}");
        assert!(from_str::<differential::LenientValue>(text).is_none(), "{text:?}");
        assert!(from_str::<Vec<differential::LenientElem>>(text).is_none(), "{text:?}");
    }
    // Nothing given up: decoded.
    assert!(from_str::<differential::Lenient>(r#"{"x":-0.0,"y":1}"#).is_some());
    assert!(from_str::<Vec<differential::LenientElem>>("[1,-2.5]").is_some());
}

/// A unit variant written as a string has its name read as serde_json reads it (by the
/// main deserializer), not as a map key.
#[test]
fn a_unit_variant_written_as_a_string_is_read_as_serde_json_reads_it() {
    differential::check(r#""A""#);
    assert!(from_str::<differential::OddEnum>(r#""A""#).is_none(), "serde_json refuses a string for `unit`");
    differential::check(r#"{"A":null}"#);
    assert!(from_str::<differential::OddEnum>(r#"{"A":null}"#).is_some(), "a name as a key is a string");
}

/// A JSON value as serde_json would write it, strings included with characters that
/// need escapes.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (-1000i32..1000, 0u32..4).prop_map(|(n, places)| Value::from(f64::from(n) / 10f64.powi(places as i32))),
        "[a-z\u{e9}\u{65e5}\"\\\\\n\u{1}/ ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}|id|name|tags|score|active|type|x|a|b", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn echo_text() -> impl Strategy<Value = String> {
    (any::<u64>(), "[a-z -]{0,30}", prop::collection::vec("[a-z]{0,8}", 0..4), any::<f64>(), any::<bool>()).prop_map(
        |(id, name, tags, score, active)| {
            let score = if score.is_finite() { score } else { 0.5 };
            serde_json::json!({"id": id, "name": name, "tags": tags, "score": score, "active": active}).to_string()
        },
    )
}

/// Bytes JSON's grammar turns on, to edit a valid text with.
const EDITS: &[u8] = b"{}[]\",:0123456789-+.eE \t\n\\ntfu/";

/// `text` with a few bytes replaced, inserted or removed (kept only if still UTF-8).
fn edited(text: String, edits: Vec<(usize, usize, u8)>) -> Option<String> {
    let mut bytes = text.into_bytes();
    for (kind, at, byte) in edits {
        let at = at % (bytes.len() + 1);
        let byte = EDITS[usize::from(byte) % EDITS.len()];
        match kind % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => drop(bytes.remove(at)),
            _ => {}
        }
    }
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// What a server writes is decoded by the fast path (when it has no escapes), and
    /// to serde_json's value.
    #[test]
    fn written_values_decode_as_serde_json_decodes_them(value in value()) {
        let text = value.to_string();
        let decoded = differential::check(&text);
        prop_assert_eq!(decoded, !text.contains('\\'), "{}", text);
    }

    #[test]
    fn written_items_decode_as_serde_json_decodes_them(text in echo_text()) {
        prop_assert!(differential::check(&text));
        prop_assert!(from_str::<Echo>(&text).is_some());
    }

    /// Edited texts: whatever the fast path accepts, serde_json accepts as the same value.
    #[test]
    fn edited_texts_are_never_accepted_where_serde_json_refuses(
        text in prop_oneof![value().prop_map(|v| v.to_string()), echo_text()],
        edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        if let Some(text) = edited(text, edits) {
            differential::check(&text);
        }
    }

    /// Decimals of any length, with and without an exponent: rounded as serde_json
    /// rounds them (exactly, by one division, or by `str::parse`), or given up.
    #[test]
    fn decimals_round_as_serde_json_rounds_them(
        text in "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?",
    ) {
        differential::check(&text);
        let decoded = from_str::<f64>(&text);
        if text.len() <= 17 && !text.contains(['e', 'E']) && text != "-0" {
            prop_assert!(decoded.is_some(), "{}", text);
        }
    }

    /// Short texts from JSON's own bytes: the same.
    #[test]
    fn texts_from_json_bytes_are_never_accepted_where_serde_json_refuses(
        bytes in prop::collection::vec(prop::sample::select(EDITS.to_vec()), 0..24),
    ) {
        differential::check(&String::from_utf8(bytes).expect("ASCII"));
    }
}
