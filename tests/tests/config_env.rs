//! 12-factor configuration: a file, a builder over it, and environment overrides over
//! both (docs/CONFIG.md). The variables are given to the builder, so no test here
//! touches the process environment (`config_process_env.rs` does, alone in its binary).

use std::path::PathBuf;
use std::time::Duration;

use example_api::{Catalog, CatalogError, CatalogProxy};
use example_services::InMemoryCatalog;
use intercall::{Error, Invoker, InvokerBuilder};

/// A config file under the temp dir, named after the process and the test, removed on drop.
struct TempConfig {
    path: PathBuf,
}

impl TempConfig {
    fn new(test: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("intercall-config-env-{}-{test}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write a temp config");
        Self { path }
    }

    fn builder(&self) -> InvokerBuilder {
        Invoker::builder().file(&self.path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

const FILE: &str = r#"[defaults]
timeout_ms = 1000
tries = 2

[services.Catalog]
url = "http://127.0.0.1:8081/"
timeout_ms = 400

[services.Checkout]
url = "http://127.0.0.1:8082/"
"#;

#[track_caller]
fn error(result: Result<Invoker, Error>) -> String {
    match result {
        Ok(invoker) => panic!("accepted: {invoker:?}"),
        Err(err) => {
            assert!(err.is_config(), "{err:?}");
            err.to_string()
        }
    }
}

#[track_caller]
fn assert_mentions(message: &str, needles: &[&str]) {
    let missing: Vec<_> = needles.iter().filter(|n| !message.contains(**n)).collect();
    assert!(missing.is_empty(), "the message lacks {missing:?}:\n{message}");
}

// ---- precedence: defaults < file < builder < environment ---------------------------------

#[test]
fn the_builder_overrides_the_file_key_by_key_and_the_environment_overrides_both() {
    let file = TempConfig::new("precedence", FILE);
    let none: [(&str, &str); 0] = [];
    let invoker = file
        .builder()
        .service_timeout("Catalog", Duration::from_millis(300))
        .service("Search", "http://127.0.0.1:8083/")
        .environment_vars(none)
        .build()
        .unwrap();
    assert_eq!(invoker.timeout("Catalog"), Some(Duration::from_millis(300)), "the builder's over the file's");
    assert_eq!(invoker.base_url("Catalog"), Some("http://127.0.0.1:8081"), "the file's URL stays");
    assert_eq!(invoker.tries("Catalog"), Some(2), "the file's [defaults] stay");
    assert_eq!(invoker.timeout("Checkout"), Some(Duration::from_millis(1000)));
    assert_eq!(invoker.base_url("Search"), Some("http://127.0.0.1:8083"), "a service of the builder's own");

    let invoker = file
        .builder()
        .service_timeout("Catalog", Duration::from_millis(300))
        .environment_vars([
            ("INTERCALL_SERVICES__CATALOG__TIMEOUT_MS", "700"),
            ("INTERCALL_DEFAULTS__TRIES", "5"),
            ("INTERCALL_SERVICES__CHECKOUT__URL", "http://10.0.0.9:9000/prefix/"),
        ])
        .build()
        .unwrap();
    assert_eq!(invoker.timeout("Catalog"), Some(Duration::from_millis(700)), "the environment's over the builder's");
    assert_eq!(invoker.tries("Checkout"), Some(5), "the environment's [defaults] over the file's");
    assert_eq!(invoker.base_url("Checkout"), Some("http://10.0.0.9:9000/prefix"));
}

#[test]
fn environment_off_reads_no_override() {
    let file = TempConfig::new("off", FILE);
    let invoker =
        file.builder().environment_vars([("INTERCALL_DEFAULTS__TRIES", "5")]).environment(false).build().unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(2));
}

#[tokio::test]
async fn an_overridden_url_is_where_the_proxy_calls() {
    let server =
        intercall_tests::spawn(example_api::CatalogServer::new(InMemoryCatalog::default()).into_router()).await;
    // The file's Catalog is a port nothing listens on; the deployment's variable wins.
    let file =
        TempConfig::new("url", &format!("[services.Catalog]\nurl = \"{}\"\n", intercall_tests::dead_url().await));
    let invoker =
        file.builder().environment_vars([("INTERCALL_SERVICES__CATALOG__URL", server.url())]).build().unwrap();
    let catalog = CatalogProxy::new(invoker).unwrap();
    assert_eq!(catalog.get("p-404".into()).await, Err(CatalogError::NotFound { id: "p-404".into() }));
}

// ---- values are TOML values of the key's type ------------------------------------------

#[test]
fn numbers_booleans_floats_and_strings() {
    let file = TempConfig::new("values", FILE);
    let invoker = file
        .builder()
        .environment_vars([
            ("INTERCALL_SERVICES__CATALOG__RETRIES", "false"),
            ("INTERCALL_SERVICES__CATALOG__MAX_REPLY_BYTES", "1024"),
            ("INTERCALL_RETRY_BUDGET__RATIO", "0.5"),
            ("INTERCALL_SERVER__CALL_STORE", "memory"),
            ("INTERCALL_SERVER__ON_STORE_ERROR", "run"),
            // A secret of digits stays a string: string keys are never read as numbers.
            ("INTERCALL_SECURITY__SECRET", "12345678901234567890"),
        ])
        .build()
        .unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(1));
    assert!(invoker.security().is_enabled());
    let settings = invoker.server_settings();
    assert!(settings.call_store.is_some());
    assert_eq!(settings.on_store_error, intercall::calls::OnStoreError::Run);
}

#[test]
fn a_bad_value_names_the_variable_and_says_what_to_write() {
    let file = TempConfig::new("bad-value", FILE);
    let shown = file.path.display().to_string();
    for (variable, value, needles) in [
        ("INTERCALL_DEFAULTS__TIMEOUT_MS", "fast", &["invalid type", "digits for a number"][..]),
        ("INTERCALL_DEFAULTS__TIMEOUT_MS", "0", &["`defaults.timeout_ms` is 0", "at least 1 millisecond"][..]),
        ("INTERCALL_SERVICES__CATALOG__RETRIES", "nope", &["invalid type", "`true` or `false`"][..]),
        ("INTERCALL_SERVICES__CATALOG__URL", "ftp://x/", &["services.Catalog.url", "scheme `ftp`"][..]),
        ("INTERCALL_RETRY_BUDGET__RATIO", "-1", &["retry_budget.ratio", "0 or more"][..]),
        ("INTERCALL_SERVER__ON_STORE_ERROR", "maybe", &["\"fail\" or \"run\""][..]),
    ] {
        let message = error(file.builder().environment_vars([(variable, value)]).build());
        assert_mentions(&message, &[&format!("environment variable `{variable}`")]);
        assert_mentions(&message, needles);
        assert!(!message.contains("line "), "an override has no line in the file: {message}");
        assert!(!message.contains(&shown), "the file is not at fault: {message}");
    }
}

#[test]
fn an_unknown_key_or_table_names_the_variable() {
    let file = TempConfig::new("unknown", FILE);
    let message = error(file.builder().environment_vars([("INTERCALL_SERVICES__CATALOG__TIMEUT_MS", "5")]).build());
    assert_mentions(
        &message,
        &["`INTERCALL_SERVICES__CATALOG__TIMEUT_MS`", "unknown field `timeut_ms`", "`timeout_ms`"],
    );
    let message = error(file.builder().environment_vars([("INTERCALL_DEFAULT__TRIES", "3")]).build());
    assert_mentions(&message, &["`INTERCALL_DEFAULT__TRIES`", "unknown field `default`", "`defaults`"]);
}

#[test]
fn a_short_secret_from_the_environment_is_named_and_not_echoed() {
    let message = error(Invoker::builder().environment_vars([("INTERCALL_SECURITY__SECRET", "hunter2")]).build());
    assert_mentions(&message, &["`INTERCALL_SECURITY__SECRET`", "security.secret", "7 bytes"]);
    assert!(!message.contains("hunter2"), "{message}");
}

// ---- service names ---------------------------------------------------------------------

#[test]
fn a_service_name_matches_in_any_case_and_an_ambiguous_one_is_an_error() {
    let file = TempConfig::new("case", FILE);
    let invoker = file.builder().environment_vars([("INTERCALL_SERVICES__catalog__TRIES", "4")]).build().unwrap();
    assert_eq!(invoker.tries("Catalog"), Some(4));

    let twins = TempConfig::new(
        "twins",
        "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n[services.CATALOG]\nurl = \"http://127.0.0.1:8082/\"\n",
    );
    let message = error(twins.builder().environment_vars([("INTERCALL_SERVICES__catalog__TRIES", "4")]).build());
    assert_mentions(&message, &["`INTERCALL_SERVICES__catalog__TRIES`", "`CATALOG` and `Catalog`", "exact case"]);
    let invoker = twins.builder().environment_vars([("INTERCALL_SERVICES__Catalog__TRIES", "4")]).build().unwrap();
    assert_eq!((invoker.tries("Catalog"), invoker.tries("CATALOG")), (Some(4), Some(3)), "the exact name wins");
}

#[test]
fn a_url_adds_a_service_the_file_does_not_name_exactly_as_written() {
    let file = TempConfig::new("new-service", FILE);
    let invoker = file
        .builder()
        .environment_vars([
            ("INTERCALL_SERVICES__Search__URL", "http://127.0.0.1:8090/"),
            ("INTERCALL_SERVICES__Search__TRIES", "1"),
        ])
        .build()
        .unwrap();
    assert_eq!((invoker.base_url("Search"), invoker.tries("Search")), (Some("http://127.0.0.1:8090"), Some(1)));
    assert_eq!(invoker.base_url("SEARCH"), None, "the name as written, not upper case");

    let message = error(file.builder().environment_vars([("INTERCALL_SERVICES__CATALGO__TRIES", "1")]).build());
    assert_mentions(&message, &["`INTERCALL_SERVICES__CATALGO__TRIES`", "no service `CATALGO`", "Catalog, Checkout"]);
}

// ---- the file's own messages -------------------------------------------------------------

#[test]
fn a_mistake_in_the_file_still_names_its_line_under_a_builder_and_overrides() {
    let file = TempConfig::new("file-line", "[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\ntimeout_ms = 0\n");
    let message = error(file.builder().tries(4).environment_vars([("INTERCALL_DEFAULTS__BACKOFF_MS", "10")]).build());
    assert_mentions(&message, &[&file.path.display().to_string(), "line 3, column 14", "services.Catalog.timeout_ms"]);
    let message = error(file.builder().service_timeout("Catalog", Duration::ZERO).build());
    assert_mentions(&message, &["<builder>", "services.Catalog.timeout_ms", "is 0"]);
    assert!(!message.contains("line "), "{message}");
}

#[test]
fn an_override_fixes_a_mistake_of_the_file() {
    // The override replaces the value before validation: only the result is checked.
    let file = TempConfig::new("fixed", "[services.Catalog]\nurl = \"http://${CATALOG_HOST}:8081/\"\n");
    let message = error(file.builder().environment_vars([("OTHER", "x")]).build());
    assert_mentions(&message, &["line 2", "`${CATALOG_HOST}`", "INTERCALL_SERVICES__Catalog__URL"]);
    let invoker = file
        .builder()
        .environment_vars([("INTERCALL_SERVICES__Catalog__URL", "http://10.1.2.3:8081/")])
        .build()
        .unwrap();
    assert_eq!(invoker.base_url("Catalog"), Some("http://10.1.2.3:8081"));
}

#[test]
fn a_missing_file_under_a_builder_is_named() {
    let path = std::env::temp_dir().join(format!("intercall-config-env-{}-missing.toml", std::process::id()));
    let message = error(Invoker::builder().file(&path).build());
    assert_mentions(&message, &["cannot read services config", &path.display().to_string()]);
}

#[test]
fn a_setting_for_a_service_without_a_url_anywhere_is_named() {
    let file = TempConfig::new("no-url", FILE);
    let message = error(file.builder().service_tries("Catalgo", 2).build());
    assert_mentions(&message, &["`Catalgo`", "no URL"]);
    // The file's URL is enough for the builder's setting.
    assert_eq!(file.builder().service_tries("Checkout", 7).build().unwrap().tries("Checkout"), Some(7));
}
