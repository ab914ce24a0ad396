//! §3 Body: the JSON object of named arguments a request carries.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::{ErrorKind, Refusal, fast_json, shorten, truncate};

/// Decodes the JSON object of named arguments; an empty body means no arguments.
/// A refusal names the argument (`argument`) only when one argument is at fault: it
/// is missing, or its value has the wrong type. Malformed JSON names none.
pub(crate) fn decode<A: DeserializeOwned>(body: &[u8]) -> Result<A, Refusal> {
    let bad = |message: String, argument: Option<String>| Refusal { kind: ErrorKind::BadRequest, message, argument };
    let body: &[u8] = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        Some(_) => return Err(bad("the request body must be a JSON object of named arguments".to_owned(), None)),
    };
    // The fastest path: the stream items' strict decoder, for a body it reads exactly as
    // serde_json would (it gives up on anything else: an escape in a string, a line
    // break between tokens, any error). A body it gives up on costs the bytes it read
    // before giving up, and the UTF-8 check.
    if let Some(args) = fast_json::from_json(body) {
        return Ok(args);
    }
    // Then plain serde_json. Only a body it refuses is decoded again with path tracking,
    // to say which argument is wrong and where.
    let error = match serde_json::from_slice(body) {
        Ok(args) => return Ok(args),
        Err(error) => error,
    };
    // serde's messages quote the client's value: every one is shortened, so a huge
    // value cannot make a huge reply.
    if error.classify() != Category::Data {
        return Err(bad(format!("malformed JSON: {}", shorten(&error.to_string())), None));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let Err(e) = serde_path_to_error::deserialize::<_, A>(&mut json) else {
        // Unreachable for a deterministic `Deserialize`; report the first error anyway.
        return Err(bad(format!("invalid arguments: {}", shorten(&error.to_string())), None));
    };
    let inner = e.inner().to_string();
    let argument = match e.path().iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) => Some(truncate(key).to_owned()),
        _ => missing_field(&inner).map(|name| truncate(name).to_owned()),
    };
    let inner = shorten(&inner);
    let message = match (&argument, e.path().iter().count()) {
        (Some(name), 0) => format!("missing argument `{name}`"),
        (Some(name), 1) => format!("argument `{name}`: {inner}"),
        (Some(name), _) => format!("argument `{name}` is invalid at `{}`: {inner}", shorten(&e.path().to_string())),
        (None, _) => format!("invalid arguments: {inner}"),
    };
    Err(bad(message, argument))
}

/// serde reports a missing field only in its message: "missing field `id` at ...".
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    Some(&rest[..rest.find('`')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Args {
        id: String,
        #[serde(default)]
        tags: Option<Vec<u32>>,
    }

    /// Regression (found by the `arguments` fuzz target): without serde_json's
    /// `float_roundtrip`, a float argument could decode to a neighbour of the value the
    /// client's shortest representation meant, so a sent `f64` did not arrive as sent.
    #[test]
    fn a_float_argument_arrives_exactly_as_sent() {
        #[derive(Debug, serde::Deserialize)]
        struct Weight {
            weight: f64,
        }
        let body =
            r#"{"weight":222222222222222222222222222222222222222222222222222222222222222222222222222222222222221.0}"#;
        let decoded = decode::<Weight>(body.as_bytes()).unwrap().weight;
        let sent = serde_json::to_string(&decoded).unwrap();
        let again = decode::<Weight>(format!(r#"{{"weight":{sent}}}"#).as_bytes()).unwrap().weight;
        assert_eq!(again.to_bits(), decoded.to_bits(), "{sent}");
        for value in [0.1_f64, 1.0 / 3.0, 1e-300, f64::MAX, 5e-324] {
            let text = serde_json::to_string(&value).unwrap();
            let back = decode::<Weight>(format!(r#"{{"weight":{text}}}"#).as_bytes()).unwrap().weight;
            assert_eq!(back.to_bits(), value.to_bits(), "{text}");
        }
    }

    fn refused(body: &str) -> Refusal {
        let refusal = decode::<Args>(body.as_bytes()).expect_err(body);
        assert_eq!(refusal.kind, ErrorKind::BadRequest);
        refusal
    }

    #[test]
    fn named_arguments_in_any_order_unknown_ignored_optional_missing() {
        let args: Args = decode(br#"{"extra":1,"id":"p-1"}"#).unwrap();
        assert_eq!(args, Args { id: "p-1".into(), tags: None });
        let args: Args = decode(br#" {"tags":[1],"id":"x"} "#).unwrap();
        assert_eq!(args.tags, Some(vec![1]));
    }

    /// Bodies the fast path reads and bodies it gives up on (escapes, line breaks, a
    /// trailing newline, non-ASCII text) decode to what serde_json decodes.
    #[test]
    fn the_fast_path_and_serde_json_agree_on_arguments() {
        let plain = r#"{"id":"p-1","tags":[1,2]}"#;
        assert!(fast_json::from_json::<Args>(plain.as_bytes()).is_some(), "the usual body takes the fast path");
        let escaped = br#"{"id":"p-\"1\""}"#;
        assert!(fast_json::from_json::<Args>(escaped).is_none(), "a backslash goes straight to serde_json");
        for body in [
            plain,
            r#"{"id":"p-\"1\"","tags":null}"#,
            "{\"id\":\"p\",\n\"tags\":[3]}",
            "{\"id\":\"p\"}\n",
            r#"{"id":"\u00e9t\u00e9 日本","extra":{"deep":[1.5,-2,true]}}"#,
            r#" { "tags" : [ 7 ] , "id" : "x" } "#,
        ] {
            let expected: Args = serde_json::from_str(body).expect(body);
            assert_eq!(decode::<Args>(body.as_bytes()).expect(body), expected, "{body}");
        }
    }

    #[test]
    fn an_empty_body_is_no_arguments() {
        #[derive(serde::Deserialize)]
        struct None {}
        for body in ["", "  \n"] {
            decode::<None>(body.as_bytes()).unwrap();
        }
        assert_eq!(refused("").argument.as_deref(), Some("id"), "an empty body lacks `id`");
    }

    #[test]
    fn an_argument_at_fault_is_named() {
        let missing = refused("{}");
        assert_eq!((missing.argument.as_deref(), &*missing.message), (Some("id"), "missing argument `id`"));
        let wrong = refused(r#"{"id":5}"#);
        assert_eq!(wrong.argument.as_deref(), Some("id"));
        assert!(wrong.message.starts_with("argument `id`: invalid type"), "{}", wrong.message);
        let deep = refused(r#"{"id":"x","tags":[1,"two"]}"#);
        assert_eq!(deep.argument.as_deref(), Some("tags"));
        assert!(deep.message.contains("at `tags[1]`"), "{}", deep.message);
    }

    #[test]
    fn malformed_json_names_no_argument() {
        for body in [r#"{"x":NaN}"#, r#"{"id":"p-"#, r#"{"id":"p-1"} trailing"#, r#"{"id":"p-1",}"#] {
            let refusal = refused(body);
            assert_eq!(refusal.argument, None, "{body}: {}", refusal.message);
            assert!(refusal.message.starts_with("malformed JSON"), "{body}: {}", refusal.message);
        }
    }

    /// Issue 17 item 6: a 1 MB string in a number field gave a 1,000,128-byte reply.
    #[test]
    fn a_huge_value_gives_a_short_message_that_keeps_what_was_expected() {
        let huge = "9".repeat(1_000_000);
        let wrong = refused(&format!(r#"{{"id":"x","tags":["{huge}"]}}"#));
        assert_eq!(wrong.argument.as_deref(), Some("tags"));
        assert!(wrong.message.len() < 2 * crate::protocol::MAX_QUOTED_MESSAGE, "{} bytes", wrong.message.len());
        assert!(
            wrong.message.contains("expected u32") && wrong.message.contains("bytes left out"),
            "{}",
            wrong.message
        );
        assert!(wrong.encode().body.len() < 2048, "{} bytes", wrong.encode().body.len());
        // A huge map key in the path is shortened too.
        let deep = decode::<std::collections::HashMap<String, std::collections::HashMap<String, u32>>>(
            format!(r#"{{"m":{{"{huge}":"x"}}}}"#).as_bytes(),
        )
        .expect_err("a string is not a u32");
        assert!(deep.encode().body.len() < 2048, "{} bytes", deep.encode().body.len());
        // Malformed JSON after a huge value: no quote of it either.
        let malformed = refused(&format!(r#"{{"id":"{huge}"#));
        assert!(malformed.encode().body.len() < 2048, "{} bytes", malformed.encode().body.len());
    }

    #[test]
    fn a_short_message_is_kept_whole_and_a_long_one_keeps_its_ends() {
        assert_eq!(shorten("invalid type: integer `5`"), "invalid type: integer `5`");
        let long = format!("start{}é{}end", "a".repeat(300), "b".repeat(300));
        let short = shorten(&long);
        assert!(short.starts_with("start") && short.ends_with("end") && short.len() < 600, "{short}");
    }

    #[test]
    fn a_body_that_is_not_an_object() {
        for body in ["[]", "\"id\"", "5", "null"] {
            let refusal = refused(body);
            assert!(refusal.message.contains("JSON object"), "{body}");
            assert_eq!(refusal.argument, None);
        }
    }
}
