//! Without the `events` feature: the generated types compile against these, and
//! building one is an error saying to enable the feature.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use super::codegen::DispatchFn;
use crate::{CallError, Error, Invoker};

fn feature_off(name: &str) -> Error {
    Error::config(format!(
        "events `{name}` need intercall's `events` feature: `intercall = {{ version = \"..\", features = [\"events\"] }}`"
    ))
}

/// Stands for the publisher of the `events` feature; never built.
#[derive(Clone, Debug)]
pub struct Publisher {
    never: Infallible,
}

/// Fails: the `events` feature is off.
pub fn publisher(_: &Invoker, name: &'static str) -> Result<Publisher, Error> {
    Err(feature_off(name))
}

impl Publisher {
    /// Never called: no `Publisher` exists.
    pub async fn publish<A: serde::Serialize + ?Sized>(
        &self,
        _: &'static str,
        _: &A,
        _: Option<&str>,
    ) -> Result<(), CallError> {
        match self.never {}
    }
}

/// Stands for the consumer of the `events` feature; never built.
pub struct Consumer<T> {
    never: Infallible,
    _implementation: PhantomData<fn() -> T>,
}

/// Fails: the `events` feature is off.
pub fn consumer<T>(
    _: &Invoker,
    name: &'static str,
    _: &'static [&'static str],
    _: bool,
    _: String,
    _: Arc<T>,
    _: DispatchFn<T>,
) -> Result<Consumer<T>, Error> {
    Err(feature_off(name))
}

impl<T: Send + Sync + 'static> Consumer<T> {
    /// Never called: no `Consumer` exists.
    pub fn set_consumer_name(&mut self, _: String) {
        match self.never {}
    }

    /// Never called: no `Consumer` exists.
    pub fn set_only_new_events(&mut self) {
        match self.never {}
    }

    /// Never called: no `Consumer` exists.
    pub async fn run<F: std::future::Future<Output = ()> + Send>(self, _: F) {
        match self.never {}
    }
}
