//! Ed25519ctx (RFC 8032 §5.1 with `F = 0` and a non-empty context): the
//! signature scheme ed25519-dalek leaves out, composed from its hazmat expanded key
//! and curve25519-dalek's group operations exactly as §5.1.6/§5.1.7 state it, with
//! `dom2(0, C)` in front of both hashes. Verification is as strict as
//! `verify_strict` (canonical `s`, no small-order `R` or `A`, `R` compared by its
//! encoding). The RFC 8032 §7.2 vector is its test.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use ed25519_dalek::{Digest, Sha512, SigningKey, VerifyingKey};

/// `dom2(0, C)` (RFC 8032 §2).
fn dom2(context: &[u8]) -> Vec<u8> {
    let mut d = b"SigEd25519 no Ed25519 collisions".to_vec();
    d.push(0);
    d.push(context.len() as u8);
    d.extend_from_slice(context);
    d
}

/// Signs `message` under `context` (1 to 255 bytes, checked by the caller).
pub(super) fn sign(sk: &SigningKey, context: &[u8], message: &[u8]) -> [u8; 64] {
    // The expanded key (zeroized on drop by the crate) from SHA-512(seed), which is
    // wiped here too.
    let h: zeroize::Zeroizing<[u8; 64]> =
        zeroize::Zeroizing::new(Sha512::digest(sk.as_bytes()).into());
    let esk = ExpandedSecretKey::from_bytes(&h);
    let dom = dom2(context);
    let r = Scalar::from_hash(
        Sha512::new()
            .chain_update(&dom)
            .chain_update(esk.hash_prefix)
            .chain_update(message),
    );
    let big_r = EdwardsPoint::mul_base(&r).compress();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(&dom)
            .chain_update(big_r.as_bytes())
            .chain_update(sk.verifying_key().as_bytes())
            .chain_update(message),
    );
    let s = k * esk.scalar + r;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(big_r.as_bytes());
    out[32..].copy_from_slice(s.as_bytes());
    out
}

/// Checks an Ed25519ctx signature.
pub(super) fn verify(vk: &VerifyingKey, context: &[u8], message: &[u8], sig: &[u8; 64]) -> bool {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let Some(big_r) = CompressedEdwardsY(r_bytes).decompress() else {
        return false;
    };
    let a = vk.to_edwards();
    if big_r.is_small_order() || a.is_small_order() {
        return false;
    }
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(dom2(context))
            .chain_update(r_bytes)
            .chain_update(vk.as_bytes())
            .chain_update(message),
    );
    // [s]B - [k]A must be R, compared as encodings (a non-canonical R fails).
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s);
    check.compress().as_bytes() == &r_bytes
}
