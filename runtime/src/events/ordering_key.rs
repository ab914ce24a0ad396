//! What an `#[ordering_key]` argument must be: something with a text, since its text
//! decides the partition (EVENTS.md §5a), in Rust as in any other language.

use std::borrow::Cow;

/// The type of an event method's `#[ordering_key]` argument. Events whose keys have the
/// same text go through one consumer of each group, in publish order.
///
/// Implemented for text, integers (in decimal), `char`, `bool` and UUIDs (lowercase,
/// hyphenated); implement it for a key type of your own, e.g. a newtype over `String`:
///
/// ```
/// struct CustomerId(String);
///
/// impl intercall::OrderingKey for CustomerId {
///     fn ordering_key(&self) -> std::borrow::Cow<'_, str> {
///         std::borrow::Cow::Borrowed(&self.0)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an ordering key: an `#[ordering_key]` argument must be text or an integer",
    label = "not text or an integer",
    note = "write a `String` or integer argument, or implement `intercall::OrderingKey` for `{Self}` (its text decides the events' partition)"
)]
pub trait OrderingKey {
    /// The key's text: the same text, the same order.
    fn ordering_key(&self) -> Cow<'_, str>;
}

impl OrderingKey for str {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl OrderingKey for String {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl OrderingKey for Box<str> {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl OrderingKey for std::sync::Arc<str> {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl OrderingKey for Cow<'_, str> {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl OrderingKey for uuid::Uuid {
    fn ordering_key(&self) -> Cow<'_, str> {
        Cow::Owned(self.hyphenated().to_string())
    }
}

impl<T: OrderingKey + ?Sized> OrderingKey for &T {
    fn ordering_key(&self) -> Cow<'_, str> {
        (**self).ordering_key()
    }
}

macro_rules! by_display {
    ($($ty:ty),*) => {$(
        impl OrderingKey for $ty {
            fn ordering_key(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
        }
    )*};
}

by_display!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, char, bool);

#[cfg(test)]
mod tests {
    use super::OrderingKey;

    #[test]
    fn keys_are_their_plain_text() {
        assert_eq!("c-7".ordering_key(), "c-7");
        assert_eq!(String::from("c-7").ordering_key(), "c-7");
        assert_eq!((-42i64).ordering_key(), "-42");
        assert_eq!(
            uuid::Uuid::parse_str("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap().ordering_key(),
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
    }
}
