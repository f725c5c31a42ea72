//! Replays the committed corpus of the `c_abi` fuzz target (`fuzz/corpus/c_abi`)
//! through the same interpreter as `cargo fuzz run c_abi`, on stable Rust: the
//! exported `C_*` functions called directly, with random handles, templates,
//! lengths and NULL pointers.

#[allow(dead_code)]
#[path = "../../fuzz/src/support.rs"]
mod support;

#[path = "../../fuzz/src/c_abi.rs"]
mod c_abi;

#[test]
fn c_abi_corpus_replays() {
    c_abi::init();
    let n = support::replay("c_abi", c_abi::run);
    assert!(n >= 20, "only {n} corpus files");
}
