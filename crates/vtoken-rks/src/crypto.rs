//! The primitives the protocol names (SPEC K4), on aws-lc-rs (constant-time RSA,
//! RUSTSEC-2023-0071) and RustCrypto AES-GCM:
//!
//! - the root key RKS_RCRT signs the working key RKS_WCRT: RSA PKCS#1 v1.5 / SHA-256
//!   over `WORKING_CONTEXT ‖ SPKI DER of the working key` (S302–S303);
//! - the device encrypts to the working key with RSA-OAEP, SHA-256 and MGF1-SHA-256,
//!   empty label (S305, S314);
//! - the keys travel under TK with AES-256-GCM (an AEAD: S319–S321): the AES key is
//!   `SHA-256(TK_CONTEXT ‖ TK)`, the nonce 12 random bytes sent in front of the
//!   ciphertext, the associated data the frame header (see [`crate::frame`]).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, KeyPair as _};
use zeroize::Zeroizing;

use crate::{Result, RksError};

// The device's half (public-key operations, the AEAD, randomness) is pure Rust so
// the token core can run the device steps inside it; the server's private-key
// operations below stay on aws-lc-rs (constant-time RSA).
pub use crate::devcrypto::{
    oaep_encrypt, open, random, seal, sha256, tk_aead_key, verify_working, RSA_BITS, TK_CONTEXT,
    WORKING_CONTEXT,
};

fn local(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> RksError + '_ {
    move |_| RksError::Local(format!("{what} failed"))
}

/// The root key pair RKS_RCRT: signs the working key.
pub struct RootKey(KeyPair);

impl RootKey {
    /// A new RSA-2048 root.
    pub fn generate() -> Result<RootKey> {
        Ok(RootKey(
            KeyPair::generate(KeySize::Rsa2048).map_err(local("RSA key generation"))?,
        ))
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<RootKey> {
        KeyPair::from_pkcs8(der)
            .map(RootKey)
            .map_err(|e| RksError::Local(format!("root key: {e}")))
    }

    /// PKCS#8 DER.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>> {
        let d: Pkcs8V1Der = self.0.as_der().map_err(local("root key encoding"))?;
        Ok(Zeroizing::new(d.as_ref().to_vec()))
    }

    /// SubjectPublicKeyInfo DER (RKS_RCRT_PK).
    pub fn spki(&self) -> Result<Vec<u8>> {
        let d: PublicKeyX509Der = self
            .0
            .public_key()
            .as_der()
            .map_err(local("root key encoding"))?;
        Ok(d.as_ref().to_vec())
    }

    /// S302: the root's signature over the working key's SPKI.
    pub fn sign_working(&self, working_spki: &[u8]) -> Result<Vec<u8>> {
        let mut msg = WORKING_CONTEXT.to_vec();
        msg.extend_from_slice(working_spki);
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.0
            .sign(&signature::RSA_PKCS1_SHA256, &rng, &msg, &mut sig)
            .map_err(local("signing"))?;
        Ok(sig)
    }
}

/// The working key pair RKS_WCRT: decrypts what the device sends.
pub struct WorkingKey(OaepPrivateDecryptingKey, PrivateDecryptingKey);

impl WorkingKey {
    /// A new RSA-2048 working key.
    pub fn generate() -> Result<WorkingKey> {
        let k = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(local("RSA key generation"))?;
        Self::from_key(k)
    }

    fn from_key(k: PrivateDecryptingKey) -> Result<WorkingKey> {
        Ok(WorkingKey(
            OaepPrivateDecryptingKey::new(k.clone()).map_err(local("working key"))?,
            k,
        ))
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<WorkingKey> {
        let k = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|e| RksError::Local(format!("working key: {e}")))?;
        Self::from_key(k)
    }

    /// PKCS#8 DER.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>> {
        let d: Pkcs8V1Der = self.1.as_der().map_err(local("working key encoding"))?;
        Ok(Zeroizing::new(d.as_ref().to_vec()))
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Result<Vec<u8>> {
        let d: PublicKeyX509Der = self
            .1
            .public_key()
            .as_der()
            .map_err(local("working key encoding"))?;
        Ok(d.as_ref().to_vec())
    }

    /// RSA-OAEP-SHA256 decryption.
    pub fn decrypt(&self, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.0.min_output_size()]);
        let n = self
            .0
            .decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut out, None)
            .map_err(|_| RksError::DeviceAuth("the device's message does not decrypt".into()))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}
