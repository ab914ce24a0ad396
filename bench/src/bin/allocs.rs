//! `cargo run --release -p intercall-bench --bin allocs [calls]`: heap allocations and
//! bytes per call on the client side, for intercall's client variants, counted by a
//! global allocator on the client's thread only. Unlike throughput, these counts do not
//! depend on what else the machine is doing, so a few-percent cost (one layer) shows.
//!
//! `intercall-all` is issue 18's "everything on" (one no-op layer, metrics and trace
//! propagation compiled in, nothing installed). With `--features telemetry`, one observed
//! system last (`allocs [calls] [observed]`, `intercall-observed` unless named):
//! intercall's client with a metrics recorder, an OpenTelemetry tracer, or both
//! installed (`observed.rs`); one per process, since what is installed stays.
//!
//! The server runs on a runtime of its own, on another thread; the client is a
//! current-thread runtime on this one, so its connection tasks count as the client's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use intercall_bench::clients::{Client, Op};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn count(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            let _ = BYTES.try_with(|n| n.set(n.get() + size as u64));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5_000);
    #[cfg(feature = "telemetry")]
    let observed = std::env::args().nth(2).unwrap_or_else(|| intercall_bench::observed::SYSTEM.to_owned());
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    // Three ports of one server: `intercall-3` balances over all three, the others
    // call the first.
    let mut ports = Vec::new();
    for _ in 0..3 {
        let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        ports.push(listener.local_addr()?.port().to_string());
        server.spawn(intercall_bench::servers::serve("intercall", listener, std::future::pending()));
    }

    let client = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("# client-side heap allocations per call, {calls} sequential echo calls each");
    #[cfg_attr(not(feature = "telemetry"), allow(unused_mut))]
    let mut systems =
        vec!["intercall", "intercall-all", "intercall-layer", "intercall-reqwest", "intercall-h2", "intercall-3"];
    // Last, since it installs a recorder and a tracer for the rest of the process: the
    // client with both, against the same server (which then records too, on its own
    // thread, not counted).
    #[cfg(feature = "telemetry")]
    systems.push(observed.as_str());
    for system in systems {
        let ports = if system == "intercall-3" { ports.join(",") } else { ports[0].clone() };
        #[cfg_attr(not(feature = "telemetry"), allow(unused_mut))]
        let mut client_system = system;
        #[cfg(feature = "telemetry")]
        if intercall_bench::observed::SYSTEMS.contains(&system) {
            intercall_bench::observed::install_for(system)?;
            client_system = "intercall";
        }
        let (allocations, bytes) = client.block_on(async {
            let proxy = Client::new(client_system, &ports).await?;
            for id in 0..200 {
                proxy.call(Op::Echo, id).await?;
            }
            ALLOCATIONS.with(|n| n.set(0));
            BYTES.with(|n| n.set(0));
            COUNTING.with(|on| on.set(true));
            for id in 0..calls {
                proxy.call(Op::Echo, id).await?;
            }
            COUNTING.with(|on| on.set(false));
            Ok::<_, String>((ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get)))
        })?;
        let (per_call, bytes_per_call) = (allocations as f64 / calls as f64, bytes as f64 / calls as f64);
        println!("RESULT client_allocs_per_call {system} {per_call:.1} bytes {bytes_per_call:.0}");
    }
    Ok(())
}
