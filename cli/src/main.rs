//! `intercall`: list, describe and call the services of a running node, print their
//! OpenAPI document, and check two manifests for breaking changes. The exit statuses:
//! `intercall_cli::exit` and the README.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use intercall::manifest::Manifest;
use intercall_cli::remote::{self, CallOptions, Failure, Reply};
use intercall_cli::target::{Config, is_url};
use intercall_cli::{compat, exit, openapi, show};

/// `print!` to stdout, ignoring a write that fails: `println!` panics when the reader
/// has gone (`intercall openapi .. | head`); the command instead goes on to its exit
/// status, which a script with `pipefail` still reads.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `println!` to stdout, ignoring a write that fails (see `out!`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(name = "intercall", version, about = "Describe, call and check intercall services")]
struct Cli {
    /// services.toml, for service names given instead of URLs (default: $INTERCALL_SERVICES, else ./services.toml); a service with several `urls` is tried in order.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// How long to wait for the node, e.g. `5s`, `500ms`; also sent as the call's deadline (a call then waits one second more for the node's own answer).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The services of a node and their methods.
    List {
        /// The node: a URL, or a service name looked up in services.toml.
        node: String,
    },
    /// A node's services, one service, or one method with its JSON Schemas.
    Describe {
        /// The node: a URL, or a service name looked up in services.toml.
        node: String,
        /// `Service` or `Service.method` (default: every service).
        what: Option<String>,
        /// Print the manifest as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Calls a method and prints its result as pretty JSON, or a stream method's items as they arrive, one JSON line each.
    ///
    /// intercall call http://127.0.0.1:7301 Catalog.get '{"id":"p-1"}'
    /// intercall call Catalog.get id=p-1            (the URL from services.toml)
    Call {
        /// [URL] Service.method [ARGS]: ARGS is one JSON object, or `name=value` words (the value is JSON when it parses as JSON, a string otherwise).
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        /// The end user: `TYPE:ID`, or `TYPE` alone (a guest).
        #[arg(long, value_parser = parse_user)]
        user: Option<(String, Option<String>)>,
        /// The call id to send (a UUID): the same id runs once on the server.
        #[arg(long)]
        call_id: Option<uuid::Uuid>,
    },
    /// The OpenAPI 3.1 document of a node's services, or of a manifest file.
    Openapi {
        /// A URL, a service name in services.toml, or a manifest file (`.json`).
        source: String,
        /// `info.version` of the document.
        #[arg(long, default_value = "1")]
        api_version: String,
    },
    /// Compares two manifests (files, or URLs of nodes) and prints every change, safe or breaking and the calls it breaks (old clients -> new server, new clients -> old server); exits 1 on a breaking one.
    Compat {
        /// The version running now.
        old: String,
        /// The version about to be deployed.
        new: String,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as `5s` or `500ms`"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("`{text}`: the unit is `ms`, `s` or `m`")),
    }
}

fn parse_user(text: &str) -> Result<(String, Option<String>), String> {
    let (user_type, user_id) = match text.split_once(':') {
        Some((user_type, user_id)) => (user_type, Some(user_id.to_owned())),
        None => (text, None),
    };
    if user_type.is_empty() || user_id.as_deref() == Some("") {
        return Err(format!("`{text}`: write `TYPE:ID` (`customer:alice`) or `TYPE` (`guest`)"));
    }
    Ok((user_type.to_owned(), user_id))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(status) => ExitCode::from(status),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let config = Config { path: cli.config };
    let timeout = cli.timeout;
    match cli.command {
        Command::List { node } => {
            let target = config.resolve(&node).map_err(usage)?;
            let manifest = remote::fetch_manifest(&target, None, timeout).await?;
            out!("{}", show::list(&manifest));
        }
        Command::Describe { node, what, json } => {
            let target = config.resolve(&node).map_err(usage)?;
            let (service, method) = match what.as_deref() {
                None => (None, None),
                Some(what) => match what.split_once('.') {
                    Some((service, method)) => (Some(service), Some(method)),
                    None => (Some(what), None),
                },
            };
            let manifest = remote::fetch_manifest(&target, service, timeout).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&manifest).expect("a manifest is plain JSON data"));
                return Ok(exit::OK);
            }
            match (service.and_then(|name| manifest.service(name)), method) {
                (Some(service), Some(name)) => {
                    let method = service.method(name).ok_or_else(|| {
                        let methods: Vec<&str> = service.methods.iter().map(|m| m.name.as_str()).collect();
                        Failure::new(
                            exit::of_kind(intercall::protocol::ErrorKind::UnknownMethod),
                            format!(
                                "service `{}` has no method `{name}`; its methods are: {}",
                                service.name,
                                methods.join(", ")
                            ),
                        )
                    })?;
                    out!("{}", show::method(service, method));
                }
                _ => manifest.services.iter().for_each(|service| out!("{}", show::service(service))),
            }
        }
        Command::Call { words, user, call_id } => {
            let (node, rest) = match words.split_first() {
                Some((first, rest)) if is_url(first) => (Some(first.as_str()), rest),
                _ => (None, words.as_slice()),
            };
            let Some((target_method, args)) = rest.split_first() else {
                return Err(usage("name the method: `intercall call [URL] Service.method [ARGS]`".to_owned()));
            };
            let Some((service, method)) = target_method.split_once('.') else {
                return Err(usage(format!("`{target_method}`: name the method as `Service.method`")));
            };
            let target = config.resolve(node.unwrap_or(service)).map_err(usage)?;
            let args = remote::parse_args(args)?;
            let options = CallOptions { user, call_id, timeout };
            // A stream's items are printed as they arrive, one compact JSON line each.
            let mut print_item = |item: &serde_json::Value| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{item}");
                let _ = out.flush();
            };
            match remote::call(&target, service, method, &args, &options, &mut print_item).await? {
                Reply::Value(result) => {
                    outln!("{}", serde_json::to_string_pretty(&result).expect("a JSON value serializes"))
                }
                Reply::StreamEnded { .. } => {}
            }
        }
        Command::Openapi { source, api_version } => {
            let manifest = load(&config, &source, timeout).await?;
            let document = openapi::document(&manifest, &api_version);
            outln!("{}", serde_json::to_string_pretty(&document).expect("a JSON value serializes"));
        }
        Command::Compat { old, new } => {
            let (old, new) = (load(&config, &old, timeout).await?, load(&config, &new, timeout).await?);
            let changes = compat::compare(&old, &new);
            for change in &changes {
                outln!("{change}");
            }
            let breaking = changes.iter().filter(|c| c.class == compat::Class::Breaking).count();
            outln!("{} changes, {breaking} breaking", changes.len());
            if breaking > 0 {
                return Ok(exit::SERVICE_ERROR);
            }
        }
    }
    Ok(exit::OK)
}

fn usage(message: String) -> Failure {
    Failure::new(exit::USAGE, message)
}

/// A manifest from a file, or from a node (a URL or a service name).
async fn load(config: &Config, source: &str, timeout: Duration) -> Result<Manifest, Failure> {
    let path = std::path::Path::new(source);
    if !is_url(source) && (path.exists() || source.ends_with(".json")) {
        let text =
            std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read the manifest `{source}`: {e}")))?;
        return serde_json::from_str(&text).map_err(|e| usage(format!("`{source}` is not an intercall manifest: {e}")));
    }
    let target = config.resolve(source).map_err(usage)?;
    remote::fetch_manifest(&target, None, timeout).await
}
