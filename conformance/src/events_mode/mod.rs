//! Events mode (`intercall-conformance events REDIS_URL`): the layout of
//! docs/EVENTS.md, checked from Redis's side against intercall's publisher and
//! consumer. The suite reads what the Rust publisher wrote and checks it against the
//! spec ([`layout`], written out from the spec, not from the runtime), and it writes
//! entries by hand, as a peer in another language would, and checks that the Rust
//! consumer handles, skips, leaves pending or dead-letters each as the spec says.

pub mod cases;
pub mod layout;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::{ActivityId, UserContext};

use crate::report::{Report, Verdict};
use crate::service::ConformanceError;

/// How long one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// The reference event trait (docs/CONFORMANCE.md, "Events mode").
#[intercall::events]
pub trait ConformanceEvents {
    /// A plain event: the handler records `text`, `n` and its context.
    async fn noted(&self, text: String, n: u64) -> Result<(), ConformanceError>;
    /// An event with an ordering key.
    async fn keyed(&self, #[ordering_key] key: String, n: u64) -> Result<(), ConformanceError>;
}

/// What a handler saw: its arguments, user and activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// `noted`'s `text`, or `keyed`'s `key`.
    pub text: String,
    /// The `n` argument.
    pub n: u64,
    /// The user the handler ran as.
    pub user: Option<(String, Option<String>)>,
    /// The activity the handler ran in.
    pub activity: Option<String>,
}

/// The reference subscriber: records every handling, by text.
#[derive(Default, Clone)]
pub struct Recorder {
    handled: Arc<Mutex<HashMap<String, Vec<Handled>>>>,
}

impl Recorder {
    fn record(&self, text: String, n: u64) {
        let user = UserContext::current().map(|u| (u.user_type().as_str().to_owned(), u.user_id().map(str::to_owned)));
        let activity = ActivityId::current().map(|a| a.to_string());
        let handled = Handled { text: text.clone(), n, user, activity };
        self.handled.lock().unwrap_or_else(|e| e.into_inner()).entry(text).or_default().push(handled);
    }

    /// Every handling of `text` so far.
    pub fn of(&self, text: &str) -> Vec<Handled> {
        self.handled.lock().unwrap_or_else(|e| e.into_inner()).get(text).cloned().unwrap_or_default()
    }
}

impl ConformanceEvents for Recorder {
    async fn noted(&self, text: String, n: u64) -> Result<(), ConformanceError> {
        self.record(text, n);
        Ok(())
    }

    async fn keyed(&self, key: String, n: u64) -> Result<(), ConformanceError> {
        self.record(key, n);
        Ok(())
    }
}

/// How events mode runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Redis the events go through (`redis://...`); the suite uses keys under a
    /// prefix of its own.
    pub redis_url: String,
    /// The shared secret publisher and consumer sign and verify with, if any.
    pub secret: Option<Vec<u8>>,
}

/// Runs every events case and prints a line per case; `true` when none failed.
pub async fn run(options: Options) -> Result<bool, String> {
    let target = cases::Target::start(&options).await?;
    let mut report = Report::default();
    for case in cases::all() {
        let verdict = if case.needs_secret && options.secret.is_none() {
            Verdict::Skip("no shared secret given (--secret)".to_owned())
        } else {
            match tokio::time::timeout(CASE_LIMIT, (case.run)(target.clone())).await {
                Ok(Ok(())) => Verdict::Pass,
                Ok(Err(why)) => Verdict::Fail(format!("{why} (EVENTS.md {})", case.section)),
                Err(_) => Verdict::Fail(format!("did not finish within {CASE_LIMIT:?}")),
            }
        };
        report.record(case.name, &verdict);
    }
    target.stop().await;
    Ok(report.finish())
}
