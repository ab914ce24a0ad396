//! Server mode: the suite is the client. It drives a server that hosts the
//! conformance service through raw HTTP/1.1 and runs every case against it.

pub mod call;
pub mod cases;
pub mod expect;

use std::sync::Arc;
use std::time::Duration;

use crate::http::Base;
use crate::report::{Report, Verdict};
use call::Target;
use cases::Needs;

/// How long one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// How server mode runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL.
    pub url: String,
    /// The shared secret, when the server requires signed calls.
    pub secret: Option<Vec<u8>>,
    /// The server's body limit.
    pub max_body_bytes: usize,
    /// Runs only the cases whose name contains this.
    pub only: Option<String>,
}

/// Runs every case and prints a line per case; `true` when none failed.
pub async fn run(options: Options) -> Result<bool, String> {
    let target = Target {
        base: Base::parse(&options.url)?,
        secret: options.secret.map(Arc::new),
        max_body_bytes: options.max_body_bytes,
        run_id: uuid::Uuid::new_v4().simple().to_string(),
    };
    let mut report = Report::default();
    for case in cases::all() {
        if options.only.as_deref().is_some_and(|only| !case.name.contains(only)) {
            continue;
        }
        let verdict = match (case.needs, target.secret.is_some()) {
            (Needs::Secret, false) => Verdict::Skip("no shared secret given (--secret)".to_owned()),
            (Needs::NoSecret, true) => Verdict::Skip("only for servers without a secret".to_owned()),
            _ => match tokio::time::timeout(CASE_LIMIT, (case.run)(target.clone())).await {
                Ok(Ok(())) => Verdict::Pass,
                Ok(Err(why)) => Verdict::Fail(format!("{} ({})", why, case.section)),
                Err(_) => Verdict::Fail(format!("did not finish within {CASE_LIMIT:?}")),
            },
        };
        report.record(case.name, &verdict);
    }
    Ok(report.finish())
}
