//! A reply as the client decodes it (PROTOCOL.md §7): status line, content-type line (`-` for none), body.
//! The input format and the invariants checked: `intercall::__fuzz::reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::reply(data);
});
