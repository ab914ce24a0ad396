//! The real environment: `from_file`, `from_toml`, `from_env` and the builder read the
//! process's `INTERCALL_*__*` variables, and `environment(false)` does not. This is the
//! only test of its binary, so setting variables races no other thread.

use std::time::Duration;

use intercall::Invoker;

const TEXT: &str = "[defaults]\ntimeout_ms = 1000\n\n[services.Catalog]\nurl = \"http://127.0.0.1:8081/\"\n";

#[test]
fn every_constructor_reads_the_process_environment_unless_told_not_to() {
    let path = std::env::temp_dir().join(format!("intercall-config-process-env-{}.toml", std::process::id()));
    std::fs::write(&path, TEXT).unwrap();
    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe {
        std::env::set_var("INTERCALL_SERVICES__CATALOG__TIMEOUT_MS", "250");
        std::env::set_var(intercall::SERVICES_ENV, &path);
    }
    let expected = Some(Duration::from_millis(250));
    let from_file = Invoker::from_file(&path).unwrap();
    let from_toml = Invoker::from_toml(TEXT).unwrap();
    let from_env = Invoker::from_env().unwrap();
    let built = Invoker::builder().service("Catalog", "http://127.0.0.1:8081/").build().unwrap();
    let off = Invoker::builder().file(&path).environment(false).build().unwrap();
    // SAFETY: as above.
    unsafe {
        std::env::remove_var("INTERCALL_SERVICES__CATALOG__TIMEOUT_MS");
        std::env::remove_var(intercall::SERVICES_ENV);
    }
    let _ = std::fs::remove_file(&path);

    assert_eq!(from_file.timeout("Catalog"), expected, "from_file");
    assert_eq!(from_toml.timeout("Catalog"), expected, "from_toml");
    assert_eq!(from_env.timeout("Catalog"), expected, "from_env");
    assert_eq!(built.timeout("Catalog"), expected, "the builder");
    assert_eq!(off.timeout("Catalog"), Some(Duration::from_millis(1000)), "environment(false)");
}
