//! intercall's JSON encoder: byte for byte what `serde_json::to_writer` writes (compact),
//! for every `T: Serialize`, with a faster string escaper. serde_json escapes a string
//! by testing each byte against a table, which is over half of a 64 KiB string reply's
//! cost (docs/BENCHMARKS.md, "Fourth round: string escaping"); here the next byte that
//! needs an escape (a control byte, `"` or `\`) is found sixteen bytes a compare with
//! SSE2 on x86_64, eight a word (the SWAR test of serde_json's own decoder,
//! `skip_to_escape`) elsewhere, and each clean run is copied as it is scanned (with
//! SSE2, 16 bytes or more; a shorter run is scanned, then copied; `scan.rs`). serde_json
//! still decodes everything.
//!
//! Why a whole `serde::Serializer` of our own rather than a wrapper around
//! `serde_json::Serializer` that takes over strings only: serde_json's compound types
//! hand nested values to its own serializer, and its map-key serializer is private, so
//! a wrapper would write every bracket, comma and key itself anyway. What a wrapper
//! would still have delegated, the digits of numbers, is taken from serde_json here
//! too: numbers go through its public `CompactFormatter`, so they cannot drift from
//! serde_json's. The differential tests (`json_writer/proptests.rs`, the `json_writer`
//! fuzz target) compare the output with `serde_json::to_vec` byte for byte, errors
//! included (their words, `classify()`, line and column).
//!
//! serde_json's two private struct names are written as this build's serde_json writes
//! them: `RawValue` (`raw_value`, on in this workspace) verbatim, and `Number` as its
//! digits when `arbitrary_precision` is on (another crate of an application may turn it
//! on; we ask serde_json once, at run time) and as an ordinary struct when it is off.
//!
//! One deliberate difference: a `Display` given to `collect_str` that returns an error
//! makes serde_json panic ("there should be an error"); here it is an error, after the
//! same bytes (`a_failing_display_is_an_error_where_serde_json_panics` pins both).

use std::fmt::{self, Display};
use std::io;
use std::sync::LazyLock;

use serde::ser::{self, Impossible, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};

use super::scan;

/// serde_json's private struct name for `RawValue` (serde_json's `src/raw.rs`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
/// serde_json's private struct name for `Number` under `arbitrary_precision`
/// (serde_json's `src/number.rs`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

type Result<T> = std::result::Result<T, serde_json::Error>;

/// Whether this build's serde_json has `arbitrary_precision`, i.e. writes the
/// [`NUMBER_TOKEN`] struct as its digits rather than as an object. Features are unified
/// across a build, so asking serde_json once is exact; asked only when a struct has that
/// name.
#[cold]
fn arbitrary_precision() -> bool {
    static ON: LazyLock<bool> = LazyLock::new(|| {
        let digits = TokenStruct { name: NUMBER_TOKEN, field: NUMBER_TOKEN, text: "1" };
        matches!(serde_json::to_vec(&digits).as_deref(), Ok(b"1"))
    });
    #[cfg(test)]
    if let Some(forced) = FORCED_ARBITRARY_PRECISION.get() {
        return forced;
    }
    *ON
}

#[cfg(test)]
thread_local! {
    /// Set by tests to take the raw `Number` path, which this build's serde_json (without
    /// `arbitrary_precision`) never takes.
    static FORCED_ARBITRARY_PRECISION: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// serde_json's private structs as they spell themselves: `serialize_struct(name, 1)`,
/// then one field; given to serde_json to learn how this build treats them.
struct TokenStruct {
    name: &'static str,
    field: &'static str,
    text: &'static str,
}

impl Serialize for TokenStruct {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use ser::SerializeStruct;
        let mut object = s.serialize_struct(self.name, 1)?;
        object.serialize_field(self.field, self.text)?;
        object.end()
    }
}

/// Appends `value` as compact JSON to `out`: what `serde_json::to_writer(out, value)`
/// appends, and the same error when it fails (`out` then holds what was written before
/// the failure, as with serde_json).
#[inline]
pub(crate) fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    value.serialize(&mut Writer { out })
}

/// `value` as compact JSON: what `serde_json::to_vec` returns.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// `value` as compact JSON text: what `serde_json::to_string` returns.
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    // Always UTF-8 (strings and raw values are `str`, the rest ASCII); checked rather
    // than assumed, as the check costs little next to the encoding.
    String::from_utf8(to_vec(value)?).map_err(ser::Error::custom)
}

// ---- strings ----

/// Appends the escape of `byte` (one that [`scan::is_stop`]) as serde_json writes it.
#[cold]
fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0a => b'n',
        0x0c => b'f',
        0x0d => b'r',
        _ => {
            return out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Appends `text`'s characters, escaped, without the quotes.
#[inline]
fn write_escaped_contents(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    loop {
        let at = start + scan::copy_plain(out, &bytes[start..]);
        let Some(&byte) = bytes.get(at) else { return };
        write_escape(out, byte);
        start = at + 1;
    }
}

#[inline]
fn write_str(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    write_escaped_contents(out, text);
    out.push(b'"');
}

/// A number through serde_json's own formatter; writing to a `Vec` does not fail.
#[inline]
fn number(out: &mut Vec<u8>, write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> io::Result<()>) -> Result<()> {
    write(&mut CompactFormatter, out).map_err(ser::Error::custom)
}

/// serde_json's own error for what `value` does wrong (`text` should serde_json ever
/// accept it). Its errors for map keys, raw values and numbers are `Syntax` errors, which
/// `ser::Error::custom` cannot make: these keep `classify()` as well as the words.
#[cold]
#[inline(never)]
fn serde_json_error(value: &impl Serialize, text: &str) -> serde_json::Error {
    serde_json::to_vec(value).err().unwrap_or_else(|| ser::Error::custom(text))
}

fn key_must_be_a_string() -> serde_json::Error {
    serde_json_error(&OneKey(()), "key must be a string")
}

fn float_key_must_be_finite() -> serde_json::Error {
    serde_json_error(&OneKey(f64::NAN), "float key must be finite (got NaN or +/-inf)")
}

/// A `RawValue` struct whose field is not its token.
fn expected_value() -> serde_json::Error {
    serde_json_error(&TokenStruct { name: RAW_VALUE_TOKEN, field: "", text: "1" }, "expected value")
}

/// A `Number` struct whose field is not its token or not a string (under
/// `arbitrary_precision`, the only time it is asked for).
fn invalid_number() -> serde_json::Error {
    serde_json_error(&TokenStruct { name: NUMBER_TOKEN, field: "", text: "1" }, "invalid number")
}

/// A map of one entry, `key` to `null`: serde_json's errors for keys.
struct OneKey<K>(K);

impl<K: Serialize> Serialize for OneKey<K> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(&self.0, &())?;
        map.end()
    }
}

// ---- values ----

/// The serializer: appends to `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// `{"variant":` of a newtype, tuple or struct variant.
    #[inline]
    fn begin_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<()> {
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<()> {
        number(self.out, |f, out| f.write_i8(out, value))
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<()> {
        number(self.out, |f, out| f.write_i16(out, value))
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<()> {
        number(self.out, |f, out| f.write_i32(out, value))
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<()> {
        number(self.out, |f, out| f.write_i64(out, value))
    }

    #[inline]
    fn serialize_i128(self, value: i128) -> Result<()> {
        number(self.out, |f, out| f.write_i128(out, value))
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<()> {
        number(self.out, |f, out| f.write_u8(out, value))
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<()> {
        number(self.out, |f, out| f.write_u16(out, value))
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<()> {
        number(self.out, |f, out| f.write_u32(out, value))
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<()> {
        number(self.out, |f, out| f.write_u64(out, value))
    }

    #[inline]
    fn serialize_u128(self, value: u128) -> Result<()> {
        number(self.out, |f, out| f.write_u128(out, value))
    }

    /// NaN and the infinities are `null`, as serde_json writes them.
    #[inline]
    fn serialize_f32(self, value: f32) -> Result<()> {
        if !value.is_finite() {
            return self.serialize_unit();
        }
        number(self.out, |f, out| f.write_f32(out, value))
    }

    #[inline]
    fn serialize_f64(self, value: f64) -> Result<()> {
        if !value.is_finite() {
            return self.serialize_unit();
        }
        number(self.out, |f, out| f.write_f64(out, value))
    }

    #[inline]
    fn serialize_char(self, value: char) -> Result<()> {
        self.serialize_str(value.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<()> {
        write_str(self.out, value);
        Ok(())
    }

    /// An array of numbers, as serde_json writes bytes.
    #[inline]
    fn serialize_bytes(self, value: &[u8]) -> Result<()> {
        number(self.out, |f, out| f.write_byte_array(out, value))
    }

    #[inline]
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<()> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.begin_variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'w, 'a>> {
        Ok(self.open(b'[', b']', len))
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>> {
        self.begin_variant(variant);
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'w, 'a>> {
        Ok(self.open(b'{', b'}', len))
    }

    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'w, 'a>> {
        match name {
            RAW_VALUE_TOKEN => Ok(Compound::Raw { writer: self, token: RAW_VALUE_TOKEN }),
            NUMBER_TOKEN if arbitrary_precision() => Ok(Compound::Raw { writer: self, token: NUMBER_TOKEN }),
            _ => self.serialize_map(Some(len)),
        }
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>> {
        self.begin_variant(variant);
        self.serialize_map(Some(len))
    }

    /// Escaped as the text is formatted, a piece at a time, without a `String` of it.
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<()> {
        struct Escaping<'b>(&'b mut Vec<u8>);
        impl fmt::Write for Escaping<'_> {
            #[inline]
            fn write_str(&mut self, text: &str) -> fmt::Result {
                write_escaped_contents(self.0, text);
                Ok(())
            }
        }
        self.out.push(b'"');
        // serde_json panics here; an error is kinder.
        fmt::write(&mut Escaping(self.out), format_args!("{value}"))
            .map_err(|_| ser::Error::custom("a Display implementation returned an error"))?;
        self.out.push(b'"');
        Ok(())
    }
}

impl<'w, 'a> Writer<'a> {
    /// Opens an array or object; one known to be empty is closed at once, as serde_json
    /// does (its compound then writes no closing bracket).
    #[inline]
    fn open(&'w mut self, open: u8, close: u8, len: Option<usize>) -> Compound<'w, 'a> {
        self.out.push(open);
        let state = if len == Some(0) {
            self.out.push(close);
            State::Empty
        } else {
            State::First
        };
        Compound::Map { writer: self, state }
    }
}

/// serde_json's compound states, kept as they are so that even a `Serialize` impl
/// whose length hint is wrong gets serde_json's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    First,
    Rest,
}

/// An array or object being written, or one of serde_json's private structs.
enum Compound<'w, 'a> {
    Map { writer: &'w mut Writer<'a>, state: State },
    Raw { writer: &'w mut Writer<'a>, token: &'static str },
}

impl Compound<'_, '_> {
    /// The separator before an element or key, and the state after it.
    #[inline]
    fn next(&mut self) -> Result<&mut Vec<u8>> {
        match self {
            Compound::Map { writer, state } => {
                if *state != State::First {
                    writer.out.push(b',');
                }
                *state = State::Rest;
                Ok(writer.out)
            }
            Compound::Raw { .. } => Err(ser::Error::custom("expected RawValue")),
        }
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.next()?;
        match self {
            Compound::Map { writer, .. } => value.serialize(&mut **writer),
            Compound::Raw { .. } => unreachable!("next refuses a raw value"),
        }
    }

    /// Closes an array or object (nothing when it was closed on opening), then, for a
    /// variant, the object around it.
    #[inline]
    fn close(self, bracket: u8, variant: bool) -> Result<()> {
        if let Compound::Map { writer, state } = self {
            if state != State::Empty {
                writer.out.push(bracket);
            }
            if variant {
                writer.out.push(b'}');
            }
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b']', false)
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b']', false)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b']', false)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b']', true)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        let out = self.next()?;
        key.serialize(KeyWriter { out })
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        match self {
            Compound::Map { writer, .. } => {
                writer.out.push(b':');
                value.serialize(&mut **writer)
            }
            Compound::Raw { .. } => Err(ser::Error::custom("expected RawValue")),
        }
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b'}', false)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        match self {
            Compound::Map { .. } => ser::SerializeMap::serialize_entry(self, key, value),
            // serde_json's errors: "expected value" and "invalid number".
            Compound::Raw { writer, token } if key == *token => value.serialize(RawWriter { out: writer.out, token }),
            Compound::Raw { token: RAW_VALUE_TOKEN, .. } => Err(expected_value()),
            Compound::Raw { .. } => Err(invalid_number()),
        }
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b'}', false)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        ser::SerializeMap::serialize_entry(self, key, value)
    }

    #[inline]
    fn end(self) -> Result<()> {
        self.close(b'}', true)
    }
}

// ---- map keys ----

/// A map key, as serde_json's `MapKeySerializer` writes it: strings, chars and unit
/// variants as strings; booleans and numbers quoted; anything else "key must be a
/// string".
struct KeyWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl KeyWriter<'_> {
    #[inline]
    fn quoted(self, write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> io::Result<()>) -> Result<()> {
        self.out.push(b'"');
        number(self.out, write)?;
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<()> {
        self.quoted(|f, out| f.write_bool(out, value))
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<()> {
        self.quoted(|f, out| f.write_i8(out, value))
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<()> {
        self.quoted(|f, out| f.write_i16(out, value))
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<()> {
        self.quoted(|f, out| f.write_i32(out, value))
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<()> {
        self.quoted(|f, out| f.write_i64(out, value))
    }

    #[inline]
    fn serialize_i128(self, value: i128) -> Result<()> {
        self.quoted(|f, out| f.write_i128(out, value))
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<()> {
        self.quoted(|f, out| f.write_u8(out, value))
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<()> {
        self.quoted(|f, out| f.write_u16(out, value))
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<()> {
        self.quoted(|f, out| f.write_u32(out, value))
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<()> {
        self.quoted(|f, out| f.write_u64(out, value))
    }

    #[inline]
    fn serialize_u128(self, value: u128) -> Result<()> {
        self.quoted(|f, out| f.write_u128(out, value))
    }

    #[inline]
    fn serialize_f32(self, value: f32) -> Result<()> {
        if !value.is_finite() {
            return Err(float_key_must_be_finite());
        }
        self.quoted(|f, out| f.write_f32(out, value))
    }

    #[inline]
    fn serialize_f64(self, value: f64) -> Result<()> {
        if !value.is_finite() {
            return Err(float_key_must_be_finite());
        }
        self.quoted(|f, out| f.write_f64(out, value))
    }

    #[inline]
    fn serialize_char(self, value: char) -> Result<()> {
        self.serialize_str(value.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<()> {
        write_str(self.out, value);
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, _value: &[u8]) -> Result<()> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_none(self) -> Result<()> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<()> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<()> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<()> {
        (&mut Writer { out: self.out }).collect_str(value)
    }
}

// ---- serde_json's private structs ----

/// The field of a `RawValue` or an `arbitrary_precision` `Number`: a string written as
/// it is; anything else is serde_json's error for it.
struct RawWriter<'b> {
    out: &'b mut Vec<u8>,
    token: &'static str,
}

impl RawWriter<'_> {
    /// serde_json's words for a field that is not a string: a `Data` error for a raw value,
    /// a `Syntax` one for a number.
    fn refuse(&self) -> serde_json::Error {
        if self.token == RAW_VALUE_TOKEN { ser::Error::custom("expected RawValue") } else { invalid_number() }
    }
}

impl ser::Serializer for RawWriter<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Impossible<(), serde_json::Error>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_str(self, value: &str) -> Result<()> {
        self.out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn serialize_bool(self, _value: bool) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_i8(self, _value: i8) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_i16(self, _value: i16) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_i32(self, _value: i32) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_i64(self, _value: i64) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_i128(self, _value: i128) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_u8(self, _value: u8) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_u16(self, _value: u16) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_u32(self, _value: u32) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_u64(self, _value: u64) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_u128(self, _value: u128) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_f32(self, _value: f32) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_f64(self, _value: f64) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_char(self, _value: char) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_bytes(self, _value: &[u8]) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_none(self) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_unit(self) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, _variant: &'static str) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, _value: &T) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(self.refuse())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(self.refuse())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(self.refuse())
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct> {
        Err(self.refuse())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(self.refuse())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(self.refuse())
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(self.refuse())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(self.refuse())
    }

    /// Written as it is, as serde_json's emitters do.
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<()> {
        self.serialize_str(&value.to_string())
    }
}

#[cfg(any(fuzzing, test))]
pub(crate) mod model;
#[cfg(test)]
mod proptests;
