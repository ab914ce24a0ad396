//! Compile-fail and compile-pass tests for `#[intercall::service]`: every rejected form
//! gets one clear error at the offending token; the accepted edge cases compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p intercall-tests --test ui`,
//! then read every changed `.stderr`.

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
