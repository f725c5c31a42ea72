//! The device's primitives (SPEC K4), pure Rust (RustCrypto) so the token core can
//! run the device steps inside the token with no C crypto library:
//!
//! - S303: the root's RSA PKCS#1 v1.5 / SHA-256 signature over
//!   `WORKING_CONTEXT ‖ SPKI DER of the working key` is verified with RKS_RCRT_PK;
//! - S305, S314: RSA-OAEP, SHA-256 and MGF1-SHA-256, empty label, to the working key;
//! - S319–S321: AES-256-GCM under `SHA-256(TK_CONTEXT ‖ TK)`, the nonce 12 random
//!   bytes in front of the ciphertext, the associated data the frame header.
//!
//! The device does only public-key RSA operations, so the `rsa` crate's
//! non-constant-time private-key path (RUSTSEC-2023-0071) is never used here; the
//! server's decryption and signing stay on aws-lc-rs ([`crate::crypto`]). The
//! protocol tests run this device against that server, so the two implementations
//! are checked against each other on every run.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Result, RksError};

/// Prefix of the message the root signs (domain separation).
pub const WORKING_CONTEXT: &[u8] = b"vtoken rks working key v1\0";
/// Prefix of the transport-key derivation.
pub const TK_CONTEXT: &[u8] = b"vtoken rks transport key v1\0";
/// RSA modulus size of the root and working keys (at least).
pub const RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted (as aws-lc-rs's `RSA_PKCS1_2048_8192_SHA256`).
const RSA_MAX_BITS: usize = 8192;

/// `n` random bytes (the operating system's generator).
pub fn random(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    OsRng
        .try_fill_bytes(&mut v)
        .map_err(|_| RksError::Local("random failed".into()))?;
    Ok(v)
}

/// An RSA public key of 2048 to 8192 bits from SPKI DER.
fn rsa_public(spki: &[u8], what: &str) -> std::result::Result<RsaPublicKey, String> {
    let k = RsaPublicKey::from_public_key_der(spki).map_err(|e| format!("{what}: {e}"))?;
    let bits = k.size() * 8;
    if !(RSA_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(format!(
            "{what} has {bits} bits ({RSA_BITS} to {RSA_MAX_BITS})"
        ));
    }
    Ok(k)
}

/// S303: whether `sig` is the root's signature over `working_spki`.
pub fn verify_working(root_spki: &[u8], working_spki: &[u8], sig: &[u8]) -> Result<()> {
    let fail = || {
        RksError::ServerAuth(
            "the working key is not signed by the root key this device trusts".into(),
        )
    };
    let root = rsa_public(root_spki, "the root key").map_err(RksError::ServerAuth)?;
    let mut msg = WORKING_CONTEXT.to_vec();
    msg.extend_from_slice(working_spki);
    let sig = Signature::try_from(sig).map_err(|_| fail())?;
    VerifyingKey::<Sha256>::new(root)
        .verify(&msg, &sig)
        .map_err(|_| fail())
}

/// RSA-OAEP-SHA256 (MGF1-SHA-256, empty label) encryption to `spki`.
pub fn oaep_encrypt(spki: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    let pk = rsa_public(spki, "the working key").map_err(RksError::ServerAuth)?;
    pk.encrypt(&mut OsRng, Oaep::new::<Sha256>(), msg)
        .map_err(|_| RksError::Local("RSA-OAEP encryption failed".into()))
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The AES-256-GCM key of a transport key TK.
pub fn tk_aead_key(tk: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(TK_CONTEXT);
    h.update(tk);
    Zeroizing::new(h.finalize().into())
}

/// AES-256-GCM: `nonce(12) ‖ ciphertext ‖ tag(16)`.
pub fn seal(key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let c = Aes256Gcm::new_from_slice(key).map_err(|_| RksError::Local("AES key".into()))?;
    let nonce = random(12)?;
    let ct = c
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: ad,
            },
        )
        .map_err(|_| RksError::Local("AES-GCM encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens [`seal`]'s output; a wrong key, header or a changed byte fails.
pub fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < 12 + 16 {
        return Err(RksError::BadMessage("sealed body cut short".into()));
    }
    let c = Aes256Gcm::new_from_slice(key).map_err(|_| RksError::Local("AES key".into()))?;
    c.decrypt(
        Nonce::from_slice(&sealed[..12]),
        Payload {
            msg: &sealed[12..],
            aad: ad,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| {
        RksError::BadMessage(
            "a message under the transport key fails its integrity check (wrong session, \
             replayed or changed)"
                .into(),
        )
    })
}
