//! §3 The call headers: each malformed or repeated one is a `400 bad_request` naming
//! it, before anything runs; well-formed extremes are accepted.

use serde_json::json;

use super::{Case, case, each};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};
use crate::spec::CALL_HEADERS;

pub fn cases() -> Vec<Case> {
    vec![
        case!("§3", call_id_malformed_is_400),
        case!("§3", activity_id_malformed_is_400),
        case!("§3", call_attempt_malformed_is_400),
        case!("§3", deadline_malformed_is_400),
        case!("§3", user_type_malformed_is_400),
        case!("§3", user_id_malformed_is_400),
        case!("§3", user_id_without_user_type_is_400),
        case!("§3", call_headers_repeated_are_400),
        case!("§3", integer_headers_extremes_are_accepted),
        case!("§3", header_whitespace_is_optional),
        case!("§3", header_names_are_case_insensitive),
        case!("§3", unknown_headers_are_ignored),
    ]
}

const UUID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

/// UUID spellings other than the one canonical form.
const BAD_UUIDS: &[&str] = &[
    "67E55044-10B1-426F-9247-BB680E5FE0C8",
    "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
    "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
    "67e5504410b1426f9247bb680e5fe0c8",
    "67e55044-10b1-426f-9247-bb680e5fe0c",
    "not-a-uuid",
    "",
];

/// A `context` call with `header: value` (and `extra` headers) is a 400 naming `header`.
async fn refused(t: &Target, header: &str, value: &[u8], extra: &[(&str, &str)]) -> Check {
    let mut call = t.call("context").header(header, value);
    for (name, value) in extra {
        call = call.header(name, value);
    }
    expect::bad_header(&call.send().await?, header)
}

async fn refused_each(t: &Target, header: &'static str, values: &'static [&'static str]) -> Check {
    each(values.to_vec(), |value: &'static str| {
        let t = t.clone();
        async move { refused(&t, header, value.as_bytes(), &[]).await }
    })
    .await
}

async fn call_id_malformed_is_400(t: Target) -> Check {
    refused_each(&t, "x-call-id", BAD_UUIDS).await
}

async fn activity_id_malformed_is_400(t: Target) -> Check {
    refused_each(&t, "x-activity-id", BAD_UUIDS).await
}

async fn call_attempt_malformed_is_400(t: Target) -> Check {
    let values = &["0", "-1", "+5", "abc", "1.5", "0x1", "1 2", "4294967296", "99999999999999999999", ""];
    refused_each(&t, "x-call-attempt", values).await
}

async fn deadline_malformed_is_400(t: Target) -> Check {
    let values = &["-1", "+5", "abc", "1.5", "5ms", "1e3", "18446744073709551616", ""];
    refused_each(&t, "x-deadline-ms", values).await
}

async fn user_type_malformed_is_400(t: Target) -> Check {
    let long = "t".repeat(257);
    each([b"".to_vec(), long.into_bytes(), b"a\tb".to_vec(), b"\xff\xfe".to_vec()], |value| {
        let t = t.clone();
        async move { refused(&t, "x-user-type", &value, &[]).await }
    })
    .await
}

async fn user_id_malformed_is_400(t: Target) -> Check {
    let long = "u".repeat(257);
    each([b"".to_vec(), long.into_bytes(), b"a\tb".to_vec(), b"\xff\xfe".to_vec()], |value| {
        let t = t.clone();
        async move { refused(&t, "x-user-id", &value, &[("x-user-type", "customer")]).await }
    })
    .await
}

async fn user_id_without_user_type_is_400(t: Target) -> Check {
    refused(&t, "x-user-id", b"alice", &[]).await
}

async fn call_headers_repeated_are_400(t: Target) -> Check {
    let valid = |header: &str| match header {
        "x-call-id" | "x-activity-id" => UUID.to_owned(),
        "x-call-attempt" => "1".to_owned(),
        "x-deadline-ms" => "5000".to_owned(),
        "x-user-type" => "customer".to_owned(),
        _ => "alice".to_owned(),
    };
    each(CALL_HEADERS.to_vec(), |header: &'static str| {
        let t = t.clone();
        let value = valid(header);
        async move {
            // The same valid value twice: a repeat is refused for being a repeat.
            let mut call = t.call("context").header(header, &value).header(header, &value);
            if header == "x-user-id" {
                call = call.header("x-user-type", "customer");
            }
            // A fresh call id per attempt keeps the call-id store out of it.
            if header != "x-call-id" {
                call = call.header("x-call-id", uuid::Uuid::new_v4().to_string());
            }
            expect::bad_header(&call.send().await?, header)
        }
    })
    .await
}

async fn integer_headers_extremes_are_accepted(t: Target) -> Check {
    let values =
        [("x-call-attempt", "4294967295"), ("x-call-attempt", "007"), ("x-deadline-ms", "18446744073709551615")];
    each(values, |(header, value)| {
        let t = t.clone();
        async move { expect::ok(&t.call("context").header(header, value).send().await?).map(drop) }
    })
    .await
}

async fn header_whitespace_is_optional(t: Target) -> Check {
    let call = t
        .call("context")
        .header("x-call-attempt", " \t2 ")
        .header("x-deadline-ms", "\t60000 ")
        .header("x-call-id", format!("  {}\t", uuid::Uuid::new_v4()));
    expect::ok(&call.send().await?).map(drop)
}

async fn header_names_are_case_insensitive(t: Target) -> Check {
    let response = t.call("context").header("X-Deadline-Ms", "0").send().await?;
    expect::error(&response, 504, "deadline_exceeded").map(drop)
}

async fn unknown_headers_are_ignored(t: Target) -> Check {
    let call = t
        .call("echo")
        .header("x-future-header", "1")
        .header("x-intercall-future", "{}")
        .header("x-call-priority", "high")
        .json(json!({ "text": "h" }));
    expect::ok_eq(&call.send().await?, &json!({ "text": "h", "note": null }))
}
