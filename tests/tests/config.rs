//! `services.toml` and the builder: what a valid configuration yields, and that every
//! mistake is a start-up `Error` naming the source, the line, the column and the key.

use std::path::PathBuf;
use std::time::Duration;

use example_api::{CatalogError, CatalogProxy};
use intercall::{CallError, DEFAULT_TIMEOUT, Error, Invoker, SERVICES_ENV};

/// A config file under the temp dir, named after the process and the test, removed on drop.
struct TempConfig {
    path: PathBuf,
}

impl TempConfig {
    fn new(test: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("intercall-config-{}-{test}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write a temp config");
        Self { path }
    }

    /// The path as an error message prints it.
    fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fails unless `message` contains every one of `needles`, showing the whole message.
#[track_caller]
fn assert_mentions(message: &str, needles: &[&str]) {
    let missing: Vec<_> = needles.iter().filter(|n| !message.contains(**n)).collect();
    assert!(missing.is_empty(), "the message lacks {missing:?}:\n{message}");
}

/// Loads `text` from a temp file, expects a config error, and checks that its message
/// names the file and every one of `needles`.
#[track_caller]
fn rejected(test: &str, text: &str, needles: &[&str]) -> String {
    let file = TempConfig::new(test, text);
    let err = match Invoker::from_file(&file.path) {
        Ok(invoker) => panic!("{test}: accepted an invalid config: {invoker:?}"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(err.is_config() && !err.is_lookup(), "{test}: not a config error: {err:?}");
    assert_mentions(&message, &[&file.shown()]);
    assert_mentions(&message, needles);
    message
}

#[track_caller]
fn builder_error(result: Result<Invoker, Error>) -> String {
    match result {
        Ok(invoker) => panic!("the builder accepted invalid settings: {invoker:?}"),
        Err(err) => {
            assert!(err.is_config(), "not a config error: {err:?}");
            let message = err.to_string();
            assert_mentions(&message, &["<builder>"]);
            message
        }
    }
}

// ---- a valid file ------------------------------------------------------------------

#[test]
fn a_valid_file_gives_urls_and_timeouts() {
    let file = TempConfig::new(
        "valid",
        r#"
[defaults]
timeout_ms = 1500

[services.Catalog]
url = "http://127.0.0.1:8081/"
timeout_ms = 250

[services.Checkout]
url = "http://127.0.0.1:8082"

[services.Search]
url = "http://search.internal:9000/api/v1/"
"#,
    );
    let invoker = Invoker::from_file(&file.path).unwrap_or_else(|e| panic!("a valid config was rejected: {e}"));

    assert_eq!(invoker.timeout("Catalog"), Some(Duration::from_millis(250)), "the per-service override");
    assert_eq!(invoker.timeout("Checkout"), Some(Duration::from_millis(1500)), "inherited from [defaults]");
    assert_eq!(invoker.timeout("Search"), Some(Duration::from_millis(1500)), "inherited from [defaults]");

    assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"), "trailing slash removed");
    assert_eq!(invoker.base_url("Checkout"), Some("http://127.0.0.1:8082"), "no trailing slash given");
    assert_eq!(invoker.base_url("Search"), Some("http://search.internal:9000/api/v1"), "path prefix kept");

    assert_eq!(invoker.base_url("Billing"), None);
    assert_eq!(invoker.timeout("Billing"), None);
}

#[test]
fn without_defaults_a_service_gets_the_default_timeout() {
    let invoker = Invoker::from_toml("[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n").unwrap();
    assert_eq!(invoker.timeout("Catalog"), Some(DEFAULT_TIMEOUT));
    assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"));
}

// ---- every mistake in a file -----------------------------------------------------------

#[test]
fn unknown_top_level_key() {
    let text = "[defaults]\ntimeout_ms = 1000\n\n[servics.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n";
    rejected("unknown-top-level", text, &["line 4", "column 2", "servics"]);
}

#[test]
fn unknown_key_in_defaults() {
    // `retries` is a real key now, so the typo is `retry`; the trailing `:` keeps
    // `column 1` from matching `column 11`.
    let text = "[defaults]\ntimeout_ms = 1000\n\nretry = 3\n";
    rejected("unknown-in-defaults", text, &["line 4, column 1:", "defaults.retry", "unknown field `retry`"]);
}

#[test]
fn unknown_key_in_a_service() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n\ntimeut_ms = 500\n";
    rejected("unknown-in-service", text, &["line 4, column 1", "timeut_ms"]);
}

#[test]
fn missing_url() {
    let text = "[defaults]\ntimeout_ms = 1000\n\n[services.Catalog]\ntimeout_ms = 500\n";
    rejected("missing-url", text, &["line 4, column 1", "`url`"]);
}

#[test]
fn malformed_url() {
    let text = "[services.Catalog]\ntimeout_ms = 500\n\nurl = \"http//127.0.0.1:8081/\"\n";
    rejected(
        "malformed-url",
        text,
        &["line 4, column 7", "services.Catalog.url", "http//127.0.0.1:8081/", "not a valid URL"],
    );
}

#[test]
fn non_http_scheme() {
    let text = "[services.Catalog]\ntimeout_ms = 500\n\nurl = \"ftp://127.0.0.1:8081/\"\n";
    rejected("ftp-scheme", text, &["line 4, column 7", "services.Catalog.url", "scheme `ftp`"]);
}

/// Without intercall's `tls` feature (this crate's `tls` feature forwards it, so
/// `--all-features` turns both on), an https URL is a start-up error naming the feature.
#[cfg(not(feature = "tls"))]
#[test]
fn https_needs_the_tls_feature() {
    // The workspace's test build has the feature (`tls`, a default feature of this
    // crate); `--no-default-features` builds without it.
    let text = "[services.Catalog]\ntimeout_ms = 500\n\nurl = \"https://127.0.0.1:8081/\"\n";
    #[cfg(not(feature = "tls"))]
    rejected("https-without-tls", text, &["line 4, column 7", "services.Catalog.url", "https", "`tls` feature"]);
    #[cfg(feature = "tls")]
    assert_eq!(
        Invoker::from_toml(text).expect("https with the feature").base_url("Catalog"),
        Some("https://127.0.0.1:8081")
    );
}

/// With the `tls` feature, the same https URL is accepted.
#[cfg(feature = "tls")]
#[test]
fn https_is_accepted_with_the_tls_feature() {
    let file = TempConfig::new("https-with-tls", "[services.Catalog]\nurl = \"https://127.0.0.1:8081/\"\n");
    let invoker = Invoker::from_file(&file.path).expect("https is valid with the tls feature");
    assert_eq!(invoker.base_url("Catalog"), Some("https://127.0.0.1:8081"));
}

#[test]
fn zero_timeout_in_defaults() {
    let text = "[defaults]\n\n\ntimeout_ms = 0\n";
    rejected("zero-default-timeout", text, &["line 4, column 14", "defaults.timeout_ms", "is 0"]);
}

#[test]
fn zero_timeout_in_a_service() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n\ntimeout_ms = 0\n";
    rejected("zero-service-timeout", text, &["line 4, column 14", "services.Catalog.timeout_ms", "is 0"]);
}

#[test]
fn wrong_value_type() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n\ntimeout_ms = \"fast\"\n";
    rejected("wrong-type", text, &["line 4, column 14", "timeout_ms", "\"fast\""]);
}

#[test]
fn service_name_that_is_not_a_path_segment() {
    let text = "[defaults]\ntimeout_ms = 1000\n\n[services.\"Cat/alog\"]\nurl = \"http://127.0.0.1:8081/\"\n";
    rejected("slash-in-name", text, &["line 4, column 1:", "services.Cat/alog", "may only use"]);
}

#[test]
fn url_with_a_query_string() {
    let text = "[services.Catalog]\ntimeout_ms = 500\n\nurl = \"http://127.0.0.1:8081/?region=eu\"\n";
    rejected("query-string", text, &["line 4, column 7", "services.Catalog.url", "query"]);
}

#[test]
fn url_with_credentials_does_not_echo_the_password() {
    let text = "[services.Catalog]\ntimeout_ms = 500\n\nurl = \"http://admin:hunter2@127.0.0.1:8081/\"\n";
    let message = rejected("credentials", text, &["line 4, column 7", "services.Catalog.url", "credentials"]);
    assert!(!message.contains("hunter2"), "the password leaks into the message:\n{message}");
}

/// A URL with credentials *and* another mistake must not leak the password either:
/// every URL check runs before the credentials check and echoes the URL verbatim.
#[test]
fn url_with_credentials_and_another_mistake_does_not_echo_the_password() {
    let cases = [
        ("credentials-query", "http://admin:hunter2@127.0.0.1:8081/?region=eu"),
        ("credentials-ftp", "ftp://admin:hunter2@127.0.0.1:8081/"),
        ("credentials-https", "https://admin:hunter2@127.0.0.1:8081/"),
        ("credentials-bad-port", "http://admin:hunter2@127.0.0.1:99999/"),
    ];
    let mut leaks = Vec::new();
    for (test, url) in cases {
        let text = format!("[services.Catalog]\ntimeout_ms = 500\n\nurl = \"{url}\"\n");
        let message = rejected(test, &text, &["line 4, column 7", "services.Catalog.url"]);
        if message.contains("hunter2") {
            leaks.push(message);
        }
    }
    assert!(leaks.is_empty(), "the password leaks into {} message(s):\n{}", leaks.len(), leaks.join("\n"));
}

#[test]
fn toml_syntax_error() {
    let text = "[defaults]\ntimeout_ms = 1000\n\n[services.Catalog\nurl = \"http://127.0.0.1:8081/\"\n";
    rejected("syntax-error", text, &["line 4, column 18", "expected `]`"]);
}

#[test]
fn a_missing_file_is_named() {
    let path = std::env::temp_dir().join(format!("intercall-config-{}-does-not-exist.toml", std::process::id()));
    let err = Invoker::from_file(&path).expect_err("a missing file");
    assert!(err.is_config(), "{err:?}");
    assert_mentions(&err.to_string(), &[&path.display().to_string()]);
}

// ---- retry settings in a file --------------------------------------------------------------

#[test]
fn tries_are_inherited_from_defaults_and_overridden_per_service() {
    let file = TempConfig::new(
        "tries-inherited",
        r#"
[defaults]
timeout_ms = 1500
tries = 5
backoff_ms = 20
max_backoff_ms = 400

[services.Catalog]
url = "http://127.0.0.1:8081/"
tries = 2
backoff_ms = 100
max_backoff_ms = 2000

[services.Checkout]
url = "http://127.0.0.1:8082/"

[retry_budget]
ratio = 0.5
burst = 3
"#,
    );
    let invoker = Invoker::from_file(&file.path).unwrap_or_else(|e| panic!("a valid config was rejected: {e}"));
    assert_eq!(invoker.tries("Catalog"), Some(2), "the per-service override");
    assert_eq!(invoker.tries("Checkout"), Some(5), "inherited from [defaults]");
    assert_eq!(invoker.timeout("Checkout"), Some(Duration::from_millis(1500)));
    assert_eq!(invoker.tries("Billing"), None);
}

#[test]
fn without_retry_settings_a_service_gets_three_tries() {
    let invoker = Invoker::from_toml("[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n").unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(3));
}

#[test]
fn retries_off_in_a_service_gives_one_try() {
    let text = r#"
[services.Payments]
url = "http://mesh.local/payments/"
retries = false

[services.Catalog]
url = "http://127.0.0.1:8081/"
"#;
    let invoker = Invoker::from_toml(text).unwrap_or_else(|e| panic!("a valid config was rejected: {e}"));
    assert_eq!(invoker.tries("Payments"), Some(1), "retries = false");
    assert_eq!(invoker.tries("Catalog"), Some(3), "the built-in default");
}

#[test]
fn retries_on_in_a_service_overrides_retries_off_in_defaults() {
    let text = r#"
[defaults]
tries = 4
retries = false

[services.Payments]
url = "http://mesh.local/payments/"

[services.Catalog]
url = "http://127.0.0.1:8081/"
retries = true
"#;
    let invoker = Invoker::from_toml(text).unwrap_or_else(|e| panic!("a valid config was rejected: {e}"));
    assert_eq!(invoker.tries("Payments"), Some(1), "retries = false inherited from [defaults]");
    assert_eq!(invoker.tries("Catalog"), Some(4), "retries = true gets the default tries back");
}

#[test]
fn zero_tries_in_defaults() {
    let text = "[defaults]\ntimeout_ms = 1000\n\ntries = 0\n\n[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n";
    rejected("zero-default-tries", text, &["line 4, column 9", "defaults.tries", "is 0"]);
}

#[test]
fn zero_tries_in_a_service() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n\ntries = 0\n";
    rejected("zero-service-tries", text, &["line 4, column 9", "services.Catalog.tries", "is 0"]);
}

#[test]
fn a_mistake_in_defaults_is_reported_without_any_service() {
    let text = "[defaults]\ntimeout_ms = 1000\n\ntries = 0\n";
    rejected("defaults-only-tries", text, &["line 4, column 9", "defaults.tries", "is 0"]);

    let text = "[defaults]\ntimeout_ms = 1000\n\nbackoff_ms = 5000\n";
    rejected("defaults-only-backoff", text, &["line 4", "defaults.backoff_ms", "5000 ms", "1000 ms"]);
}

#[test]
fn backoff_above_its_maximum_in_a_service() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\nbackoff_ms = 500\n\nmax_backoff_ms = 100\n";
    rejected("backoff-above-max", text, &["line 5, column 18", "services.Catalog.max_backoff_ms", "500 ms", "100 ms"]);
}

#[test]
fn backoff_above_its_maximum_in_defaults() {
    let text = "[defaults]\nbackoff_ms = 800\n\nmax_backoff_ms = 200\n";
    rejected("default-backoff-above-max", text, &["line 4, column 18", "defaults.max_backoff_ms", "800 ms", "200 ms"]);
}

/// Only the service's own `backoff_ms` makes this file wrong ([defaults] alone is valid),
/// so the message must lead to that service, not only to the shared maximum.
#[test]
fn a_service_backoff_above_the_default_maximum_names_the_service() {
    let text =
        "[defaults]\nmax_backoff_ms = 100\n\n[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\nbackoff_ms = 500\n";
    rejected(
        "service-backoff-above-default-max",
        text,
        &["line 6, column 14", "services.Catalog.backoff_ms", "500 ms", "100 ms"],
    );
}

#[test]
fn negative_retry_budget_ratio() {
    let text = "[retry_budget]\nburst = 5\n\nratio = -1.0\n";
    rejected("negative-ratio", text, &["line 4, column 9", "retry_budget.ratio", "-1"]);
}

#[test]
fn unknown_key_in_retry_budget() {
    let text = "[retry_budget]\nratio = 0.2\n\nbursts = 5\n";
    rejected("unknown-in-budget", text, &["line 4, column 1:", "retry_budget.bursts", "unknown field `bursts`"]);
}

#[test]
fn tries_of_the_wrong_type() {
    let text = "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n\ntries = -1\n";
    rejected("negative-tries", text, &["line 4, column 9", "services.Catalog.tries", "-1"]);

    let text = "[defaults]\ntimeout_ms = 1000\n\ntries = \"x\"\n";
    rejected("string-tries", text, &["line 4, column 9", "defaults.tries", "\"x\""]);
}

#[test]
fn retries_of_the_wrong_type() {
    let text = "[defaults]\ntimeout_ms = 1000\n\nretries = 3\n";
    rejected("integer-retries", text, &["line 4, column 11", "defaults.retries", "boolean"]);
}

// ---- inline TOML and the builder -----------------------------------------------------------

#[test]
fn inline_toml_errors_say_inline_toml() {
    let err = Invoker::from_toml("[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\ntimeut_ms = 5\n")
        .expect_err("a typo");
    assert!(err.is_config(), "{err:?}");
    assert_mentions(&err.to_string(), &["<inline TOML>", "line 3, column 1", "timeut_ms"]);

    let err = Invoker::from_toml("[defaults]\ntimeout_ms = 0\n").expect_err("a zero timeout");
    assert_mentions(&err.to_string(), &["<inline TOML>", "line 2", "defaults.timeout_ms"]);
}

#[test]
fn builder_rejects_a_zero_default_timeout() {
    let message =
        builder_error(Invoker::builder().timeout(Duration::ZERO).service("Catalog", "http://127.0.0.1:8081/").build());
    assert_mentions(&message, &["<builder>", "`defaults.timeout_ms` is 0"]);
    assert!(!message.contains("line"), "a builder has no lines: {message}");
}

#[test]
fn builder_rejects_a_zero_service_timeout() {
    let message = builder_error(
        Invoker::builder()
            .service("Catalog", "http://127.0.0.1:8081/")
            .service_timeout("Catalog", Duration::ZERO)
            .build(),
    );
    assert_mentions(&message, &["Catalog", "is 0"]);
}

#[test]
fn builder_rejects_a_bad_url() {
    let message = builder_error(Invoker::builder().service("Catalog", "ftp://127.0.0.1:8081/").build());
    assert_mentions(&message, &["Catalog", "ftp://127.0.0.1:8081/", "scheme `ftp`"]);

    let message = builder_error(Invoker::builder().service("Catalog", "127.0.0.1:8081").build());
    assert_mentions(&message, &["Catalog", "127.0.0.1:8081"]);
}

#[test]
fn builder_rejects_a_timeout_for_an_unknown_service() {
    let message = builder_error(
        Invoker::builder()
            .service("Catalog", "http://127.0.0.1:8081/")
            .service_timeout("Catalgo", Duration::from_millis(100))
            .build(),
    );
    assert_mentions(&message, &["Catalgo", "no URL"]);
}

#[test]
fn builder_rejects_a_bad_service_name() {
    let message = builder_error(Invoker::builder().service("Cat/alog", "http://127.0.0.1:8081/").build());
    assert_mentions(&message, &["Cat/alog", "may only use"]);
}

#[test]
fn builder_builds_what_it_is_told() {
    let invoker = Invoker::builder()
        .timeout(Duration::from_millis(900))
        .service("Catalog", "http://127.0.0.1:8081/shop/")
        .service("Checkout", "http://127.0.0.1:8082")
        .service_timeout("Checkout", Duration::from_millis(30))
        .build()
        .unwrap();
    assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081/shop"));
    assert_eq!(invoker.timeout("Catalog"), Some(Duration::from_millis(900)));
    assert_eq!(invoker.timeout("Checkout"), Some(Duration::from_millis(30)));
}

#[test]
fn builder_rejects_zero_tries() {
    let message = builder_error(Invoker::builder().tries(0).service("Catalog", "http://127.0.0.1:8081/").build());
    assert_mentions(&message, &["tries", "is 0"]);
}

#[test]
fn builder_rejects_a_backoff_above_its_maximum() {
    let message = builder_error(
        Invoker::builder()
            .backoff(Duration::from_secs(2), Duration::from_secs(1))
            .service("Catalog", "http://127.0.0.1:8081/")
            .build(),
    );
    assert_mentions(&message, &["backoff", "2000 ms", "1000 ms"]);
}

#[test]
fn builder_rejects_a_negative_retry_budget_ratio() {
    let message =
        builder_error(Invoker::builder().retry_budget(-0.5, 1).service("Catalog", "http://127.0.0.1:8081/").build());
    assert_mentions(&message, &["ratio", "-0.5"]);
}

#[test]
fn builder_rejects_retries_for_an_unknown_service() {
    let message = builder_error(
        Invoker::builder().service("Catalog", "http://127.0.0.1:8081/").service_retries("Nope", false).build(),
    );
    assert_mentions(&message, &["`Nope`", "no URL"]);
}

#[test]
fn builder_sets_tries_and_retries() {
    let invoker = Invoker::builder()
        .tries(4)
        .backoff(Duration::from_millis(10), Duration::from_millis(10))
        .retry_budget(0.0, 0)
        .service("Catalog", "http://127.0.0.1:8081/")
        .service("Payments", "http://mesh.local/payments/")
        .service_retries("Payments", false)
        .build()
        .unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(4));
    assert_eq!(invoker.tries("Payments"), Some(1));

    let invoker = Invoker::builder()
        .retries(false)
        .service("Catalog", "http://127.0.0.1:8081/")
        .service("Checkout", "http://127.0.0.1:8082/")
        .service_retries("Checkout", true)
        .build()
        .unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(1));
    assert_eq!(invoker.tries("Checkout"), Some(3));
}

#[test]
fn builder_and_file_share_one_validator() {
    // The same mistake, made in a file and in a builder, gets the same message (the
    // file's names its position too).
    let pairs: [(&str, intercall::InvokerBuilder); 4] = [
        ("[defaults]\nmax_reply_bytes = 0\n", Invoker::builder().max_reply_bytes(0)),
        ("[server]\ncall_store = \"nope\"\n", Invoker::builder().call_store("nope")),
        ("[server]\ncall_store_prefix = \"x:\"\n", Invoker::builder().call_store_prefix("x:")),
        (
            "[services.Catalog]\nurl = \"http://127.0.0.1:1/\"\ntries = 0\n",
            Invoker::builder().service("Catalog", "http://127.0.0.1:1/").service_tries("Catalog", 0),
        ),
    ];
    for (text, builder) in pairs {
        let from_file = Invoker::from_toml(text).expect_err(text).to_string();
        let from_builder = builder.build().expect_err(text).to_string();
        let (_, file_reason) = from_file.split_once("column ").expect("a position");
        let file_reason = file_reason.split_once(": ").expect("a reason").1;
        let builder_reason = from_builder.split_once("`<builder>`: ").expect("the source").1;
        assert_eq!(file_reason, builder_reason, "{text}");
    }
}

#[test]
fn builder_sets_what_the_file_sets() {
    let invoker = Invoker::builder()
        .service("Catalog", "http://127.0.0.1:8081/")
        .service_max_reply_bytes("Catalog", 10)
        .service_backoff("Catalog", Duration::from_millis(5), Duration::from_millis(6))
        .call_store("memory")
        .call_store_capacity(10)
        .call_ttl(Duration::from_secs(1))
        .on_store_error(intercall::calls::OnStoreError::Run)
        .build()
        .unwrap();
    let settings = invoker.server_settings();
    assert!(settings.call_store.is_some(), "a memory store of the node's own");
    assert_eq!(settings.on_store_error, intercall::calls::OnStoreError::Run);
}

#[test]
fn a_placeholder_in_a_url_is_a_startup_error_not_a_panic() {
    // Refused, not expanded: the message says which variable overrides the key instead.
    let err = Invoker::from_toml("[services.Catalog]\nurl = \"http://${HOST}:8080/\"\n").expect_err("a placeholder");
    assert_mentions(
        &err.to_string(),
        &[
            "line 2, column 7",
            "services.Catalog.url",
            "`${HOST}`",
            "does not expand",
            "INTERCALL_SERVICES__Catalog__URL",
        ],
    );
    let err = Invoker::builder().service("Catalog", "http://${HOST}:8080/").build().expect_err("a placeholder");
    assert_mentions(&err.to_string(), &["<builder>", "services.Catalog.url", "`${HOST}`", "does not expand"]);
}

// ---- the environment variable ------------------------------------------------------------

#[test]
fn from_env_reads_the_file_named_by_intercall_services() {
    let file =
        TempConfig::new("from-env", "[services.Catalog]\nurl = \"http://10.0.0.7:8081/prefix/\"\ntimeout_ms = 42\n");
    assert_eq!(SERVICES_ENV, "INTERCALL_SERVICES");
    // SAFETY: this is the only test in this binary that reads or writes
    // INTERCALL_SERVICES (or any environment variable), so no other thread races it.
    unsafe { std::env::set_var(SERVICES_ENV, &file.path) };
    let result = Invoker::from_env();
    // SAFETY: as above.
    unsafe { std::env::remove_var(SERVICES_ENV) };

    let invoker = result.unwrap_or_else(|e| panic!("from_env did not read {}: {e}", file.shown()));
    assert_eq!(invoker.base_url("Catalog"), Some("http://10.0.0.7:8081/prefix"));
    assert_eq!(invoker.timeout("Catalog"), Some(Duration::from_millis(42)));
}

// ---- lookup ----------------------------------------------------------------------------------

#[test]
fn a_proxy_for_a_service_without_an_entry_is_a_lookup_error() {
    let file = TempConfig::new("lookup", "[services.Checkout]\nurl = \"http://127.0.0.1:8082/\"\n");
    let invoker = Invoker::from_file(&file.path).unwrap();
    let err = match CatalogProxy::new(invoker) {
        Ok(proxy) => panic!("a proxy without a URL: {proxy:?}"),
        Err(err) => err,
    };
    assert!(err.is_lookup() && !err.is_config(), "{err:?}");
    assert_mentions(&err.to_string(), &["`Catalog`", "[services.Catalog]", &file.shown()]);
}

#[test]
fn a_setup_error_converts_into_a_lookup_call_error() {
    let invoker = Invoker::builder().service("Checkout", "http://127.0.0.1:8082/").build().unwrap();
    let err = CatalogProxy::new(invoker).expect_err("no Catalog entry");
    let text = err.to_string();

    let call = CallError::from(err);
    assert!(call.is_lookup(), "{call:?}");
    assert!(
        !(call.is_timeout() || call.is_connect() || call.is_status() || call.is_decode() || call.is_encode()),
        "{call:?}"
    );
    assert_eq!(call.status_code(), None);
    assert_mentions(&call.to_string(), &["Catalog", "<builder>"]);
    assert_mentions(call.message(), &[&text]);

    // ...and so into a service's error type.
    match CatalogError::from(call) {
        CatalogError::Unavailable(inner) => assert!(inner.is_lookup(), "{inner:?}"),
        other => panic!("not Unavailable: {other:?}"),
    }
}

// ---- [security] -------------------------------------------------------------------

#[test]
fn a_security_table_enables_signing() {
    let text = "[security]\nsecret = \"0123456789abcdef-long-enough\"\nmax_age_ms = 60000\n";
    let invoker = Invoker::from_toml(text).unwrap();
    assert!(invoker.security().is_enabled());
    let debug = format!("{:?}", invoker.security());
    assert!(!debug.contains("0123456789abcdef"), "Debug shows the secret: {debug}");
}

#[test]
fn a_short_secret_is_rejected_without_being_echoed() {
    let message =
        rejected("short-secret", "[security]\nsecret = \"hunter2\"\n", &["line 2", "security.secret", "7 bytes"]);
    assert!(!message.contains("hunter2"), "the secret leaked: {message}");
}

#[test]
fn a_short_accepted_secret_is_rejected_without_being_echoed() {
    let text = "[security]\nsecret = \"0123456789abcdef-long-enough\"\naccepted_secret = \"tiny-pw\"\n";
    let message = rejected("short-accepted", text, &["line 3", "security.accepted_secret"]);
    assert!(!message.contains("tiny-pw") && !message.contains("0123456789abcdef"), "a secret leaked: {message}");
}

/// Issue 17 item 5: a secret of the wrong type (an integer, a float, a date...) was
/// echoed in the type error ("invalid type: integer `1234...`"). No config error may
/// show a secret value, whatever its type.
#[test]
fn a_secret_of_the_wrong_type_is_rejected_without_being_echoed() {
    let values = [
        ("1234567890123456789", "1234567890123456789"),
        ("98765432109876543210987", "98765432109876543210987"),
        ("3.14159265358979", "3.14159265358979"),
        ("0x7fa3b2c1d4e5", "7fa3b2c1d4e5"),
        ("1979-05-27T07:32:00Z", "1979-05-27"),
        ("[\"hunter2hunter2hunter2\"]", "hunter2"),
        ("{ value = \"hunter2hunter2hunter2\" }", "hunter2"),
        ("true", "true"),
    ];
    for (key, line) in [("secret", 2), ("accepted_secret", 3)] {
        for (i, (value, shown)) in values.iter().enumerate() {
            let text = match key {
                "secret" => format!("[security]\nsecret = {value}\n"),
                _ => format!("[security]\nsecret = \"0123456789abcdef-long-enough\"\naccepted_secret = {value}\n"),
            };
            let message =
                rejected(&format!("typed-{key}-{i}"), &text, &[&format!("line {line}"), &format!("security.{key}")]);
            assert!(!message.contains(shown), "the secret `{value}` leaked: {message}");
            assert!(!message.contains("0123456789abcdef"), "the other secret leaked: {message}");
        }
    }
    // TOML syntax errors in a secret (unquoted, unterminated) name a position, not the text.
    for (i, value) in ["hunter2hunter2hunter2", "\"hunter2hunter2hunter2", "'hunter2hunter2hunter2"].iter().enumerate()
    {
        let message = rejected(&format!("syntax-secret-{i}"), &format!("[security]\nsecret = {value}\n"), &["line 2"]);
        assert!(!message.contains("hunter2"), "the secret `{value}` leaked: {message}");
    }
}

#[test]
fn security_mistakes_name_the_key() {
    let text = "[security]\nsecret = \"0123456789abcdef-long-enough\"\nmax_age_ms = 0\n";
    rejected("zero-max-age", text, &["line 3", "security.max_age_ms", "is 0"]);
    let text = "[security]\nsecret = \"0123456789abcdef-long-enough\"\nsecrets = []\n";
    rejected("unknown-security-key", text, &["line 3", "secrets"]);
    rejected("missing-secret", "[security]\nmax_age_ms = 1000\n", &["line 1", "secret"]);
}

#[test]
fn a_zero_reply_limit_is_rejected() {
    let text = "[defaults]\nmax_reply_bytes = 0\n\n[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n";
    rejected("zero-reply-limit", text, &["line 2", "defaults.max_reply_bytes", "is 0"]);
}

#[test]
fn builder_quotes_strings_as_toml_strings() {
    // A quote or a backslash reaches the validator as written, not as a TOML syntax error.
    let message = builder_error(Invoker::builder().service("Cat\"alog", "http://127.0.0.1:8081/").build());
    assert_mentions(&message, &["Cat\"alog", "may only use"]);
    let invoker = Invoker::builder().service("Catalog", "http://127.0.0.1:8081/a\\b").build().unwrap();
    assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081/a\\b"));
    // Control characters, DEL among them, reach the validator too.
    for name in ["Cat\u{7f}alog", "Cat\nalog", "Cat\u{0}alog"] {
        let message = builder_error(Invoker::builder().service(name, "http://127.0.0.1:8081/").build());
        assert_mentions(&message, &["may only use"]);
    }
}

#[test]
fn builder_writes_floats_as_toml_floats() {
    // A ratio whose decimal digits would overflow a TOML integer is still a float.
    let from_file = Invoker::from_toml("[retry_budget]\nratio = 1e20\nburst = 1\n");
    assert!(from_file.is_ok(), "{from_file:?}");
    let built = Invoker::builder().retry_budget(1e20, 1).service("Catalog", "http://127.0.0.1:8081/").build();
    assert!(built.is_ok(), "{built:?}");
}

// ---- [server] connection settings ---------------------------------------------------

#[test]
fn server_connection_settings_reach_the_serve_options() {
    let text = "[server]\nheader_read_timeout_ms = 1500\nbody_read_timeout_ms = 2500\nidle_timeout_ms = 3500\nmax_connections = 42\n";
    let options = Invoker::from_toml(text).unwrap().server_settings().serve_options;
    assert_eq!(options.get_header_read_timeout(), Duration::from_millis(1500));
    assert_eq!(options.get_body_read_timeout(), Duration::from_millis(2500));
    assert_eq!(options.get_idle_timeout(), Duration::from_millis(3500));
    assert_eq!(options.get_max_connections(), Some(42));
    let built = Invoker::builder()
        .header_read_timeout(Duration::from_millis(1500))
        .body_read_timeout(Duration::from_millis(2500))
        .idle_timeout(Duration::from_millis(3500))
        .max_connections(42)
        .build()
        .unwrap();
    assert_eq!(built.server_settings().serve_options, options);
    assert_eq!(Invoker::from_toml("").unwrap().server_settings().serve_options, intercall::ServeOptions::default());
}

#[test]
fn zero_or_negative_connection_settings_are_refused_by_key() {
    for key in ["header_read_timeout_ms", "body_read_timeout_ms", "idle_timeout_ms", "max_connections"] {
        for value in ["0", "-5"] {
            let text = format!("[server]\n{key} = {value}\n");
            rejected(&format!("{key}-{value}"), &text, &["line 2", &format!("server.{key}"), &format!("is {value}")]);
        }
        let message = builder_error(match key {
            "max_connections" => Invoker::builder().max_connections(0).build(),
            "idle_timeout_ms" => Invoker::builder().idle_timeout(Duration::ZERO).build(),
            "body_read_timeout_ms" => Invoker::builder().body_read_timeout(Duration::ZERO).build(),
            _ => Invoker::builder().header_read_timeout(Duration::ZERO).build(),
        });
        assert_mentions(&message, &[&format!("server.{key}"), "is 0"]);
    }
}
