//! One consumer of the `Tally` events, as its own process, for `tests/events_kills.rs`:
//! consumes for group `tally` under its name, and counts every run of a handler in
//! Redis (the side effect), so the runs it made are countable after it is killed.
//!
//! ```text
//! tally_consumer REDIS_URL CONSUMER_NAME CLAIM_IDLE_MS [DONE_RECORDS]
//! ```
//!
//! `DONE_RECORDS`: `per_event` (the default) or `per_batch`, as `[events] done_records`.

use std::time::Duration;

use intercall::{DoneRecords, Invoker};
use intercall_tests::tally::{RUNS, Tally, TallyConsumer, TallyError, runs_by};

const USAGE: &str = "usage: tally_consumer REDIS_URL CONSUMER_NAME CLAIM_IDLE_MS [per_event|per_batch]";

struct Counter {
    name: String,
    redis: redis::aio::MultiplexedConnection,
}

impl Tally for Counter {
    async fn counted(&self, n: u64) -> Result<(), TallyError> {
        // The side effect, in one transaction: the run and who made it.
        let mut redis = self.redis.clone();
        let counted: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("HINCRBY")
            .arg(RUNS)
            .arg(n)
            .arg(1)
            .ignore()
            .cmd("RPUSH")
            .arg(runs_by(&self.name))
            .arg(n)
            .ignore()
            .query_async(&mut redis)
            .await;
        if let Err(e) = counted {
            return Err(TallyError::Redis(e.to_string()));
        }
        // The rest of the handler's work, after its side effect: a kill here is the
        // window between the effect and the processed record.
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("tally_consumer: {message}\n{USAGE}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, name, claim_idle_ms, done_records) = match args.as_slice() {
        [url, name, claim_idle_ms] => (url, name, claim_idle_ms, "per_event"),
        [url, name, claim_idle_ms, done_records] => (url, name, claim_idle_ms, done_records.as_str()),
        _ => return Err(format!("expected 3 or 4 arguments, got {}", args.len())),
    };
    let done_records = match done_records {
        "per_event" => DoneRecords::PerEvent,
        "per_batch" => DoneRecords::PerBatch,
        other => return Err(format!("DONE_RECORDS `{other}`: write per_event or per_batch")),
    };
    let claim_idle = claim_idle_ms.parse::<u64>().map_err(|e| format!("CLAIM_IDLE_MS `{claim_idle_ms}`: {e}"))?;
    let redis = redis::Client::open(url.as_str())
        .map_err(|e| format!("REDIS_URL `{url}`: {e}"))?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("Redis at {url}: {e}"))?;
    let invoker = Invoker::builder()
        .events(url.as_str())
        .events_claim_idle(Duration::from_millis(claim_idle))
        .events_done_records(done_records)
        .environment(false)
        .build()
        .map_err(|e| e.to_string())?;
    let counter = Counter { name: name.clone(), redis };
    let consumer =
        TallyConsumer::new(invoker, "tally", counter).map_err(|e| e.to_string())?.consumer_name(name.as_str());
    println!("consuming");
    consumer.run(std::future::pending()).await;
    Ok(())
}
