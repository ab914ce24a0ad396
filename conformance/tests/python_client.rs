//! Client mode against a peer in another language: `peers/client.py`, the documented
//! contract written in Python's standard library. Skipped when `python3` is missing.

use std::process::Command;

const SUITE: &str = env!("CARGO_BIN_EXE_intercall-conformance");

fn python() -> bool {
    Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn run(secret: Option<&str>) {
    if !python() {
        eprintln!("python3 is not on the PATH; skipping the Python client");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/client.py");
    let mut command = Command::new(SUITE);
    command.arg("client").env_remove("INTERCALL_CONFORMANCE_SECRET");
    if let Some(secret) = secret {
        command.args(["--secret", secret]);
    }
    let output = command.args(["--", "python3", script]).output().expect("run the suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|line| line.starts_with("FAIL ")).collect();
    assert!(output.status.success() && failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn client_mode_passes_against_the_python_client() {
    run(None);
}

#[test]
fn client_mode_passes_against_the_signing_python_client() {
    run(Some("python-peer-secret-0123456789"));
}
