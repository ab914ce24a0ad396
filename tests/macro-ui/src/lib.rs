//! The compile-fail and compile-pass cases of intercall's macros live in `ui/`, run by
//! `tests/ui.rs` with trybuild; this library is empty.
