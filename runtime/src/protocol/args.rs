//! §3 Body: the JSON object of named arguments a request carries.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::{ErrorKind, Refusal};

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
    // The fast path: plain serde_json. Only a body it refuses is decoded again with
    // path tracking, to say which argument is wrong and where.
    let error = match serde_json::from_slice(body) {
        Ok(args) => return Ok(args),
        Err(error) => error,
    };
    if error.classify() != Category::Data {
        return Err(bad(format!("malformed JSON: {error}"), None));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let Err(e) = serde_path_to_error::deserialize::<_, A>(&mut json) else {
        // Unreachable for a deterministic `Deserialize`; report the first error anyway.
        return Err(bad(format!("invalid arguments: {error}"), None));
    };
    let argument = match e.path().iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
        _ => missing_field(&e.inner().to_string()),
    };
    let message = match (&argument, e.path().iter().count()) {
        (Some(name), 0) => format!("missing argument `{name}`"),
        (Some(name), 1) => format!("argument `{name}`: {}", e.inner()),
        (Some(name), _) => format!("argument `{name}` is invalid at `{}`: {}", e.path(), e.inner()),
        (None, _) => format!("invalid arguments: {}", e.inner()),
    };
    Err(bad(message, argument))
}

/// serde reports a missing field only in its message: "missing field `id` at ...".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
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

    #[test]
    fn a_body_that_is_not_an_object() {
        for body in ["[]", "\"id\"", "5", "null"] {
            let refusal = refused(body);
            assert!(refusal.message.contains("JSON object"), "{body}");
            assert_eq!(refusal.argument, None);
        }
    }
}
