//! Binary data on the wire: a byte string travels as one JSON string in standard base64
//! with `=` padding (RFC 4648 §4), not as serde's default JSON array of numbers, which
//! takes up to four bytes per byte and is slow to parse (docs/PROTOCOL.md §1).
//!
//! Two ways in, one encoding: [`Bytes`], the type to write in a method's signature, and
//! [`base64`], a `#[serde(with = ..)]` module for a `Vec<u8>` field a user keeps.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use ::base64::DecodeError;
use ::base64::display::Base64Display;
use ::base64::engine::Engine as _;
use ::base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// What a decoder expects, in serde's "invalid type: .., expected .." and in our own errors.
const EXPECTED: &str = "a base64 string (standard alphabet, padded)";

/// How many bytes `Debug` shows before it gives only the length.
const DEBUG_SHOWN: usize = 32;

/// A byte string that travels as base64: use it for an argument or result that holds
/// binary data (a file, an image, a hash), instead of `Vec<u8>`.
///
/// On the wire it is one JSON string in the standard base64 alphabet with `=` padding
/// (RFC 4648 §4), a third larger than the bytes: 1 MiB fits easily in a server's
/// default 2 MiB body limit. A `Vec<u8>` is a JSON array of numbers, up to four times
/// larger and much slower to encode and decode. Decoding is strict: anything but
/// canonical, padded, standard base64 without whitespace is an error, which a server
/// answers with `400 bad_request` naming the argument.
///
/// It wraps a [`bytes::Bytes`], so `clone` is a reference count and not a copy of the
/// data, and `From<Vec<u8>>`, `From<bytes::Bytes>`, [`into_inner`](Self::into_inner)
/// and [`into_vec`](Self::into_vec) (when no clone shares the buffer) move the buffer
/// without copying it. It dereferences to `[u8]`, and its `Debug` shows at most the
/// first 32 bytes and the length.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Upload {
///     name: String,
///     data: intercall::Bytes,
/// }
///
/// let upload = Upload { name: "hello.txt".into(), data: b"hello".to_vec().into() };
/// let json = serde_json::to_string(&upload)?;
/// assert_eq!(json, r#"{"name":"hello.txt","data":"aGVsbG8="}"#);
///
/// let back: Upload = serde_json::from_str(&json)?;
/// assert_eq!(&*back.data, b"hello");     // derefs to [u8]
/// assert_eq!(back.data.len(), 5);
/// assert_eq!(format!("{:?}", back.data), r#"Bytes(b"hello")"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// In a service:
///
/// ```
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
/// # pub struct StoreError(intercall::CallError);
/// # impl From<intercall::CallError> for StoreError {
/// #     fn from(e: intercall::CallError) -> Self { StoreError(e) }
/// # }
/// #[intercall::service]
/// pub trait BlobStore {
///     /// Stores `blob`, returns its id.
///     async fn put(&self, blob: intercall::Bytes) -> Result<String, StoreError>;
///     async fn get(&self, id: String) -> Result<intercall::Bytes, StoreError>;
/// }
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(bytes::Bytes);

impl Bytes {
    /// An empty byte string, without allocating.
    ///
    /// ```
    /// assert!(intercall::Bytes::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        Self(bytes::Bytes::new())
    }

    /// Bytes from a static slice, without copying them.
    ///
    /// ```
    /// let magic = intercall::Bytes::from_static(b"\x89PNG");
    /// assert_eq!(&magic[1..], b"PNG");
    /// ```
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        Self(bytes::Bytes::from_static(bytes))
    }

    /// Bytes copied from a borrowed slice.
    ///
    /// ```
    /// let header = [0xde, 0xad, 0xbe, 0xef];
    /// let bytes = intercall::Bytes::copy_from_slice(&header[..2]);
    /// assert_eq!(&*bytes, &[0xde, 0xad]);
    /// ```
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self(bytes::Bytes::copy_from_slice(bytes))
    }

    /// The [`bytes::Bytes`] inside, for hyper bodies, `bytes` buffers and the like; no copy.
    ///
    /// ```
    /// let bytes = intercall::Bytes::from(vec![1, 2, 3]);
    /// let inner: bytes::Bytes = bytes.into_inner();
    /// assert_eq!(&inner[..], &[1, 2, 3]);
    /// ```
    pub fn into_inner(self) -> bytes::Bytes {
        self.0
    }

    /// The bytes as a `Vec<u8>`: no copy when the buffer came from a `Vec` (decoded
    /// bytes do) and no clone shares it; otherwise a copy.
    ///
    /// ```
    /// let bytes = intercall::Bytes::from(vec![1, 2, 3]);
    /// assert_eq!(bytes.into_vec(), vec![1, 2, 3]);
    /// ```
    pub fn into_vec(self) -> Vec<u8> {
        self.0.into()
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

// `Hash`, `Eq` and `Ord` agree with `[u8]`'s (bytes::Bytes hashes and compares its
// slice), as `Borrow` requires: a `HashMap<Bytes, _>` can be looked up with a `&[u8]`.
impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// Takes the vector's buffer; no copy.
///
/// ```
/// let bytes = intercall::Bytes::from(vec![0u8; 4]);
/// assert_eq!(bytes.len(), 4);
/// ```
impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }
}

/// Wraps it; no copy.
///
/// ```
/// let bytes = intercall::Bytes::from(bytes::Bytes::from_static(b"abc"));
/// assert_eq!(&*bytes, b"abc");
/// ```
impl From<bytes::Bytes> for Bytes {
    fn from(bytes: bytes::Bytes) -> Self {
        Self(bytes)
    }
}

/// Borrows the static slice; no copy.
///
/// ```
/// let bytes: intercall::Bytes = b"abc".as_slice().into();
/// assert_eq!(bytes.len(), 3);
/// ```
impl From<&'static [u8]> for Bytes {
    fn from(bytes: &'static [u8]) -> Self {
        Self::from_static(bytes)
    }
}

/// Same as [`Bytes::into_inner`].
///
/// ```
/// let inner: bytes::Bytes = intercall::Bytes::from(vec![7]).into();
/// assert_eq!(&inner[..], &[7]);
/// ```
impl From<Bytes> for bytes::Bytes {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

/// Same as [`Bytes::into_vec`].
///
/// ```
/// let vec: Vec<u8> = intercall::Bytes::from(vec![7]).into();
/// assert_eq!(vec, [7]);
/// ```
impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.into_vec()
    }
}

/// At most the first 32 bytes, escaped like a byte string literal, and then the length:
/// a log line holding a 10 MiB upload stays one line.
///
/// ```
/// let short = intercall::Bytes::from_static(b"hi\n\x00");
/// assert_eq!(format!("{short:?}"), r#"Bytes(b"hi\n\x00")"#);
///
/// let long = intercall::Bytes::from(vec![b'a'; 1 << 20]);
/// assert_eq!(format!("{long:?}"), format!(r#"Bytes(len 1048576: b"{}"...)"#, "a".repeat(32)));
/// ```
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(DEBUG_SHOWN)];
        let escaped = shown.escape_ascii();
        if shown.len() == self.0.len() {
            write!(f, "Bytes(b\"{escaped}\")")
        } else {
            write!(f, "Bytes(len {}: b\"{escaped}\"...)", self.0.len())
        }
    }
}

/// A JSON string in standard, padded base64.
///
/// ```
/// let json = serde_json::to_string(&intercall::Bytes::from_static(b"foobar"))?;
/// assert_eq!(json, r#""Zm9vYmFy""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode(&self.0, serializer)
    }
}

/// From a JSON string in standard, padded base64; anything else is an error that says
/// what was expected.
///
/// ```
/// let bytes: intercall::Bytes = serde_json::from_str(r#""Zm9vYmFy""#)?;
/// assert_eq!(&*bytes, b"foobar");
///
/// let error = serde_json::from_str::<intercall::Bytes>(r#""Zm9vYmFy\n""#).unwrap_err();
/// assert!(error.to_string().starts_with("invalid base64 (standard alphabet, padded): "));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        decode(deserializer).map(|bytes: Vec<u8>| Self(bytes.into()))
    }
}

/// A JSON string in standard, padded base64 (`contentEncoding: base64`).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "contentEncoding": "base64" })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// `#[serde(with = "intercall::base64")]`: sends a `Vec<u8>` field (or `Box<[u8]>`,
/// `bytes::Bytes`, any `AsRef<[u8]>` that is `From<Vec<u8>>`) as base64, exactly as
/// [`Bytes`] does, for a type that keeps its own field types.
///
/// ```
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Thumbnail {
///     width: u32,
///     #[serde(with = "intercall::base64")]
///     png: Vec<u8>,
/// }
///
/// let thumbnail = Thumbnail { width: 1, png: b"\x89PNG".to_vec() };
/// let json = serde_json::to_string(&thumbnail)?;
/// assert_eq!(json, r#"{"width":1,"png":"iVBORw=="}"#);
/// assert_eq!(serde_json::from_str::<Thumbnail>(&json)?, thumbnail);
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// For an `Option<Vec<u8>>` field, see [`option`](crate::base64::option).
///
/// With the `schema` feature, schemars reads `with = "intercall::base64"` as the path of
/// the field's type and cannot find one: name the wire type for it, as
/// `#[schemars(with = "intercall::Bytes")]` (and `Option<intercall::Bytes>` for
/// [`option`](crate::base64::option)), which gives the schema [`Bytes`] has.
pub mod base64 {
    use serde::{Deserializer, Serializer};

    /// Serializes `bytes` as a base64 string; serde calls it for `#[serde(with = ..)]`.
    ///
    /// ```
    /// let mut json = Vec::new();
    /// intercall::base64::serialize(b"foo", &mut serde_json::Serializer::new(&mut json))?;
    /// assert_eq!(json, br#""Zm9v""#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn serialize<T, S>(bytes: &T, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: AsRef<[u8]> + ?Sized,
        S: Serializer,
    {
        super::encode(bytes.as_ref(), serializer)
    }

    /// Deserializes a base64 string; serde calls it for `#[serde(with = ..)]`.
    ///
    /// ```
    /// let mut json = serde_json::Deserializer::from_str(r#""Zm9v""#);
    /// let bytes: Vec<u8> = intercall::base64::deserialize(&mut json)?;
    /// assert_eq!(bytes, b"foo");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: From<Vec<u8>>,
        D: Deserializer<'de>,
    {
        super::decode(deserializer).map(T::from)
    }

    /// `#[serde(default, with = "intercall::base64::option")]`: an `Option<Vec<u8>>`
    /// field, `None` as `null` and `Some` as a base64 string.
    ///
    /// Add `default` as shown, so that a missing member means `None` as it does for a
    /// plain `Option` (serde requires every member a `with` function reads).
    ///
    /// ```
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Avatar {
    ///     #[serde(default, with = "intercall::base64::option")]
    ///     image: Option<Vec<u8>>,
    /// }
    ///
    /// let some = Avatar { image: Some(b"hi".to_vec()) };
    /// assert_eq!(serde_json::to_string(&some)?, r#"{"image":"aGk="}"#);
    /// assert_eq!(serde_json::to_string(&Avatar { image: None })?, r#"{"image":null}"#);
    /// assert_eq!(serde_json::from_str::<Avatar>(r#"{"image":"aGk="}"#)?, some);
    /// assert_eq!(serde_json::from_str::<Avatar>("{}")?, Avatar { image: None });
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub mod option {
        use std::fmt;

        use serde::de::{self, Deserializer, Visitor};
        use serde::ser::{Serialize, Serializer};

        /// Serializes `None` as `null` and `Some` as a base64 string.
        ///
        /// ```
        /// let mut json = Vec::new();
        /// intercall::base64::option::serialize(&Some(b"foo"), &mut serde_json::Serializer::new(&mut json))?;
        /// assert_eq!(json, br#""Zm9v""#);
        /// # Ok::<(), serde_json::Error>(())
        /// ```
        pub fn serialize<T, S>(bytes: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
        where
            T: AsRef<[u8]>,
            S: Serializer,
        {
            struct Encoded<'a>(&'a [u8]);

            impl Serialize for Encoded<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    crate::binary::encode(self.0, serializer)
                }
            }

            match bytes {
                Some(bytes) => serializer.serialize_some(&Encoded(bytes.as_ref())),
                None => serializer.serialize_none(),
            }
        }

        /// Deserializes `null` as `None` and a base64 string as `Some`.
        ///
        /// ```
        /// let mut json = serde_json::Deserializer::from_str("null");
        /// let bytes: Option<Vec<u8>> = intercall::base64::option::deserialize(&mut json)?;
        /// assert_eq!(bytes, None);
        /// # Ok::<(), serde_json::Error>(())
        /// ```
        pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
        where
            T: From<Vec<u8>>,
            D: Deserializer<'de>,
        {
            struct OptionVisitor;

            impl<'de> Visitor<'de> for OptionVisitor {
                type Value = Option<Vec<u8>>;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "null or {}", crate::binary::EXPECTED)
                }

                fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }

                fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }

                fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
                    crate::binary::decode(deserializer).map(Some)
                }
            }

            deserializer.deserialize_option(OptionVisitor).map(|bytes| bytes.map(T::from))
        }
    }
}

/// Writes `bytes` as a base64 string. `collect_str` lets serde_json stream the encoder's
/// output into the body, without first building the whole string.
fn encode<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&Base64Display::new(bytes, &STANDARD))
}

/// Reads a base64 string. serde_json hands an unescaped string straight from the body
/// (`visit_borrowed_str`) and an escaped one (`"+\/8="`) from its scratch buffer
/// (`visit_str`): either way, no `String` is built.
fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Base64Visitor;

    impl Visitor<'_> for Base64Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            STANDARD
                .decode(text)
                .map_err(|e| E::custom(format_args!("invalid base64 (standard alphabet, padded): {}", Why(e))))
        }
    }

    deserializer.deserialize_str(Base64Visitor)
}

/// Says what is wrong with the input in its own terms; `DecodeError`'s `Display` gives
/// the offending character as a number ("Invalid symbol 45, offset 2.").
struct Why(DecodeError);

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DecodeError::InvalidByte(offset, byte @ (b'-' | b'_')) => {
                write!(f, "`{}` at offset {offset} is URL-safe base64; use `+` and `/`", byte as char)
            }
            DecodeError::InvalidByte(offset, byte) if byte.is_ascii_whitespace() => {
                write!(f, "whitespace {:?} at offset {offset}; line breaks and spaces are not allowed", byte as char)
            }
            DecodeError::InvalidByte(offset, b'=') => {
                write!(f, "unexpected `=` at offset {offset}; padding is one or two `=` at the very end")
            }
            DecodeError::InvalidByte(offset, byte) => {
                write!(f, "{} at offset {offset} is not in the alphabet `A-Z a-z 0-9 + /`", Shown(byte))
            }
            DecodeError::InvalidPadding => {
                f.write_str("the length is not a multiple of 4; pad the last group with `=`")
            }
            DecodeError::InvalidLength(_) => {
                f.write_str("the length is not a multiple of 4, and the last group is one character (truncated input?)")
            }
            DecodeError::InvalidLastSymbol(offset, byte) => {
                write!(f, "the last symbol {} at offset {offset} has bits set that encode nothing", Shown(byte))
            }
        }
    }
}

/// A byte of the input: printable ASCII as itself in backticks, anything else in hex
/// (a non-ASCII character shows as its first UTF-8 byte).
struct Shown(u8);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() { write!(f, "`{}`", self.0 as char) } else { write!(f, "byte 0x{:02x}", self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_json(bytes: &[u8]) -> String {
        serde_json::to_string(&Bytes::copy_from_slice(bytes)).unwrap()
    }

    fn from_json(json: &str) -> Result<Bytes, String> {
        serde_json::from_str::<Bytes>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn rfc_4648_test_vectors() {
        // RFC 4648 §10.
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (bytes, text) in vectors {
            assert_eq!(to_json(bytes), format!("\"{text}\""));
            assert_eq!(&*from_json(&format!("\"{text}\"")).unwrap(), bytes);
        }
    }

    #[test]
    fn every_padding_case_round_trips() {
        for bytes in [&[][..], &[0x00], &[0xff, 0x00], &[0xfb, 0xff, 0xbf]] {
            let json = to_json(bytes);
            assert_eq!(&*from_json(&json).unwrap(), bytes, "{json}");
        }
        assert_eq!(to_json(&[0xfb, 0xff]), r#""+/8=""#, "the standard alphabet's `+` and `/`");
    }

    #[test]
    fn all_256_byte_values_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        // Python's base64.b64encode(bytes(range(256))), an independent encoder.
        let expected = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==";
        assert_eq!(to_json(&all), format!("\"{expected}\""));
        assert_eq!(from_json(&to_json(&all)).unwrap().into_vec(), all);
    }

    #[test]
    fn an_escaped_string_decodes() {
        // JSON allows `\/` for `/` (PHP's json_encode writes it) and `\uXXXX` for any
        // character; serde_json unescapes into its scratch buffer and calls `visit_str`.
        assert_eq!(&*from_json(r#""+\/8=""#).unwrap(), [0xfb, 0xff]);
        assert_eq!(&*from_json(r#""\u005A\u0067==""#).unwrap(), b"f");
        // From a reader nothing can be borrowed, either.
        let bytes: Bytes = serde_json::from_reader(&br#""Zm9v""#[..]).unwrap();
        assert_eq!(&*bytes, b"foo");
    }

    #[test]
    fn decodes_through_a_json_value_too() {
        // `visit_string` and `visit_borrowed_str` fall back to `visit_str`.
        let value = serde_json::json!({ "b": "Zm9v" });
        let bytes: Bytes = serde_json::from_value(value["b"].clone()).unwrap();
        assert_eq!(&*bytes, b"foo");
        assert_eq!(serde_json::to_value(&bytes).unwrap(), serde_json::json!("Zm9v"));
    }

    #[track_caller]
    fn assert_rejected(json: &str, why: &str) {
        let error = from_json(json).unwrap_err();
        let expected = format!("invalid base64 (standard alphabet, padded): {why}");
        assert!(error.starts_with(&expected), "{json}:\n  got      {error}\n  expected {expected}");
    }

    #[test]
    fn url_safe_alphabet_is_rejected() {
        assert_rejected(r#""-_8=""#, "`-` at offset 0 is URL-safe base64; use `+` and `/`");
        assert_rejected(r#""+_8=""#, "`_` at offset 1 is URL-safe base64; use `+` and `/`");
    }

    #[test]
    fn missing_or_misplaced_padding_is_rejected() {
        let why = "the length is not a multiple of 4; pad the last group with `=`";
        for json in [r#""Zg""#, r#""Zg=""#, r#""Zm8""#, r#""Zm9vYg=""#] {
            assert_rejected(json, why);
        }
        let why = "the length is not a multiple of 4, and the last group is one character (truncated input?)";
        assert_rejected(r#""Z""#, why);
        assert_rejected(r#""Zm9vY""#, why);
        let why = "unexpected `=` at offset 2; padding is one or two `=` at the very end";
        assert_rejected(r#""Zg==Zg==""#, why);
        assert_rejected(r#""Zg===""#, why);
        assert_rejected(r#""Zg=a""#, why);
        assert_rejected(r#""Z===""#, "unexpected `=` at offset 1; padding is one or two `=` at the very end");
    }

    #[test]
    fn whitespace_is_rejected() {
        let why =
            |c: &str, at: usize| format!("whitespace '{c}' at offset {at}; line breaks and spaces are not allowed");
        assert_rejected(r#""Zm9v YmFy""#, &why(" ", 4));
        assert_rejected(r#""Zm9v\nYmFy""#, &why("\\n", 4));
        assert_rejected(r#""Zm9vYmFy\r\n""#, &why("\\r", 8));
        assert_rejected(r#"" Zm9v""#, &why(" ", 0));
    }

    #[test]
    fn other_characters_and_non_canonical_endings_are_rejected() {
        assert_rejected(r#""Zm9v*mFy""#, "`*` at offset 4 is not in the alphabet `A-Z a-z 0-9 + /`");
        assert_rejected(r#""Zm9vé===""#, "byte 0xc3 at offset 4 is not in the alphabet `A-Z a-z 0-9 + /`");
        // "Zh==" would decode to "f" too, if the unused low bits of `h` were ignored.
        assert_rejected(r#""Zh==""#, "the last symbol `h` at offset 1 has bits set that encode nothing");
    }

    #[test]
    fn a_non_string_is_rejected_naming_what_was_expected() {
        let expected = "expected a base64 string (standard alphabet, padded)";
        assert_eq!(from_json("5").unwrap_err(), format!("invalid type: integer `5`, {expected} at line 1 column 1"));
        assert_eq!(from_json("[102]").unwrap_err(), format!("invalid type: sequence, {expected} at line 1 column 0"));
        assert_eq!(from_json("null").unwrap_err(), format!("invalid type: null, {expected} at line 1 column 4"));
    }

    #[test]
    fn the_error_carries_serde_jsons_position() {
        let error = serde_json::from_str::<Vec<Bytes>>(r#"["Zg==", "Zg"]"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid base64 (standard alphabet, padded): the length is not a multiple of 4; pad the last group with `=` \
             at line 1 column 13"
        );
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Fields {
        #[serde(with = "crate::base64")]
        plain: Vec<u8>,
        #[serde(with = "crate::base64")]
        boxed: Box<[u8]>,
        #[serde(default, with = "crate::base64::option")]
        maybe: Option<Vec<u8>>,
    }

    #[test]
    fn serde_with_modules_encode_like_bytes() {
        let fields = Fields { plain: b"foo".to_vec(), boxed: b"fo".to_vec().into(), maybe: Some(b"f".to_vec()) };
        let json = serde_json::to_string(&fields).unwrap();
        assert_eq!(json, r#"{"plain":"Zm9v","boxed":"Zm8=","maybe":"Zg=="}"#);
        assert_eq!(serde_json::from_str::<Fields>(&json).unwrap(), fields);

        let none = Fields { maybe: None, ..fields };
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"plain":"Zm9v","boxed":"Zm8=","maybe":null}"#);
        assert_eq!(serde_json::from_str::<Fields>(r#"{"plain":"Zm9v","boxed":"Zm8=","maybe":null}"#).unwrap(), none);
        assert_eq!(serde_json::from_str::<Fields>(r#"{"plain":"Zm9v","boxed":"Zm8="}"#).unwrap(), none);
    }

    #[test]
    fn serde_with_modules_reject_like_bytes() {
        let error = serde_json::from_str::<Fields>(r#"{"plain":"Zm9v","boxed":"Zm8","maybe":null}"#).unwrap_err();
        assert!(error.to_string().starts_with("invalid base64 (standard alphabet, padded): the length"), "{error}");
        let error = serde_json::from_str::<Fields>(r#"{"plain":"Zm9v","boxed":"Zm8=","maybe":"Zg-="}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid base64 (standard alphabet, padded): `-` at offset 2"),
            "{error}"
        );
        let error = serde_json::from_str::<Fields>(r#"{"plain":"Zm9v","boxed":"Zm8=","maybe":7}"#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid type: integer `7`, expected a base64 string (standard alphabet, padded)"),
            "{error}"
        );
    }

    #[test]
    fn debug_is_bounded() {
        assert_eq!(format!("{:?}", Bytes::new()), r#"Bytes(b"")"#);
        assert_eq!(format!("{:?}", Bytes::from_static(b"a\"\\\xff")), r#"Bytes(b"a\"\\\xff")"#);
        let exactly_shown = Bytes::from(vec![b'x'; DEBUG_SHOWN]);
        assert_eq!(format!("{exactly_shown:?}"), format!("Bytes(b\"{}\")", "x".repeat(DEBUG_SHOWN)));
        let big = Bytes::from(vec![0u8; 8 << 20]);
        let debug = format!("{big:?}");
        assert_eq!(debug, format!("Bytes(len 8388608: b\"{}\"...)", "\\x00".repeat(DEBUG_SHOWN)));
    }

    #[test]
    fn conversions_do_not_copy() {
        let vec = vec![1u8, 2, 3];
        let address = vec.as_ptr();
        let bytes = Bytes::from(vec);
        assert_eq!(bytes.as_ptr(), address, "From<Vec<u8>>");
        let clone = bytes.clone();
        assert_eq!(clone.as_ptr(), address, "clone shares the buffer");
        drop(clone);
        let back = bytes.into_vec();
        assert_eq!(back.as_ptr(), address, "into_vec, unshared");

        let inner = bytes::Bytes::from(vec![4u8, 5]);
        let address = inner.as_ptr();
        let back = Bytes::from(inner).into_inner();
        assert_eq!(back.as_ptr(), address, "From<bytes::Bytes> and into_inner");
    }

    #[test]
    fn hash_eq_and_borrow_agree_with_slices() {
        let mut map = std::collections::HashMap::new();
        map.insert(Bytes::from_static(b"key"), 1);
        assert_eq!(map.get(b"key".as_slice()), Some(&1));
        assert_eq!(Bytes::default(), Bytes::new());
        assert!(Bytes::from_static(b"a") < Bytes::from_static(b"b"));
    }
}
