use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;

use super::differential::{self, Echo, Kind};
use super::{from_prefix, from_str};

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
        " { \"id\" : 1 , \"x\" : [ ] }\t",
        r#"{"a":{"b":[1,-2,3.5,-0.0,1e300,2.2250738585072014e-308,5e-324,null,true,false,"é 日本"]}}"#,
        "18446744073709551615",
        "-9223372036854775808",
        "0.30000000000000004",
        "9007199254740993.0",
        "123456789012345678.9",
        "12345678901234567890123.5",
        "-12345678901234567.5e-3",
        "1234567890123456.5",
        "0.1234567890123456",
        "10000000000000000000",
        "-9223372036854775807",
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
        "99999999999999999999",
        "100000000000000000000",
        "-18446744073709551616",
        "1.5e",
        "1e+",
        "-.5",
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
        // A line break between tokens (a stream frame never spans lines).
        "1\n",
        "[1,\n2]",
        "{\"a\":\r1}",
        "\n{}",
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

/// A control byte anywhere in a string, a value or a key, gives up (serde_json refuses
/// it): in the eight-byte scan (eight or more bytes left from the string's start) and in
/// the byte-at-a-time tail, at every offset of both.
#[test]
fn every_control_byte_at_every_offset_gives_up() {
    for control in 0..0x20u8 {
        let control = char::from(control);
        for before in 0..=17 {
            for after in 0..=17 {
                let string = format!("\"{}{control}{}\"", "a".repeat(before), "a".repeat(after));
                assert!(from_str::<String>(&string).is_none(), "{string:?}");
                let key = format!("{{{string}:1}}");
                assert!(from_str::<Value>(&key).is_none(), "{key:?}");
                assert!(from_str::<BTreeMap<String, u8>>(&key).is_none(), "{key:?}");
            }
        }
    }
}

/// Whitespace JSON does not have (vertical tab, form feed, no-break space, byte order
/// mark, line separator) between tokens gives up; inside a string it is text.
#[test]
fn whitespace_json_does_not_have_gives_up() {
    for space in ['\u{b}', '\u{c}', '\u{a0}', '\u{feff}', '\u{2028}'] {
        for text in ["[1,2]", r#"{"a":1}"#] {
            for at in 0..=text.len() {
                let spaced = format!("{}{space}{}", &text[..at], &text[at..]);
                differential::check(&spaced);
                let in_string = text[..at].matches('"').count() % 2 == 1;
                if !in_string || space < ' ' {
                    assert!(from_str::<Value>(&spaced).is_none(), "{spaced:?}");
                }
            }
        }
    }
}

/// An enum is `"Unit"` or one member `{"Variant":<value>}` closed by its `}`; a unit
/// variant's value is `null`, nothing else.
#[test]
fn enums_take_serde_json_forms_only() {
    for given_up in [
        r#"{"Unit":null"#,
        r#"{"Unit":5}"#,
        r#"{"Unit":[]}"#,
        r#"{"Unit":{}}"#,
        r#"{"Unit":null,"x":1}"#,
        r#""Newtype""#,
        r#"{"Newtype":1,"x":2}"#,
        r#"{"Newtype":1"#,
        r#"{"Nope":1}"#,
        r#"{}"#,
        r#"{"Tuple":[1,true]"#,
    ] {
        differential::check(given_up);
        assert!(from_str::<Kind>(given_up).is_none(), "{given_up:?}");
    }
    for given_up in [r#"[{"Unit":null]"#, r#"[{"Newtype":1]"#, r#"[{"Unit":null,}]"#] {
        differential::check(given_up);
        assert!(from_str::<Vec<Kind>>(given_up).is_none(), "{given_up:?}");
    }
    for decoded in
        [r#""Unit""#, r#" { "Unit" : null } "#, r#"{"Newtype":1}"#, r#"{"Tuple":[1,true]}"#, r#"{"Struct":{"a":true}}"#]
    {
        differential::check(decoded);
        assert!(from_str::<Kind>(decoded).is_some(), "{decoded:?}");
    }
}

/// `null` is `None` for an option of anything, `()` and options included; anything else
/// is `Some`.
#[test]
fn null_is_none_for_every_option() {
    for text in ["null", " null ", "[null]", "1", "[]", "{}", r#"{"unit":null,"nothing":null,"any":null}"#] {
        differential::check(text);
    }
    assert_eq!(from_str::<Option<()>>("null"), Some(None));
    assert_eq!(from_str::<Option<Value>>("null"), Some(None));
    assert_eq!(from_str::<Option<Option<u8>>>("null"), Some(None));
    assert_eq!(from_str::<Option<Option<u8>>>("1"), Some(Some(Some(1))));
    assert_eq!(from_str::<Vec<Option<()>>>("[null]"), Some(vec![None]));
}

/// A space or a tab between any two tokens is skipped (only `\n` and `\r` give up): the
/// peek's one-compare path and `skip_whitespace` both take them.
#[test]
fn spaces_and_tabs_between_tokens_are_decoded() {
    for text in ["[1,\t2]", "\t[1 ,2 ]", "{\"a\":\t1,\t\"b\"\t:[\ttrue\t]\t}", "\t \"s\" \t", "[\t{\t}\t,\t[ ]]"] {
        assert!(differential::check(text), "decoded: {text:?}");
    }
    assert_eq!(from_str::<Vec<u8>>("[1,\t2]"), Some(vec![1, 2]));
    assert_eq!(
        from_str::<Echo>("{\t\"id\":7,\"name\":\"n\",\"tags\":[ \"t\"\t],\t\"score\":\t0.5,\"active\" : true}")
            .map(|echo| (echo.id, echo.tags, echo.score)),
        Some((7, vec!["t".to_owned()], 0.5))
    );
}

/// `from_prefix` says how many bytes the value took: its leading whitespace and its own
/// bytes, never what follows it (whitespace included), whatever that is; and gives up where
/// `from_str` does on the value's own bytes.
#[test]
fn from_prefix_takes_the_value_and_nothing_after_it() {
    for (text, used) in [
        ("1}\n", 1),
        ("1", 1),
        (" 1 }", 2),
        ("\t-25\t}\n", 4),
        ("1.5e3}", 5),
        ("-0.25,", 5),
        ("18446744073709551615}", 20),
        ("\"a b\"}\n{", 5),
        ("[1, [2]]}}", 8),
        ("{\"a\":null} x", 10),
        ("true\n", 4),
    ] {
        let (value, taken) = from_prefix::<Value>(text).unwrap_or_else(|| panic!("decoded: {text:?}"));
        assert_eq!(taken, used, "{text:?}");
        assert_eq!(Some(value), from_str::<Value>(&text[..used]), "{text:?}");
    }
    for given_up in ["1.}", "1e}", "-}", "01}", "-0}", "[1,\n2]}", "\"a\nb\"}", "\n1}", "100000000000000000000}"] {
        assert!(from_prefix::<Value>(given_up).is_none(), "{given_up:?}");
    }
}

/// Map keys read as numbers: serde_json parses them its own way (no sign, no leading
/// zero, no space): all given up.
#[test]
fn numeric_map_keys_give_up() {
    for text in [
        r#"{"1":true}"#,
        r#"{"01":true}"#,
        r#"{"+1":true}"#,
        r#"{" 1":true}"#,
        r#"{"1 ":true}"#,
        r#"{"1.0":true}"#,
        r#"{"-0":true}"#,
        r#"{"-1":true}"#,
    ] {
        differential::check(text);
        assert!(from_str::<BTreeMap<u32, bool>>(text).is_none(), "{text:?}");
        assert!(from_str::<BTreeMap<i32, bool>>(text).is_none(), "{text:?}");
    }
}

/// `mantissa` × 10^-`places`, written as a plain decimal (`0.000…` when it is below one).
fn plain_decimal(negative: bool, mantissa: u64, places: usize) -> String {
    let digits = format!("{mantissa:0>width$}", width = places + 1);
    let (integer, fraction) = digits.split_at(digits.len() - places);
    let sign = if negative { "-" } else { "" };
    if places == 0 { format!("{sign}{integer}") } else { format!("{sign}{integer}.{fraction}") }
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
            prop::collection::btree_map(
                "[a-z_]{1,8}|id|name|tags|score|active|type|x|a|b|unit|nothing|any|numbered",
                inner,
                0..6
            )
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

    /// Plain decimals on the edge of the one-division path (a mantissa under 2^53 and up
    /// to 22 places are exact; 23 places or a larger mantissa are not): bit for bit
    /// serde_json's `f64`, and the exact ones decoded.
    #[test]
    fn decimals_on_the_exact_path_edge_round_as_serde_json_rounds_them(
        negative in any::<bool>(),
        mantissa in prop_oneof![0..1u64 << 53, (1u64 << 53) - 1000..(1u64 << 53) + 1000, 0..1000u64],
        places in prop_oneof![0..=25usize, 21..=24usize],
    ) {
        let text = plain_decimal(negative, mantissa, places);
        differential::check(&text);
        let expected: f64 = serde_json::from_str(&text).expect("a plain decimal");
        match from_str::<f64>(&text) {
            Some(decoded) => prop_assert_eq!(decoded.to_bits(), expected.to_bits(), "{}", text),
            // Only `-0` is given up (serde_json makes it a float, not an integer).
            None => prop_assert_eq!(text, "-0"),
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
