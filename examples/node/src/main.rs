//! The example system's node binary.
//!
//! `example-node` (no argument) runs the whole system on loopback: it starts a
//! `checkout` node and, when built with `--features remote-catalog`, a separate
//! `catalog` node, as child processes of itself; then it acts as the front end and calls
//! `Checkout` through `CheckoutProxy`, printing each call and its result.
//!
//! Built with default features, the checkout node links the real `Catalog`; with
//! `remote-catalog`, it calls the catalog node through `CatalogProxy`. The code that
//! calls `Catalog` (`ShopCheckout` in `example-services`) is the same in both builds.
//! Where each service lives comes from `services.toml` (or `INTERCALL_SERVICES`).
//!
//! Placing an order publishes `OrderEvents::placed` on Redis Streams, and the front end
//! consumes it as subscriber group `mailer`. Without an `[events]` table, the demo
//! starts its own `redis-server` on a free port when one is on the `PATH` and hands its
//! URL to the nodes as `INTERCALL_EVENTS__URL`; without one, it says how to get Redis
//! and skips the events.

mod observability;

use std::process::Stdio;
use std::sync::Arc;

use example_api::{
    Catalog, CatalogServer, Checkout, CheckoutError, CheckoutProxy, CheckoutServer, OrderEvents, OrderEventsConsumer,
    OrderEventsPublisher, OrderLine, Product,
};
use example_services::{InMemoryCatalog, NoOrderEvents, ShopCheckout};
use intercall::{ActivityId, Invoker, UserContext, UserType};
use observability::{METRICS_PATH, Observability};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The line a node prints once it accepts calls; the front end waits for it.
const READY: &str = "ready";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("example-node: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let role = std::env::args().nth(1).unwrap_or_else(|| "demo".to_owned());
    let observability = observability::install(if role == "demo" { "front-end" } else { &role })?;
    let invoker = Invoker::from_env()?;
    let ran = match role.as_str() {
        "demo" => demo(invoker).await,
        "catalog" => catalog_node(invoker, &observability).await,
        "checkout" => checkout_node(invoker, &observability).await,
        other => Err(format!("unknown role `{other}`; expected `demo`, `catalog` or `checkout`").into()),
    };
    observability.shutdown();
    ran
}

/// The catalog node: the real `Catalog`, seeded with a few products.
async fn catalog_node(invoker: Invoker, observability: &Observability) -> Result<(), Failure> {
    let catalog = Logged { inner: Arc::new(seeded_catalog().await), place: "served here".into() };
    let router = CatalogServer::new(catalog).settings(invoker.server_settings()).into_router();
    serve(&invoker, "Catalog", router.merge(observability.metrics_route())).await
}

/// The checkout node: `Checkout`, on top of the real or the remote `Catalog`.
async fn checkout_node(invoker: Invoker, observability: &Observability) -> Result<(), Failure> {
    #[cfg(not(feature = "remote-catalog"))]
    let (catalog, router) = {
        let catalog = Arc::new(seeded_catalog().await);
        let router = CatalogServer::from_arc(Arc::clone(&catalog)).settings(invoker.server_settings()).into_router();
        (Logged { inner: catalog as Arc<dyn Catalog>, place: "local".into() }, router)
    };
    #[cfg(feature = "remote-catalog")]
    let (catalog, router) = {
        let proxy = example_api::CatalogProxy::new(invoker.clone())?;
        let place = format!("remote {}", invoker.base_url("Catalog").unwrap_or("?"));
        (Logged { inner: Arc::new(proxy) as Arc<dyn Catalog>, place }, intercall::Router::new())
    };
    // Placed orders go to the events stream when `[events]` is configured.
    let events: Arc<dyn OrderEvents> = match OrderEventsPublisher::new(invoker.clone()) {
        Ok(publisher) => Arc::new(publisher),
        Err(_) => Arc::new(NoOrderEvents),
    };
    let checkout = ShopCheckout::with_events(catalog, events);
    let checkout = CheckoutServer::new(checkout).settings(invoker.server_settings()).into_router();
    serve(&invoker, "Checkout", router.merge(checkout).merge(observability.metrics_route())).await
}

/// Binds the host and port of `service`'s URL in the config, then serves `router`.
async fn serve(invoker: &Invoker, service: &str, router: intercall::Router) -> Result<(), Failure> {
    let url = invoker.base_url(service).ok_or_else(|| format!("services config has no URL for `{service}`"))?;
    let address = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address} for {service}: {e}"))?;
    println!("{READY} {service} on {url}");
    intercall::serve_with_shutdown(listener, router, terminated()).await?;
    Ok(())
}

/// Completes on SIGTERM (how the demo stops its nodes) or Ctrl-C, so that a node
/// finishes its calls in flight and sends its last spans before it exits.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn seeded_catalog() -> InMemoryCatalog {
    let catalog = InMemoryCatalog::default();
    for (name, price_cents) in [("desk lamp", 2_500), ("oak desk", 19_900), ("notebook", 450)] {
        let product = Product { id: String::new(), name: name.into(), price_cents, tags: vec![] };
        catalog.save(product).await.expect("seed products are valid");
    }
    catalog
}

/// A `Catalog` that prints every call it forwards: the real one or the proxy.
struct Logged {
    inner: Arc<dyn Catalog>,
    /// "local", or "remote" and the URL.
    place: String,
}

impl Catalog for Logged {
    async fn save(&self, product: Product) -> Result<Product, example_api::CatalogError> {
        let result = self.inner.save(product).await;
        println!("  Catalog.save ({}) -> {result:?}", self.place);
        result
    }

    async fn get(&self, id: String) -> Result<Product, example_api::CatalogError> {
        let result = self.inner.get(id.clone()).await;
        // The user and activity arrived with the call, through every hop.
        let user = UserContext::current().map_or("nobody".to_owned(), |u| describe(&u));
        let activity = ActivityId::current().map_or("-".to_owned(), |a| a.to_string()[..8].to_owned());
        println!("  Catalog.get({id:?}) ({}, for {user}, activity {activity}..) -> {result:?}", self.place);
        result
    }

    async fn delete(&self, id: String) -> Result<(), example_api::CatalogError> {
        let result = self.inner.delete(id.clone()).await;
        println!("  Catalog.delete({id:?}) ({}) -> {result:?}", self.place);
        result
    }
}

fn describe(user: &UserContext) -> String {
    match user.user_id() {
        Some(id) => format!("{} {id}", user.user_type()),
        None => user.user_type().to_string(),
    }
}

/// Starts the nodes, calls `Checkout` through its proxy, prints what happens.
async fn demo(invoker: Invoker) -> Result<(), Failure> {
    let remote_catalog = cfg!(feature = "remote-catalog");
    println!(
        "intercall example: Catalog is {}",
        if remote_catalog { "a separate node, called through CatalogProxy" } else { "linked into the checkout node" }
    );
    // Events need a Redis: the configured one, else one of our own, else none.
    let (invoker, redis, events_url) = events_redis(invoker).await?;
    let mut nodes = Vec::new();
    if remote_catalog {
        nodes.push(start_node("catalog", events_url.as_deref()).await?);
    }
    nodes.push(start_node("checkout", events_url.as_deref()).await?);
    let (stop_mailer, mailer) = match OrderEventsConsumer::new(invoker.clone(), "mailer", Mailer) {
        Ok(consumer) => {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let consumer = consumer.consumer_name("front-end");
            (
                Some(stop),
                Some(tokio::spawn(consumer.run(async move {
                    let _ = stopped.await;
                }))),
            )
        }
        Err(_) => (None, None),
    };

    let checkout_invoker_signs = invoker.security().is_enabled();
    let checkout_url = invoker.base_url("Checkout").map(str::to_owned);
    let checkout = CheckoutProxy::new(invoker)?;
    let line = |product_id: &str, quantity| OrderLine { product_id: product_id.into(), quantity };
    let calls = [
        ("two lamps and a desk, coupon WELCOME10", vec![line("p-1", 2), line("p-2", 1)], Some("WELCOME10")),
        ("a product that does not exist", vec![line("p-404", 1)], None),
        ("an unknown coupon", vec![line("p-3", 1)], Some("FREE")),
        ("an empty order", vec![], None),
    ];
    let alice = UserContext::new(UserType::Customer, "alice")?;
    println!("signing calls: {}", if checkout_invoker_signs { "yes (shared secret)" } else { "no" });
    for (what, lines, coupon) in calls {
        println!("\n-> Checkout.quote as customer alice: {what}");
        // Every call made inside the scope carries alice to every hop.
        let result = alice.clone().scope(checkout.quote(lines, coupon.map(String::from))).await;
        match &result {
            Ok(quote) => println!("<- Ok: total {} cents, {} lines", quote.total_cents, quote.lines.len()),
            Err(error) => println!("<- Err (typed {}): {error:?}", std::any::type_name_of_val(error)),
        }
    }

    // A stream method: progress reports as the order is packed, then the result.
    for (what, lines) in [
        ("two lamps and a notebook", vec![line("p-1", 2), line("p-3", 1)]),
        ("a product that does not exist (the stream ends with the error)", vec![line("p-2", 1), line("p-404", 1)]),
    ] {
        println!("\n-> Checkout.fulfil as customer alice, a stream: {what}");
        match alice.clone().scope(checkout.fulfil(lines)).await {
            Ok(mut steps) => {
                while let Some(step) = steps.next().await {
                    println!("<- item {step:?}");
                }
                println!("<- end of stream");
            }
            Err(error) => println!("<- Err before the first item: {error:?}"),
        }
    }

    if let (Some(stop), Some(mailer)) = (stop_mailer, mailer) {
        println!("\n-> Checkout.place_order as customer alice: one notebook (publishes OrderEvents.placed)");
        let order = alice.clone().scope(checkout.place_order(vec![line("p-3", 1)], None)).await;
        println!("<- {order:?}");
        if order.is_ok() {
            // The mailer prints the event when it arrives; wait for it, bounded.
            for _ in 0..500 {
                if MAILED.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            if MAILED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return Err("the mailer did not receive OrderEvents.placed within 5 s".into());
            }
        }
        let _ = stop.send(());
        mailer.await?;
    }

    let metrics = checkout_metrics(checkout_url.as_deref()).await?;
    println!("\n-> GET {METRICS_PATH} of the checkout node (Prometheus text), its calls by outcome:");
    for line in metrics.lines().filter(|line| line.starts_with("intercall_server_calls_total{")) {
        println!("  {line}");
    }
    // The durations are histograms in seconds (buckets add up across replicas): one
    // bucket line per bound for each method served.
    let quote_buckets = quote_duration_buckets(&metrics);
    let Some(all) = quote_buckets.iter().find(|line| line.contains(r#"le="+Inf""#)) else {
        return Err(format!(
            "GET {METRICS_PATH} of the checkout node has no `{QUOTE_DURATION_BUCKET}` line for Checkout.quote:\n{metrics}"
        )
        .into());
    };
    println!("  {all}   ({} bucket lines for Checkout.quote: one per bound and outcome)", quote_buckets.len());

    for node in nodes {
        stop_node(node).await?;
    }
    drop(redis);
    Ok(())
}

/// The name of a bucket line of the served calls' durations, in Prometheus text.
const QUOTE_DURATION_BUCKET: &str = "rpc_server_call_duration_seconds_bucket";

/// The bucket lines of `Checkout.quote`'s served durations in a `/metrics` text.
fn quote_duration_buckets(metrics: &str) -> Vec<&str> {
    let is_quote = |line: &&str| {
        line.strip_prefix(QUOTE_DURATION_BUCKET).is_some_and(|rest| rest.starts_with('{'))
            && line.contains(r#"rpc_service="Checkout""#)
            && line.contains(r#"rpc_method="quote""#)
    };
    metrics.lines().filter(is_quote).collect()
}

/// The checkout node's `GET /metrics`.
async fn checkout_metrics(base_url: Option<&str>) -> Result<String, Failure> {
    let base_url = base_url.ok_or("services config has no URL for `Checkout`")?;
    let url = format!("{}{}", base_url.trim_end_matches('/'), METRICS_PATH);
    let response = reqwest::get(&url).await.map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()).into());
    }
    Ok(response.text().await?)
}

/// How many events the mailer has handled.
static MAILED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A subscriber: a plain `impl OrderEvents`, run by `OrderEventsConsumer` for group
/// `mailer`. The user and activity are the publisher's, as in a served call.
struct Mailer;

impl OrderEvents for Mailer {
    async fn placed(&self, order_id: String, total_cents: u64, lines: u32) -> Result<(), CheckoutError> {
        let user = UserContext::current().map_or("nobody".to_owned(), |u| describe(&u));
        let activity = ActivityId::current().map_or("-".to_owned(), |a| a.to_string()[..8].to_owned());
        println!(
            "  [mailer] OrderEvents.placed({order_id:?}, {total_cents} cents, {lines} lines) for {user}, activity {activity}..: mail sent"
        );
        MAILED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// The Redis for events: `[events]` if configured; else a `redis-server` of our own
/// on a free port, if one is on the `PATH` (its URL goes to the nodes as
/// `INTERCALL_EVENTS__URL`); else none, with a notice.
async fn events_redis(invoker: Invoker) -> Result<(Invoker, Option<Child>, Option<String>), Failure> {
    if OrderEventsPublisher::new(invoker.clone()).is_ok() {
        println!("events: the [events] Redis of the configuration");
        return Ok((invoker, None, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut redis = match spawned {
        Ok(redis) => redis,
        Err(_) => {
            println!(
                "events: skipped. No [events] Redis is configured and no redis-server is on the PATH; install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set INTERCALL_EVENTS__URL=redis://host:6379/0 to see checkout publish OrderEvents"
            );
            return Ok((invoker, None, None));
        }
    };
    let mut lines = BufReader::new(redis.stdout.take().expect("stdout is piped")).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("Ready to accept connections") {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        return Err(format!("the redis-server started on port {port} did not become ready").into());
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = format!("redis://127.0.0.1:{port}/0");
    println!("events: a redis-server of our own at {url}");
    let path = std::env::var_os(intercall::SERVICES_ENV).unwrap_or_else(|| "services.toml".into());
    let invoker = Invoker::builder().file(path).events(url.clone()).build()?;
    Ok((invoker, Some(redis), Some(url)))
}

/// Stops a node as an orchestrator would: SIGTERM, then SIGKILL if it has not exited
/// within 5 s.
async fn stop_node(mut node: Child) -> Result<(), Failure> {
    if let Some(pid) = node.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: `kill` only sends a signal to the child we started and still own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if tokio::time::timeout(std::time::Duration::from_secs(5), node.wait()).await.is_ok() {
            return Ok(());
        }
    }
    node.kill().await?;
    Ok(())
}

/// Runs this same binary as `role`, forwards its output with a prefix, and returns once
/// it prints its ready line.
async fn start_node(role: &'static str, events_url: Option<&str>) -> Result<Child, Failure> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(role).stdout(Stdio::piped()).kill_on_drop(true);
    if let Some(url) = events_url {
        command.env("INTERCALL_EVENTS__URL", url);
    }
    let mut child = command.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    loop {
        match lines.next_line().await? {
            Some(line) if line.starts_with(READY) => {
                println!("[{role}] {line}");
                break;
            }
            Some(line) => println!("[{role}] {line}"),
            None => return Err(format!("the {role} node exited before it was ready (see its error above)").into()),
        }
    }
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("[{role}] {line}");
        }
    });
    Ok(child)
}
