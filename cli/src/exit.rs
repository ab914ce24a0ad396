//! The exit statuses of `intercall`, one per outcome a script may want to tell apart.
//! The README's CLI section lists them; a test keeps the two in step.

use intercall::protocol::ErrorKind;

/// The call succeeded; `compat` found nothing breaking.
pub const OK: u8 = 0;
/// The method returned its typed error (`422 service`); `compat` found a breaking change.
pub const SERVICE_ERROR: u8 = 1;
/// The command line, services.toml or a manifest file was wrong (clap's usage errors too).
pub const USAGE: u8 = 2;
/// The node could not be reached, or did not answer within `--timeout`.
pub const UNREACHABLE: u8 = 3;
/// The reply was not intercall's (no error body, or a kind this CLI does not know).
pub const FOREIGN_REPLY: u8 = 4;

/// The exit status of a framework error reply: 10 and up, one per kind.
pub fn of_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Service => SERVICE_ERROR,
        ErrorKind::BadRequest => 10,
        ErrorKind::UnknownService => 11,
        ErrorKind::UnknownMethod => 12,
        ErrorKind::MethodNotAllowed => 13,
        ErrorKind::PayloadTooLarge => 14,
        ErrorKind::UnsupportedMediaType => 15,
        ErrorKind::Unauthorized => 16,
        ErrorKind::DeadlineExceeded => 17,
        ErrorKind::RequestTimeout => 18,
        ErrorKind::InProgress => 19,
        ErrorKind::CallIdMismatch => 20,
        ErrorKind::StoreUnavailable => 21,
        ErrorKind::Panic => 22,
        ErrorKind::Internal => 23,
        ErrorKind::Overloaded => 24,
        ErrorKind::StreamStarted => 25,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_status() {
        let mut statuses: Vec<u8> = ErrorKind::ALL.iter().map(|kind| of_kind(*kind)).collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(statuses.len(), ErrorKind::ALL.len());
        assert!(!statuses.iter().any(|s| [OK, USAGE, UNREACHABLE, FOREIGN_REPLY].contains(s)));
    }

    /// This file's `pub const NAME: u8 = N;` lines, read from its source so that a new
    /// constant is checked without touching the test.
    fn constants() -> Vec<(String, u8)> {
        include_str!("exit.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub const "))
            .map(|rest| {
                let (name, value) = rest.split_once(": u8 = ").expect("`pub const NAME: u8 = N;`");
                (name.to_owned(), value.trim_end_matches(';').parse().expect("a number"))
            })
            .collect()
    }

    /// The rows of the README's exit-status table (`| status | meaning |`), cells trimmed.
    fn readme_rows() -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut lines = readme.lines().skip_while(|line| line.trim() != "| status | meaning |");
        assert!(lines.next().is_some(), "README: no `| status | meaning |` table");
        assert!(lines.next().is_some_and(|line| line.starts_with("|-")), "README: no separator row");
        lines
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim().trim_matches('|').splitn(2, '|').map(str::trim).collect();
                assert_eq!(cells.len(), 2, "README exit table: {line}");
                (cells[0].to_owned(), cells[1].to_owned())
            })
            .collect()
    }

    /// The README's table is this file's, both ways: a row per constant with its number,
    /// and the framework row's list of `N kind` entries is exactly `of_kind` over every kind
    /// but `service` (whose status is the typed error's row).
    #[test]
    fn the_readme_exit_table_is_this_file() {
        let rows = readme_rows();
        let mut single: Vec<u8> = Vec::new();
        let mut listed: Vec<(u8, String)> = Vec::new();
        for (status, meaning) in &rows {
            if let Ok(status) = status.parse::<u8>() {
                single.push(status);
                continue;
            }
            let (low, high) = status.split_once(" to ").unwrap_or_else(|| panic!("README: status `{status}`"));
            let (low, high): (u8, u8) = (low.parse().unwrap(), high.parse().unwrap());
            let (_, list) = meaning.split_once(": ").unwrap_or_else(|| panic!("README: `{meaning}`"));
            for entry in list.split(", ") {
                let (number, kind) = entry.split_once(' ').unwrap_or_else(|| panic!("README: `{entry}`"));
                let number: u8 = number.parse().unwrap_or_else(|_| panic!("README: `{entry}`"));
                assert!((low..=high).contains(&number), "README: {number} outside {low} to {high}");
                listed.push((number, kind.trim_matches('`').to_owned()));
            }
            let numbers: Vec<u8> = listed.iter().map(|(n, _)| *n).collect();
            assert_eq!((numbers.iter().min(), numbers.iter().max()), (Some(&low), Some(&high)), "README: `{status}`");
        }
        let mut constants: Vec<u8> = constants().into_iter().map(|(_, value)| value).collect();
        constants.sort_unstable();
        assert_eq!(single, constants, "README's single statuses against exit.rs's constants");
        let mut expected: Vec<(u8, String)> = ErrorKind::ALL
            .into_iter()
            .filter(|kind| *kind != ErrorKind::Service)
            .map(|kind| (of_kind(kind), kind.as_str().to_owned()))
            .collect();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected, "README's framework errors against of_kind");
        let service = rows.iter().find(|(status, _)| status.parse() == Ok(of_kind(ErrorKind::Service)));
        assert!(service.is_some_and(|(_, meaning)| meaning.contains("`422 service`")), "{service:?}");
    }
}
