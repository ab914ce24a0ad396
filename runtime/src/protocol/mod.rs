//! The wire protocol as pure code: what both sides of the wire agree on, with no
//! sockets, no tokio and no axum, so that every rule is unit-tested without a server.
//! `docs/PROTOCOL.md` is the normative text; each of its sections is one file here:
//!
//! | PROTOCOL.md | file |
//! |---|---|
//! | §3 Path | [`path`]: the `/{service}/{method}` shape, the segment rule, base URLs |
//! | §3 Headers | [`headers`]: every header name, parsing the call headers, writing them |
//! | §3 Body | `args`: the JSON object of named arguments |
//! | §3, §4 JSON | `json_writer`: every body's JSON, encoded as serde_json encodes it, with a faster string escaper |
//! | §3, §4 JSON strings | `scan`: where a string's plain run ends (quote, backslash, control byte), SSE2 on x86_64, for the writer and the reader |
//! | §4 Response | [`reply`]: encoding a result, a typed error or a framework error; decoding a reply |
//! | §4.2 `type`, `variant` | `type_info`: an error's type and variant name, from its `Serialize` impl |
//! | §4.3 Streamed replies | [`stream`]: the frames of a stream method's reply, and splitting a body into them |
//! | §4.3 an item's value | `fast_json`: the reader's fast path for an item's JSON, serde_json for anything else |
//! | §5 What a client does | `retry`: the retry decision |
//! | §4.2 the tables | `doc_tables` (tests only): the kinds, statuses and retry decisions of §4.2's tables are the code's |
//! | §3.3 Trace context | [`trace`]: the W3C `traceparent` and `tracestate`, forwarded as received |
//! | §6 Signed calls | `signing`: the canonical string, the MAC, the window |
//! | EVENTS.md | `events`: stream and key names, an entry's fields, an event's canonical string |
//!
//! The I/O around it lives in `server/` (axum and the call-id flow) and `client/` (the
//! transport and the retry loop).

pub(crate) mod args;
#[cfg(test)]
mod doc_tables;
#[cfg(any(feature = "events", test))]
// Without the `events` feature only its unit tests use it.
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) mod events;
pub(crate) mod fast_json;
pub mod headers;
pub(crate) mod json_writer;
pub mod path;
pub mod reply;
pub(crate) mod retry;
pub(crate) mod scan;
pub mod signing;
pub mod stream;
pub mod trace;
pub(crate) mod type_info;

pub use headers::{ACTIVITY_ID, CALL_ATTEMPT, CALL_ID, DEADLINE_MS, JSON, SIGNATURE, TIMESTAMP, USER_ID, USER_TYPE};
pub use reply::ErrorKind;

/// Why a request was turned away before the implementation ran: the error reply's
/// kind, message and, for a bad argument, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) argument: Option<String>,
}

impl Refusal {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), argument: None }
    }

    /// The error reply a server sends for it.
    pub(crate) fn encode(&self) -> reply::EncodedReply {
        reply::framework_error(self.kind, &self.message, self.argument.as_deref())
    }
}

/// An integer as PROTOCOL.md §3 defines it: one or more ASCII digits (no sign, no
/// point, no exponent), within `T`'s range.
pub(crate) fn integer<T: std::str::FromStr>(text: &str) -> Option<T> {
    let all_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if all_digits { text.parse().ok() } else { None }
}

/// A lowercase hexadecimal digit, the only kind UUID headers and signatures use.
pub(crate) fn is_lowercase_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

/// Keeps an echoed client string short enough for a message or a log line.
pub(crate) fn truncate(text: &str) -> &str {
    const MAX: usize = 128;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The longest serde message an error body quotes, in bytes, before [`shorten`] cuts
/// its middle out.
pub(crate) const MAX_QUOTED_MESSAGE: usize = 512;

/// Keeps a decoder's message (which quotes the offending value: "invalid type: string
/// \"...\", expected u64 at line 1 column 9") at most about [`MAX_QUOTED_MESSAGE`]
/// bytes: its start and its end (where serde puts what it expected, and the position)
/// are kept, and the middle is replaced by how much was left out. A 1 MB string in a
/// number argument gets a reply of under a kilobyte, not of a megabyte.
pub(crate) fn shorten(message: &str) -> std::borrow::Cow<'_, str> {
    const HEAD: usize = MAX_QUOTED_MESSAGE / 2;
    const TAIL: usize = MAX_QUOTED_MESSAGE / 4;
    if message.len() <= MAX_QUOTED_MESSAGE {
        return message.into();
    }
    let head_end = (0..=HEAD).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
    let tail_start =
        (message.len() - TAIL..message.len()).find(|&i| message.is_char_boundary(i)).unwrap_or(message.len());
    let left_out = tail_start - head_end;
    format!("{}…[{left_out} bytes left out]…{}", &message[..head_end], &message[tail_start..]).into()
}
