//! The call-id store: how a server makes a retried call run at most once.
//!
//! The first request of a call id *claims* it and runs the method; a duplicate that
//! finds the claim *waits* for the result, or replays it once it is there. The owner
//! *completes* the claim with the reply to store, or *releases* it (the run panicked)
//! so that a retry can run again. [`MemoryCallStore`] is the in-process store; a store
//! shared by several replicas implements the same trait.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::context::UserContext;

pub use memory::{DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, DEFAULT_TTL, MemoryCallStore, MemoryStoreUsage};
#[cfg(feature = "redis")]
pub(crate) use redis::parse_url as parse_redis_url;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_LEASE, DEFAULT_PREFIX, RedisCallStore};

/// The bound on one Redis operation of a [`RedisCallStore`](self): 1 s.
pub const DEFAULT_REDIS_OP_TIMEOUT: Duration = Duration::from_secs(1);

/// A boxed future, as the store's methods return (the trait is object-safe so that a
/// node can pick its store at run time).
pub type StoreFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where a node keeps the results of calls that carry an `x-call-id`.
///
/// Every method is keyed by a [`CallKey`]: the call id scoped by service, method and
/// user, so that nobody is ever answered with another method's or another user's
/// result.
pub trait CallStore: Send + Sync + 'static {
    /// Claims `key` for a run, or says who has it. `fingerprint` identifies the request
    /// body: a claim whose fingerprint differs is [`Claim::Mismatch`].
    fn claim<'a>(&'a self, key: &'a CallKey, fingerprint: u128) -> StoreFuture<'a, Claim>;

    /// Waits for the run of `key` whose body has `fingerprint` to complete, for at most
    /// `timeout` (`None`: as long as it takes). `None` when it did not complete in time,
    /// was released, is gone, or is now a run of another body.
    fn wait<'a>(
        &'a self,
        key: &'a CallKey,
        fingerprint: u128,
        timeout: Option<Duration>,
    ) -> StoreFuture<'a, Option<StoredReply>>;

    /// Stores the reply of the run that `ticket` claimed, and wakes its waiters. A
    /// ticket that no longer owns the key (its entry expired and was claimed again)
    /// stores nothing.
    fn complete<'a>(&'a self, key: &'a CallKey, ticket: Ticket, reply: StoredReply) -> StoreFuture<'a, ()>;

    /// Gives the claim up without a result (the run panicked), so a retry can run.
    fn release<'a>(&'a self, key: &'a CallKey, ticket: Ticket) -> StoreFuture<'a, ()>;

    /// [`claim`](Self::claim) without waiting, for a store that can answer at once
    /// (an in-process one); `None` (the default) means "call `claim`". A server answers
    /// a duplicate found this way without spawning a task.
    fn claim_at_once(&self, key: &CallKey, fingerprint: u128) -> Option<Result<Claim, StoreError>> {
        let _ = (key, fingerprint);
        None
    }
}

/// What a [`CallStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now claimed: run the method, then complete or release.
    Run(Ticket),
    /// Another request holds the claim and has not finished.
    Running,
    /// The call has run; here is its reply, to send again byte for byte.
    Done(StoredReply),
    /// The call id was used before with a different body.
    Mismatch,
}

/// Proof of a claim, handed back to [`CallStore::complete`] or [`CallStore::release`]:
/// a token unique per claim (a fencing token for shared stores) and whatever the store
/// keeps to finish the claim even when its entry has expired meanwhile.
#[derive(Clone)]
pub struct Ticket {
    token: u64,
    local: Option<Arc<dyn Any + Send + Sync>>,
}

impl Ticket {
    /// A ticket identified by `token` alone.
    pub fn new(token: u64) -> Self {
        Self { token, local: None }
    }

    /// A ticket that also carries store-local state.
    pub fn with_local(token: u64, local: Arc<dyn Any + Send + Sync>) -> Self {
        Self { token, local: Some(local) }
    }

    /// The claim's unique token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The store-local state, if the store attached some.
    pub fn local(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.local.as_ref()
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ticket").field(&self.token).finish()
    }
}

impl PartialEq for Ticket {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

impl Eq for Ticket {}

/// The reply of a run, as stored and replayed: status and body, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    /// 200 (a result) or 422 (a typed service error): the outcomes that are stored.
    pub status: u16,
    /// The JSON body.
    pub body: Bytes,
}

/// The identity of one call: its id, scoped by service, method and user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    call_id: u128,
    service: &'static str,
    method: &'static str,
    user: Option<UserContext>,
}

impl CallKey {
    /// The key of call `call_id` to `service.method` for `user` (`None`: a call
    /// without user context).
    pub fn new(call_id: uuid::Uuid, service: &'static str, method: &'static str, user: Option<UserContext>) -> Self {
        Self { call_id: call_id.as_u128(), service, method, user }
    }

    /// The call id.
    pub fn call_id(&self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.call_id)
    }

    /// The service name.
    pub fn service(&self) -> &str {
        self.service
    }

    /// The method name.
    pub fn method(&self) -> &str {
        self.method
    }

    /// The caller's user type, when the request carried one.
    pub fn user_type(&self) -> Option<&str> {
        self.user.as_ref().map(|user| user.user_type().as_str())
    }

    /// The caller's user id, when the request carried one.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().and_then(UserContext::user_id)
    }

    /// A 128-bit digest of the whole key (XXH3 seeded with `seed`): what an in-process
    /// store keys by, 16 bytes instead of the key's strings. Parts are length-prefixed,
    /// like the text form, so that no two keys share an input; a secret `seed` keeps
    /// clients from choosing keys that collide.
    pub fn digest(&self, seed: u64) -> u128 {
        // Hashed at once from a buffer on the stack when the key fits, as every usual
        // key does: XXH3 gives the same digest for the same bytes either way, and its
        // streaming state derives a secret from the seed first, which was four fifths of
        // the digest's cost (775 instructions per call, 9 updates).
        let mut buffer = [0u8; DIGEST_BUFFER];
        let mut len = 0;
        let mut fits = true;
        self.digest_input(|bytes| match buffer.get_mut(len..len + bytes.len()) {
            Some(room) if fits => {
                room.copy_from_slice(bytes);
                len += bytes.len();
            }
            _ => fits = false,
        });
        if fits {
            return xxhash_rust::xxh3::xxh3_128_with_seed(&buffer[..len], seed);
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
        self.digest_input(|bytes| hasher.update(bytes));
        hasher.digest128()
    }

    /// The bytes [`digest`](Self::digest) hashes, a piece at a time: the call id, then
    /// each part's length plus one and its text, or a zero length when it is absent.
    fn digest_input(&self, mut put: impl FnMut(&[u8])) {
        put(&self.call_id.to_le_bytes());
        for part in [Some(self.service), Some(self.method), self.user_type(), self.user_id()] {
            match part {
                Some(text) => {
                    put(&(text.len() as u64 + 1).to_le_bytes());
                    put(text.as_bytes());
                }
                None => put(&0u64.to_le_bytes()),
            }
        }
    }
}

/// The keys [`CallKey::digest`] hashes from the stack: up to 256 bytes, 208 of them for
/// the four names after the call id and the lengths.
const DIGEST_BUFFER: usize = 256;

/// `service/method/<type>/<id>/call-id`, a stable text form for stores keyed by
/// strings. Each user part is length-prefixed (`8:customer`, `-` when absent), so no
/// two keys share a text form.
impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/", self.service, self.method)?;
        for part in [self.user_type(), self.user_id()] {
            match part {
                Some(text) => write!(f, "{}:{text}/", text.len())?,
                None => f.write_str("-/")?,
            }
        }
        write!(f, "{}", self.call_id())
    }
}

/// What a server does when its call-id store fails (unreachable, timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Answer `503 store_unavailable` (retryable) and run nothing: the at-most-once
    /// guarantee holds, availability suffers (the default).
    #[default]
    Fail,
    /// Run the call without deduplication and log it: availability holds, a retry may
    /// run the method twice.
    Run,
}

/// The fingerprint of a request body, as servers pass it to [`CallStore::claim`]:
/// 128-bit XXH3, a specified hash, so that every replica (whatever its Rust version)
/// computes the same value.
pub fn fingerprint(body: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(body)
}

/// The store could not be reached or failed; the request is answered 503 (retryable)
/// and nothing runs.
#[derive(Debug, Clone)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// A store failure with a message for logs and the 503 reply.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

#[cfg(test)]
mod tests {
    use super::{CallKey, DIGEST_BUFFER};
    use crate::context::{UserContext, UserType};

    /// The digest as XXH3's streaming form computes it, one update a piece.
    fn streamed(key: &CallKey, seed: u64) -> u128 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
        key.digest_input(|bytes| hasher.update(bytes));
        hasher.digest128()
    }

    fn input_len(key: &CallKey) -> usize {
        let mut len = 0;
        key.digest_input(|bytes| len += bytes.len());
        len
    }

    #[test]
    fn a_key_hashed_from_the_stack_has_the_streamed_digest_on_both_sides_of_the_buffer_size() {
        let id = uuid::Uuid::from_u128(0x3f2c_8a51_6d0e_4b7a_9c44_0e1d_5b7f_9a21);
        // With the fixed parts (call id, four lengths, `Svc`, `m`, `customer`), an id of
        // `filler` bytes makes the input exactly the buffer's size.
        let one = input_len(&CallKey::new(id, "Svc", "m", Some(UserContext::new(UserType::Customer, "x").unwrap())));
        let filler = DIGEST_BUFFER - (one - 1);
        let mut keys = vec![
            CallKey::new(id, "Catalog", "get", None),
            CallKey::new(id, "Catalog", "get", Some(UserContext::anonymous(UserType::Guest).unwrap())),
            CallKey::new(id, "Catalog", "get", Some(UserContext::new(UserType::Customer, "customer-7").unwrap())),
        ];
        for len in [filler - 1, filler, filler + 1, 256] {
            let user = UserContext::new(UserType::Customer, "x".repeat(len)).unwrap();
            keys.push(CallKey::new(id, "Svc", "m", Some(user)));
        }
        let lengths: Vec<usize> = keys.iter().map(input_len).collect();
        assert!(lengths.contains(&DIGEST_BUFFER) && lengths.contains(&(DIGEST_BUFFER + 1)), "{lengths:?}");
        for key in &keys {
            for seed in [0, 1, 0x9e37_79b9_7f4a_7c15] {
                assert_eq!(key.digest(seed), streamed(key, seed), "{key} ({} bytes), seed {seed}", input_len(key));
            }
        }
        // Different keys, different digests; a different seed, a different digest.
        let digests: std::collections::HashSet<u128> = keys.iter().map(|key| key.digest(7)).collect();
        assert_eq!(digests.len(), keys.len());
        assert_ne!(keys[0].digest(1), keys[0].digest(2));
    }
}
