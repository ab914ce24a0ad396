//! A fast path for decoding JSON: a strict deserializer for the common case that hands
//! anything else to serde_json. A stream's reader (§4.3) decodes an item in place in its
//! chunk with [`from_prefix`], which says where the value ends (the frame's `}` and `\n`
//! must follow), and a frame read as a line with [`from_str`]; a server decodes a unary
//! call's arguments (§3) and a client its result with [`from_json`].
//!
//! serde_json spends most of a small item's decode on its strings (every field name is
//! one): its string scan is made for long strings, and on names of a few bytes its
//! setup is most of the cost. Here a string's end is found sixteen bytes a compare
//! (SSE2 on x86_64, `scan.rs`), which is cheap for a short name and for a 64 KiB string
//! alike. This reader takes the strings, numbers and containers
//! that a server's serde_json writes, and **gives up** (`None`) on anything else: an
//! escape in a string, a line break between tokens, a control character, a number it would have to round or that
//! does not fit `u64`/`i64`, `-0`, `f32`, bytes, 128-bit integers, serde_json's
//! `RawValue`, nesting past [`MAX_DEPTH`], or any error at all (the item type's own
//! included, and one it catches and recovers from: see [`give_up`]). The caller then decodes the same text with serde_json, which gives the
//! value or the error, with its message. So this reader must never accept what
//! serde_json rejects, nor decode a value differently; it is checked against serde_json
//! by the differential tests below and by the `item_json` fuzz target. What it follows
//! of serde_json (1.0.154, `float_roundtrip`, as this crate enables it):
//!
//! - which `Visitor` method each JSON value reaches for each `deserialize_*` hint: a
//!   non-negative integer is `visit_u64`, a negative one `visit_i64`, a number with a
//!   fraction or an exponent `visit_f64` (correctly rounded, as `str::parse` rounds);
//!   a string `visit_borrowed_str`; `deserialize_struct` takes an object or an array;
//!   an enum is `"Variant"` or `{"Variant":<value>}`; `deserialize_option` is `None`
//!   for `null` and `Some` for anything else;
//! - where the grammar ends a value: a map or a sequence whose visitor stopped before its
//!   end, or text after the value, gives up (serde_json fails there);
//! - what it does not do the same way, it gives up on (the list above).
//!
//! With serde_json's `arbitrary_precision` (a feature any crate in a build can turn
//! on), numbers reach visitors another way: this reader is then not used at all.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};

use super::scan;

#[cfg(any(fuzzing, test))]
pub(crate) mod differential;
#[cfg(test)]
mod tests;

/// Deeper nesting than this gives up (serde_json's own limit is 128).
pub(crate) const MAX_DEPTH: u32 = 100;

/// `text` decoded as `T` when this reader can do it as serde_json would; `None` when it
/// cannot tell (decode with serde_json then).
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    let (value, used) = from_prefix(text)?;
    // What serde_json allows after a value: whitespace (a line break gives up, as
    // between tokens).
    text.as_bytes()[used..].iter().all(|&b| is_space(b)).then_some(value)
}

/// The whitespace this reader skips: JSON's, but for the line breaks (see
/// [`Reader::skip_whitespace`]).
#[inline(always)]
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t')
}

/// [`from_str`] for a body of bytes (a unary call's arguments or result): `None` too when
/// it is not UTF-8 (serde_json then says where), and at once when it holds a backslash.
/// An escape is what this reader gives up on most, and late: without the search (32
/// bytes a step, stopping at the first) a 64 KiB string escaped at its end cost its
/// UTF-8 check and its whole scan for nothing (+13 % of the call, BENCHMARKS.md).
pub(crate) fn from_json<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    if memchr::memchr(b'\\', json).is_some() {
        return None;
    }
    from_str(std::str::from_utf8(json).ok()?)
}

/// The value `text` starts with, decoded as `T`, and how many bytes it took (up to its
/// last byte: whitespace after it is not read); `None` when this reader cannot tell,
/// under the same rules as [`from_str`]. What follows the value is the caller's to
/// check: `from_str(&text[..used])` gives the same value.
///
/// The reader gives up on a `\n` or `\r` between tokens and on any control byte in a
/// string, so the bytes it took never hold a line break: a stream's reader decodes a
/// frame's item from its whole chunk with this (`Lines::next_item`) and relies on the
/// value never running past its line.
pub(crate) fn from_prefix<T: DeserializeOwned>(text: &str) -> Option<(T, usize)> {
    if !usable() {
        return None;
    }
    // The flag of a decode this one runs inside (if an item type ever decoded another
    // item) is put back afterwards.
    let outer = GAVE_UP.replace(false);
    let mut reader = Reader { text, bytes: text.as_bytes(), at: 0, depth: 0 };
    let value = T::deserialize(&mut reader);
    let gave_up = GAVE_UP.replace(outer);
    value.ok().filter(|_| !gave_up).map(|value| (value, reader.at))
}

/// Whether serde_json gives numbers to visitors as plain numbers (not with
/// `arbitrary_precision`, which keeps their text): checked once.
fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    // With `arbitrary_precision`, a number keeps its text: `1e2` is not `100.0` then.
    *USABLE.get_or_init(|| {
        serde_json::from_str::<serde_json::Value>("1e2").is_ok_and(|value| value == serde_json::json!(100.0))
    })
}

/// Why this reader gave up; never shown (serde_json decodes the text again). Made only
/// by [`give_up`].
#[derive(Debug)]
pub(crate) struct GiveUp(());

thread_local! {
    /// Whether a [`GiveUp`] was made during this thread's current [`from_str`], even one
    /// the item type then caught and recovered from.
    static GAVE_UP: Cell<bool> = const { Cell::new(false) };
}

/// The one way to give up: latched in [`GAVE_UP`], so the decode's result is refused
/// even if the error is swallowed (a lenient field that takes its default on error goes
/// on from where this reader stopped, which need not be where serde_json stops: inside
/// `-0`, after a `-` without digits, before an array's `]`).
#[cold]
fn give_up() -> GiveUp {
    GAVE_UP.set(true);
    GiveUp(())
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not decoded by the fast path")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    /// Every error a visitor or an item type makes comes through here.
    fn custom<M: fmt::Display>(_: M) -> Self {
        give_up()
    }
}

type Result<T> = std::result::Result<T, GiveUp>;

/// A number as serde_json's parser sorts it.
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// `integer.fraction` (the values and digit counts [`Reader::digits`] gives) when both
/// the whole mantissa and the power of ten are exact in an `f64` (under 2^53, and at
/// most 10^22): one division, so correctly rounded (Clinger's fast path, the first
/// thing `str::parse` tries too).
#[inline]
fn exact_decimal(integer: u64, integer_digits: usize, fraction: u64, fraction_digits: usize) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    const POWERS_OF_TEN: [u64; 16] = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
        10_000_000_000,
        100_000_000_000,
        1_000_000_000_000,
        10_000_000_000_000,
        100_000_000_000_000,
        1_000_000_000_000_000,
    ];
    // Sixteen digits in all at most (both values exact, the product under 10^16 < 2^64).
    if integer_digits + fraction_digits > 16 {
        return None;
    }
    let mantissa = integer * POWERS_OF_TEN[fraction_digits] + fraction;
    if mantissa >= 1 << 53 {
        return None;
    }
    Some(mantissa as f64 / POWERS[fraction_digits])
}

/// The value of twenty decimal digits, if it fits a `u64`.
fn exact_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| value.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
}

/// How many bytes of `rest` come before its first quote, backslash or control byte
/// (found sixteen bytes a compare, `scan.rs`); none of them: give up (the string is not
/// closed).
#[inline]
fn plain_run(rest: &[u8]) -> Result<usize> {
    let run = scan::first_stop(rest);
    if run == rest.len() {
        return Err(give_up());
    }
    Ok(run)
}

struct Reader<'de> {
    text: &'de str,
    bytes: &'de [u8],
    at: usize,
    depth: u32,
}

impl<'de> Reader<'de> {
    /// JSON's whitespace, but for the line breaks: a space or a tab. A `\n` or `\r`
    /// between tokens is left where it is, so the decode gives up there (a stream's
    /// frames are lines, and the reader of a frame straight from its chunk relies on never
    /// reading past a line's end; serde_json decodes such a text instead).
    #[inline]
    fn skip_whitespace(&mut self) {
        while self.bytes.get(self.at).is_some_and(|&byte| is_space(byte)) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Result<u8> {
        match self.bytes.get(self.at) {
            // A server writes no whitespace between tokens: one compare for the usual case.
            Some(&byte) if byte > b' ' => Ok(byte),
            _ => {
                self.skip_whitespace();
                self.bytes.get(self.at).copied().ok_or_else(give_up)
            }
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek()? != byte {
            return Err(give_up());
        }
        self.at += 1;
        Ok(())
    }

    /// `word` (a literal: `null`, `true`, `false`) at the current byte.
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if !self.bytes[self.at..].starts_with(word) {
            return Err(give_up());
        }
        self.at += word.len();
        Ok(())
    }

    /// A string without escapes or control characters, the reader at its opening quote
    /// (checked here, where the `unsafe` below relies on it).
    #[inline(always)]
    fn string(&mut self) -> Result<&'de str> {
        let Some((&b'"', rest)) = self.bytes.get(self.at..).and_then(<[u8]>::split_first) else {
            return Err(give_up());
        };
        let run = plain_run(rest)?;
        // Not an escape (serde_json decodes it) nor a control character (serde_json
        // refuses one).
        if rest[run] != b'"' {
            return Err(give_up());
        }
        let start = self.at + 1;
        self.at = start + run + 1;
        debug_assert!(self.text.is_char_boundary(start) && self.text.is_char_boundary(start + run));
        // SAFETY: `bytes` is `text`, UTF-8; `rest` starts right after an ASCII quote and
        // `rest[run]` is one, both checked just above, so `rest[..run]` begins and ends
        // on character boundaries of `text`, and a slice of UTF-8 between character
        // boundaries is UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(&rest[..run]) })
    }

    /// A number by JSON's grammar, the reader at its first byte.
    #[inline(always)]
    fn number(&mut self) -> Result<Number> {
        let start = self.at;
        let negative = self.bytes[self.at] == b'-';
        self.at += usize::from(negative);
        let (integer, integer_digits) = self.digits();
        // At least one digit, and no leading zero.
        if integer_digits == 0 || (integer_digits > 1 && self.bytes[start + usize::from(negative)] == b'0') {
            return Err(give_up());
        }
        let mut float = false;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            float = true;
            let (fraction, fraction_digits) = self.digits();
            if fraction_digits == 0 {
                return Err(give_up());
            }
            if !matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
                if let Some(value) = exact_decimal(integer, integer_digits, fraction, fraction_digits) {
                    return Ok(Number::F64(if negative { -value } else { value }));
                }
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            float = true;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits().1 == 0 {
                return Err(give_up());
            }
        }
        if float {
            // `str::parse` rounds correctly, as serde_json's `float_roundtrip` does; out of
            // range (infinite) is an error there.
            let parsed: f64 = self.text[start..self.at].parse().map_err(|_| give_up())?;
            return if parsed.is_finite() { Ok(Number::F64(parsed)) } else { Err(give_up()) };
        }
        // Past 19 digits the value may not fit (and `digits` no longer tracks it).
        let value = match integer_digits {
            ..=19 => integer,
            20 => exact_u64(&self.bytes[self.at - 20..self.at]).ok_or_else(give_up)?,
            _ => return Err(give_up()),
        };
        match (negative, value) {
            (false, value) => Ok(Number::U64(value)),
            // serde_json gives `-0` and integers below `i64::MIN` as floats.
            (true, 0) => Err(give_up()),
            (true, value) if value <= 1 << 63 => Ok(Number::I64((value as i64).wrapping_neg())),
            (true, _) => Err(give_up()),
        }
    }

    /// The digits from the reader on, consumed: their value (exact for up to 19 digits,
    /// which cannot overflow a `u64`; meaningless past that) and how many there are.
    #[inline]
    fn digits(&mut self) -> (u64, usize) {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(&byte @ b'0'..=b'9') = self.bytes.get(self.at) {
            value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
            self.at += 1;
        }
        (value, self.at - start)
    }

    #[inline(always)]
    fn visit_number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        match self.number()? {
            Number::U64(value) => visitor.visit_u64(value),
            Number::I64(value) => visitor.visit_i64(value),
            Number::F64(value) => visitor.visit_f64(value),
        }
    }

    /// Runs `body` one level deeper.
    fn nested<T>(&mut self, body: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(give_up());
        }
        self.depth += 1;
        let value = body(self);
        self.depth -= 1;
        value
    }

    /// An array, its `[` next; the visitor must read it to its end.
    fn array<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.nested(|reader| {
            reader.at += 1;
            let value = visitor.visit_seq(Elements { reader: &mut *reader, first: true })?;
            reader.expect(b']')?;
            Ok(value)
        })
    }

    /// An object, its `{` next; the visitor must read it to its end.
    fn object<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.nested(|reader| {
            reader.at += 1;
            let value = visitor.visit_map(Members { reader: &mut *reader, first: true })?;
            reader.expect(b'}')?;
            Ok(value)
        })
    }

    /// Any value, checked and dropped (serde_json's `ignore_value` checks it whole too).
    fn skip(&mut self) -> Result<()> {
        de::Deserializer::deserialize_any(&mut *self, de::IgnoredAny).map(|_| ())
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'"' => visitor.visit_borrowed_str(self.string()?),
            b'-' | b'0'..=b'9' => self.visit_number(visitor),
            b'[' => self.array(visitor),
            b'{' => self.object(visitor),
            _ => Err(give_up()),
        }
    }

    #[inline(always)]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b't' | b'f' => self.deserialize_any(visitor),
            _ => Err(give_up()),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    #[inline(always)]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    #[inline(always)]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    #[inline(always)]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    #[inline(always)]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    /// serde_json parses an `f32` to single precision directly: not done here.
    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    /// Every number hint but `f32`: a number, whichever kind it is (serde_json's
    /// `deserialize_number`); the visitor converts it or refuses.
    #[inline(always)]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.visit_number(visitor),
            _ => Err(give_up()),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline(always)]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'"' => visitor.visit_borrowed_str(self.string()?),
            _ => Err(give_up()),
        }
    }

    #[inline(always)]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    /// serde_json reads bytes from a string or an array its own way: not done here.
    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'n' => self.deserialize_any(visitor),
            _ => Err(give_up()),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    /// A newtype is its inner value, except serde_json's private ones (`RawValue`'s
    /// name starts with `$`), which it reads its own way.
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        if name.starts_with('$') {
            return Err(give_up());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'[' => self.array(visitor),
            _ => Err(give_up()),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'{' => self.object(visitor),
            _ => Err(give_up()),
        }
    }

    /// An object, or an array of the fields in order (serde_json takes both).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if name.starts_with('$') {
            return Err(give_up());
        }
        match self.peek()? {
            b'{' => self.object(visitor),
            b'[' => self.array(visitor),
            _ => Err(give_up()),
        }
    }

    /// `"Variant"`, or `{"Variant":<value>}` with nothing after the value.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek()? {
            b'"' => visitor.visit_enum(UnitVariant { reader: self }),
            b'{' => self.nested(|reader| {
                reader.at += 1;
                let value = visitor.visit_enum(Variant { reader: &mut *reader })?;
                reader.expect(b'}')?;
                Ok(value)
            }),
            _ => Err(give_up()),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u128<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }
}

/// An array's elements, `first` until one was read.
struct Elements<'r, 'de> {
    reader: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = GiveUp;

    #[inline(always)]
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        match (self.reader.peek()?, self.first) {
            (b']', _) => return Ok(None),
            (b',', false) => {
                self.reader.at += 1;
                // `,]` is a trailing comma: an error.
                if self.reader.peek()? == b']' {
                    return Err(give_up());
                }
            }
            (b',', true) => return Err(give_up()),
            (_, true) => {}
            (_, false) => return Err(give_up()),
        }
        self.first = false;
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

/// An object's members, `first` until one was read.
struct Members<'r, 'de> {
    reader: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> de::MapAccess<'de> for Members<'_, 'de> {
    type Error = GiveUp;

    #[inline(always)]
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        match (self.reader.peek()?, self.first) {
            (b'}', _) => return Ok(None),
            (b',', false) => {
                self.reader.at += 1;
                // A key must follow (`,}` is a trailing comma).
                if self.reader.peek()? != b'"' {
                    return Err(give_up());
                }
            }
            (b'"', true) => {}
            _ => return Err(give_up()),
        }
        self.first = false;
        let key = self.reader.string()?;
        seed.deserialize(Key { key }).map(Some)
    }

    #[inline(always)]
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        self.reader.expect(b':')?;
        seed.deserialize(&mut *self.reader)
    }
}

/// A member's name (or a variant's, written `{"Variant":…}`): a string. For these hints serde_json hands
/// a key to `visit_borrowed_str` whatever they ask; for the others (numbers and
/// booleans read from inside the quotes, options, newtypes, enums, bytes) it reads
/// the key its own way: those give up here.
struct Key<'de> {
    key: &'de str,
}

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.key)
    }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }

    fn deserialize_bool<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_i8<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_i16<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_i32<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_i64<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u8<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u16<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u32<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u64<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_u128<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_option<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], _: V) -> Result<V::Value> {
        Err(give_up())
    }
}

/// An enum written as its variant's name, the reader at its opening quote: a unit
/// variant only.
struct UnitVariant<'r, 'de> {
    reader: &'r mut Reader<'de>,
}

impl<'de> de::EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = GiveUp;
    type Variant = Self;

    /// The name read by the reader itself, as serde_json reads it (not as a map key,
    /// which takes a string for any hint).
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let variant = seed.deserialize(&mut *self.reader)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = GiveUp;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _: S) -> Result<S::Value> {
        Err(give_up())
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(give_up())
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value> {
        Err(give_up())
    }
}

/// An enum written as `{"Variant":<value>}`, the reader after its `{`.
struct Variant<'r, 'de> {
    reader: &'r mut Reader<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = GiveUp;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        if self.reader.peek()? != b'"' {
            return Err(give_up());
        }
        let key = self.reader.string()?;
        let variant = seed.deserialize(Key { key })?;
        self.reader.expect(b':')?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = GiveUp;

    /// `{"Variant":null}`, as serde_json reads a unit variant written as an object.
    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(&mut *self.reader)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value> {
        seed.deserialize(&mut *self.reader)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(&mut *self.reader, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(&mut *self.reader, "", fields, visitor)
    }
}
