//! §3 Path and Method, §4.2 404/405: which requests reach a method.

use serde_json::json;

use super::{Case, case, each};
use crate::server_mode::call::Target;
use crate::server_mode::expect::{self, Check};

pub fn cases() -> Vec<Case> {
    vec![
        case!("§4.2", unknown_service_404),
        case!("§4.2", unknown_method_404),
        case!("§1", names_are_case_sensitive),
        case!("§3", trailing_slash_is_unknown_method),
        case!("§3", double_slash_is_unknown_service),
        case!("§3", service_path_without_method_is_unknown_method),
        case!("§3", other_paths_are_unknown_service),
        case!("§3", paths_are_not_percent_decoded),
        case!("§3", query_string_is_ignored),
        case!("§4.2", get_is_405),
        case!("§4.2", head_is_405_without_body),
        case!("§4.2", options_is_405),
        case!("§4.2", other_verbs_are_405),
        case!("§4.2", path_is_checked_before_verb),
    ]
}

async fn unknown_service_404(t: Target) -> Check {
    expect::error(&t.call("echo").path("/NoSuchService/echo").send().await?, 404, "unknown_service").map(drop)
}

async fn unknown_method_404(t: Target) -> Check {
    expect::error(&t.call("nope").send().await?, 404, "unknown_method").map(drop)
}

async fn names_are_case_sensitive(t: Target) -> Check {
    let text = json!({ "text": "x" });
    expect::error(&t.call("echo").path("/conformance/echo").json(text.clone()).send().await?, 404, "unknown_service")?;
    expect::error(&t.call("Echo").json(text).send().await?, 404, "unknown_method").map(drop)
}

async fn trailing_slash_is_unknown_method(t: Target) -> Check {
    let call = t.call("echo").path("/Conformance/echo/").json(json!({ "text": "x" }));
    expect::error(&call.send().await?, 404, "unknown_method").map(drop)
}

async fn double_slash_is_unknown_service(t: Target) -> Check {
    let call = t.call("echo").path("//Conformance/echo").json(json!({ "text": "x" }));
    expect::error(&call.send().await?, 404, "unknown_service").map(drop)
}

async fn service_path_without_method_is_unknown_method(t: Target) -> Check {
    each(["/Conformance/", "/Conformance"], |path| {
        let t = t.clone();
        async move { expect::error(&t.call("echo").path(path).send().await?, 404, "unknown_method").map(drop) }
    })
    .await
}

async fn other_paths_are_unknown_service(t: Target) -> Check {
    each([("POST", "/"), ("GET", "/"), ("GET", "/favicon.ico")], |(verb, path)| {
        let t = t.clone();
        async move { expect::error(&t.call("echo").verb(verb).path(path).send().await?, 404, "unknown_service").map(drop) }
    })
    .await
}

async fn paths_are_not_percent_decoded(t: Target) -> Check {
    let text = json!({ "text": "x" });
    let method = t.call("echo").path("/Conformance/%65cho").json(text.clone());
    expect::error(&method.send().await?, 404, "unknown_method")?;
    let service = t.call("echo").path("/%43onformance/echo").json(text);
    expect::error(&service.send().await?, 404, "unknown_service").map(drop)
}

async fn query_string_is_ignored(t: Target) -> Check {
    let call = t.call("echo").path("/Conformance/echo?x=1&text=no").json(json!({ "text": "q" }));
    expect::ok_eq(&call.send().await?, &json!({ "text": "q", "note": null }))
}

/// A 405 with `Allow: POST`.
async fn not_allowed(t: &Target, verb: &str) -> Check {
    let response = t.call("echo").verb(verb).json(json!({ "text": "x" })).send().await?;
    expect::error(&response, 405, "method_not_allowed")?;
    allows_post(&response)
}

fn allows_post(response: &crate::http::Response) -> Check {
    let allow = response.head.text("allow").unwrap_or_default();
    if allow.split(',').any(|m| m.trim() == "POST") {
        Ok(())
    } else {
        Err(format!("405 without `Allow: POST` (got `{allow}`)"))
    }
}

async fn get_is_405(t: Target) -> Check {
    not_allowed(&t, "GET").await
}

async fn head_is_405_without_body(t: Target) -> Check {
    let response = t.call("echo").verb("HEAD").body("").send().await?;
    expect::equal("status", response.status, 405)?;
    allows_post(&response)?;
    if !response.head.get("content-type").is_some_and(crate::spec::is_json_media_type) {
        return Err("a HEAD 405 without content-type application/json (§4)".to_owned());
    }
    if response.body.is_empty() { Ok(()) } else { Err(format!("HEAD answered with a body: {}", response.body_text())) }
}

async fn options_is_405(t: Target) -> Check {
    not_allowed(&t, "OPTIONS").await
}

async fn other_verbs_are_405(t: Target) -> Check {
    each(["PUT", "DELETE", "PATCH"], |verb| {
        let t = t.clone();
        async move { not_allowed(&t, verb).await }
    })
    .await
}

async fn path_is_checked_before_verb(t: Target) -> Check {
    expect::error(&t.call("echo").path("/NoSuchService/echo").verb("GET").send().await?, 404, "unknown_service")
        .map(drop)
}
