//! Signature verification (PROTOCOL.md §6): key, clock, window, signed fields, timestamp and signature, one a line.
//! The input format and the invariants checked: `intercall::__fuzz::signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::signature(data);
});
