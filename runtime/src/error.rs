//! The two error types of intercall.
//!
//! [`Error`] is a setup failure (a bad `services.toml`, a proxy for a service that has no
//! entry); it happens once, at start-up. [`CallError`] is a failure of one remote call
//! that is not the service's own typed error: the transport, the framework, or the reply.
//! Both are opaque structs with predicates, as `reqwest::Error` is, so new kinds can be
//! added without breaking code that matches on them. `CallError::new_timeout` and its
//! siblings build one for a test double, each with exactly its own predicate true.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A setup failure: a `services.toml` that cannot be used, or a proxy built for a
/// service the configuration does not name.
///
/// The message always names the source (a file path, `<inline TOML>` or `<builder>`),
/// and for file problems the line, column and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: SetupErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetupErrorKind {
    Config,
    Lookup,
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self { kind: SetupErrorKind::Config, message: message.into() }
    }

    pub(crate) fn lookup(message: impl Into<String>) -> Self {
        Self { kind: SetupErrorKind::Lookup, message: message.into() }
    }

    /// The configuration could not be read or is invalid.
    pub fn is_config(&self) -> bool {
        self.kind == SetupErrorKind::Config
    }

    /// A proxy was built for a service the configuration has no entry for.
    pub fn is_lookup(&self) -> bool {
        self.kind == SetupErrorKind::Lookup
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Why a remote call failed, when the failure is not the method's own typed error.
///
/// Every service error type implements `From<CallError>`, so a proxy call hands this
/// to the caller as a value of the method's error type, never as a panic. Inspect it
/// with the predicates; the [`Display`](fmt::Display) text names the service, the
/// method and what went wrong.
///
/// `CallError` is `Clone`, comparable and serde-serializable, so a service error type
/// can carry it as a variant (`Unavailable(CallError)`) and send it on across hops.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CallError {
    kind: CallErrorKind,
    service: String,
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    message: String,
    /// Attempts made before giving up.
    #[serde(default = "one")]
    attempts: u32,
    /// Retries stopped because the invoker's retry budget was spent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    budget_exhausted: bool,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
enum CallErrorKind {
    Timeout,
    Connect,
    Status,
    Decode,
    Encode,
    Lookup,
    CircuitOpen,
}

impl CallError {
    fn new(kind: CallErrorKind, service: &str, method: &str, message: String) -> Self {
        Self {
            kind,
            service: service.to_owned(),
            method: method.to_owned(),
            status: None,
            message,
            attempts: 1,
            budget_exhausted: false,
        }
    }

    /// The kind's name, as on the wire (`timeout`, `connect`, ...): a metrics label.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.kind {
            CallErrorKind::Timeout => "timeout",
            CallErrorKind::Connect => "connect",
            CallErrorKind::Status => "status",
            CallErrorKind::Decode => "decode",
            CallErrorKind::Encode => "encode",
            CallErrorKind::Lookup => "lookup",
            CallErrorKind::CircuitOpen => "circuit_open",
        }
    }

    pub(crate) fn after_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub(crate) fn retry_budget_exhausted(mut self) -> Self {
        self.budget_exhausted = true;
        self
    }

    /// No reply within `after`, the attempt's time: the configured per-attempt timeout,
    /// or less when the call's deadline left less.
    pub(crate) fn timeout(service: &str, method: &str, after: Duration, configured: Duration) -> Self {
        let message = if after >= configured {
            format!("no reply within {} ms", after.as_millis())
        } else {
            format!(
                "no reply within {} ms, the time left of the call's deadline (the attempt timeout is {} ms)",
                after.as_millis(),
                configured.as_millis()
            )
        };
        Self::new(CallErrorKind::Timeout, service, method, message)
    }

    /// The server answered that time ran out (`409 in_progress`: it stopped waiting
    /// for the run; `504 deadline_exceeded`: the caller's deadline had passed on
    /// arrival), or something in front of it did (`504` or `408` without an intercall
    /// body): to the caller, a timeout.
    pub(crate) fn server_timeout(service: &str, method: &str, status: u16, message: String) -> Self {
        let mut err = Self::new(CallErrorKind::Timeout, service, method, message);
        err.status = Some(status);
        err
    }

    /// The caller's own deadline (from the call it is made for) has passed; nothing
    /// was sent.
    pub(crate) fn deadline_passed(service: &str, method: &str) -> Self {
        let message = "the deadline of the call this one is made for has passed; nothing was sent".to_owned();
        Self::new(CallErrorKind::Timeout, service, method, message)
    }

    pub(crate) fn connect(service: &str, method: &str, message: String) -> Self {
        Self::new(CallErrorKind::Connect, service, method, message)
    }

    pub(crate) fn status(service: &str, method: &str, status: u16, message: String) -> Self {
        let mut err = Self::new(CallErrorKind::Status, service, method, message);
        err.status = Some(status);
        err
    }

    pub(crate) fn decode(service: &str, method: &str, status: u16, message: String) -> Self {
        let mut err = Self::new(CallErrorKind::Decode, service, method, message);
        err.status = Some(status);
        err
    }

    pub(crate) fn encode(service: &str, method: &str, message: String) -> Self {
        Self::new(CallErrorKind::Encode, service, method, message)
    }

    pub(crate) fn circuit_open(service: &str, method: &str, message: String) -> Self {
        Self::new(CallErrorKind::CircuitOpen, service, method, message)
    }

    /// A timeout of a call to `service.method`, as a test double returns one:
    /// [`is_timeout`](Self::is_timeout) is true, every other kind predicate false. Refine
    /// it with [`with_status`](Self::with_status) (a gateway's `504`),
    /// [`with_message`](Self::with_message) and [`with_attempts`](Self::with_attempts).
    ///
    /// ```
    /// let error = intercall::CallError::new_timeout("Catalog", "get").with_attempts(3);
    /// assert!(error.is_timeout() && !error.is_status());
    /// assert_eq!((error.attempts(), error.status_code()), (3, None));
    /// assert_eq!(error.to_string(), "call to Catalog.get failed: timeout: no reply in time (after 3 attempts)");
    /// ```
    pub fn new_timeout(service: &str, method: &str) -> Self {
        Self::new(CallErrorKind::Timeout, service, method, "no reply in time".to_owned())
    }

    /// A failed connection to `service` ([`is_connect`](Self::is_connect)): refused,
    /// reset or unreachable.
    pub fn new_connect(service: &str, method: &str) -> Self {
        Self::new(CallErrorKind::Connect, service, method, "connection refused".to_owned())
    }

    /// A framework error or a foreign error status ([`is_status`](Self::is_status),
    /// with [`status_code`](Self::status_code) `status`).
    pub fn new_status(service: &str, method: &str, status: u16) -> Self {
        let message = format!("the server answered with status {status}");
        Self::status(service, method, status, message)
    }

    /// A reply that did not decode as the method's types ([`is_decode`](Self::is_decode)),
    /// with status 200 (give another with [`with_status`](Self::with_status)).
    pub fn new_decode(service: &str, method: &str) -> Self {
        Self::decode(service, method, 200, "the reply did not decode as the method's result".to_owned())
    }

    /// Arguments that did not serialize ([`is_encode`](Self::is_encode)); nothing was sent.
    pub fn new_encode(service: &str, method: &str) -> Self {
        Self::encode(service, method, "the arguments did not serialize".to_owned())
    }

    /// A service without a URL ([`is_lookup`](Self::is_lookup)), as a proxy that could
    /// not be built reports it.
    pub fn new_lookup(service: &str) -> Self {
        Self::new(CallErrorKind::Lookup, "", "", format!("no URL for service `{service}`"))
    }

    /// Every endpoint of `service` ejected ([`is_circuit_open`](Self::is_circuit_open)):
    /// failed at once, nothing sent.
    pub fn new_circuit_open(service: &str, method: &str) -> Self {
        Self::circuit_open(service, method, "every endpoint is ejected; nothing was sent".to_owned())
    }

    /// The same error with this message (what went wrong, without the service and method).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same error with the HTTP status of a reply: a timeout answered by a gateway
    /// (`504`), a status failure's code, an undecodable reply's status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error after `attempts` attempts (at least 1).
    pub fn with_attempts(self, attempts: u32) -> Self {
        self.after_attempts(attempts.max(1))
    }

    /// The same error, retries having stopped because the retry budget was spent
    /// ([`is_retry_budget_exhausted`](Self::is_retry_budget_exhausted)).
    pub fn with_retry_budget_exhausted(self) -> Self {
        self.retry_budget_exhausted()
    }

    /// Time ran out: no reply arrived within the attempt's time (the service's
    /// `timeout_ms`, or less when the call's deadline left less); the server answered
    /// that the call was still running when this attempt's time ran out
    /// (`409 in_progress`: [`status_code`](Self::status_code) is 409) or that it arrived
    /// after its caller's deadline (`504 deadline_exceeded`); a gateway, a balancer or
    /// the server's timeout middleware answered `504` or `408` without an intercall
    /// reply (the method may have run, or may still be running; `status_code` is 504 or
    /// 408); or the deadline of the call this one is made for had already passed, so
    /// nothing was sent.
    pub fn is_timeout(&self) -> bool {
        self.kind == CallErrorKind::Timeout
    }

    /// The connection could not be made (refused, unreachable) or broke before a
    /// complete reply arrived.
    pub fn is_connect(&self) -> bool {
        self.kind == CallErrorKind::Connect
    }

    /// The server answered with a framework error (bad request, unknown method, body
    /// too large, panic, ...) or a non-intercall error status; see [`status_code`](Self::status_code).
    pub fn is_status(&self) -> bool {
        self.kind == CallErrorKind::Status
    }

    /// The reply arrived but could not be decoded as the method's `Ok` or error type.
    pub fn is_decode(&self) -> bool {
        self.kind == CallErrorKind::Decode
    }

    /// The arguments could not be serialized to JSON (for example a map whose keys are
    /// not strings); nothing was sent.
    pub fn is_encode(&self) -> bool {
        self.kind == CallErrorKind::Encode
    }

    /// The service has no URL in the configuration. A generated proxy resolves its URL
    /// when it is built, so this only arises from a converted setup [`Error`].
    pub fn is_lookup(&self) -> bool {
        self.kind == CallErrorKind::Lookup
    }

    /// The service's circuit is open: every one of its endpoints is ejected after
    /// failing `eject_after` times in a row, and none is due for its probe yet, so the
    /// call failed at once, without reaching the network and without spending the
    /// retry budget (docs/RELIABILITY.md, "Several endpoints"). When an ejection ends,
    /// the next call probes that endpoint, and traffic returns if it answers. A service
    /// with one URL has a circuit only when `eject_after` is configured for it.
    pub fn is_circuit_open(&self) -> bool {
        self.kind == CallErrorKind::CircuitOpen
    }

    /// Retries stopped early because the invoker's retry budget is spent: too many
    /// calls are failing, and retrying them would only add load. The other predicates
    /// tell what the last attempt failed with.
    pub fn is_retry_budget_exhausted(&self) -> bool {
        self.budget_exhausted
    }

    /// How many attempts the call made before giving up.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The HTTP status of the reply, when one arrived.
    pub fn status_code(&self) -> Option<u16> {
        self.status
    }

    /// The name of the called service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The name of the called method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// What went wrong, without the service and method prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for CallError {
    fn from(err: Error) -> Self {
        // Either way the service could not be resolved to a URL.
        Self::new(CallErrorKind::Lookup, "", "", err.message)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.service.is_empty() {
            write!(f, "call to {}.{} failed: ", self.service, self.method)?;
        }
        let what = match self.kind {
            CallErrorKind::Timeout => "timeout",
            CallErrorKind::Connect => "connection failed",
            CallErrorKind::Status => "error status",
            CallErrorKind::Decode => "undecodable reply",
            CallErrorKind::Encode => "arguments not serializable",
            CallErrorKind::Lookup => "no service URL",
            CallErrorKind::CircuitOpen => "circuit open",
        };
        match self.status {
            Some(status) => write!(f, "{what} (HTTP {status}): {}", self.message)?,
            None => write!(f, "{what}: {}", self.message)?,
        }
        match (self.attempts, self.budget_exhausted) {
            (n, true) => write!(f, " (after {n} attempt{}; retry budget exhausted)", if n == 1 { "" } else { "s" }),
            (1, false) => Ok(()),
            (n, false) => write!(f, " (after {n} attempts)"),
        }
    }
}

impl fmt::Debug for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallError")
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("method", &self.method)
            .field("status", &self.status)
            .field("message", &self.message)
            .field("attempts", &self.attempts)
            .field("budget_exhausted", &self.budget_exhausted)
            .finish()
    }
}

impl std::error::Error for CallError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind predicates, in a fixed order: exactly one must be true.
    fn kinds(error: &CallError) -> [bool; 7] {
        [
            error.is_timeout(),
            error.is_connect(),
            error.is_status(),
            error.is_decode(),
            error.is_encode(),
            error.is_lookup(),
            error.is_circuit_open(),
        ]
    }

    #[test]
    fn each_public_constructor_has_exactly_its_own_predicate() {
        let cases = [
            (CallError::new_timeout("Catalog", "get"), 0, None),
            (CallError::new_connect("Catalog", "get"), 1, None),
            (CallError::new_status("Catalog", "get", 502), 2, Some(502)),
            (CallError::new_decode("Catalog", "get"), 3, Some(200)),
            (CallError::new_encode("Catalog", "get"), 4, None),
            (CallError::new_lookup("Catalog"), 5, None),
            (CallError::new_circuit_open("Catalog", "get"), 6, None),
        ];
        for (error, kind, status) in cases {
            let mut expected = [false; 7];
            expected[kind] = true;
            assert_eq!(kinds(&error), expected, "{error:?}");
            assert_eq!(error.status_code(), status, "{error:?}");
            assert_eq!((error.attempts(), error.is_retry_budget_exhausted()), (1, false));
            assert!(error.to_string().contains("Catalog"), "{error}");
            // What a test double returns crosses a hop like the real thing.
            let json = serde_json::to_string(&error).unwrap();
            assert_eq!(serde_json::from_str::<CallError>(&json).unwrap(), error);
        }
        assert_eq!(CallError::new_timeout("Catalog", "get").service(), "Catalog");
        assert_eq!(CallError::new_timeout("Catalog", "get").method(), "get");
    }

    #[test]
    fn the_refinements_change_only_what_they_name() {
        let error = CallError::new_timeout("Catalog", "get")
            .with_status(504)
            .with_message("the gateway gave up")
            .with_attempts(0)
            .with_retry_budget_exhausted();
        assert!(error.is_timeout() && !error.is_status(), "{error:?}");
        assert_eq!((error.status_code(), error.message(), error.attempts()), (Some(504), "the gateway gave up", 1));
        assert!(error.is_retry_budget_exhausted());
        assert_eq!(
            error.to_string(),
            "call to Catalog.get failed: timeout (HTTP 504): the gateway gave up (after 1 attempt; retry budget exhausted)"
        );
    }
}
