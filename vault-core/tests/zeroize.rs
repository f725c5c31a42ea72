//! Secrets are wiped (issue 8, item 4): compile-time checks that the types holding
//! secrets zeroize themselves on drop and that functions handing out secrets return
//! `Zeroizing` buffers, `.zeroize()` checks through the public API, and a source scan
//! listing the comparisons of secrets, which must be constant-time (`subtle`).
//!
//! Memory inspection after drop needs `unsafe` and lives in the tests crate
//! (`tests/tests/zeroize_mem.rs`: a spy allocator scans every freed block for
//! marker secrets; keys without heap storage are dropped in place and read back).

use std::path::{Path, PathBuf};

use vault_core::pkcs11::*;
use vault_core::store::seal::{self, Key32};
use vault_core::vault::{Entry, Field, Kind};
use vault_core::Attributes;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Compiles only for types that wipe themselves when dropped.
fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

/// Compiles only for types that can be wiped on demand.
fn assert_zeroize<T: Zeroize>() {}

#[test]
fn secret_types_zeroize_on_drop() {
    // Master key, the keys derived from it (record, index, KEKs from Argon2id).
    assert_zeroize_on_drop::<Key32>();
    assert_zeroize::<Key32>();
    // Vault entry fields (passwords, card numbers, notes).
    assert_zeroize_on_drop::<Field>();
    assert_zeroize::<Field>();
    // Temporary buffers of secrets.
    assert_zeroize_on_drop::<Zeroizing<Vec<u8>>>();
    assert_zeroize_on_drop::<Zeroizing<String>>();
}

#[test]
fn secret_outputs_are_zeroizing_buffers() {
    // Each binding names the type: a change to a plain Vec/String fails to compile.
    let k = Key32::random().unwrap();
    let sealed = seal::seal(&k, b"ad", b"plain").unwrap();
    let opened: Option<Zeroizing<Vec<u8>>> = seal::open(&k, b"ad", &sealed);
    assert_eq!(opened.as_deref().map(|v| &v[..]), Some(&b"plain"[..]));

    // A private key's PKCS#8 encoding (used for wrapping).
    let (_, private) = vault_core::mechanism::generate_key_pair(
        &vault_core::mechanism::Mechanism::new(CKM_EC_KEY_PAIR_GEN),
        &{
            let mut a = Attributes::new();
            a.set(
                CKA_EC_PARAMS,
                vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            );
            a
        },
        &Attributes::new(),
    )
    .unwrap();
    let der: Zeroizing<Vec<u8>> =
        vault_core::mechanism::encoding::private_key_pkcs8(&private).unwrap();
    assert_eq!(der[0], 0x30);

    // The CSV export of the vault (may hold every password).
    let csv: Zeroizing<String> = vault_core::vault::csv::write_keepassxc(
        &[Entry::new(Kind::Website, "t").with("password", "pw", true)],
        true,
    );
    assert!(csv.contains("pw"));
}

#[test]
fn zeroize_wipes_keys_and_fields() {
    // Two different random keys give different tags; once wiped they are equal
    // (both all-zero), which is only true if every byte was cleared.
    let mut a = Key32::random().unwrap();
    let mut b = Key32::random().unwrap();
    assert_ne!(a.tag(b"x"), b.tag(b"x"));
    a.zeroize();
    b.zeroize();
    assert_eq!(a.tag(b"x"), b.tag(b"x"));

    let mut f = Field::new("password", "hunter2-secret", true);
    f.zeroize();
    assert!(f.value.is_empty() && f.name.is_empty());

    let mut e = Entry::new(Kind::Website, "t").with("password", "pw-1", true);
    for f in e.fields.iter_mut() {
        f.zeroize();
    }
    assert!(e.fields.iter().all(|f| f.value.is_empty()));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Where secrets are compared. PINs and vault activation codes are never compared
/// directly: they unwrap a key and the AES-GCM tag decides (constant time by
/// construction, `store/seal.rs`); the rest go through `subtle::ConstantTimeEq`.
const CONSTANT_TIME_SITES: &[(&str, &str, &str)] = &[
    (
        "vault-core/src/store/seal.rs",
        "PIN check (GCM tag of the wrapped master key)",
        ".decrypt(",
    ),
    (
        "vault-core/src/ext/vault/mod.rs",
        "vault activation code (unwrap, GCM tag)",
        "verifier.unwrap(code.as_bytes()",
    ),
    (
        "vault-core/src/mechanism/mod.rs",
        "MAC verification (HMAC, CMAC: check_mac)",
        "expected()?.ct_eq(signature)",
    ),
    (
        "vault-core/src/mechanism/hmac.rs",
        "HMAC verification goes through check_mac",
        "super::check_mac(",
    ),
    (
        "vault-core/src/mechanism/cmac.rs",
        "CMAC verification goes through check_mac",
        "super::check_mac(",
    ),
    (
        "vault-core/src/mechanism/gcm.rs",
        "GCM tag in multi-part decryption",
        "ct_eq(tag)",
    ),
    (
        "vault-core/src/mechanism/aes.rs",
        "CBC padding check",
        "b.ct_eq(&(p as u8))",
    ),
    (
        "vault-core/src/mechanism/backend/rustcrypto.rs",
        "PSS hash check",
        "h2.ct_eq(h)",
    ),
    (
        "vault-core/src/ext/gate/check.rs",
        "picture gate answer",
        "ct_eq(self.answer.as_bytes())",
    ),
    (
        "otp-core/src/otp.rs",
        "OTP code verification",
        "expected.as_bytes().ct_eq(given.as_bytes())",
    ),
];

/// Comparisons of secrets with `==` that must never appear.
const FORBIDDEN: &[&str] = &[
    "== signature",
    "signature ==",
    "== mac",
    "mac ==",
    "== tag",
    "tag ==",
    "== answer",
    "answer ==",
    "== pin",
    "pin ==",
    "== given",
    "given ==",
    "== expected",
    "expected ==",
];

#[test]
fn secret_comparisons_are_constant_time() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (file, what, snippet) in CONSTANT_TIME_SITES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.contains(snippet),
            "{what}: `{snippet}` no longer in {file}; check the comparison is still constant-time"
        );
        println!("constant-time: {what} ({file})");
    }
    let mut files = Vec::new();
    rust_files(&root.join("vault-core/src"), &mut files);
    rust_files(&root.join("otp-core/src"), &mut files);
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(".len()") {
                continue; // lengths are public
            }
            for pat in FORBIDDEN {
                if code.contains(pat) {
                    bad.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "secrets compared with ==:\n{}",
        bad.join("\n")
    );
}
