//! Replays the committed corpus of the `pkcs10` fuzz target (`fuzz/corpus/pkcs10`)
//! through the same entry function as `cargo fuzz run`, on stable Rust.

#[allow(dead_code)]
#[path = "../../../fuzz/src/support.rs"]
mod support;

#[path = "../../../fuzz/src/pkcs10.rs"]
mod pkcs10;

#[test]
fn pkcs10_corpus_replays() {
    let n = support::replay("pkcs10", pkcs10::run);
    assert!(n >= 8, "only {n} corpus files");
}

/// The seeds are what they claim: the requests verify, so the fuzzer starts from
/// inputs that reach past the signature check.
#[test]
fn pkcs10_seeds_verify() {
    let dir = support::corpus_dir("pkcs10");
    for (seed, serial) in [
        ("seed-csr-p256", "1A2B3C4D5E6F7081"),
        ("seed-csr-rsa", "0000000000000001"),
        ("seed-csr-p384-ext", "FFFFFFFFFFFFFFFF"),
    ] {
        let info = vtoken_pki::verify_csr(&std::fs::read(dir.join(seed)).unwrap())
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert_eq!(info.serial, serial);
    }
    let p7 = std::fs::read(dir.join("seed-p7")).unwrap();
    assert_eq!(vtoken_pki::pkcs7::parse_certs_only(&p7).unwrap().len(), 1);
}

/// Found by the `pkcs10` target: on empty PEM text (or only line breaks) x509-cert
/// 0.2.5 computes `0 - 1`, a panic with overflow checks; both PEM readers must give
/// a clear error instead.
#[test]
fn empty_pem_text_is_an_error() {
    for text in ["", "\n", "\r\n\n"] {
        let e = vtoken_pki::certs_from_pem(text).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{text:?}: {e}");
        assert!(vtoken_pki::client::trust_tls_roots(text.as_bytes()).is_err());
    }
}
