//! Compile-fail and compile-pass tests for `#[intercall::service]`: every rejected form
//! gets one clear error at the offending token; the accepted edge cases compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p intercall-macro-ui --test ui`,
//! then read every changed `.stderr`. The cases' types derive `schemars::JsonSchema` under
//! the `schema` feature, so the same output holds with it (`--all-features`).

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
    // With intercall's `schema` feature, a wire type without `JsonSchema` is an error at
    // the type in the trait (`--all-features` turns it on here).
    #[cfg(feature = "schema")]
    t.compile_fail("ui/schema/*.rs");
}

/// A type that is not serde's: rustc names serde's traits in these errors through the
/// re-exports of whatever else is in the build, and schemars is with `schema`, so these
/// are checked in the build without it (`.ci/run`'s step `cargo test -p intercall-macro-ui --test ui`).
#[cfg(not(feature = "schema"))]
#[test]
fn not_serde() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail_serde/*.rs");
}
