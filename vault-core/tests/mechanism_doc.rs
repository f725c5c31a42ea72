//! README.md's mechanism table is generated from the token's own table (the one
//! `C_GetMechanismList` / `C_GetMechanismInfo` answer from), so the two cannot
//! drift: this test fails when they differ, and rewrites the README section with
//! `VTOKEN_BLESS=1 cargo test -p vault-core --test mechanism_doc`.
//!
//! The default build (aws-lc) with the default policy; the pure-Rust build differs
//! only in `CKM_RSA_PKCS` decryption (README, "Choosing a crypto backend").
#![cfg(feature = "aws-lc")]

use vault_core::mechanism::{mechanism_info, mechanism_list, mechanism_name};
use vault_core::pkcs11::*;

const BEGIN: &str =
    "<!-- mechanism-table:begin (generated: vault-core/tests/mechanism_doc.rs) -->\n";
const END: &str = "<!-- mechanism-table:end -->";

/// Key sizes as `C_GetMechanismInfo` gives them: bits for RSA and elliptic
/// curves, bytes otherwise, none for digests.
fn sizes(name: &str, min: u64, max: u64) -> String {
    let bits = [
        "CKM_RSA",
        "CKM_SHA1_RSA",
        "CKM_SHA224_RSA",
        "CKM_SHA256_RSA",
        "CKM_SHA384_RSA",
        "CKM_SHA512_RSA",
        "CKM_EC",
        "CKM_ECDSA",
        "CKM_ECDH",
        "CKM_EDDSA",
        // The device key's RSA modulus (SPEC V8).
        "CKM_VTOKEN_SEALED_ENVELOPE",
    ]
    .iter()
    .any(|p| name.starts_with(p));
    let unit = if bits { "bits" } else { "bytes" };
    match (min, max) {
        (0, 0) => "—".into(),
        (a, b) if a == b => format!("{a} {unit}"),
        (a, b) => format!("{a}–{b} {unit}"),
    }
}

fn operations(flags: CK_FLAGS) -> String {
    let ops = [
        (CKF_GENERATE, "generate"),
        (CKF_GENERATE_KEY_PAIR, "generate pair"),
        (CKF_ENCRYPT, "encrypt"),
        (CKF_DECRYPT, "decrypt"),
        (CKF_SIGN, "sign"),
        (CKF_VERIFY, "verify"),
        (CKF_DIGEST, "digest"),
        (CKF_WRAP, "wrap"),
        (CKF_UNWRAP, "unwrap"),
        (CKF_DERIVE, "derive"),
        (CKF_ENCAPSULATE, "encapsulate"),
        (CKF_DECAPSULATE, "decapsulate"),
        (CKF_MESSAGE_ENCRYPT, "message encrypt"),
        (CKF_MESSAGE_DECRYPT, "message decrypt"),
        (CKF_MESSAGE_SIGN, "message sign"),
        (CKF_MESSAGE_VERIFY, "message verify"),
    ];
    ops.iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn render() -> String {
    let mut out = String::from(BEGIN);
    out.push_str("| Mechanism | Value | Key sizes | Operations |\n|---|---|---|---|\n");
    for ty in mechanism_list() {
        let name = mechanism_name(ty).expect("every mechanism is named");
        let info = mechanism_info(ty).unwrap();
        out.push_str(&format!(
            "| `{name}` | `{ty:#06x}` | {} | {} |\n",
            sizes(name, info.min_key_size, info.max_key_size),
            operations(info.flags)
        ));
    }
    out.push_str(END);
    out
}

#[test]
fn readme_mechanism_table_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README has the mechanism table's begin marker");
    let end = readme[start..].find(END).expect("and its end marker") + start + END.len();
    let want = render();
    if std::env::var_os("VTOKEN_BLESS").is_some() {
        std::fs::write(
            path,
            format!("{}{}{}", &readme[..start], want, &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        want,
        "README's mechanism table is out of date: VTOKEN_BLESS=1 cargo test -p vault-core --test mechanism_doc"
    );
}
