//! §3 Headers: the `content-type` a server accepts (`415` otherwise).

use serde_json::json;

use super::{Case, case, each};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§3", content_type_missing_is_415),
        case!("§3", content_type_other_is_415),
        case!("§3", content_type_lookalikes_are_415),
        case!("§3", content_type_other_charset_is_415),
        case!("§3", content_type_is_case_insensitive),
        case!("§3", content_type_utf8_charset_is_accepted),
        case!("§3", content_type_suffix_json_is_accepted),
    ]
}

async fn with(t: &Target, content_type: Option<&str>) -> Result<crate::http::Response, String> {
    t.call("echo").content_type(content_type).json(json!({ "text": "ct" })).send().await
}

async fn refused(t: &Target, content_type: Option<&str>) -> Check {
    expect::error(&with(t, content_type).await?, 415, "unsupported_media_type").map(drop)
}

async fn accepted(t: &Target, content_type: &str) -> Check {
    expect::ok_eq(&with(t, Some(content_type)).await?, &json!({ "text": "ct", "note": null }))
}

async fn content_type_missing_is_415(t: Target) -> Check {
    refused(&t, None).await
}

async fn content_type_other_is_415(t: Target) -> Check {
    each(["text/plain", "application/x-www-form-urlencoded", "application/octet-stream"], |ct| {
        let t = t.clone();
        async move { refused(&t, Some(ct)).await }
    })
    .await
}

async fn content_type_lookalikes_are_415(t: Target) -> Check {
    each(["application/jsonx", "text/json", "text/x+json", "application/json-seq", "json"], |ct| {
        let t = t.clone();
        async move { refused(&t, Some(ct)).await }
    })
    .await
}

async fn content_type_other_charset_is_415(t: Target) -> Check {
    each(
        [
            "application/json; charset=latin1",
            "application/json; charset=utf-16",
            "application/x+json;charset=\"ascii\"",
        ],
        |ct| {
            let t = t.clone();
            async move { refused(&t, Some(ct)).await }
        },
    )
    .await
}

async fn content_type_is_case_insensitive(t: Target) -> Check {
    each(["Application/JSON", "APPLICATION/VND.EXAMPLE+JSON"], |ct| {
        let t = t.clone();
        async move { accepted(&t, ct).await }
    })
    .await
}

async fn content_type_utf8_charset_is_accepted(t: Target) -> Check {
    each(["application/json; charset=utf-8", "application/json;charset=\"UTF-8\"", "application/json; v=1"], |ct| {
        let t = t.clone();
        async move { accepted(&t, ct).await }
    })
    .await
}

async fn content_type_suffix_json_is_accepted(t: Target) -> Check {
    each(["application/x+json", "application/vnd.example+json; v=2; charset=utf-8"], |ct| {
        let t = t.clone();
        async move { accepted(&t, ct).await }
    })
    .await
}
