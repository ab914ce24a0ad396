//! A newcomer's acceptance test: a second service (`Library`, served under the custom
//! name `lending-desk`) written from the README, docs/PROTOCOL.md and the rustdoc only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use intercall::CallError;
use intercall_tests::{invoker, spawn};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// The API: data types, the error type and the trait.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Book {
    pub id: u64,
    pub title: String,
    pub author: String,
    pub copies: u32,
    pub on_loan: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoanItem {
    pub book_id: u64,
    pub copies: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Delivery {
    Pickup,
    Locker(u32),
    Post { street: String, city: String },
}

/// The nested struct: a Vec of another struct plus an enum field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoanRequest {
    pub member: String,
    pub items: Vec<LoanItem>,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Receipt {
    pub loan_id: u64,
    pub request: LoanRequest,
    pub due_in_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LibraryError {
    /// unit
    #[error("a loan request needs at least one item")]
    EmptyRequest,
    /// tuple (one field)
    #[error("no book {0}")]
    NoSuchBook(u64),
    /// tuple (two fields)
    #[error("invalid {0}: {1}")]
    Invalid(String, String),
    /// struct-like
    #[error("book {book_id}: wanted {wanted}, {available} available")]
    NotEnoughCopies { book_id: u64, wanted: u32, available: u32 },
    /// struct-like
    #[error("no loan {loan_id}")]
    NoSuchLoan { loan_id: u64 },
    /// transport failures, via thiserror's `#[from]` as the `From<CallError>` impl
    #[error("library unavailable: {0}")]
    Unavailable(#[from] CallError),
}

/// A lending library.
#[intercall::service(name = "lending-desk")]
pub trait Library {
    /// Several arguments.
    async fn add_book(&self, title: String, author: String, copies: u32) -> Result<Book, LibraryError>;
    /// An optional argument: `None` lists every book.
    async fn find_books(&self, author: Option<String>, available_only: bool) -> Result<Vec<Book>, LibraryError>;
    /// Nested struct in and out.
    async fn lend(&self, request: LoanRequest) -> Result<Receipt, LibraryError>;
    /// `Result<(), E>`.
    async fn return_loan(&self, loan_id: u64) -> Result<(), LibraryError>;
    /// No arguments.
    async fn open_loans(&self) -> Result<Vec<Receipt>, LibraryError>;
}

const SERVICE: &str = "lending-desk";

// ---------------------------------------------------------------------------------------
// The real implementation, with interior mutability.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    next_book: u64,
    next_loan: u64,
    books: BTreeMap<u64, Book>,
    loans: BTreeMap<u64, Receipt>,
}

#[derive(Default)]
pub struct MemoryLibrary {
    state: Mutex<State>,
}

impl Library for MemoryLibrary {
    async fn add_book(&self, title: String, author: String, copies: u32) -> Result<Book, LibraryError> {
        if title.trim().is_empty() {
            return Err(LibraryError::Invalid("title".into(), "must not be empty".into()));
        }
        let mut state = self.state.lock().unwrap();
        state.next_book += 1;
        let book = Book { id: state.next_book, title, author, copies, on_loan: 0 };
        state.books.insert(book.id, book.clone());
        Ok(book)
    }

    async fn find_books(&self, author: Option<String>, available_only: bool) -> Result<Vec<Book>, LibraryError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .books
            .values()
            .filter(|b| author.as_ref().is_none_or(|a| &b.author == a))
            .filter(|b| !available_only || b.on_loan < b.copies)
            .cloned()
            .collect())
    }

    async fn lend(&self, request: LoanRequest) -> Result<Receipt, LibraryError> {
        if request.items.is_empty() {
            return Err(LibraryError::EmptyRequest);
        }
        let mut state = self.state.lock().unwrap();
        for item in &request.items {
            let book = state.books.get(&item.book_id).ok_or(LibraryError::NoSuchBook(item.book_id))?;
            let available = book.copies - book.on_loan;
            if item.copies > available {
                return Err(LibraryError::NotEnoughCopies { book_id: item.book_id, wanted: item.copies, available });
            }
        }
        for item in &request.items {
            state.books.get_mut(&item.book_id).unwrap().on_loan += item.copies;
        }
        state.next_loan += 1;
        let receipt = Receipt { loan_id: state.next_loan, request, due_in_days: 21 };
        state.loans.insert(receipt.loan_id, receipt.clone());
        Ok(receipt)
    }

    async fn return_loan(&self, loan_id: u64) -> Result<(), LibraryError> {
        let mut state = self.state.lock().unwrap();
        let receipt = state.loans.remove(&loan_id).ok_or(LibraryError::NoSuchLoan { loan_id })?;
        for item in &receipt.request.items {
            state.books.get_mut(&item.book_id).unwrap().on_loan -= item.copies;
        }
        Ok(())
    }

    async fn open_loans(&self) -> Result<Vec<Receipt>, LibraryError> {
        Ok(self.state.lock().unwrap().loans.values().cloned().collect())
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn served() -> (intercall_tests::TestServer, LibraryProxy) {
    let server = spawn(LibraryServer::new(MemoryLibrary::default()).into_router()).await;
    let proxy = LibraryProxy::new(invoker(SERVICE, &server.url())).expect("the invoker names lending-desk");
    (server, proxy)
}

fn request(member: &str, items: &[(u64, u32)], delivery: Delivery) -> LoanRequest {
    LoanRequest {
        member: member.into(),
        items: items.iter().map(|&(book_id, copies)| LoanItem { book_id, copies }).collect(),
        delivery,
    }
}

/// The crate's reqwest has no `json` feature, so decode by hand.
async fn json_of<T: serde::de::DeserializeOwned>(reply: reqwest::Response) -> T {
    let bytes = reply.bytes().await.expect("a complete body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Code that uses a library without knowing whether it is local or remote.
async fn stock_and_lend<L: Library>(library: &L, member: &str) -> Result<Receipt, LibraryError> {
    let book = library.add_book("Dune".into(), "Herbert".into(), 2).await?;
    library.lend(request(member, &[(book.id, 2)], Delivery::Locker(7))).await
}

// ---------------------------------------------------------------------------------------
// Round trips of every method
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_method_round_trips() {
    let (_server, library) = served().await;

    let dune = library.add_book("Dune".into(), "Herbert".into(), 2).await.unwrap();
    assert_eq!(dune, Book { id: 1, title: "Dune".into(), author: "Herbert".into(), copies: 2, on_loan: 0 });
    let emma = library.add_book("Emma".into(), "Austen".into(), 1).await.unwrap();
    assert_eq!(emma.id, 2);

    // Option: None and Some.
    assert_eq!(library.find_books(None, false).await.unwrap(), vec![dune.clone(), emma.clone()]);
    assert_eq!(library.find_books(Some("Austen".into()), false).await.unwrap(), vec![emma.clone()]);
    assert_eq!(library.find_books(Some("Nobody".into()), false).await.unwrap(), vec![]);

    // Nested struct in and out, each enum shape of `Delivery`.
    let post = Delivery::Post { street: "1 Main St".into(), city: "Springfield".into() };
    let sent = request("ann", &[(dune.id, 1), (emma.id, 1)], post);
    let receipt = library.lend(sent.clone()).await.unwrap();
    assert_eq!(receipt, Receipt { loan_id: 1, request: sent, due_in_days: 21 });
    let second = library.lend(request("bob", &[(dune.id, 1)], Delivery::Pickup)).await.unwrap();
    assert_eq!(second.request.delivery, Delivery::Pickup);
    assert_eq!(library.open_loans().await.unwrap(), vec![receipt.clone(), second.clone()]);

    // The server's state changed: nothing is available any more.
    assert_eq!(library.find_books(None, true).await.unwrap(), vec![]);

    // Result<(), E>.
    assert_eq!(library.return_loan(receipt.loan_id).await, Ok(()));
    assert_eq!(library.open_loans().await.unwrap(), vec![second]);
    let available = library.find_books(None, true).await.unwrap();
    assert_eq!(available.iter().map(|b| b.id).collect::<Vec<_>>(), vec![dune.id, emma.id]);
}

// ---------------------------------------------------------------------------------------
// Every error variant round trips as the exact value
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_service_error_variant_round_trips() {
    let (_server, library) = served().await;
    let book = library.add_book("Dune".into(), "Herbert".into(), 1).await.unwrap();

    assert_eq!(library.lend(request("ann", &[], Delivery::Pickup)).await, Err(LibraryError::EmptyRequest));
    assert_eq!(library.lend(request("ann", &[(99, 1)], Delivery::Pickup)).await, Err(LibraryError::NoSuchBook(99)));
    assert_eq!(
        library.add_book("  ".into(), "Anon".into(), 1).await,
        Err(LibraryError::Invalid("title".into(), "must not be empty".into()))
    );
    assert_eq!(
        library.lend(request("ann", &[(book.id, 3)], Delivery::Locker(1))).await,
        Err(LibraryError::NotEnoughCopies { book_id: book.id, wanted: 3, available: 1 })
    );
    assert_eq!(library.return_loan(42).await, Err(LibraryError::NoSuchLoan { loan_id: 42 }));

    // A `CallError` the implementation itself returns also crosses the wire intact
    // (the variant that holds it is just another serde value).
    let (stopped_url, stop) = stoppable().await;
    stop.await;
    let inner = LibraryProxy::new(invoker(SERVICE, &stopped_url)).unwrap();
    let Err(LibraryError::Unavailable(call_error)) = inner.open_loans().await else { panic!("expected Unavailable") };
    let relayed = Relay { inner: call_error.clone() };
    let server3 = spawn(LibraryServer::new(relayed).into_router()).await;
    let through = LibraryProxy::new(invoker(SERVICE, &server3.url())).unwrap();
    assert_eq!(through.open_loans().await, Err(LibraryError::Unavailable(call_error.clone())));
    assert!(call_error.is_connect());
}

/// An implementation that relays a fixed `CallError`, as a node calling a dead
/// downstream service would.
struct Relay {
    inner: CallError,
}

impl Library for Relay {
    async fn add_book(&self, _: String, _: String, _: u32) -> Result<Book, LibraryError> {
        Err(self.inner.clone().into())
    }
    async fn find_books(&self, _: Option<String>, _: bool) -> Result<Vec<Book>, LibraryError> {
        Err(self.inner.clone().into())
    }
    async fn lend(&self, _: LoanRequest) -> Result<Receipt, LibraryError> {
        Err(self.inner.clone().into())
    }
    async fn return_loan(&self, _: u64) -> Result<(), LibraryError> {
        Err(self.inner.clone().into())
    }
    async fn open_loans(&self) -> Result<Vec<Receipt>, LibraryError> {
        Err(self.inner.clone().into())
    }
}

// ---------------------------------------------------------------------------------------
// A stopped server
// ---------------------------------------------------------------------------------------

/// Serves a fresh library; the returned future stops it and resolves once the listener
/// is closed (no sleeping, no racing the shutdown).
async fn stoppable() -> (String, impl std::future::Future<Output = ()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = LibraryServer::new(MemoryLibrary::default()).into_router();
    let task = tokio::spawn(intercall::serve_with_shutdown(listener, router, async move {
        let _ = rx.await;
    }));
    let stop = async move {
        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    };
    (url, stop)
}

#[tokio::test]
async fn a_stopped_server_is_a_connect_error_of_the_services_own_type() {
    let (url, stop) = stoppable().await;
    let library = LibraryProxy::new(invoker(SERVICE, &url)).unwrap();
    // It works while the server runs (and leaves a pooled connection behind)...
    assert_eq!(library.add_book("Dune".into(), "Herbert".into(), 1).await.unwrap().id, 1);
    stop.await;

    // ...and afterwards every call fails as `LibraryError::Unavailable`.
    match library.find_books(None, false).await {
        Err(LibraryError::Unavailable(e)) => {
            assert!(e.is_connect(), "expected a connect error, got {e:?}");
            assert!(!e.is_timeout() && !e.is_status() && !e.is_decode());
            assert_eq!(e.status_code(), None);
            assert_eq!(e.service(), SERVICE);
            assert_eq!(e.method(), "find_books");
            let text = e.to_string();
            assert!(text.contains("lending-desk.find_books"), "{text}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let Err(LibraryError::Unavailable(e)) = library.return_loan(1).await else { panic!("expected Unavailable") };
    assert!(e.is_connect());
}

// ---------------------------------------------------------------------------------------
// The proxy as `Arc<dyn Library>`, `Box<dyn Library>` and through generic code
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_proxy_is_a_library_like_any_other() {
    let (_server, proxy) = served().await;

    // Generic code, local and remote.
    let local = MemoryLibrary::default();
    let local_receipt = stock_and_lend(&local, "ann").await.unwrap();
    let remote_receipt = stock_and_lend(&proxy, "ann").await.unwrap();
    assert_eq!(local_receipt, remote_receipt);

    // As a trait object, shared across spawned tasks (the futures are `Send`).
    let shared: Arc<dyn Library> = Arc::new(proxy.clone());
    let task = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move { shared.find_books(Some("Herbert".into()), false).await })
    };
    let books = task.await.unwrap().unwrap();
    assert_eq!(books.len(), 1);
    assert_eq!(books[0].on_loan, 2);

    // `Arc<dyn Library>` itself implements `Library`, so it goes to generic code too;
    // the second stock_and_lend adds book 2.
    let receipt = stock_and_lend(&shared, "bob").await.unwrap();
    assert_eq!(receipt.request.items, vec![LoanItem { book_id: 2, copies: 2 }]);
    assert_eq!(
        stock_and_lend(&shared, "cy").await.map(|r| r.loan_id),
        Ok(3),
        "the trait object and the proxy talk to the same server"
    );

    // A `Box<dyn Library>` of the real implementation: same code, no network.
    let boxed: Box<dyn Library> = Box::new(MemoryLibrary::default());
    assert_eq!(stock_and_lend(&boxed, "dee").await.unwrap().loan_id, 1);
    assert_eq!(boxed.return_loan(9).await, Err(LibraryError::NoSuchLoan { loan_id: 9 }));

    // A generic function spawned on a task, over the concrete proxy. (The same over
    // `Arc<dyn Library>` does not compile: "implementation of `Library` is not general
    // enough ... `Library` is actually implemented for the type
    // `Arc<(dyn Library + 'static)>`".)
    let spawned = tokio::spawn(async move { stock_and_lend(&proxy, "eve").await });
    assert_eq!(spawned.await.unwrap().unwrap().loan_id, 4);
    assert_eq!(shared.open_loans().await.unwrap().len(), 4);
}

// ---------------------------------------------------------------------------------------
// The wire, as docs/PROTOCOL.md describes it, with a plain HTTP client
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn raw_http_matches_the_protocol_document() {
    let (server, library) = served().await;
    let base = server.url(); // ends with '/'
    let http = reqwest::Client::new();
    let post = |method: &str, body: serde_json::Value| {
        // PROTOCOL.md §3: the base URL without its trailing `/`, then `/{service}/{method}`.
        let url = format!("{}/{SERVICE}/{method}", base.trim_end_matches('/'));
        http.post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body.to_string())
            .send()
    };

    // 200 with the result; arguments by name, in any order.
    let reply = post("add_book", json!({"copies": 1, "author": "Austen", "title": "Emma"})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.headers()["content-type"].to_str().unwrap(), "application/json");
    let body: serde_json::Value = json_of(reply).await;
    assert_eq!(body, json!({"id": 1, "title": "Emma", "author": "Austen", "copies": 1, "on_loan": 0}));

    // A missing `Option` member means null; unknown members are ignored.
    let reply = post("find_books", json!({"available_only": false, "from_the_future": 1})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let books: Vec<Book> = json_of(reply).await;
    assert_eq!(books, library.find_books(None, false).await.unwrap());

    // Enums are externally tagged in a nested struct.
    let lend = json!({"request": {"member": "ann", "items": [{"book_id": 1, "copies": 1}],
                                  "delivery": {"Post": {"street": "1 Main St", "city": "Bath"}}}});
    let reply = post("lend", lend).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let receipt: serde_json::Value = json_of(reply).await;
    assert_eq!(receipt["loan_id"], json!(1));
    assert_eq!(receipt["request"]["delivery"], json!({"Post": {"street": "1 Main St", "city": "Bath"}}));

    // `Result<(), E>` success is `null`.
    let reply = post("return_loan", json!({"loan_id": 1})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.text().await.unwrap().trim(), "null");

    // A method with no arguments takes `{}`.
    let reply = post("open_loans", json!({})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(json_of::<serde_json::Value>(reply).await, json!([]));

    // 422: a struct-like variant.
    let reply = post(
        "lend",
        json!({"request": {"member": "ann", "items": [{"book_id": 1, "copies": 5}],
                                                "delivery": "Pickup"}}),
    )
    .await
    .unwrap();
    assert_eq!(reply.status().as_u16(), 422);
    assert_eq!(reply.headers()["content-type"].to_str().unwrap(), "application/json");
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!(error["kind"], "service");
    assert_eq!(error["type"], "LibraryError");
    assert_eq!(error["variant"], "NotEnoughCopies");
    assert_eq!(error["value"], json!({"NotEnoughCopies": {"book_id": 1, "wanted": 5, "available": 1}}));
    assert!(error["message"].is_string());
    // The value decodes as the Rust error type (what the proxy does, PROTOCOL.md §5.3).
    let value: LibraryError = serde_json::from_value(error["value"].clone()).unwrap();
    assert_eq!(value, LibraryError::NotEnoughCopies { book_id: 1, wanted: 5, available: 1 });

    // 422: a unit variant is a bare string; a two-field tuple variant is an array.
    let reply =
        post("lend", json!({"request": {"member": "ann", "items": [], "delivery": {"Locker": 3}}})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 422);
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!((error["kind"].as_str(), error["variant"].as_str()), (Some("service"), Some("EmptyRequest")));
    assert_eq!(error["value"], json!("EmptyRequest"));

    let reply = post("add_book", json!({"title": "", "author": "x", "copies": 1})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 422);
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!(error["variant"], "Invalid");
    assert_eq!(error["value"], json!({"Invalid": ["title", "must not be empty"]}));

    // 400: a wrong argument type, naming the argument.
    let reply = post("return_loan", json!({"loan_id": "one"})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 400);
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!(error["kind"], "bad_request");
    assert_eq!(error["argument"], "loan_id");

    // 404: the trait's Rust name is *not* the service name when `name = ..` is set.
    let reply = http
        .post(server.at("Library/open_loans"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 404);
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!(error["kind"], "unknown_service");

    // 404: an unknown method lists the real ones.
    let reply = post("burn", json!({})).await.unwrap();
    assert_eq!(reply.status().as_u16(), 404);
    let error: serde_json::Value = json_of(reply).await;
    assert_eq!(error["kind"], "unknown_method");
    let message = error["message"].as_str().unwrap();
    for method in ["add_book", "find_books", "lend", "return_loan", "open_loans"] {
        assert!(message.contains(method), "{message}");
    }
}

// ---------------------------------------------------------------------------------------
// Framework failures through the proxy
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_proxy_needs_a_config_entry_under_the_custom_name() {
    // The trait is `Library`, but the config key is the service name.
    let wrong = invoker("Library", "http://127.0.0.1:9/");
    let err = LibraryProxy::new(wrong).expect_err("no entry for lending-desk");
    assert!(err.is_lookup(), "{err}");
    assert!(err.to_string().contains("lending-desk"), "{err}");
}
