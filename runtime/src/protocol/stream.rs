//! §4.3 Streamed replies: the frames of a stream method's `200` reply, and splitting a
//! reply body that arrives in arbitrary chunks back into frames.
//!
//! A streamed reply is newline-delimited JSON (`application/x-ndjson`): one JSON object
//! per line, each a **frame**:
//!
//! - `{"item":<value>}`: one item, in the shape the item type's serde impl gives it;
//! - `{}`: a keep-alive, sent by a server while the stream is idle (readers ignore any
//!   frame with no member they know);
//! - exactly one final frame, last: `{"end":"ok"}` (a clean end) or
//!   `{"end":"error","error":<error body of §4.2>}` (a typed error, `kind: service`, or a
//!   framework error such as `panic` or `deadline_exceeded`).
//!
//! A body that ends without a final frame was cut: the reader reports a broken
//! connection, never a clean end.
//!
//! A client reads a body as its chunks arrive (`Lines`, sans-IO). An item frame that
//! lies whole in its chunk is read in place, its item decoded straight from the chunk's
//! text by the fast path, which also finds where the frame ends (`Lines::next_item`);
//! any other frame is first split off as a line (`Lines::next_line`) and read by
//! `item_frame`, then `decode_other`. Both ways give the same frames and the same
//! errors.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::fast_json;
use super::reply::{Decoded, EncodedReply, decode_error_body};

/// The `content-type` of a streamed reply.
pub const NDJSON: &str = "application/x-ndjson";

/// Whether a reply is a stream: `200` with the `application/x-ndjson` media type
/// (compared case-insensitively; parameters allowed). Anything else is read as a
/// unary reply (§4, §7): a stream method's errors before its first item are ordinary
/// error replies.
pub(crate) fn is_stream(status: u16, content_type: Option<&[u8]>) -> bool {
    let media_type = |value: &[u8]| value.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii().to_vec();
    status == 200 && content_type.is_some_and(|value| media_type(value).eq_ignore_ascii_case(NDJSON.as_bytes()))
}

/// How long a server lets a stream stay silent before it sends a keep-alive frame.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The keep-alive frame.
pub(crate) const KEEPALIVE: &[u8] = b"{}\n";

/// How an item frame opens: `{"item":`, then the item, then `}\n`.
const ITEM_OPEN: &[u8; 8] = b"{\"item\":";

/// The final frame of a stream that ended cleanly.
pub(crate) const END_OK: &[u8] = b"{\"end\":\"ok\"}\n";

/// Appends the frame of one item to `out`; `Err` with serde's reason when the item
/// does not serialize (`out` is then left as it was).
pub(crate) fn write_item<T: Serialize + ?Sized>(out: &mut Vec<u8>, item: &T) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(ITEM_OPEN);
    match super::json_writer::to_writer(out, item) {
        Ok(()) => {
            out.extend_from_slice(b"}\n");
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(format!("cannot serialize a stream item: {e}"))
        }
    }
}

/// Appends the final frame of a stream that ended with an error: `reply` is the error
/// reply (typed or framework) the server would send for a unary call.
pub(crate) fn write_error(out: &mut Vec<u8>, reply: &EncodedReply) {
    out.extend_from_slice(b"{\"end\":\"error\",\"error\":");
    out.extend_from_slice(&reply.body);
    out.extend_from_slice(b"}\n");
}

/// One frame as a client reads it, its item decoded as `T`.
#[derive(Debug)]
pub(crate) enum Frame<'a, T> {
    /// An item.
    Item(T),
    /// A keep-alive, or a frame of a kind this reader does not know: skipped.
    Skip,
    /// The final frame of a clean end.
    End,
    /// The final frame of an error end: the error body, decoded as §7 reads one.
    Error(Decoded<'a>),
}

/// A frame's members, the item decoded in the same pass (not parsed twice).
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct RawFrame<'a, T> {
    #[serde(default, deserialize_with = "present")]
    item: Option<T>,
    #[serde(borrow, default)]
    end: Option<&'a str>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// A member that is there, even when its value is `null` (an item of `()` or `None`).
fn present<'de, D: serde::Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Reads one frame (a line, without its `\n`).
#[cfg(test)]
pub(crate) fn decode_frame<T: DeserializeOwned>(line: &[u8]) -> Result<Frame<'_, T>, String> {
    decode_line(Line { bytes: line, text: None })
}

/// Reads one frame, from a line as [`Lines`] gives it out (the client reads the two
/// parts separately, items first).
#[cfg(test)]
pub(crate) fn decode_line<T: DeserializeOwned>(line: Line<'_>) -> Result<Frame<'_, T>, String> {
    match item_frame(line, &mut true) {
        Some(item) => Ok(Frame::Item(item)),
        None => decode_other(line.bytes),
    }
}

/// The frame almost every line is, `{"item":<value>}` as a server writes it: the value
/// decoded straight from between the frame's braces, from text checked as UTF-8 once
/// (not string by string; with its chunk, when `Lines` could). `Some` only when the
/// line is exactly an object with the one member `item` and its value decodes, so it
/// agrees with [`decode_other`], which reads any other line and gives the errors.
///
/// The value is read by [`fast_json`] while `fast` holds, else (and whenever it gives
/// up) by serde_json. An item that serde_json decodes after the fast path gave up
/// clears `fast`: a stream whose items the fast path cannot read (an escape in a
/// string, a `RawValue`, an `f32`) pays for the attempt once, not per item.
pub(crate) fn item_frame<T: DeserializeOwned>(line: Line<'_>, fast: &mut bool) -> Option<T> {
    let text = line.text.map_or_else(|| std::str::from_utf8(line.bytes).ok(), Some)?;
    // `ITEM_OPEN` is ASCII: the text after it starts on a character boundary.
    let value = text.as_bytes().starts_with(ITEM_OPEN).then(|| &text[ITEM_OPEN.len()..])?.strip_suffix('}')?;
    if *fast {
        if let Some(item) = fast_json::from_str(value) {
            return Some(item);
        }
        let item = serde_json::from_str(value).ok()?;
        *fast = false;
        return Some(item);
    }
    serde_json::from_str(value).ok()
}

/// Reads a frame that [`item_frame`] did not: any other frame, or the error of one.
pub(crate) fn decode_other<T: DeserializeOwned>(line: &[u8]) -> Result<Frame<'_, T>, String> {
    // serde would read a struct from an array too.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(format!(
            "a stream frame is not a JSON object: {}",
            String::from_utf8_lossy(&line[..line.len().min(64)])
        ));
    }
    let frame: RawFrame<'_, T> = serde_json::from_slice(line)
        .map_err(|e| format!("a stream frame does not decode (as the method's item type, for an item): {e}"))?;
    match (frame.item, frame.end, frame.error) {
        (Some(item), None, None) => Ok(Frame::Item(item)),
        (None, Some("ok"), None) => Ok(Frame::End),
        (None, Some("error"), Some(error)) => Ok(Frame::Error(decode_error_body(error.get().as_bytes()))),
        (None, Some("error"), None) => Err("an `\"end\":\"error\"` frame without its `error` body".to_owned()),
        (None, Some(other), _) => Err(format!("an `end` frame with `{}`, not `ok` or `error`", super::truncate(other))),
        (None, None, _) => Ok(Frame::Skip),
        (Some(_), Some(_), _) => Err("a frame with both `item` and `end`".to_owned()),
        (Some(_), None, Some(_)) => Err("a frame with both `item` and `error`".to_owned()),
    }
}

/// Splits a body into lines as its chunks arrive, holding at most `max_line` bytes of
/// an unfinished line. A line that lies whole in one chunk is read where it is, in the
/// chunk's own buffer; only a line split across chunks is copied, to join its parts.
/// An item frame in the chunk's checked text is read without splitting it off first
/// ([`next_item`](Self::next_item)).
#[derive(Debug)]
pub(crate) struct Lines {
    /// The last chunk; `chunk[start..]` is not split into lines yet.
    chunk: Bytes,
    start: usize,
    /// Where `chunk`'s first and last `\n` are (`None`: it has none), found when it
    /// came: the first line and the bytes past the last are not searched again.
    newlines: Option<(usize, usize)>,
    /// `chunk[checked.start..checked.end]`, whole lines, is known to be UTF-8: checked
    /// in one pass when the chunk came, not line by line (empty when it was not).
    checked: std::ops::Range<usize>,
    /// The start of a line whose end had not arrived; once it has, the whole line, given
    /// out (`given`) and cleared on the next call.
    partial: Vec<u8>,
    given: bool,
    max_line: usize,
}

/// A line longer than the reader's limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong {
    pub(crate) limit: usize,
}

impl Lines {
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            chunk: Bytes::new(),
            start: 0,
            newlines: None,
            checked: 0..0,
            partial: Vec::new(),
            given: false,
            max_line,
        }
    }

    /// Adds a chunk of the body.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.forget_given();
        // What was not split yet (the reader pushed before asking for every line)
        // comes first.
        self.partial.extend_from_slice(&self.chunk[self.start..]);
        self.newlines = memchr::memchr(b'\n', &chunk)
            .map(|first| (first, first + memchr::memrchr(b'\n', &chunk[first..]).unwrap_or(0)));
        self.checked = match self.newlines {
            // The first line began in an earlier chunk: it is joined, and checked, alone.
            Some((first, last)) if !self.partial.is_empty() => whole_lines_in_utf8(&chunk, first + 1, last),
            Some((_, last)) => whole_lines_in_utf8(&chunk, 0, last),
            None => 0..0,
        };
        (self.chunk, self.start) = (chunk, 0);
    }

    fn forget_given(&mut self) {
        if self.given {
            self.partial.clear();
            self.given = false;
        }
    }

    /// The next whole line (without `\n`), or `None` until more arrives.
    pub(crate) fn next_line(&mut self) -> Result<Option<Line<'_>>, LineTooLong> {
        self.forget_given();
        let (held, pending) = (self.partial.len(), &self.chunk[self.start..]);
        let newline = match self.newlines {
            Some((first, _)) if self.start <= first => Some(first - self.start),
            Some((_, last)) if self.start <= last => memchr::memchr(b'\n', pending),
            _ => None,
        };
        match newline {
            Some(end) if held + end > self.max_line => Err(LineTooLong { limit: self.max_line }),
            Some(end) if held == 0 => {
                let line = self.start..self.start + end;
                self.start += end + 1;
                let bytes = &self.chunk[line.clone()];
                let text = if self.checked.start <= line.start && line.end < self.checked.end {
                    debug_assert!(std::str::from_utf8(bytes).is_ok());
                    // SAFETY: `chunk[checked]` is UTF-8 (`push`), and this line lies
                    // inside it between `\n` bytes (or the range's start, itself just
                    // after a `\n` or at the body's first byte of a line): one-byte
                    // characters, so both ends are character boundaries, and a slice of
                    // UTF-8 between character boundaries is UTF-8.
                    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
                } else {
                    None
                };
                Ok(Some(Line { bytes, text }))
            }
            Some(end) => {
                self.partial.extend_from_slice(&pending[..end]);
                self.start += end + 1;
                self.given = true;
                Ok(Some(Line { bytes: &self.partial, text: None }))
            }
            None if held + pending.len() > self.max_line => Err(LineTooLong { limit: self.max_line }),
            None => {
                // Keep the unfinished line only: what is held does not grow with the stream.
                self.partial.extend_from_slice(pending);
                (self.chunk, self.start, self.newlines, self.checked) = (Bytes::new(), 0, None, 0..0);
                Ok(None)
            }
        }
    }

    /// The next line's item when it is an item frame `{"item":<value>}` that the fast
    /// path reads straight from the chunk, the value's end found by decoding it (no
    /// search for the line's `\n` first); `None` leaves everything as it was, for
    /// [`next_line`](Self::next_line) and [`item_frame`] to read the same line. Never
    /// taken when `fast` is off (the stream's items go to serde_json then).
    ///
    /// Taken only when it agrees with that path: the line lies in the chunk's checked
    /// UTF-8 (no partial line held), starts `{"item":`, its value is decoded by
    /// [`fast_json::from_prefix`], `}\n` follows it at once, and the line is no longer
    /// than `max_line` (a longer one is `next_line`'s `LineTooLong`). `item_frame` reads
    /// such a line as the same value, by `fast_json::from_str` on the same text; any
    /// other line (`{"item":1} `, `{"item":1}x`, an escape, a keep-alive, a final frame)
    /// is left to it. The decode never reads past the line's `\n`: the fast path gives
    /// up on a line break between tokens and on a control byte in a string.
    #[inline]
    pub(crate) fn next_item<T: DeserializeOwned>(&mut self, fast: bool) -> Option<T> {
        self.forget_given();
        let start = self.start;
        if !fast || !self.partial.is_empty() || start < self.checked.start || start >= self.checked.end {
            return None;
        }
        let region = &self.chunk[start..self.checked.end];
        if region.first_chunk() != Some(ITEM_OPEN) {
            return None;
        }
        debug_assert!(std::str::from_utf8(region).is_ok());
        // SAFETY: `chunk[checked]` is UTF-8 (`push`); `start` is inside it just after a
        // `\n` (or at its start, itself a line's first byte) and `checked.end` is its
        // end: both are character boundaries, so `region` is UTF-8; `ITEM_OPEN` is ASCII,
        // so the text after it starts on a character boundary too.
        let text = unsafe { std::str::from_utf8_unchecked(&region[ITEM_OPEN.len()..]) };
        let (item, used) = fast_json::from_prefix(text)?;
        // The frame's `}`, its end, at `line`: no more than `max_line` bytes before it.
        let line = ITEM_OPEN.len() + used + 1;
        if region.get(line - 1..=line) != Some(b"}\n") || line > self.max_line {
            return None;
        }
        debug_assert!(memchr::memchr(b'\n', &region[..line]).is_none(), "a frame read fast spans lines");
        self.start = start + line + 1;
        Some(item)
    }

    /// Whether bytes of an unfinished line are held (a body that ends here was cut).
    pub(crate) fn has_partial_line(&self) -> bool {
        self.start < self.chunk.len() || (!self.given && !self.partial.is_empty())
    }
}

/// One line of a body, as [`Lines`] gives it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line, without its `\n`.
    pub(crate) bytes: &'a [u8],
    /// The same line as text, when it is already known to be UTF-8.
    pub(crate) text: Option<&'a str>,
}

/// `from..=last` of `chunk` (whole lines: `from` starts a line, `last` is a `\n`) when
/// it is UTF-8, else an empty range: one check for a chunk of many frames, where a
/// check per line cost more than the pass itself (its setup, for frames of ~100 bytes).
/// When it is not UTF-8, each line is checked alone, and the one at fault fails alone.
fn whole_lines_in_utf8(chunk: &[u8], from: usize, last: usize) -> std::ops::Range<usize> {
    if from > last || std::str::from_utf8(&chunk[from..=last]).is_err() {
        return 0..0;
    }
    from..last + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorKind;
    use crate::protocol::reply::{framework_error, service_error};

    #[test]
    fn items_and_the_final_frames_are_one_json_object_per_line() {
        let mut out = Vec::new();
        write_item(&mut out, &serde_json::json!({"percent": 50, "note": "a\nb"})).unwrap();
        out.extend_from_slice(KEEPALIVE);
        out.extend_from_slice(END_OK);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"item\":{\"note\":\"a\\nb\",\"percent\":50}}\n{}\n{\"end\":\"ok\"}\n"
        );
    }

    #[derive(Serialize)]
    enum JobError {
        Failed { step: u32 },
    }

    #[test]
    fn an_error_end_carries_the_error_body_of_a_unary_reply() {
        let mut out = Vec::new();
        let typed = service_error("Jobs", "run", &JobError::Failed { step: 3 }, "JobError").unwrap();
        write_error(&mut out, &typed);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"end\":\"error\",\"error\":{\"kind\":\"service\",\"message\":\"Jobs.run returned JobError::Failed\",\"type\":\"JobError\",\"variant\":\"Failed\",\"value\":{\"Failed\":{\"step\":3}}}}\n"
        );
        match decode_frame::<u64>(out.strip_suffix(b"\n").unwrap()).unwrap() {
            Frame::Error(Decoded::Service { type_name, value, .. }) => {
                assert_eq!((&*type_name, value.get()), ("JobError", r#"{"Failed":{"step":3}}"#));
            }
            other => panic!("{other:?}"),
        }
        let mut out = Vec::new();
        write_error(&mut out, &framework_error(ErrorKind::Panic, "Jobs.run panicked", None));
        match decode_frame::<u64>(out.strip_suffix(b"\n").unwrap()).unwrap() {
            Frame::Error(Decoded::Framework { kind: Some(ErrorKind::Panic), message, .. }) => {
                assert_eq!(message, "Jobs.run panicked");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_decode_and_unknown_frames_are_skipped() {
        type Raw = Box<RawValue>;
        assert!(matches!(decode_frame::<Raw>(br#"{"item":[1,2]}"#), Ok(Frame::Item(item)) if item.get() == "[1,2]"));
        assert!(matches!(decode_frame::<Option<u8>>(br#"{"item":null}"#), Ok(Frame::Item(None))), "a null item");
        assert!(matches!(decode_frame::<u8>(br#"{"item":7,"later":{}}"#), Ok(Frame::Item(7))));
        // The item fast path and the general path agree at their border.
        assert!(matches!(decode_frame::<u8>(br#"{"item": 7 }"#), Ok(Frame::Item(7))));
        assert!(matches!(decode_frame::<String>(br#"{"item":"}"}"#), Ok(Frame::Item(s)) if s == "}"));
        assert!(decode_frame::<u8>(br#"{"item":7,"item":8}"#).is_err(), "a duplicate member");
        assert!(matches!(decode_frame::<u8>(b"{}"), Ok(Frame::Skip)));
        assert!(matches!(decode_frame::<u8>(br#"{"progress_hint":1}"#), Ok(Frame::Skip)));
        assert!(matches!(decode_frame::<u8>(br#"{"end":"ok"}"#), Ok(Frame::End)));
        for bad in [
            &b"[1]"[..],
            b"not json",
            br#"{"end":"later"}"#,
            br#"{"end":"error"}"#,
            br#"{"item":1,"end":"ok"}"#,
            br#"{"item":"not a number"}"#,
            br#"{"item":1}}"#,
            br#"{"item":1,"end":"ok"}"#,
            b"{\"item\":\"\xff\"}",
        ] {
            assert!(decode_frame::<u8>(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_item_the_fast_path_gives_up_on_turns_it_off_for_the_stream() {
        let line = |text: &'static str| Line { bytes: text.as_bytes(), text: Some(text) };
        let (plain, escaped) = (line(r#"{"item":"a"}"#), line(r#"{"item":"a\nb"}"#));
        let mut fast = true;
        assert_eq!(item_frame::<String>(plain, &mut fast).as_deref(), Some("a"));
        assert!(fast, "read by the fast path");
        assert_eq!(item_frame::<String>(escaped, &mut fast).as_deref(), Some("a\nb"), "by serde_json");
        assert!(!fast, "the fast path gave up on an item serde_json decodes: off for the stream");
        assert_eq!(item_frame::<String>(plain, &mut fast).as_deref(), Some("a"));
        assert!(!fast);
        // An item that does not decode leaves it as it was (the stream ends there).
        let mut fast = true;
        assert_eq!(item_frame::<u8>(plain, &mut fast), None);
        assert!(fast);
        // Its error is serde_json's, naming what was wrong.
        let error = decode_frame::<u8>(br#"{"item":"a"}"#).unwrap_err();
        assert!(error.contains(r#"invalid type: string "a", expected u8"#), "{error}");
    }

    #[test]
    fn a_stream_is_a_200_of_ndjson() {
        assert!(is_stream(200, Some(b"application/x-ndjson")));
        assert!(is_stream(200, Some(b"Application/X-NDJSON; charset=utf-8")));
        assert!(!is_stream(200, Some(b"application/json")));
        assert!(!is_stream(200, None));
        assert!(!is_stream(422, Some(b"application/x-ndjson")));
    }

    #[test]
    fn lines_are_rebuilt_from_any_chunking() {
        let body = "{\"item\":1}\n{}\n{\"item\":\"é 日本\"}\n{\"end\":\"ok\"}\n".as_bytes();
        for chunk in [1, 2, 3, 7, body.len()] {
            let mut lines = Lines::new(64);
            let mut seen = Vec::new();
            for piece in body.chunks(chunk) {
                lines.push(Bytes::copy_from_slice(piece));
                while let Some(line) = lines.next_line().unwrap() {
                    let text = String::from_utf8(line.bytes.to_vec()).unwrap();
                    assert!(line.text.is_none_or(|checked| checked == text), "{text}");
                    seen.push(text);
                }
            }
            assert_eq!(seen, ["{\"item\":1}", "{}", "{\"item\":\"é 日本\"}", "{\"end\":\"ok\"}"], "chunks of {chunk}");
            assert!(!lines.has_partial_line());
        }
    }

    #[test]
    fn a_line_is_given_as_text_only_when_it_is_utf8_under_any_chunking() {
        let body =
            b"{\"item\":\"\xc3\xa9\"}\n{\"item\":\"\xff\"}\n{\"item\":\"\xe6\x97\xa5\"}\n{}\n{\"item\":\"\xc3\"}\n";
        for chunk in 1..=body.len() {
            let mut lines = Lines::new(64);
            let mut seen = Vec::new();
            for piece in body.chunks(chunk) {
                lines.push(Bytes::copy_from_slice(piece));
                while let Some(line) = lines.next_line().unwrap() {
                    let valid = std::str::from_utf8(line.bytes).ok();
                    assert!(line.text.is_none() || line.text == valid, "chunks of {chunk}: {line:?}");
                    seen.push(line.bytes.to_vec());
                }
            }
            assert_eq!(
                seen,
                body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect::<Vec<_>>(),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_fails_alone_and_its_neighbours_decode() {
        // One chunk: checked as UTF-8 whole, it is not, so each line is checked alone.
        let mut lines = Lines::new(64);
        lines.push(Bytes::from_static(b"{\"item\":\"a\"}\n{\"item\":\"\xff\"}\n{\"item\":\"c\"}\n"));
        let mut decoded = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            decoded.push(decode_line::<String>(line).map(|frame| format!("{frame:?}")).map_err(|_| "error"));
        }
        assert_eq!(decoded, [Ok("Item(\"a\")".to_owned()), Err("error"), Ok("Item(\"c\")".to_owned())]);
        // A chunk whose first line began in the last one: checked from its second line.
        let mut lines = Lines::new(64);
        lines.push(Bytes::from_static(b"{\"item\":\"\xc3"));
        assert_eq!(lines.next_line(), Ok(None));
        lines.push(Bytes::from_static(b"\xa9\"}\n{\"item\":\"x\"}\n"));
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!((first.bytes, first.text), ("{\"item\":\"é\"}".as_bytes(), None), "joined, checked alone");
        let second = lines.next_line().unwrap().unwrap();
        assert_eq!(second.text, Some("{\"item\":\"x\"}"), "checked with its chunk");
    }

    #[test]
    fn a_cut_line_is_seen_and_a_long_line_is_refused() {
        let mut lines = Lines::new(8);
        lines.push(Bytes::from_static(b"{\"item\""));
        assert_eq!(lines.next_line(), Ok(None));
        assert!(lines.has_partial_line(), "a body ending here was cut");
        lines.push(Bytes::from_static(b":12345}\n"));
        assert_eq!(lines.next_line(), Err(LineTooLong { limit: 8 }));
        let mut endless = Lines::new(8);
        endless.push(Bytes::from_static(b"0123456789"));
        assert_eq!(endless.next_line(), Err(LineTooLong { limit: 8 }), "refused before its newline");
    }

    /// What a reader made of a body: each frame (or its error), then `too long` and no
    /// more, or `cut` when the body ended inside a frame.
    type Outcome = Vec<String>;

    fn frame_text<T: std::fmt::Debug>(frame: Result<Frame<'_, T>, String>) -> String {
        match frame {
            Ok(frame) => format!("{frame:?}"),
            Err(message) => format!("error: {message}"),
        }
    }

    /// The definition: the body split on `\n`, each line read alone by [`decode_frame`].
    fn reference<T: DeserializeOwned + std::fmt::Debug>(body: &[u8], max_line: usize) -> Outcome {
        let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        let rest = lines.pop().unwrap_or_default();
        let mut seen = Vec::new();
        for line in lines {
            if line.len() > max_line {
                seen.push("too long".to_owned());
                return seen;
            }
            seen.push(frame_text(decode_frame::<T>(line)));
        }
        if rest.len() > max_line {
            seen.push("too long".to_owned());
        } else if !rest.is_empty() {
            seen.push("cut".to_owned());
        }
        seen
    }

    /// The body read as the client reads it, in `chunks`: an item straight from its
    /// chunk when [`Lines::next_item`] takes it, else the line; how many were taken fast.
    fn read<T: DeserializeOwned + std::fmt::Debug>(chunks: &[&[u8]], max_line: usize) -> (Outcome, usize) {
        let (mut lines, mut fast, mut seen, mut taken) = (Lines::new(max_line), true, Vec::new(), 0);
        for chunk in chunks {
            lines.push(Bytes::copy_from_slice(chunk));
            loop {
                if let Some(item) = lines.next_item::<T>(fast) {
                    seen.push(frame_text(Ok(Frame::Item(item))));
                    taken += 1;
                    continue;
                }
                let Ok(line) = lines.next_line() else {
                    seen.push("too long".to_owned());
                    return (seen, taken);
                };
                let Some(line) = line else { break };
                let frame = match item_frame::<T>(line, &mut fast) {
                    Some(item) => Ok(Frame::Item(item)),
                    None => decode_other(line.bytes),
                };
                seen.push(frame_text(frame));
            }
        }
        if lines.has_partial_line() {
            seen.push("cut".to_owned());
        }
        (seen, taken)
    }

    /// `body` read in one, two and three chunks split at every offset agrees with the
    /// definition; how many items were read straight from a chunk, in all.
    fn agrees_under_every_chunking<T: DeserializeOwned + std::fmt::Debug>(body: &[u8], max_line: usize) -> usize {
        let expected = reference::<T>(body, max_line);
        let check = |chunks: &[&[u8]]| {
            let (seen, taken) = read::<T>(chunks, max_line);
            assert_eq!(
                seen,
                expected,
                "chunks {:?}",
                chunks.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>()
            );
            taken
        };
        let mut taken = check(&[body]);
        for a in 0..=body.len() {
            taken += check(&[&body[..a], &body[a..]]);
            for b in a..=body.len() {
                taken += check(&[&body[..a], &body[a..b], &body[b..]]);
            }
        }
        taken
    }

    #[test]
    fn items_read_from_the_chunk_agree_with_lines_read_alone() {
        // `{"item":1}` taken fast; the rest not (fast or not), and some that make the
        // fast path give up (an escape turns it off: last).
        let body: &[u8] = b"{\"item\":1}\n{}\n{\"item\": 2}\n{\"item\":3 }\n{\"item\":4} \n{\"item\":5}x\n\
            {\"item\":[6,\t7]}\n{\"item\":{\"a\":[8,{\"b\":null}]}}\n{\"item\":9,\"later\":{}}\n{\"item\":10}}\n\
            {\"item\":[11,\r12]}\n{\"item\":[13,\n14]}\n{\"item\":\"\xc3\xa9\"}\n{\"item\":\"\xff\"}\n{\"item\":}\n\
            not json\n{\"item\":\"a\\nb\"}\n{\"item\":15}\n{\"end\":\"ok\"}\n";
        assert!(agrees_under_every_chunking::<serde_json::Value>(body, 64) > 0, "some items read fast");
        assert!(agrees_under_every_chunking::<u8>(body, 64) > 0, "some items read fast");
        // The lines before invalid UTF-8 in the same chunk are read as lines.
        let (seen, taken) = read::<u8>(&[b"{\"item\":1}\n{\"item\":\"\xff\"}\n{\"item\":2}\n"], 64);
        assert_eq!((seen.len(), taken), (3, 0), "{seen:?}");
        // A cut frame, after items.
        agrees_under_every_chunking::<u8>(b"{\"item\":1}\n{\"item\":2}\n{\"item\":3", 64);
    }

    /// Lines that hold `{"item":…}` without being that frame, and a frame ended by
    /// `\r\n`, are read as lines, under every chunking: a `\r` before the `\n` is the
    /// line's (serde_json skips it, the frame is still an item), a first byte that is
    /// not `{` makes the line an error, and the rest of a line begun in the last chunk
    /// (`x` then `{"item":4}`, or `{"item":` then `{"item":6}`) is never read from the
    /// chunk as a frame of its own.
    #[test]
    fn lines_that_only_look_like_item_frames_are_read_as_lines() {
        let body: &[u8] = b"{\"item\":1}\r\n{\"item\":2}\nx\"item\":3}\nx{\"item\":4}\n[\"item\":5}\n\
            {\"item\":{\"item\":6}\n {\"item\":7}\n{\"item\":8}\n";
        assert!(agrees_under_every_chunking::<u8>(body, 64) > 0, "some items read fast");
        assert!(agrees_under_every_chunking::<serde_json::Value>(body, 64) > 0, "some items read fast");
        let (seen, taken) = read::<u8>(&[body], 64);
        assert_eq!(seen[0], "Item(1)", "the `\\r` is whitespace to serde_json");
        assert_eq!(taken, 2, "only `{{\"item\":2}}` and `{{\"item\":8}}` are read from the chunk: {seen:?}");
        // The line's own end: what follows the `}` up to the `\n` is the line's.
        let mut lines = Lines::new(64);
        lines.push(Bytes::from_static(b"{\"item\":1}\r\n{\"item\":2}\n"));
        assert_eq!(lines.next_item::<u8>(true), None, "`}}\\r` is not a frame's end");
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"{\"item\":1}\r");
        assert_eq!(lines.next_item::<u8>(true), Some(2));
        // A line begun in the last chunk is joined, not read from the new chunk's start.
        let mut lines = Lines::new(64);
        lines.push(Bytes::from_static(b"x"));
        assert_eq!(lines.next_line(), Ok(None));
        lines.push(Bytes::from_static(b"{\"item\":4}\n{\"item\":5}\n"));
        assert_eq!(lines.next_item::<u8>(true), None, "the rest of the line `x{{\"item\":4}}`");
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"x{\"item\":4}");
        assert_eq!(lines.next_item::<u8>(true), Some(5));
    }

    #[test]
    fn an_item_read_from_the_chunk_is_held_to_the_line_limit() {
        // `{"item":12345}` is 14 bytes: at the limit it is read, one byte over it is not.
        let body = b"{\"item\":1}\n{\"item\":12345}\n{\"item\":2}\n";
        assert!(agrees_under_every_chunking::<u32>(body, 14) > 0);
        let (seen, taken) = read::<u32>(&[body], 14);
        assert_eq!((seen.join(" "), taken), ("Item(1) Item(12345) Item(2)".to_owned(), 3));
        assert!(agrees_under_every_chunking::<u32>(body, 13) > 0);
        let (seen, taken) = read::<u32>(&[body], 13);
        assert_eq!((seen.join(" "), taken), ("Item(1) too long".to_owned(), 1));
        // The frame's `\n` is the chunk's last byte; `}` without it is not taken.
        let mut lines = Lines::new(64);
        lines.push(Bytes::from_static(b"{\"item\":1}\n{\"item\":2}"));
        assert_eq!(lines.next_item::<u8>(true), Some(1));
        assert_eq!(lines.next_item::<u8>(true), None, "not a whole line yet");
        assert_eq!(lines.next_line(), Ok(None));
        lines.push(Bytes::from_static(b"\n{\"item\":3}\n"));
        assert_eq!(lines.next_item::<u8>(true), None, "the joined line is read as a line");
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"{\"item\":2}");
        assert_eq!(lines.next_item::<u8>(false), None, "the fast path is off");
        assert_eq!(lines.next_item::<u8>(true), Some(3));
        assert!(!lines.has_partial_line());
    }

    /// One frame of a random stream, as written or not quite.
    fn any_frame() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let item = |value: serde_json::Value| format!("{{\"item\":{value}}}").into_bytes();
        let odd = [
            &b"{}"[..],
            b"{\"end\":\"ok\"}",
            b"{\"item\":1}x",
            b"{\"item\":1}\r",
            b"x\"item\":1}",
            b"x{\"item\":1}",
            b"{\"item\":1} ",
            b"{\"item\": 2 }",
            b"{\"item\":[1,\t2]}",
            b"{\"item\":[1,\r2]}",
            b"{\"item\":[1,\n2]}",
            b"{\"item\":\"a\rb\"}",
            b"{\"item\":\"\xff\"}",
            b"{\"item\":1,\"later\":{}}",
            b"{\"item\":}",
            b"{\"item\":1}}",
            b"{\"item\"",
            b"",
        ];
        prop_oneof![
            4 => any::<i64>().prop_map(move |n| item(n.into())),
            4 => "[a-z \u{e9}\"\\\\\n]{0,8}".prop_map(move |s| item(s.into())),
            2 => proptest::collection::vec(any::<u16>(), 0..4).prop_map(move |v| item(v.into())),
            3 => proptest::sample::select(odd.to_vec()).prop_map(<[u8]>::to_vec),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn random_frames_in_random_chunks_read_as_the_definition_reads_them(
            frames in proptest::collection::vec(any_frame(), 0..10),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..5),
            cut_last in proptest::prelude::any::<bool>(),
            max_line in 6usize..40,
        ) {
            let mut body = frames.join(&b'\n');
            if !cut_last && !frames.is_empty() {
                body.push(b'\n');
            }
            let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
            at.sort_unstable();
            let chunks: Vec<&[u8]> = [0].iter().chain(&at).zip(at.iter().chain([&body.len()]))
                .map(|(&from, &to)| &body[from..to]).collect();
            proptest::prop_assert_eq!(read::<serde_json::Value>(&chunks, max_line).0, reference::<serde_json::Value>(&body, max_line));
        }
    }
}
