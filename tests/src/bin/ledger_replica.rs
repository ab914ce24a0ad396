//! One replica of the `Ledger` service, as its own process, for `tests/process_kills.rs`:
//! serves on a free loopback port with the Redis call-id store, prints
//! `listening on PORT` once it accepts, and appends one line per run to its runs file,
//! so the runs it made are countable after it is killed.
//!
//! ```text
//! ledger_replica REDIS_URL KEY_PREFIX RUNS_FILE LEASE_MS OP_TIMEOUT_MS
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::ServerSettings;
use intercall::calls::{OnStoreError, RedisCallStore};
use intercall_tests::ledger::{Ledger, LedgerError, LedgerServer};

const USAGE: &str = "usage: ledger_replica REDIS_URL KEY_PREFIX RUNS_FILE LEASE_MS OP_TIMEOUT_MS";

struct Replica {
    runs: Mutex<std::fs::File>,
}

impl Ledger for Replica {
    async fn record(&self, n: u64) -> Result<u64, LedgerError> {
        // One `write` of a whole line on an O_APPEND file: in the file (the kernel's
        // page cache) as soon as it returns, whatever happens to this process next.
        let line = format!("{n}\n");
        let written = self.runs.lock().is_ok_and(|mut file| file.write_all(line.as_bytes()).is_ok());
        if !written {
            std::process::abort(); // a run that cannot be counted must not look like one
        }
        // The rest of the method's work, after its side effect: a kill here loses the
        // run's reply, not its effect.
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(n)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("ledger_replica: {message}\n{USAGE}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, runs, lease_ms, op_timeout_ms] = args.as_slice() else {
        return Err(format!("expected 5 arguments, got {}", args.len()));
    };
    let millis = |name: &str, text: &str| {
        text.parse::<u64>().map(Duration::from_millis).map_err(|e| format!("{name} `{text}`: {e}"))
    };
    let store = RedisCallStore::new(url)
        .map_err(|e| format!("REDIS_URL `{url}`: {e}"))?
        .prefix(prefix.clone())
        .lease(millis("LEASE_MS", lease_ms)?)
        .op_timeout(millis("OP_TIMEOUT_MS", op_timeout_ms)?);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(runs)
        .map_err(|e| format!("RUNS_FILE `{runs}`: {e}"))?;
    let settings =
        ServerSettings { call_store: Some(Arc::new(store)), on_store_error: OnStoreError::Fail, ..Default::default() };
    let router = LedgerServer::new(Replica { runs: Mutex::new(file) }).settings(settings).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| format!("local address: {e}"))?.port();
    println!("listening on {port}");
    std::io::stdout().flush().map_err(|e| format!("stdout: {e}"))?;
    intercall::serve(listener, router).await.map_err(|e| format!("serve: {e}"))
}
