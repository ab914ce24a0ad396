//! The call headers as a server parses them (PROTOCOL.md §3): a header block, one `name: value` per line.
//! The input format and the invariants checked: `intercall::__fuzz::call_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::call_headers(data);
});
