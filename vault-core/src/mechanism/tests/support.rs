//! Helpers shared by the mechanism unit tests (one test file per family, next to
//! this one): keys, one-call sign/verify/encrypt/decrypt through the public
//! dispatch functions, and the `openssl` command line tool for cross-checks.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub(super) use cryptoki_sys::*;

pub(super) use crate::attr::Attributes;
pub(super) use crate::error::{Error, Result};
pub(super) use crate::mechanism::backend::Curve;
pub(super) use crate::mechanism::{
    decrypt_init, digest_init, encrypt_init, generate_key, generate_key_pair, mechanism_info,
    mechanism_list, random, sign_init, unwrap, verify_init, wrap, CipherOp, HashAlg, Key,
    MechParam, Mechanism,
};

pub(super) fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// Runs `f` with `CKM_RSA_PKCS` decryption switched on (`[policy]
/// rsa_pkcs1_decrypt`; a no-op with aws-lc), then back to the default. The setting
/// is pinned for this thread only, so tests opening tokens in parallel cannot flip it.
pub(super) fn with_pkcs1_decrypt<T>(on: bool, f: impl FnOnce() -> T) -> T {
    use crate::mechanism::backend::TEST_RSA_PKCS1_DECRYPT;
    TEST_RSA_PKCS1_DECRYPT.set(Some(on || cfg!(feature = "aws-lc")));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    TEST_RSA_PKCS1_DECRYPT.set(None);
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

pub(super) fn secret(kt: CK_KEY_TYPE, value: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    a.set_ulong(CKA_KEY_TYPE, kt);
    a.set(CKA_VALUE, value.to_vec());
    Key::from_attributes(&a).unwrap()
}

/// `C_DeriveKey` without a second key (every derivation but
/// `CKM_CONCATENATE_BASE_AND_KEY`).
pub(super) fn derive(
    m: &Mechanism,
    base: &Key,
    template: &Attributes,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    crate::mechanism::derive(m, base, None, template)
}

pub(super) fn mech(ty: CK_MECHANISM_TYPE, param: MechParam) -> Mechanism {
    Mechanism { ty, param }
}

pub(super) fn sign(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let mut op = sign_init(m, k)?;
    op.update(data)?;
    let sig = op.finish()?;
    assert_eq!(sig.len(), op.sig_len());
    Ok(sig)
}

pub(super) fn sign_parts(m: &Mechanism, k: &Key, parts: &[&[u8]]) -> Result<Vec<u8>> {
    let mut op = sign_init(m, k)?;
    for p in parts {
        op.update(p)?;
    }
    op.finish()
}

pub(super) fn verify(m: &Mechanism, k: &Key, data: &[u8], sig: &[u8]) -> Result<()> {
    let mut op = verify_init(m, k)?;
    op.update(data)?;
    op.finish(sig)
}

pub(super) fn encrypt(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    encrypt_init(m, k)?.once(data)
}

pub(super) fn decrypt(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    decrypt_init(m, k)?.once(data)
}

/// Multi-part: feeds `data` in `step`-byte pieces.
pub(super) fn run_parts(op: &mut dyn CipherOp, data: &[u8], step: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for c in data.chunks(step.max(1)) {
        out.extend(op.update(c)?);
    }
    out.extend(op.finish()?);
    Ok(out)
}

pub(super) fn gcm(iv: &[u8], aad: &[u8], tag_bits: u64) -> Mechanism {
    mech(
        CKM_AES_GCM,
        MechParam::Gcm {
            iv: iv.to_vec(),
            aad: aad.to_vec(),
            tag_bits,
        },
    )
}

pub(super) fn ec_key(curve: Curve) -> (Key, Key, Attributes) {
    let mut pt = Attributes::new();
    pt.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
        &pt,
        &Attributes::new(),
    )
    .unwrap();
    (
        Key::from_attributes(&sa).unwrap(),
        Key::from_attributes(&pa).unwrap(),
        pa,
    )
}

pub(super) fn sha256(d: &[u8]) -> Vec<u8> {
    let mut op = digest_init(&Mechanism::new(CKM_SHA256)).unwrap();
    op.update(d);
    op.finish()
}

/// One 2048-bit key pair for all RSA tests.
pub(super) fn rsa() -> &'static (Attributes, Attributes) {
    static KEY: OnceLock<(Attributes, Attributes)> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut pt = Attributes::new();
        pt.set_ulong(CKA_MODULUS_BITS, 2048);
        let (pa, sa) = generate_key_pair(
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &pt,
            &Attributes::new(),
        )
        .unwrap();
        assert_eq!(pa.get_ulong(CKA_MODULUS_BITS).unwrap(), Some(2048));
        assert_eq!(pa.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
        for t in [
            CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1,
            CKA_PRIME_2,
            CKA_EXPONENT_1,
            CKA_EXPONENT_2,
            CKA_COEFFICIENT,
        ] {
            assert!(sa.get(t).is_some_and(|v| !v.is_empty()), "{t:#x}");
        }
        (pa, sa)
    })
}

pub(super) fn rsa_keys() -> (Key, Key) {
    let (pa, sa) = rsa();
    (
        Key::from_attributes(sa).unwrap(),
        Key::from_attributes(pa).unwrap(),
    )
}

pub(super) fn pss(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt_len: u64) -> MechParam {
    MechParam::Pss {
        hash,
        mgf,
        salt_len,
    }
}

pub(super) const HASHES: [(CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE, HashAlg); 5] = [
    (CKM_SHA_1, CKG_MGF1_SHA1, HashAlg::Sha1),
    (CKM_SHA224, CKG_MGF1_SHA224, HashAlg::Sha224),
    (CKM_SHA256, CKG_MGF1_SHA256, HashAlg::Sha256),
    (CKM_SHA384, CKG_MGF1_SHA384, HashAlg::Sha384),
    (CKM_SHA512, CKG_MGF1_SHA512, HashAlg::Sha512),
];

pub(super) fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed")
}

pub(super) fn write_pub_pem(dir: &Path, attrs: &Attributes) {
    let der = crate::mechanism::encoding::public_key_spki(attrs).unwrap();
    let pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &der).unwrap();
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
}

pub(super) fn assert_ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The raw public key at the end of an SPKI PEM (the BIT STRING's last `len`
/// bytes): how the IETF example keys of ML-DSA and ML-KEM are published.
pub(super) fn spki_key(pem: &str, len: usize) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    der[der.len() - len..].to_vec()
}
