//! intercall's JSON encoder against serde_json's, byte for byte: the input as a string, as
//! JSON, and as a value of serde's data model. The input format and the invariant:
//! `intercall::__fuzz::json_writer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::json_writer(data);
});
