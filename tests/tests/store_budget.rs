//! The in-process call-id store's byte budget, measured as the heap pays it: a real
//! server on loopback answers calls with ~4 KiB replies into a store with a 64 KiB
//! budget, and an allocator that counts every live byte (capacity, not length) shows
//! what the store keeps. One test in this binary, so no other test's allocations count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use intercall::calls::MemoryCallStore;
use intercall::{CallError, ServerSettings};
use intercall_tests::spawn;
use serde::{Deserialize, Serialize};

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PageError {
    Unavailable(CallError),
}

impl From<CallError> for PageError {
    fn from(error: CallError) -> Self {
        PageError::Unavailable(error)
    }
}

#[intercall::service]
pub trait Pages {
    /// A page of `len` bytes of text.
    async fn page(&self, len: usize) -> Result<String, PageError>;
}

struct Text;

impl Pages for Text {
    async fn page(&self, len: usize) -> Result<String, PageError> {
        Ok("x".repeat(len))
    }
}

const BUDGET: isize = 64 << 10;

/// Regression (issue 17): with 4 KiB replies, each reply kept cost twice its length
/// (its `Vec`'s spare capacity) and each of the store's 64 shards kept its newest
/// reply over the budget: a 64 KiB budget held about 512 KiB.
#[tokio::test(flavor = "current_thread")]
async fn a_64_kib_budget_bounds_the_heap_the_stored_replies_take() {
    let store = MemoryCallStore::new(100_000, Duration::from_secs(300)).with_max_bytes(BUDGET as u64);
    let settings = ServerSettings { call_store: Some(Arc::new(store)), ..ServerSettings::default() };
    let server = spawn(PagesServer::new(Text).settings(settings).into_router()).await;
    let client = reqwest::Client::new();
    // 4,100 characters: 4,102 bytes of JSON, which serde_json's doubling puts in 8 KiB.
    let call = |call_id: Option<uuid::Uuid>| {
        let mut request =
            client.post(server.at("Pages/page")).header("content-type", "application/json").body(r#"{"len": 4100}"#);
        if let Some(id) = call_id {
            request = request.header("x-call-id", id.to_string());
        }
        async move {
            let response = request.send().await.expect("the server answers");
            assert_eq!(response.status(), 200);
            assert_eq!(response.bytes().await.unwrap().len(), 4102);
        }
    };
    // Calls without an id are not kept: they warm the connection and its buffers.
    for _ in 0..20 {
        call(None).await;
    }
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..600 {
        call(Some(uuid::Uuid::new_v4())).await;
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    // The budget, plus the store's own entries and maps (a few KiB) and allocator noise.
    assert!(grown <= BUDGET + (24 << 10), "the heap grew {grown} bytes for a budget of {BUDGET}");
    // And the budget is used: the test would pass with a store that keeps nothing.
    assert!(grown >= BUDGET / 2, "the heap grew only {grown} bytes: were the replies kept?");
}
