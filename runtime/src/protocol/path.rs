//! §3 Path: `{base}/{service}/{method}`. Service and method names are URL path segments
//! of `[A-Za-z0-9_.-]`; a base URL is `scheme://host[:port][/prefix]`. (The macro checks
//! the same segment rule at compile time, in `macros/src/attr.rs`.)

use hyper::http::Uri;

/// A service or method name becomes a URL path segment, so it is limited to
/// `[A-Za-z0-9_.-]`: nothing that needs percent-encoding, nothing a gateway rewrites.
pub fn check_segment(name: &str) -> Result<(), String> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid { Ok(()) } else { Err("a service name may only use letters, digits, `_`, `.` and `-`".to_owned()) }
}

/// The path a server routes: `/{service}/{method}`.
pub fn route(service: &str, method: &str) -> String {
    format!("/{service}/{method}")
}

/// A validated base URL, parsed once with the parser that later builds the request
/// URIs from it, so that a base that passes validation always makes valid URIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// `scheme://authority[/prefix]`, without a trailing slash.
    text: String,
}

impl BaseUrl {
    /// Checks a base URL: `http` (or `https` with the `tls` feature), a host, an
    /// optional path prefix, and nothing else. The error shows the URL without any
    /// credentials it carries.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let shown = redact(text);
        let text = shown.as_ref();
        let example = "write e.g. \"http://127.0.0.1:8081/\"";
        let uri: Uri = text.parse().map_err(|e| format!("`{text}` is not a valid URL ({e}); {example}"))?;
        let Some(scheme) = uri.scheme_str() else {
            // `localhost:8081` parses as an authority alone: the scheme was left out.
            return Err(format!("`{text}` has no scheme; write \"http://{}\"", text.trim_start_matches('/')));
        };
        match scheme {
            "http" => {}
            "https" if cfg!(feature = "tls") => {}
            "https" => {
                return Err(format!(
                    "`{text}` uses https, which needs intercall's `tls` feature; enable it or use http"
                ));
            }
            other => return Err(format!("`{text}` has scheme `{other}`; write an http:// URL")),
        }
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("`{text}` has no host; {example}"));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(format!(
                "`{text}` has a query or fragment; a base URL is scheme, host, port and an optional path prefix"
            ));
        }
        if authority.contains('@') {
            return Err(format!("`{text}` carries credentials; intercall does not send URL credentials, remove them"));
        }
        let prefix = uri.path().trim_end_matches('/');
        if !prefix.is_ascii() {
            return Err(format!("`{text}` has a path prefix that is not ASCII; percent-encode it"));
        }
        let base = Self { text: format!("{scheme}://{authority}{prefix}") };
        // Joined with segment-safe names, the base must still parse; check it once here
        // rather than trust it at every proxy's construction.
        base.method_uri("s", "m")?;
        Ok(base)
    }

    /// The base URL without a trailing slash.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The URI of one method: `{base}/{service}/{method}`.
    pub(crate) fn method_uri(&self, service: &str, method: &str) -> Result<Uri, String> {
        let text = format!("{}{}", self.text, route(service, method));
        text.parse().map_err(|e| format!("`{text}` is not a valid URL ({e})"))
    }
}

/// The URL text with any `user:password@` replaced by `***@`, found by text rather
/// than by parsing, so that even a URL that does not parse is shown safely.
fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let authority_start = text.find("://").map_or(0, |i| i + 3);
    let authority_len = text[authority_start..].find(['/', '?', '#']).unwrap_or(text.len() - authority_start);
    match text[authority_start..authority_start + authority_len].rfind('@') {
        Some(at) => format!("{}***{}", &text[..authority_start], &text[authority_start + at..]).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        for good in ["Catalog", "catalog-v2", "a.b_c", "0"] {
            assert_eq!(check_segment(good), Ok(()), "{good}");
        }
        for bad in ["", "Katalög", "a/b", "a b", "a%20b", "a?b"] {
            assert!(check_segment(bad).is_err(), "{bad}");
        }
        assert_eq!(route("Catalog", "get"), "/Catalog/get");
    }

    #[test]
    fn base_urls_with_and_without_prefix() {
        let base = BaseUrl::parse("http://127.0.0.1:8081/").unwrap();
        assert_eq!(base.as_str(), "http://127.0.0.1:8081");
        assert_eq!(base.method_uri("Catalog", "get").unwrap(), "http://127.0.0.1:8081/Catalog/get");
        let base = BaseUrl::parse("http://gateway/catalog-v2/").unwrap();
        assert_eq!(base.method_uri("Catalog", "get").unwrap(), "http://gateway/catalog-v2/Catalog/get");
        assert_eq!(BaseUrl::parse("http://[::1]:80").unwrap().as_str(), "http://[::1]:80");
    }

    #[test]
    fn bad_base_urls_are_refused_never_a_panic_later() {
        let refused = |text: &str, expected: &str| {
            let message = BaseUrl::parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
            message
        };
        refused("http://${HOST}:8080/", "not a valid URL");
        refused("localhost:8081", "no scheme");
        refused("ftp://127.0.0.1/", "scheme `ftp`");
        refused("http://127.0.0.1/?x=1", "query");
        refused("http://127.0.0.1/#top", "query or fragment");
        refused("http:///path", "");
        refused("http://host/größe", "percent-encode");
        let message = refused("http://user:hunter2@host/", "credentials");
        assert!(!message.contains("hunter2"), "{message}");
        let message = refused("http://user:hunter2@${HOST}/", "not a valid URL");
        assert!(!message.contains("hunter2"), "{message}");
        #[cfg(not(feature = "tls"))]
        refused("https://127.0.0.1/", "`tls` feature");
    }

    #[test]
    fn credentials_are_hidden_up_to_the_last_at_sign() {
        for text in ["http://user:hunter@2secret@host/", "http://user:hunter@2secret@${HOST}/"] {
            let message = BaseUrl::parse(text).unwrap_err();
            assert!(!message.contains("2secret") && message.contains("***@"), "{message}");
        }
    }
}
