//! Ordering keys (EVENTS.md §5a): the events of one key are handled in publish order by
//! one consumer of the group, and different keys spread over its consumers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intercall::DoneRecords;
use intercall_tests::orders::*;
use intercall_tests::redis_server::RedisServer;
use tokio::sync::oneshot;

/// A customer's account changes, in order per customer.
#[intercall::events]
pub trait Accounts {
    /// The `seq`-th change of `customer`'s account.
    async fn changed(&self, #[ordering_key] customer: String, seq: u64) -> Result<(), OrderError>;
}

/// Per customer, the changes in the order handled, and by which consumer.
type AccountLog = Arc<Mutex<HashMap<String, Vec<(u64, String)>>>>;

struct AccountsTracker {
    consumer: String,
    log: AccountLog,
    /// Fail these (customer, seq) once each: a retry must not let later changes pass.
    fail_once: Arc<Mutex<std::collections::HashSet<(String, u64)>>>,
}

impl Accounts for AccountsTracker {
    async fn changed(&self, customer: String, seq: u64) -> Result<(), OrderError> {
        if self.fail_once.lock().unwrap().remove(&(customer.clone(), seq)) {
            return Err(OrderError::Rejected("once".into()));
        }
        self.log.lock().unwrap().entry(customer).or_default().push((seq, self.consumer.clone()));
        Ok(())
    }
}

/// How many key partitions of `group` each consumer holds now.
async fn partition_owners(redis: &RedisServer, group: &str) -> HashMap<String, usize> {
    let mut connection = redis_connection(redis).await;
    let mut owners = HashMap::new();
    for partition in 0..16 {
        let key = format!("intercall:events:Accounts:keyed:{partition}:owner:{group}");
        let owner: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
        if let Some(owner) = owner {
            *owners.entry(owner.split(' ').next().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_with_one_ordering_key_are_handled_in_publish_order_by_one_of_four_consumers() {
    in_order_by_one_of_four("events-ordering", DoneRecords::PerEvent).await;
}

/// The same with a batch's records written together (`done_records = "per_batch"`):
/// the order of handlers and the partitions do not depend on when records are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_with_one_ordering_key_stay_in_publish_order_with_the_records_written_per_batch() {
    in_order_by_one_of_four("events-ordering-per-batch", DoneRecords::PerBatch).await;
}

async fn in_order_by_one_of_four(test: &str, done_records: DoneRecords) {
    let Some(redis) = RedisServer::start(test) else { return };
    const CUSTOMERS: usize = 32;
    const CHANGES: u64 = 30;
    let invoker = builder(&redis)
        .events_done_records(done_records)
        .events_claim_idle(Duration::from_millis(1_500))
        .events_retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let log = AccountLog::default();
    let fail_once = Arc::new(Mutex::new(
        [("c-3".to_owned(), 5), ("c-3".to_owned(), 6), ("c-17".to_owned(), 0)].into_iter().collect(),
    ));
    let mut running = Vec::new();
    for replica in 0..4 {
        let tracker = AccountsTracker {
            consumer: format!("a-{replica}"),
            log: Arc::clone(&log),
            fail_once: Arc::clone(&fail_once),
        };
        let consumer =
            AccountsConsumer::new(invoker.clone(), "audit", tracker).unwrap().consumer_name(format!("a-{replica}"));
        let (stop, stopped) = oneshot::channel::<()>();
        running.push((
            stop,
            tokio::spawn(consumer.run(async move {
                let _ = stopped.await;
            })),
        ));
    }
    // The four have shared the 16 partitions out, 4 each, before anything is published.
    let settled = |owners: &HashMap<String, usize>| owners.len() == 4 && owners.values().all(|n| *n == 4);
    for _ in 0..3_000 {
        if settled(&partition_owners(&redis, "audit").await) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let owners = partition_owners(&redis, "audit").await;
    assert!(settled(&owners), "every consumer holds its share of the partitions: {owners:?}");
    let publisher = AccountsPublisher::new(invoker).unwrap();
    let mut publishing = Vec::new();
    for customer in 0..CUSTOMERS {
        let publisher = publisher.clone();
        publishing.push(tokio::spawn(async move {
            for seq in 0..CHANGES {
                publisher.changed(format!("c-{customer}"), seq).await.unwrap();
            }
        }));
    }
    for task in publishing {
        task.await.unwrap();
    }
    let total = CUSTOMERS * CHANGES as usize;
    eventually("every change handled", || log.lock().unwrap().values().map(Vec::len).sum::<usize>() == total).await;
    for (stop, task) in running {
        let _ = stop.send(());
        task.await.unwrap();
    }
    let log = log.lock().unwrap();
    let mut consumers_used = std::collections::HashSet::new();
    for customer in 0..CUSTOMERS {
        let changes = &log[&format!("c-{customer}")];
        let order: Vec<u64> = changes.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(order, (0..CHANGES).collect::<Vec<_>>(), "c-{customer} out of order");
        let by: std::collections::HashSet<&String> = changes.iter().map(|(_, consumer)| consumer).collect();
        assert_eq!(by.len(), 1, "c-{customer} went through one consumer: {by:?}");
        consumers_used.extend(by.into_iter().cloned());
    }
    assert!(consumers_used.len() >= 2, "different keys spread across consumers: {consumers_used:?}");
    assert!(fail_once.lock().unwrap().is_empty(), "the failures happened and were retried in place");
}
