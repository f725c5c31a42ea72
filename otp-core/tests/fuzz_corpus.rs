//! Replays the committed corpus of the `otpauth` fuzz target (`fuzz/corpus/otpauth`)
//! through the same entry function as `cargo fuzz run otpauth`, on stable Rust.

#[allow(dead_code)]
#[path = "../../fuzz/src/support.rs"]
mod support;

#[path = "../../fuzz/src/otpauth.rs"]
mod otpauth;

#[test]
fn otpauth_corpus_replays() {
    let n = support::replay("otpauth", otpauth::run);
    assert!(n >= 20, "only {n} corpus files");
}
