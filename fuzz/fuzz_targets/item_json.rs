//! A stream item's JSON, decoded by the reader's fast path and by serde_json (§4.3).
//! The input format and the invariants checked: `intercall::__fuzz::item_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::item_json(data);
});
