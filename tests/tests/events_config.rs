//! `[events]` (EVENTS.md §7): without it publishers and consumers are setup errors, and
//! its keys are validated strictly, from a file, the environment and the builder.

use std::sync::Arc;

use intercall::Invoker;
use intercall_tests::orders::*;

#[test]
fn publishing_without_an_events_table_is_a_setup_error() {
    let invoker = Invoker::builder().environment(false).build().unwrap();
    let error = OrdersPublisher::new(invoker.clone()).unwrap_err();
    assert!(error.is_config(), "{error}");
    assert!(error.to_string().contains("`[events]`") && error.to_string().contains(".events("), "{error}");
    let consumer = OrdersConsumer::new(invoker, "mailer", Arc::new(Recorder::default()));
    assert!(consumer.is_err_and(|e| e.to_string().contains("`[events]`")));
}

#[test]
fn the_events_table_is_validated_strictly() {
    let cases = [
        ("[events]\nurl = \"redis://127.0.0.1:6379/0\"\nmax_lenn = 5\n", "line 3", "unknown field `max_lenn`"),
        (
            "[events]\nurl = \"redis://127.0.0.1:6379/0\"\nmax_deliveries = 0\n",
            "line 3",
            "`events.max_deliveries` is 0",
        ),
        (
            "[events]\nurl = \"redis://127.0.0.1:6379/0\"\nclaim_idle_ms = -5\n",
            "line 3",
            "`events.claim_idle_ms` is -5",
        ),
        ("[events]\nurl = \"http://127.0.0.1:6379/0\"\n", "line 2", "`events.url` must be a redis:// URL"),
        ("[events]\nurl = \"redis://:secret@[::1/0\"\n", "line 2", "`events.url` is not a valid Redis URL"),
        ("[events]\nmax_len = 5\n", "line 1", "missing field `url`"),
        (
            "[events]\nurl = \"redis://127.0.0.1:6379/0\"\ndone_records = \"batch\"\n",
            "line 3",
            "`events.done_records` is `batch`; write \"per_event\" (the default) or \"per_batch\"",
        ),
        ("[events]\nurl = \"redis://127.0.0.1:6379/0\"\ndone_records = 1\n", "line 3", "invalid type: integer"),
    ];
    for (text, line, expected) in cases {
        let error = Invoker::builder().file(write_temp(text)).environment(false).build().unwrap_err().to_string();
        assert!(error.contains(line) && error.contains(expected), "{text:?}: {error}");
        assert!(!error.contains("secret@"), "a URL is never echoed: {error}");
    }
    let from_env = Invoker::builder()
        .environment_vars([
            ("INTERCALL_EVENTS__URL", "redis://127.0.0.1:6379/0"),
            ("INTERCALL_EVENTS__BATCH_SIZE", "0"),
        ])
        .build()
        .unwrap_err()
        .to_string();
    assert!(from_env.contains("INTERCALL_EVENTS__BATCH_SIZE") && from_env.contains("is 0"), "{from_env}");
    let built = Invoker::builder().events("redis://127.0.0.1:6379/0").events_max_len(0).environment(false).build();
    assert!(built.is_err_and(|e| e.to_string().contains("`events.max_len` is 0")));
}

/// `done_records` from the environment: a string taken as it stands, checked as the
/// file's value (that the override takes effect: `events_done_records.rs`).
#[test]
fn done_records_is_overridden_from_the_environment_and_checked_there_too() {
    let file = write_temp("[events]\nurl = \"redis://127.0.0.1:6379/0\"\ndone_records = \"per_event\"\n");
    let valid =
        Invoker::builder().file(&file).environment_vars([("INTERCALL_EVENTS__DONE_RECORDS", "per_batch")]).build();
    assert!(valid.is_ok(), "{:?}", valid.err());
    let error = Invoker::builder()
        .file(&file)
        .environment_vars([("INTERCALL_EVENTS__DONE_RECORDS", "per-batch")])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("INTERCALL_EVENTS__DONE_RECORDS")
            && error.contains("`events.done_records` is `per-batch`")
            && error.contains("\"per_event\" (the default) or \"per_batch\""),
        "{error}"
    );
}

fn write_temp(text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("intercall-events-{}-{}.toml", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}
