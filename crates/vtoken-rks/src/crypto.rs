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

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Result, RksError};

/// Prefix of the message the root signs (domain separation).
pub const WORKING_CONTEXT: &[u8] = b"vtoken rks working key v1\0";
/// Prefix of the transport-key derivation.
pub const TK_CONTEXT: &[u8] = b"vtoken rks transport key v1\0";
/// RSA modulus size of the root and working keys.
pub const RSA_BITS: usize = 2048;

fn local(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> RksError + '_ {
    move |_| RksError::Local(format!("{what} failed"))
}

/// `n` random bytes.
pub fn random(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut v).map_err(local("random"))?;
    Ok(v)
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

/// S303: whether `sig` is the root's signature over `working_spki`.
pub fn verify_working(root_spki: &[u8], working_spki: &[u8], sig: &[u8]) -> Result<()> {
    let mut msg = WORKING_CONTEXT.to_vec();
    msg.extend_from_slice(working_spki);
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, root_spki)
        .verify(&msg, sig)
        .map_err(|_| {
            RksError::ServerAuth(
                "the working key is not signed by the root key this device trusts".into(),
            )
        })
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

/// RSA-OAEP-SHA256 encryption to `spki`.
pub fn oaep_encrypt(spki: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    let pk = PublicEncryptingKey::from_der(spki)
        .map_err(|e| RksError::BadMessage(format!("working key: {e}")))?;
    if pk.key_size_bits() < RSA_BITS {
        return Err(RksError::ServerAuth(format!(
            "the working key has {} bits (at least {RSA_BITS})",
            pk.key_size_bits()
        )));
    }
    let k = OaepPublicEncryptingKey::new(pk).map_err(local("working key"))?;
    let mut out = vec![0u8; k.ciphertext_size()];
    let n = k
        .encrypt(&OAEP_SHA256_MGF1SHA256, msg, &mut out, None)
        .map_err(local("RSA-OAEP encryption"))?
        .len();
    out.truncate(n);
    Ok(out)
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
