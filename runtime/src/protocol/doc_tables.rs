//! PROTOCOL.md's tables are the code's: §4.2's table of error kinds (kind, status,
//! whether a client retries it) against [`ErrorKind::ALL`], [`ErrorKind::status`] and
//! the retry decision (`retry::decide`), and §4.2's table of replies that are not
//! intercall's against `INTERMEDIARY_STATUSES`, in both directions: every kind of the
//! code has its row, and the table has no other.

use super::ErrorKind;
use super::reply::INTERMEDIARY_STATUSES;
use super::retry::{Decision, Outcome, decide};

/// docs/PROTOCOL.md, read when the test runs.
fn protocol() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the first table in `text` whose header row starts with `header`
/// (compared without spaces), each row's cells trimmed.
fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let squeeze = |line: &str| line.replace(' ', "");
    let mut lines = text.lines().skip_while(|line| !squeeze(line).starts_with(&squeeze(header)));
    assert!(lines.next().is_some(), "no table whose header starts with `{header}`");
    let separator = lines.next().unwrap_or_default();
    assert!(separator.starts_with("|-"), "`{header}`: no separator row under the header");
    lines
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let inner = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|'));
            let inner = inner.unwrap_or_else(|| panic!("a row that is not `| .. |`: {line}"));
            inner.split('|').map(|cell| cell.trim().to_owned()).collect()
        })
        .collect()
}

/// Section 4.2, up to §4.3.
fn section_4_2(text: &str) -> &str {
    let start = text.find("### 4.2 Errors").expect("PROTOCOL.md has §4.2");
    let end = start + text[start..].find("### 4.3").expect("PROTOCOL.md has §4.3");
    &text[start..end]
}

fn retried(status: u16, kind: Option<ErrorKind>) -> bool {
    matches!(decide(Outcome::Replied { status, kind, retry_after: None }), Decision::Retry { .. })
}

#[test]
fn the_kinds_table_is_error_kind_all_with_its_statuses_and_retry_decisions() {
    let text = protocol();
    let rows = table(section_4_2(&text), "| status | `kind`");
    let mut table_kinds = Vec::new();
    for row in &rows {
        let [status, kind, _when, _ran, retry] = row.as_slice() else {
            panic!("§4.2: a row of {} cells, not 5: {row:?}", row.len());
        };
        let name = kind.strip_prefix('`').and_then(|k| k.strip_suffix('`')).unwrap_or(kind);
        let Ok(code) = name.parse::<ErrorKind>() else {
            panic!("§4.2 lists `{name}`, which is not an ErrorKind");
        };
        let status: u16 = status.parse().unwrap_or_else(|_| panic!("§4.2 `{name}`: status `{status}`"));
        assert_eq!(status, code.status(), "§4.2: the status of `{name}`");
        let retry = match retry.as_str() {
            "yes" => true,
            "no" => false,
            other => panic!("§4.2 `{name}`: retried is `{other}`, not yes or no"),
        };
        assert_eq!(retry, retried(status, Some(code)), "§4.2: whether `{name}` is retried");
        table_kinds.push(code);
    }
    // Every kind once, in ErrorKind::ALL's order (its rustdoc says it is the table's).
    assert_eq!(table_kinds, ErrorKind::ALL, "§4.2's kinds, row by row, against ErrorKind::ALL");
}

#[test]
fn the_table_of_replies_that_are_not_intercall_s_is_the_intermediary_statuses() {
    let text = protocol();
    let rows = table(section_4_2(&text), "| status | usually from");
    let statuses: Vec<u16> = rows
        .iter()
        .map(|row| row[0].parse().unwrap_or_else(|_| panic!("§4.2: status `{}` in {row:?}", row[0])))
        .collect();
    assert_eq!(statuses, INTERMEDIARY_STATUSES, "§4.2's replies that are not intercall's");
    for row in &rows {
        let status: u16 = row[0].parse().unwrap();
        assert!(row.last().is_some_and(|what| what.contains("retried")), "{row:?}");
        assert!(retried(status, None), "{status} without a kind is retried");
    }
}

#[test]
fn a_table_is_read_row_by_row() {
    let text = "x\n| a | b |\n|---|---|\n| 1 | `k` |\n| 2 | m |\n\nafter\n| 3 | n |\n";
    assert_eq!(table(text, "| a |"), vec![vec!["1", "`k`"], vec!["2", "m"]]);
}
