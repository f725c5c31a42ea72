//! Step 309's "may encrypt": the signed load request encrypted to the bank, so the
//! public network sees neither the account number, the amount nor the balance.
//!
//! ECIES on P-256: a fresh ephemeral key pair per request; ECDH with the public key
//! of the bank certificate the wallet holds; the AES-256-GCM key is
//! `SHA-256("vtoken wallet request key v1\0" || Z || ephemeral point || bank point)`
//! (a one-block single-step KDF in the manner of SP 800-56C, binding both public
//! keys); the nonce is random (one key per message anyway). Wire format:
//! `0x01 || ephemeral point (65 bytes, SEC1 uncompressed) || nonce (12) || ciphertext`,
//! the first 66 bytes also authenticated as associated data. The signature inside
//! stays the proof of origin: encryption adds confidentiality only, and the bank
//! checks the request exactly as an unencrypted one.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

const VERSION: u8 = 1;
const POINT: usize = 65;
const LABEL: &[u8] = b"vtoken wallet request key v1\0";

fn key(z: &[u8], eph: &[u8], bank: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(LABEL);
    h.update(z);
    h.update(eph);
    h.update(bank);
    Zeroizing::new(h.finalize().into())
}

fn bad(m: &str) -> Error {
    Error::BadMessage(format!("encrypted request: {m}"))
}

/// Encrypts `plain` (a signed request's wire bytes) to the bank certificate's key.
pub fn encrypt_to_cert(bank_cert_der: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
    encrypt_to_key(&crate::keys::verifying_key_of_cert(bank_cert_der)?, plain)
}

/// Encrypts `plain` to the bank's P-256 public key.
pub fn encrypt_to_key(bank: &VerifyingKey, plain: &[u8]) -> Result<Vec<u8>, Error> {
    let bank = PublicKey::from(bank);
    let bank_pt = bank.to_encoded_point(false);
    let eph = SecretKey::random(&mut OsRng);
    let eph_pt = eph.public_key().to_encoded_point(false);
    let z = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), bank.as_affine());
    let k = key(z.raw_secret_bytes(), eph_pt.as_bytes(), bank_pt.as_bytes());
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(1 + POINT + 12 + plain.len() + 16);
    out.push(VERSION);
    out.extend_from_slice(eph_pt.as_bytes());
    let ct = Aes256Gcm::new(k.as_ref().into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &out,
            },
        )
        .map_err(|_| Error::Message("encryption failed".into()))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts what [`encrypt_to_cert`] made for the bank holding `key`.
pub fn decrypt_with(key_pair: &SigningKey, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    if sealed.len() < 1 + POINT + 12 + 16 {
        return Err(bad("too short"));
    }
    if sealed[0] != VERSION {
        return Err(bad("unknown version"));
    }
    let (head, rest) = sealed.split_at(1 + POINT);
    let (nonce, ct) = rest.split_at(12);
    let eph = PublicKey::from_sec1_bytes(&head[1..]).map_err(|_| bad("not a P-256 point"))?;
    let secret = SecretKey::from(key_pair.as_nonzero_scalar());
    let bank_pt = secret.public_key().to_encoded_point(false);
    let z = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), eph.as_affine());
    let k = key(z.raw_secret_bytes(), &head[1..], bank_pt.as_bytes());
    Aes256Gcm::new(k.as_ref().into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: head })
        .map_err(|_| bad("does not decrypt (another bank's key, or altered)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bank = SigningKey::random(&mut OsRng);
        let msg = b"account ACC1 amount 100.00";
        let sealed = encrypt_to_key(bank.verifying_key(), msg).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"ACC1"));
        assert_eq!(decrypt_with(&bank, &sealed).unwrap(), msg);
        // Fresh ephemeral key and nonce each time.
        assert_ne!(encrypt_to_key(bank.verifying_key(), msg).unwrap(), sealed);
        // Another bank's key, any flipped byte, a short or unknown-version body.
        let other = SigningKey::random(&mut OsRng);
        assert!(decrypt_with(&other, &sealed).is_err());
        for i in [0, 1, 40, 70, 80, sealed.len() - 1] {
            let mut s = sealed.clone();
            s[i] ^= 1;
            assert!(decrypt_with(&bank, &s).is_err(), "byte {i}");
        }
        assert!(decrypt_with(&bank, &sealed[..50]).is_err());
    }
}
