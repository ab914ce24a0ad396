//! `intercall-conformance`: see docs/CONFORMANCE.md.

use std::process::ExitCode;

use intercall_conformance::client_mode::{self, plan::SECRET_ENV};
use intercall_conformance::service::{ConformanceServer, Reference};
use intercall_conformance::{events_mode, server_mode};

const USAGE: &str = "\
usage:
  intercall-conformance server URL [--secret S] [--max-body-bytes N] [--only TEXT]
  intercall-conformance client [--secret S] -- CMD [ARGS...]
  intercall-conformance events REDIS_URL [--secret S]
  intercall-conformance serve-reference [--secret S]
  intercall-conformance list

The secret may also come from INTERCALL_CONFORMANCE_SECRET.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("intercall-conformance: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The parsed flags of every subcommand.
#[derive(Default)]
struct Flags {
    positional: Vec<String>,
    secret: Option<Vec<u8>>,
    max_body_bytes: Option<usize>,
    only: Option<String>,
    command: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--secret" => flags.secret = Some(value("--secret")?.into_bytes()),
            "--max-body-bytes" => {
                let text = value("--max-body-bytes")?;
                flags.max_body_bytes = Some(text.parse().map_err(|_| format!("--max-body-bytes `{text}`"))?);
            }
            "--only" => flags.only = Some(value("--only")?),
            "--" => {
                flags.command = args.collect();
                break;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag `{flag}`")),
            _ => flags.positional.push(arg),
        }
    }
    if flags.secret.is_none() {
        flags.secret = std::env::var_os(SECRET_ENV).map(|s| s.into_encoded_bytes());
    }
    Ok(flags)
}

async fn run(args: Vec<String>) -> Result<bool, String> {
    let mut flags = parse(args)?;
    let subcommand = if flags.positional.is_empty() { String::new() } else { flags.positional.remove(0) };
    match (subcommand.as_str(), flags.positional.as_slice()) {
        ("server", [url]) => {
            let options = server_mode::Options {
                url: url.clone(),
                secret: flags.secret,
                max_body_bytes: flags.max_body_bytes.unwrap_or(intercall::DEFAULT_MAX_BODY_BYTES),
                only: flags.only,
            };
            server_mode::run(options).await
        }
        ("client", []) if !flags.command.is_empty() => {
            let options = client_mode::Options { command: flags.command, secret: flags.secret };
            client_mode::run(options).await.map_err(|e| e.to_string())
        }
        ("events", [redis_url]) => {
            let options = events_mode::Options { redis_url: redis_url.clone(), secret: flags.secret };
            events_mode::run(options).await
        }
        ("serve-reference", []) => serve_reference(flags.secret).await.map(|()| true),
        ("list", []) => {
            for case in server_mode::cases::all() {
                println!("server {} {}", case.name, case.section);
            }
            for (name, section) in client_mode::case_names() {
                println!("client {name} {section}");
            }
            for case in events_mode::cases::all() {
                println!("events {} {}", case.name, case.section);
            }
            Ok(true)
        }
        _ => Err("expected a subcommand".to_owned()),
    }
}

/// Serves the conformance service with intercall's generated server on 127.0.0.1:0,
/// prints its base URL on one line, and serves until killed.
async fn serve_reference(secret: Option<Vec<u8>>) -> Result<(), String> {
    let security = match secret {
        Some(secret) => intercall::Security::shared_secret(secret).map_err(|e| e.to_string())?,
        None => intercall::Security::none(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}/", listener.local_addr().map_err(|e| e.to_string())?);
    // `panic` panics on purpose, once per case that calls it: one line, no backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("serve-reference: a method panicked: {info}")));
    let router = ConformanceServer::new(Reference::default()).security(security).into_router();
    println!("{url}");
    intercall::serve(listener, router).await.map_err(|e| e.to_string())
}
