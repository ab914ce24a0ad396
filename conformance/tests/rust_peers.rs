//! Both modes end to end, as CI runs them: the suite against the Rust reference
//! server and client as real child processes, and against broken peers, to show it
//! catches them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SUITE: &str = env!("CARGO_BIN_EXE_intercall-conformance");
const RUST_CLIENT: &str = env!("CARGO_BIN_EXE_conformance-rust-client");
const SECRET: &str = "conformance-test-secret-0123456789";

/// The reference server, killed when dropped.
struct Reference {
    child: Child,
    url: String,
}

impl Reference {
    fn start(secret: Option<&str>) -> Self {
        let mut command = Command::new(SUITE);
        command.arg("serve-reference").stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some(secret) = secret {
            command.args(["--secret", secret]);
        }
        let mut child = command.spawn().expect("start serve-reference");
        let stdout = child.stdout.take().expect("piped");
        // The URL line, within a bound: a server that never prints fails the test.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let url = receiver.recv_timeout(Duration::from_secs(60)).expect("serve-reference prints its URL");
        assert!(url.starts_with("http://127.0.0.1:"), "serve-reference printed {url:?}");
        Self { child, url: url.trim().to_owned() }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the suite with `args`.
fn suite(args: &[&str]) -> Output {
    Command::new(SUITE).args(args).env_remove("INTERCALL_CONFORMANCE_SECRET").output().expect("run the suite")
}

/// `(passed, failed)` from the summary line, which must be the last line.
fn summary(output: &Output) -> (usize, usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let numbers: Vec<usize> = last.split(", ").filter_map(|part| part.split(' ').next()?.parse().ok()).collect();
    assert!(
        last.contains(" passed, ") && last.contains(" failed") && numbers.len() >= 2,
        "no summary line in:\n{stdout}"
    );
    (numbers[0], numbers[1])
}

fn assert_all_pass(output: &Output, at_least: usize) {
    let (passed, failed) = summary(output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|line| line.starts_with("FAIL ")).collect();
    assert_eq!(failed, 0, "failures:\n{}", failures.join("\n"));
    assert!(passed >= at_least, "only {passed} cases passed (expected {at_least}+):\n{stdout}");
    assert!(output.status.success(), "the suite exited with {}:\n{stdout}", output.status);
}

#[test]
fn server_mode_passes_against_the_rust_reference_server() {
    let server = Reference::start(None);
    assert_all_pass(&suite(&["server", &server.url]), 88);
}

#[test]
fn server_mode_passes_against_the_signing_rust_reference_server() {
    let server = Reference::start(Some(SECRET));
    assert_all_pass(&suite(&["server", &server.url, "--secret", SECRET]), 101);
}

#[test]
fn client_mode_passes_against_the_rust_reference_client() {
    assert_all_pass(&suite(&["client", "--", RUST_CLIENT]), 42);
}

#[test]
fn client_mode_passes_against_the_signing_rust_reference_client() {
    assert_all_pass(&suite(&["client", "--secret", SECRET, "--", RUST_CLIENT]), 43);
}

#[test]
fn server_mode_catches_a_server_that_answers_200_to_everything() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(intercall_conformance::http::serve_connection(stream, |_request| async {
                let ok = intercall_conformance::http::response(200, &[("content-type", "application/json")], b"{}");
                intercall_conformance::http::Action::Respond(ok)
            }));
        }
    });
    let output = suite(&["server", &url]);
    let (passed, failed) = summary(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the suite passed a broken server:\n{stdout}");
    assert!(failed >= 60 && passed <= 5, "{passed} passed, {failed} failed:\n{stdout}");
    for case in ["unknown_service_404", "content_type_missing_is_415", "duplicate_replays_byte_for_byte"] {
        assert!(stdout.contains(&format!("FAIL {case}: ")), "no FAIL line for {case}:\n{stdout}");
    }
}

#[test]
fn client_mode_catches_a_client_that_makes_no_calls() {
    let output = suite(&["client", "--", "true"]);
    let (passed, failed) = summary(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the suite passed a client that calls nothing:\n{stdout}");
    assert!(failed >= 40 && passed <= 1, "{passed} passed, {failed} failed:\n{stdout}");
    assert!(stdout.contains("FAIL timeout_is_retried: "), "{stdout}");
}
