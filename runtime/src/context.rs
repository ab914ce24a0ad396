//! The context a call carries across hops: who the end user is, which activity the
//! call belongs to, and how long the first caller still waits.
//!
//! It lives in a tokio task-local. A server runs every implementation inside the
//! context its request carried, and every proxy call reads the current context and
//! sends it on, so a chain of services sees the same user and activity with no code at
//! the call sites. (A task the implementation spawns itself starts without a context:
//! wrap it in [`UserContext::scope`] or [`CallContext::scope`] to carry it over.)

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest user type or user id accepted, in bytes.
pub const MAX_USER_FIELD_BYTES: usize = 256;

/// What kind of user a call is made for. The four the seed design uses have variants;
/// any other name is [`UserType::Other`], so new kinds need no new release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserType {
    /// Another system, calling with its own credentials.
    Integration,
    /// Staff with administrative rights.
    Admin,
    /// A signed-in customer.
    Customer,
    /// A visitor who has not signed in; usually without an id.
    Guest,
    /// Any other kind, by its wire name.
    Other(Arc<str>),
}

impl UserType {
    /// The name on the wire: `integration`, `admin`, `customer`, `guest`, or the
    /// `Other` name.
    pub fn as_str(&self) -> &str {
        match self {
            UserType::Other(name) => name,
            builtin => builtin.static_name().unwrap_or_default(),
        }
    }

    /// A built-in type's name, which needs no copy; `None` for [`Other`](Self::Other).
    pub(crate) fn static_name(&self) -> Option<&'static str> {
        match self {
            UserType::Integration => Some("integration"),
            UserType::Admin => Some("admin"),
            UserType::Customer => Some("customer"),
            UserType::Guest => Some("guest"),
            UserType::Other(_) => None,
        }
    }
}

impl From<&str> for UserType {
    fn from(name: &str) -> Self {
        match name {
            "integration" => UserType::Integration,
            "admin" => UserType::Admin,
            "customer" => UserType::Customer,
            "guest" => UserType::Guest,
            other => UserType::Other(Arc::from(other)),
        }
    }
}

impl FromStr for UserType {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(UserType::from(name))
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user context that cannot be sent: empty, too long, or not text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidContext(String);

impl fmt::Display for InvalidContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidContext {}

/// Who a call is made for: a user type and, except for guests, an id.
///
/// ```
/// use intercall::{UserContext, UserType};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), intercall::InvalidContext> {
/// let alice = UserContext::new(UserType::Customer, "42")?;
/// alice.clone().scope(async {
///     // Every proxy call made here sends x-user-type: customer, x-user-id: 42.
///     assert_eq!(UserContext::current(), Some(alice));
/// }).await;
/// assert_eq!(UserContext::current(), None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserContext {
    user_type: UserType,
    user_id: Option<Arc<str>>,
}

impl UserContext {
    /// A user of `user_type` with `user_id`. Both must be non-empty and at most
    /// [`MAX_USER_FIELD_BYTES`] bytes, without control characters.
    pub fn new(user_type: impl Into<UserType>, user_id: impl AsRef<str>) -> Result<Self, InvalidContext> {
        let user_type = user_type.into();
        check_field("user type", user_type.as_str())?;
        check_field("user id", user_id.as_ref())?;
        Ok(Self { user_type, user_id: Some(Arc::from(user_id.as_ref())) })
    }

    /// A user of `user_type` without an id.
    pub fn anonymous(user_type: impl Into<UserType>) -> Result<Self, InvalidContext> {
        let user_type = user_type.into();
        check_field("user type", user_type.as_str())?;
        Ok(Self { user_type, user_id: None })
    }

    /// A guest: type `guest`, no id.
    pub fn guest() -> Self {
        Self { user_type: UserType::Guest, user_id: None }
    }

    /// The user's type.
    pub fn user_type(&self) -> &UserType {
        &self.user_type
    }

    /// The user's id; `None` for a guest.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The user the current call is made for: inside an implementation, the one the
    /// request carried; inside [`scope`](Self::scope), that one.
    pub fn current() -> Option<UserContext> {
        CallContext::current().user
    }

    /// Runs `future` as this user: every proxy call inside it sends this user on.
    /// The activity id and deadline of the enclosing context, if any, are kept.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CallContext { user: Some(self), ..CallContext::current() }.scope(future)
    }

    /// Reads a user from header values, as a server does. `None` when both are absent.
    pub(crate) fn from_headers(
        user_type: Option<&[u8]>,
        user_id: Option<&[u8]>,
    ) -> Result<Option<Self>, InvalidContext> {
        fn text<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, InvalidContext> {
            if let Some(text) = usual_field(bytes) {
                return Ok(text);
            }
            let text =
                std::str::from_utf8(bytes).map_err(|_| InvalidContext(format!("header `{name}` is not UTF-8")))?;
            check_field(format_args!("header `{name}`"), text)?;
            Ok(text)
        }
        match (user_type, user_id) {
            (None, None) => Ok(None),
            (None, Some(_)) => {
                Err(InvalidContext("header `x-user-id` without `x-user-type`; send the user's type too".to_owned()))
            }
            // Both fields were checked by `text`, as `new` and `anonymous` would check
            // them again; and a known type's wire name passes those checks.
            (Some(user_type), None) => {
                Ok(Some(Self { user_type: text("x-user-type", user_type)?.into(), user_id: None }))
            }
            (Some(user_type), Some(user_id)) => {
                let user_type = text("x-user-type", user_type)?.into();
                Ok(Some(Self { user_type, user_id: Some(Arc::from(text("x-user-id", user_id)?)) }))
            }
        }
    }
}

/// A header field as clients send it, which passes every check of [`check_field`]: 1
/// to [`MAX_USER_FIELD_BYTES`] bytes of visible ASCII and spaces, with no space at either
/// end. One pass over the bytes, where the checks decode UTF-8 and trim (~300
/// instructions a field, two fields a call); anything else, `None`, goes through them and
/// gets their error.
fn usual_field(bytes: &[u8]) -> Option<&str> {
    let (&first, &last) = (bytes.first()?, bytes.last()?);
    let usual = bytes.len() <= MAX_USER_FIELD_BYTES
        && first != b' '
        && last != b' '
        && bytes.iter().all(|&byte| byte.is_ascii_graphic() || byte == b' ');
    // SAFETY: every byte is ASCII (checked just above), and ASCII is UTF-8.
    usual.then(|| unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// `what` is formatted only when the value is refused.
fn check_field(what: impl std::fmt::Display, value: &str) -> Result<(), InvalidContext> {
    if value.is_empty() {
        return Err(InvalidContext(format!("the {what} is empty")));
    }
    if value.len() > MAX_USER_FIELD_BYTES {
        return Err(InvalidContext(format!(
            "the {what} is {} bytes long; the limit is {MAX_USER_FIELD_BYTES}",
            value.len()
        )));
    }
    // ASCII (every header value hyper accepts as text) is checked a byte at a time.
    let control = if value.is_ascii() {
        value.bytes().any(|b| b.is_ascii_control())
    } else {
        value.chars().any(char::is_control)
    };
    if control {
        return Err(InvalidContext(format!("the {what} contains a control character")));
    }
    // HTTP drops whitespace around header values: `" 42 "` would arrive as `"42"`.
    if value.trim() != value {
        return Err(InvalidContext(format!("the {what} starts or ends with whitespace")));
    }
    Ok(())
}

/// The id of the activity a call belongs to: minted where a chain of calls starts and
/// carried unchanged by every call the chain makes, so logs and traces of all hops can
/// be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActivityId(uuid::Uuid);

impl ActivityId {
    /// A new random activity id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The activity id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// The activity of the current call, inside an implementation or a scope.
    pub fn current() -> Option<ActivityId> {
        CallContext::current().activity
    }

    pub(crate) fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }
}

impl Default for ActivityId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Everything a call carries: user, activity and deadline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The end user, if any.
    pub user: Option<UserContext>,
    /// The activity; a proxy call without one mints one.
    pub activity: Option<ActivityId>,
    /// When the first caller stops waiting; nested calls stop by then too.
    pub deadline: Option<Instant>,
    /// The W3C trace context the request carried, forwarded to nested calls.
    pub trace: Option<crate::protocol::trace::TraceContext>,
}

tokio::task_local! {
    static CURRENT: CallContext;
}

impl CallContext {
    /// The context of the current call; empty outside any call or scope.
    pub fn current() -> CallContext {
        CURRENT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `future` inside this context.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` inside this context: for polling a stream, which has no future to scope.
    pub(crate) fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// The time left before the deadline; `None` without one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// Runs `future` with a deadline `budget` from now (or the enclosing one, if sooner):
/// every proxy call inside it, and every call those make, gives up by then.
pub fn with_deadline<F: Future>(budget: Duration, future: F) -> impl Future<Output = F::Output> {
    let outer = CallContext::current();
    // A budget too large to represent is no deadline of our own.
    let deadline = match (Instant::now().checked_add(budget), outer.deadline) {
        (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
        (ours, theirs) => ours.or(theirs),
    };
    CallContext { deadline, ..outer }.scope(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass check of a header field accepts nothing the full checks refuse, and
    /// gives the same text: every string of up to three bytes from an alphabet of edge
    /// bytes (controls, space, the ends of visible ASCII, DEL, UTF-8 lead and
    /// continuation bytes, an invalid byte), and fields at and over the length limit.
    #[test]
    fn a_usual_field_is_one_the_full_checks_accept() {
        let full = |bytes: &[u8]| -> Option<String> {
            let text = std::str::from_utf8(bytes).ok()?;
            check_field("field", text).ok().map(|()| text.to_owned())
        };
        let alphabet = [0x00, 0x09, 0x1f, b' ', b'!', b'a', b'~', 0x7f, 0x80, 0xc3, 0xa9, 0xff];
        let mut fields = crate::protocol::headers::tests::every_string(&alphabet, 3);
        fields.push(vec![b'x'; MAX_USER_FIELD_BYTES]);
        fields.push(vec![b'x'; MAX_USER_FIELD_BYTES + 1]);
        let mut accepted = 0;
        for field in &fields {
            if let Some(text) = usual_field(field) {
                assert_eq!(Some(text.to_owned()), full(field), "{field:?}");
                accepted += 1;
            }
        }
        // What clients send takes the one pass; the rest is left to the full checks.
        for usual in ["customer", "customer-7", "a b", "~!", &"x".repeat(MAX_USER_FIELD_BYTES)] {
            assert_eq!(usual_field(usual.as_bytes()), Some(usual), "{usual:?}");
        }
        for other in ["", " a", "a ", "a\tb", "caf\u{e9}", &"x".repeat(MAX_USER_FIELD_BYTES + 1)] {
            assert_eq!(usual_field(other.as_bytes()), None, "{other:?}");
        }
        assert!(accepted > 40, "{accepted}");
    }

    #[test]
    fn user_types_round_trip_through_their_wire_names() {
        for name in ["integration", "admin", "customer", "guest", "partner"] {
            assert_eq!(UserType::from(name).as_str(), name);
        }
        assert_eq!(UserType::from("partner"), UserType::Other(Arc::from("partner")));
    }

    #[test]
    fn headers_give_the_user_new_and_anonymous_give_and_refuse_what_they_refuse() {
        let mut fields: Vec<String> = ["guest", "partner", "42", "", " 42", "42 ", "a\u{85}b", "é", "\u{a0}x"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        fields.push("x".repeat(MAX_USER_FIELD_BYTES));
        fields.push("x".repeat(MAX_USER_FIELD_BYTES + 1));
        fields.extend((0..=127u8).map(|b| format!("a{}b", char::from(b))));
        for b in 0..=255u8 {
            let field = format!("a{}b", char::from(b));
            let refused = UserContext::anonymous(field.as_str()).is_err();
            assert_eq!(refused, char::from(b).is_control(), "{field:?}");
        }
        for user_type in &fields {
            let header = UserContext::from_headers(Some(user_type.as_bytes()), None).ok().flatten();
            assert_eq!(header, UserContext::anonymous(user_type.as_str()).ok(), "{user_type:?}");
            for user_id in ["7", user_type.as_str()] {
                let header =
                    UserContext::from_headers(Some(user_type.as_bytes()), Some(user_id.as_bytes())).ok().flatten();
                assert_eq!(header, UserContext::new(user_type.as_str(), user_id).ok(), "{user_type:?} {user_id:?}");
                let header = UserContext::from_headers(Some(b"admin"), Some(user_type.as_bytes())).ok().flatten();
                assert_eq!(header, UserContext::new("admin", user_type).ok(), "{user_type:?}");
            }
        }
    }

    #[test]
    fn malformed_users_are_rejected() {
        assert!(UserContext::new(UserType::Customer, "").is_err());
        assert!(UserContext::new("", "1").is_err());
        assert!(UserContext::new(UserType::Customer, "x".repeat(257)).is_err());
        assert!(UserContext::new(UserType::Customer, "x".repeat(256)).is_ok());
        assert!(UserContext::new(UserType::Customer, "a\nb").is_err());
        assert!(UserContext::new(UserType::Customer, " 42").is_err());
        assert!(UserContext::new(UserType::Customer, "4 2").is_ok());
        assert!(UserContext::from_headers(None, Some(b"7")).is_err());
        assert!(UserContext::from_headers(Some(b"customer"), Some(b"\xff")).is_err());
        assert_eq!(UserContext::from_headers(Some(b"guest"), None).unwrap(), Some(UserContext::guest()));
    }

    #[tokio::test]
    async fn scopes_nest_and_keep_what_they_do_not_set() {
        let alice = UserContext::new(UserType::Customer, "alice").unwrap();
        let activity = ActivityId::new();
        let outer = CallContext { activity: Some(activity), ..CallContext::default() };
        outer
            .scope(async {
                alice
                    .clone()
                    .scope(async {
                        assert_eq!(UserContext::current(), Some(alice.clone()));
                        assert_eq!(ActivityId::current(), Some(activity));
                    })
                    .await;
                assert_eq!(UserContext::current(), None);
            })
            .await;
    }

    #[tokio::test]
    async fn an_inner_deadline_never_extends_an_outer_one() {
        with_deadline(Duration::from_millis(10), async {
            let outer = CallContext::current().deadline.unwrap();
            with_deadline(Duration::from_secs(60), async {
                assert_eq!(CallContext::current().deadline, Some(outer));
            })
            .await;
        })
        .await;
    }
}
