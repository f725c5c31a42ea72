//! `vtoken rks` command forms: `derive-dik2` prints the published K3 vector (text
//! and JSON), bad input gets one clear line; `download` on an unprovisioned token
//! says what to do.

mod common;
use common::{harness, PIN, SO_PIN};

const DIK1: &str = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567";

#[test]
fn derive_dik2_prints_the_published_vector() {
    let h = harness("");
    let args = [
        "rks",
        "derive-dik2",
        "--dik1",
        DIK1,
        "--dsn",
        "00000000000000a1",
        "--factor",
        "00112233445566778899AABBCCDDEEFF",
    ];
    assert_eq!(
        h.ok(&args).trim(),
        "403E3FD5BD6CB091407716185DCA3E3090E7392230A69352"
    );
    let mut j = vec!["--json"];
    j.extend_from_slice(&args);
    let v = h.json(&j);
    assert_eq!(v["dsn"], "00000000000000A1");
    assert_eq!(
        v["dik2"],
        "403E3FD5BD6CB091407716185DCA3E3090E7392230A69352"
    );
}

#[test]
fn derive_dik2_refuses_bad_input() {
    let h = harness("");
    let e = h.fails(&[
        "rks",
        "derive-dik2",
        "--dik1",
        "0011",
        "--dsn",
        "A1",
        "--factor",
        "00",
    ]);
    assert!(e.contains("24-byte"), "{e}");
    let e = h.fails(&[
        "rks",
        "derive-dik2",
        "--dik1",
        DIK1,
        "--dsn",
        "A1",
        "--factor",
        "xyz",
    ]);
    assert!(e.contains("--factor is not hex"), "{e}");
}

#[test]
fn download_on_an_unprovisioned_token_says_what_to_do() {
    let h = harness("");
    h.ok(&["init", "--label", "dev", "--so-pin", SO_PIN, "--pin", PIN]);
    let e = h.fails(&[
        "rks",
        "download",
        "--server",
        "http://127.0.0.1:9",
        "--pin",
        PIN,
    ]);
    assert!(
        e.contains("not provisioned") && e.contains("vtoken rks provision"),
        "{e}"
    );
}
