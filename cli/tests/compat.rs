//! `intercall compat` on a corpus of API versions: each directory of `tests/compat/`
//! holds `old.json` and `new.json` (two manifests) and `expected.txt`, the exact output
//! that classes every change; the exit status is 1 exactly when a line is BREAKING.
//! The manifests are the example system's (built with the `schema` feature), each
//! changed in one way, and a few small hand-written services; `make_compat_corpus.py`
//! writes them all. Each `expected.txt` was printed by the CLI and then read against
//! PROTOCOL.md §12, in both directions: it holds what is right, not only what the tool
//! said (pairs 10, 12, 13, 15, 19, 22, 32 and 33 were classed wrongly before).

use std::path::Path;
use std::process::Command;

#[test]
fn every_pair_of_versions_is_classed_as_expected() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut cases: Vec<_> = std::fs::read_dir(&corpus).unwrap().map(|entry| entry.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus has {} pairs", cases.len());
    let (mut breaking, mut safe) = (0, 0);
    for case in &cases {
        let output = Command::new(env!("CARGO_BIN_EXE_intercall"))
            .arg("compat")
            .arg(case.join("old.json"))
            .arg(case.join("new.json"))
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        assert_eq!(stdout, expected, "{}", case.display());
        let is_breaking = expected.lines().any(|line| line.starts_with("BREAKING"));
        let status = output.status.code();
        assert_eq!(
            status,
            Some(if is_breaking { 1 } else { 0 }),
            "{}: {}",
            case.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        if is_breaking { breaking += 1 } else { safe += 1 }
    }
    assert!(breaking >= 5 && safe >= 5, "{breaking} breaking and {safe} safe pairs");
}

#[test]
fn a_manifest_that_is_not_one_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("intercall-compat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"services\": 3}").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_intercall")).arg("compat").arg(&bad).arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not an intercall manifest"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
