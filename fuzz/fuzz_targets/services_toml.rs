//! `services.toml` as `Invoker::from_toml` reads it.
//! The input format and the invariants checked: `intercall::__fuzz::services_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    intercall::__fuzz::services_toml(data);
});
