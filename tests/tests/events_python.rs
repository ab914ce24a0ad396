//! EVENTS.md §8's Python peer, run as it stands in the docs (only its port replaced)
//! against intercall on a real `redis-server`: it consumes an event a Rust publisher
//! sent (with its user and activity), and a Rust consumer handles the event it
//! published. Skipped with a notice without `python3` and redis-py; under `CI` too,
//! since CI need not install redis-py (the conformance suite's events mode checks the
//! same layout from Rust).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_api::{CheckoutError, OrderEvents, OrderEventsConsumer, OrderEventsPublisher};
use intercall::{ActivityId, CallContext, Invoker, Security, UserContext, UserType};
use intercall_tests::redis_server::RedisServer;

/// The example system's secret, which the Python block signs with.
const SECRET: &str = "example-system-only-secret-change-me";

/// The first ```python block of EVENTS.md §8.
fn python_peer(port: u16) -> String {
    let docs = include_str!("../../docs/EVENTS.md");
    let section = docs.split("## 8. From Python (redis-py)").nth(1).expect("EVENTS.md has §8");
    let block =
        section.split("```python\n").nth(1).and_then(|rest| rest.split("\n```").next()).expect("a python block");
    assert!(block.contains("port=6379"), "the block connects to port 6379");
    block.replace("port=6379", &format!("port={port}"))
}

fn python_with_redis() -> bool {
    Command::new("python3").args(["-c", "import redis"]).output().is_ok_and(|out| out.status.success())
}

/// Each handled order id, with the user it ran as.
type Handled = Vec<(String, Option<UserContext>)>;

#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Handled>>);

impl OrderEvents for Seen {
    async fn placed(&self, order_id: String, _total_cents: u64, _lines: u32) -> Result<(), CheckoutError> {
        self.0.lock().unwrap().push((order_id, UserContext::current()));
        Ok(())
    }
}

#[tokio::test]
async fn the_documented_python_peer_publishes_to_and_consumes_from_rust() {
    if !python_with_redis() {
        eprintln!("NOTICE: events_python skipped: no python3 with redis-py (pip install redis)");
        return;
    }
    let Some(redis) = RedisServer::start("events-python") else { return };
    let invoker = Invoker::builder()
        .events(redis.url())
        .security(Security::shared_secret(SECRET).unwrap())
        .environment(false)
        .build()
        .unwrap();
    // Rust publishes first, as user bob, in an activity of its own.
    let activity = ActivityId::new();
    let bob = UserContext::new(UserType::Customer, "bob").unwrap();
    let context = CallContext { user: Some(bob), activity: Some(activity), ..CallContext::default() };
    let publisher = OrderEventsPublisher::new(invoker.clone()).unwrap();
    context.scope(publisher.placed("o-rust".into(), 120, 2)).await.unwrap();
    // The Python block publishes o-9 and consumes the stream as group `ledger`.
    let script = python_peer(redis.port);
    let output = tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", &script]).output())
        .await
        .unwrap()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "the Python peer failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let rust_line = stdout.lines().find(|line| line.contains("o-rust")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        rust_line.starts_with("placed ") && rust_line.contains("bob") && rust_line.contains(&activity.to_string()),
        "{rust_line}"
    );
    assert!(stdout.contains("o-9") && stdout.contains("alice"), "Python reads its own event too: {stdout}");
    // Python recorded both as processed by `ledger`, and left nothing pending.
    let mut connection = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("intercall:events:OrderEvents:processed:ledger:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    // A Rust consumer handles the event Python published, as alice, signature verified.
    let seen = Seen::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = OrderEventsConsumer::new(invoker, "mailer", seen.clone()).unwrap();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..3_000 {
        if seen.0.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    let python_event = seen.iter().find(|(order, _)| order == "o-9").unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(python_event.1, Some(UserContext::new(UserType::Customer, "alice").unwrap()));
    let dead: usize =
        redis::cmd("XLEN").arg("intercall:events:OrderEvents:dead").query_async(&mut connection).await.unwrap();
    assert_eq!(dead, 0, "no dead letters: both sides' signatures verified");
}
