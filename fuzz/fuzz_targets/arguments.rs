//! A request body decoded as a method's named arguments (PROTOCOL.md §3 Body).
//! The input format and the invariants checked: `intercall::__fuzz::arguments`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::arguments(data);
});
