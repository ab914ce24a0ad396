//! §3 Body: a JSON object of named arguments, and what is refused.

use serde_json::json;

use super::{Case, case, each};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§3", empty_body_is_empty_object),
        case!("§3", body_not_an_object_is_400),
        case!("§3", trailing_data_is_400),
        case!("§3", trailing_whitespace_is_accepted),
        case!("§3", malformed_json_is_400_without_argument),
        case!("§3", invalid_utf8_is_400),
        case!("§3", missing_argument_is_400_naming_it),
        case!("§3", wrong_type_is_400_naming_it),
        case!("§3", unknown_members_are_ignored),
        case!("§3", missing_option_is_null),
        case!("§3", members_in_any_order),
    ]
}

fn echoed(text: &str, note: Option<&str>) -> serde_json::Value {
    json!({ "text": text, "note": note })
}

async fn empty_body_is_empty_object(t: Target) -> Check {
    each(["", " \r\n\t "], |body| {
        let t = t.clone();
        async move { expect::ok(&t.call("context").body(body).send().await?).map(drop) }
    })
    .await?;
    // For a method with a required argument, an empty body is `{}`: that argument is missing.
    expect::bad_argument(&t.call("echo").body("").send().await?, Some("text"))
}

async fn body_not_an_object_is_400(t: Target) -> Check {
    each(["[]", "[{\"text\":\"a\"}]", "\"text\"", "1", "null", "true"], |body| {
        let t = t.clone();
        async move { expect::bad_argument(&t.call("echo").body(body).send().await?, None) }
    })
    .await
}

async fn trailing_data_is_400(t: Target) -> Check {
    each(["{\"text\":\"a\"} x", "{\"text\":\"a\"}{}", "{\"text\":\"a\"},", "{\"text\":\"a\"}\n1"], |body| {
        let t = t.clone();
        async move { expect::error(&t.call("echo").body(body).send().await?, 400, "bad_request").map(drop) }
    })
    .await
}

async fn trailing_whitespace_is_accepted(t: Target) -> Check {
    let response = t.call("echo").body("  {\"text\":\"a\"} \r\n\t").send().await?;
    expect::ok_eq(&response, &echoed("a", None))
}

async fn malformed_json_is_400_without_argument(t: Target) -> Check {
    let bodies =
        ["{\"text\":NaN}", "{\"text\":\"a", "{\"text\":", "{text:\"a\"}", "{\"text\":'a'}", "{\"text\":\"a\",}"];
    each(bodies, |body| {
        let t = t.clone();
        async move { expect::bad_argument(&t.call("echo").body(body).send().await?, None) }
    })
    .await
}

async fn invalid_utf8_is_400(t: Target) -> Check {
    let response = t.call("echo").body(b"{\"text\":\"\xff\xfe\"}").send().await?;
    expect::error(&response, 400, "bad_request").map(drop)
}

async fn missing_argument_is_400_naming_it(t: Target) -> Check {
    each(["{}", "{\"note\":\"n\"}", "{\"Text\":\"a\"}"], |body| {
        let t = t.clone();
        async move { expect::bad_argument(&t.call("echo").body(body).send().await?, Some("text")) }
    })
    .await
}

async fn wrong_type_is_400_naming_it(t: Target) -> Check {
    let bodies = [
        ("{\"text\":5}", "text"),
        ("{\"text\":null}", "text"),
        ("{\"text\":[\"a\"]}", "text"),
        ("{\"text\":\"a\",\"note\":7}", "note"),
        ("{\"note\":7,\"text\":\"a\"}", "note"),
    ];
    each(bodies, |(body, argument)| {
        let t = t.clone();
        async move { expect::bad_argument(&t.call("echo").body(body).send().await?, Some(argument)) }
    })
    .await
}

async fn unknown_members_are_ignored(t: Target) -> Check {
    let call = t.call("echo").json(json!({ "text": "a", "future": { "x": [1, 2] }, "z": null }));
    expect::ok_eq(&call.send().await?, &echoed("a", None))
}

async fn missing_option_is_null(t: Target) -> Check {
    expect::ok_eq(&t.call("echo").json(json!({ "text": "a" })).send().await?, &echoed("a", None))?;
    expect::ok_eq(&t.call("echo").json(json!({ "text": "a", "note": null })).send().await?, &echoed("a", None))
}

async fn members_in_any_order(t: Target) -> Check {
    let response = t.call("echo").body("{\"note\":\"n\",\"text\":\"t\"}").send().await?;
    expect::ok_eq(&response, &echoed("t", Some("n")))
}
