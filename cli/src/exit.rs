//! The exit statuses of `intercall`, one per outcome a script may want to tell apart.
//! The README's CLI section lists them; keep the two in step.

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
}
