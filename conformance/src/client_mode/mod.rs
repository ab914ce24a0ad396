//! Client mode: the suite is the server. It serves the conformance service on
//! 127.0.0.1:0, runs the client program with a plan of calls, and checks every
//! request that arrives and every outcome the program prints.

pub mod plan;
pub mod scenarios;

mod checks;
mod server;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::report::{Report, Verdict};
use plan::{Outcome, PLAN_ENV, Plan, SECRET_ENV, URL_ENV};
use scenarios::Seen;
use server::Server;

/// The per-attempt timeout the plan sets: short, so that the timeout scenario is quick,
/// and long enough that no loopback call times out on a loaded CI machine.
pub const TIMEOUT_MS: u64 = 2000;

/// How long the client program may run.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// How client mode runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The shared secret the client must sign with, if any.
    pub secret: Option<Vec<u8>>,
}

/// Runs the client program and prints a line per case; `true` when none failed.
pub async fn run(options: Options) -> std::io::Result<bool> {
    let scenarios = scenarios::all();
    let (server, url) = Server::start(&scenarios).await?;
    let plan = Plan { timeout_ms: TIMEOUT_MS, calls: scenarios.iter().flat_map(|s| s.plan_calls()).collect() };
    let plan = serde_json::to_string(&plan).expect("a plan serializes");

    let mut report = Report::default();
    let (program, args) = options.command.split_first().ok_or_else(|| std::io::Error::other("no client command"))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).env(URL_ENV, &url).env(PLAN_ENV, &plan).stdin(Stdio::null()).stdout(Stdio::piped());
    command.kill_on_drop(true);
    match &options.secret {
        Some(secret) => command.env(SECRET_ENV, String::from_utf8_lossy(secret).as_ref()),
        None => command.env_remove(SECRET_ENV),
    };
    let (ran, stdout) = match command.spawn() {
        Err(e) => (Verdict::Fail(format!("cannot start `{program}`: {e}")), String::new()),
        Ok(mut child) => {
            let mut stdout = child.stdout.take().expect("piped");
            let mut output = String::new();
            let finished = tokio::time::timeout(CLIENT_LIMIT, async {
                let _ = stdout.read_to_string(&mut output).await;
                child.wait().await
            })
            .await;
            let verdict = match finished {
                Ok(Ok(status)) if status.success() => Verdict::Pass,
                Ok(Ok(status)) => Verdict::Fail(format!("the client program exited with {status}")),
                Ok(Err(e)) => Verdict::Fail(format!("waiting for the client program: {e}")),
                Err(_) => Verdict::Fail(format!("the client program ran for over {CLIENT_LIMIT:?}; killed")),
            };
            (verdict, output)
        }
    };
    report.record("client_program_exits_cleanly", &ran);

    let outcomes: Vec<(String, Outcome)> = stdout.lines().filter_map(Outcome::parse).collect();
    let items: Vec<(String, serde_json::Value)> = stdout.lines().filter_map(plan::parse_item).collect();
    let arrivals = server.arrivals();
    let context = checks::Context { timeout_ms: TIMEOUT_MS, secret: options.secret.clone() };
    for rule in checks::all() {
        let verdict = if rule.needs_secret && options.secret.is_none() {
            Verdict::Skip("no shared secret given (--secret)".to_owned())
        } else {
            rule.check(&arrivals, &context).into()
        };
        report.record(rule.name, &verdict);
    }
    let strays: Vec<_> = arrivals.iter().filter(|a| a.method().is_none()).collect();
    for scenario in &scenarios {
        let seen = Seen {
            arrivals: arrivals.iter().filter(|a| a.scenario.as_deref() == Some(scenario.name)).collect(),
            outcomes: outcomes.iter().filter(|(case, _)| case == scenario.name).map(|(_, o)| o).collect(),
            items: items.iter().filter(|(case, _)| case == scenario.name).map(|(_, item)| item).collect(),
            strays: strays.iter().copied().filter(|a| a.target.contains(scenario.name)).collect(),
        };
        report.record(scenario.name, &(scenario.check)(&seen).into());
    }
    Ok(report.finish())
}

/// Every case of client mode, with its section: for `intercall-conformance list`.
pub fn case_names() -> Vec<(&'static str, &'static str)> {
    let mut names = vec![("client_program_exits_cleanly", "-")];
    names.extend(checks::all().iter().map(|r| (r.name, r.section)));
    names.extend(scenarios::all().iter().map(|s| (s.name, s.section)));
    names
}
