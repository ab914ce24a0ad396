//! What a server sends: results, typed errors, framework errors; and the run of an
//! implementation with its panic caught.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::value::RawValue;

use super::MethodInfo;
use crate::calls::StoredReply;
use crate::type_info::type_info;
use crate::wire::{self, ErrorBody, ErrorKind};

/// A reply before it becomes an HTTP response: status and JSON body. Runs produce
/// these, so that a call-id store can keep them byte for byte.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    /// Successes and typed errors are stored for duplicates; a panic or an internal
    /// failure is not, so that a retry can run again.
    pub(crate) fn is_storable(&self) -> bool {
        self.status == StatusCode::OK || self.status.as_u16() == ErrorKind::Service.status()
    }

    pub(crate) fn into_response(self) -> Response {
        (self.status, [(CONTENT_TYPE, HeaderValue::from_static(wire::JSON))], self.body).into_response()
    }
}

impl From<StoredReply> for Reply {
    fn from(stored: StoredReply) -> Self {
        let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, body: stored.body }
    }
}

impl From<Reply> for StoredReply {
    fn from(reply: Reply) -> Self {
        Self { status: reply.status.as_u16(), body: reply.body }
    }
}

/// Runs the implementation's future to a reply: its result, its typed error, or a
/// `panic` reply if it panicked (the panic message is logged, never sent).
pub(crate) async fn run<T, E, Fut>(info: MethodInfo, future: Fut) -> Reply
where
    T: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<T, E>>,
{
    // Serialization is inside the guard too: a `Serialize` impl can panic as well.
    let replied = AssertUnwindSafe(async {
        match future.await {
            Ok(value) => match serde_json::to_vec(&value) {
                Ok(json) => Reply { status: StatusCode::OK, body: json.into() },
                Err(e) => internal(info, &format!("cannot serialize the result: {e}")),
            },
            Err(error) => service_error(info, &error),
        }
    });
    match replied.catch_unwind().await {
        Ok(reply) => reply,
        Err(panic) => panicked(info, panic_message(&*panic)),
    }
}

/// The reply to a run that panicked; `detail` goes to the log only.
pub(crate) fn panicked(info: MethodInfo, detail: &str) -> Reply {
    tracing::error!(service = info.service, method = info.method, "implementation panicked: {detail}");
    let message = format!("{}.{} panicked; the server logged the panic message", info.service, info.method);
    error(ErrorKind::Panic, &message, None)
}

fn service_error<E: Serialize>(info: MethodInfo, error: &E) -> Reply {
    let value = match serde_json::value::to_raw_value(error) {
        Ok(value) => value,
        Err(e) => return internal(info, &format!("cannot serialize the error: {e}")),
    };
    let type_info = type_info(error);
    let type_name = type_info.name.unwrap_or_else(|| short_type_name::<E>());
    let message = match type_info.variant {
        Some(variant) => format!("{}.{} returned {type_name}::{variant}", info.service, info.method),
        None => format!("{}.{} returned a {type_name}", info.service, info.method),
    };
    let body = ErrorBody {
        kind: ErrorKind::Service.as_str().into(),
        message: message.into(),
        argument: None,
        type_name: Some(type_name.into()),
        variant: type_info.variant.map(Into::into),
        value: Some(&value as &RawValue),
    };
    encode(ErrorKind::Service, &body)
}

fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

pub(crate) fn internal(info: MethodInfo, message: &str) -> Reply {
    tracing::error!(service = info.service, method = info.method, "{message}");
    error(ErrorKind::Internal, &format!("{}.{}: {message}", info.service, info.method), None)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
}

/// A framework error reply: `{"kind": .., "message": .., "argument"?: ..}`.
pub(crate) fn error(kind: ErrorKind, message: &str, argument: Option<&str>) -> Reply {
    let body = ErrorBody {
        kind: kind.as_str().into(),
        message: message.into(),
        argument: argument.map(Into::into),
        type_name: None,
        variant: None,
        value: None,
    };
    encode(kind, &body)
}

fn encode(kind: ErrorKind, body: &ErrorBody<'_>) -> Reply {
    let status = StatusCode::from_u16(kind.status()).expect("wire statuses are valid");
    let json = serde_json::to_vec(body).expect("an error body of strings and raw JSON always serializes");
    Reply { status, body: json.into() }
}

/// Keeps an echoed client string short enough for a log line.
pub(crate) fn truncate(text: &str) -> &str {
    const MAX: usize = 128;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
