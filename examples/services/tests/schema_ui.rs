//! With intercall's `schema` feature, a wire type without `JsonSchema` is an error at
//! the type in the trait. The case lives with the other UI cases, in tests/ui/schema/;
//! it runs here because this crate can turn the feature on:
//! `cargo test -p example-services --features schema`.

#[test]
fn a_type_without_a_json_schema_is_refused_at_the_type() {
    trybuild::TestCases::new().compile_fail("../../tests/ui/schema/*.rs");
}
