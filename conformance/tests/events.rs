//! Events mode end to end, as CI runs it: the suite's events cases against intercall's
//! publisher and consumer on a real `redis-server` (started by the test harness;
//! skipped with a notice without one), with and without a shared secret.

use std::process::Command;

use intercall_tests::redis_server::RedisServer;

const SUITE: &str = env!("CARGO_BIN_EXE_intercall-conformance");

fn run_events(redis: &RedisServer, secret: Option<&str>) -> String {
    let mut command = Command::new(SUITE);
    command.args(["events", &redis.url()]).env_remove("INTERCALL_CONFORMANCE_SECRET");
    if let Some(secret) = secret {
        command.args(["--secret", secret]);
    }
    let output = command.output().expect("run intercall-conformance events");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "events mode failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.contains("FAIL "), "{stdout}");
    stdout
}

#[test]
fn the_rust_publisher_and_consumer_follow_the_documented_layout() {
    let Some(redis) = RedisServer::start("conformance-events") else { return };
    let plain = run_events(&redis, None);
    assert!(plain.contains("PASS hand_written_entry_is_handled_in_its_context"), "{plain}");
    assert!(plain.contains("SKIP published_signature_verifies"), "{plain}");
    let signed = run_events(&redis, Some("conformance-events-secret-0123456789"));
    assert!(signed.contains("PASS published_signature_verifies"), "{signed}");
    assert!(signed.contains("PASS wrongly_signed_entry_is_a_dead_letter"), "{signed}");
    assert!(signed.contains("13 passed, 0 failed, 0 skipped"), "{signed}");
}
