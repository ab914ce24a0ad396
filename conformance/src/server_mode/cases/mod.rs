//! Every case of server mode, one module per part of docs/PROTOCOL.md.

use std::future::Future;
use std::pin::Pin;

use super::call::Target;
use super::expect::Check;

mod body;
mod call_ids;
mod content_type;
mod context;
mod headers;
mod responses;
mod routing;
mod signing;
mod size;
mod streams;

/// What a case needs of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Runs always.
    Nothing,
    /// Runs only with the shared secret (`--secret`).
    Secret,
    /// Runs only without one: the server is taken not to require signatures.
    NoSecret,
}

/// A named check of one rule.
pub struct Case {
    /// Printed on its line.
    pub name: &'static str,
    /// The section of docs/PROTOCOL.md it checks.
    pub section: &'static str,
    /// When it runs.
    pub needs: Needs,
    /// The check.
    pub run: fn(Target) -> Pin<Box<dyn Future<Output = Check> + Send>>,
}

/// `case!("§3", name)` for `async fn name(t: Target) -> Check`.
macro_rules! case {
    ($section:literal, $name:ident) => {
        case!($section, $name, $crate::server_mode::cases::Needs::Nothing)
    };
    ($section:literal, $name:ident, $needs:expr) => {
        $crate::server_mode::cases::Case {
            name: stringify!($name),
            section: $section,
            needs: $needs,
            run: |t| Box::pin($name(t)),
        }
    };
}
pub(crate) use case;

/// Every case, in the order they run: the spec's order.
pub fn all() -> Vec<Case> {
    [
        routing::cases(),
        content_type::cases(),
        headers::cases(),
        body::cases(),
        size::cases(),
        responses::cases(),
        streams::cases(),
        call_ids::cases(),
        context::cases(),
        signing::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Runs `check` on every input, naming the first input that fails.
pub(crate) async fn each<I, F, Fut>(inputs: I, check: F) -> Check
where
    I: IntoIterator,
    I::Item: std::fmt::Debug + Clone,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Check>,
{
    for input in inputs {
        check(input.clone()).await.map_err(|e| format!("{input:?}: {e}"))?;
    }
    Ok(())
}
