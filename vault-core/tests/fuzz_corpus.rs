//! Replays the committed corpora of the `token_file` and `config` fuzz targets
//! (`fuzz/corpus/`) through the same entry functions as `cargo fuzz run`, on
//! stable Rust.

#[allow(dead_code)]
#[path = "../../fuzz/src/support.rs"]
mod support;

#[path = "../../fuzz/src/token_file.rs"]
mod token_file;

#[path = "../../fuzz/src/config.rs"]
mod config;

#[test]
fn token_file_corpus_replays() {
    let n = support::replay("token_file", token_file::run);
    assert!(n >= 20, "only {n} corpus files");
}

#[test]
fn config_corpus_replays() {
    let n = support::replay("config", config::run);
    assert!(n >= 20, "only {n} corpus files");
}

/// The harness's template token and its record sealing must match vault-core's
/// file format, or the fuzzer would only ever see integrity failures.
#[test]
fn token_file_template_matches_the_format() {
    token_file::init();
    // Odd mode without edits: the template itself (one public, one private object).
    assert_eq!(token_file::objects_after_login(&[1]), Some(2));
    // Even mode: the same file as raw bytes.
    let mut raw = vec![0];
    raw.extend(token_file::template());
    assert_eq!(token_file::objects_after_login(&raw), Some(2));
    // A re-sealed header that keeps every field (edit 0, field 9: both
    // to-be-changed flags false) is still the same token.
    assert_eq!(token_file::objects_after_login(&[1, 0, 9, 0, 0]), Some(2));
    // A header replaced by three sealed bytes is refused.
    assert_eq!(token_file::objects_after_login(&[1, 1, 3, 1, 2, 3]), None);
    // Objects sealed by the harness (a CKO_DATA with only CKA_CLASS), public and
    // private (under the master key), are opened like the token's own.
    let object = |private: u8| {
        let mut v = vec![1, 2, private, 9, 1, 1, 0, 8];
        v.extend(0u64.to_ne_bytes());
        v
    };
    assert_eq!(token_file::objects_after_login(&object(0)), Some(3));
    assert_eq!(token_file::objects_after_login(&object(1)), Some(3));
    // The same record with a changed class column fails its integrity check.
    let mut moved = object(1);
    moved.extend([4, 4, 9, 0]);
    moved.extend(7u64.to_le_bytes());
    assert_eq!(token_file::objects_after_login(&moved), None);
}

#[path = "../../fuzz/src/cms.rs"]
mod cms;

#[test]
fn cms_corpus_replays() {
    let n = support::replay("cms", cms::run);
    assert!(n >= 6, "only {n} corpus files");
}

/// The seeds really open with the harness's test key: the fuzzer starts past the
/// key transport, inside content decryption.
#[test]
fn cms_seeds_open_with_the_test_key() {
    let dir = support::corpus_dir("cms");
    for seed in [
        "seed-cbc-pkcs1",
        "seed-cbc-oaep",
        "seed-gcm-oaep256",
        "seed-gcm128-pkcs1",
    ] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        let plain = cms::open_for_test(&data).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(plain.starts_with(b"vtoken vault entry"), "{seed}");
    }
}
