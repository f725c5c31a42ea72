//! Record sealing: AES-256-GCM with a fresh random nonce per write, and the
//! Argon2id key derivation that wraps a token's master key under a PIN (SPEC T1, T2),
//! and the working keys derived from the master key at login ([`MasterKeys`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::config::KdfParams;
use crate::error::{Error, Part, Result};
use crate::mechanism::random;

/// A 256-bit key that zeroizes itself.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32(pub(crate) [u8; 32]);

impl Key32 {
    /// A fresh random key.
    pub fn random() -> Result<Key32> {
        // Filled in place: a local array moved into the key would stay on the stack.
        let mut k = Key32([0u8; 32]);
        random(&mut k.0)?;
        Ok(k)
    }

    /// A key from its 32 bytes (e.g. a fixed key for tests and fuzzing).
    pub fn from_bytes(bytes: [u8; 32]) -> Key32 {
        Key32(bytes)
    }

    /// Derives a sub-key for one purpose (HMAC-SHA256(self, label)).
    pub fn derive(&self, label: &[u8]) -> Key32 {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(label);
        Key32(m.finalize().into_bytes().into())
    }

    /// A 16-byte keyed tag of `data` (for blind indexes).
    pub fn tag(&self, data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(data);
        m.finalize().into_bytes()[..16].to_vec()
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(..)")
    }
}

/// Seals `plain` under `key` with associated data `ad`: nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &Key32, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    let mut nonce = [0u8; 12];
    random(&mut nonce)?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: ad,
            },
        )
        .map_err(|_| Error::General("record encryption failed".into()))?;
    let mut out = Vec::with_capacity(12 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a record sealed by [`seal`]; any change to it or to `ad` is an error.
pub fn open(key: &Key32, ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad: ad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// The token master key wrapped under a key derived from a PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Argon2id cost used for this PIN.
    pub kdf: KdfParams,
    /// Random salt.
    pub salt: [u8; 16],
    /// `seal()` output of the master key.
    pub sealed: Vec<u8>,
}

fn kek(pin: &[u8], salt: &[u8; 16], kdf: &KdfParams) -> Result<Key32> {
    // A forged header must not buy an unbounded allocation or run time.
    kdf.check()
        .map_err(|e| Error::corrupt(Part::Format, format!("bad KDF parameters: {e}")))?;
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| Error::corrupt(Part::Format, format!("bad KDF parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    // Derived straight into the key (wiped on drop), never into a plain array.
    let mut k = Key32([0u8; 32]);
    a.hash_password_into(pin, salt, &mut k.0)
        .map_err(|e| Error::General(format!("KDF failed: {e}")))?;
    Ok(k)
}

impl WrappedKey {
    /// Wraps `master` under `pin`. `ad` binds the wrap to its token and role.
    pub fn wrap(master: &Key32, pin: &[u8], kdf: KdfParams, ad: &[u8]) -> Result<WrappedKey> {
        let mut salt = [0u8; 16];
        random(&mut salt)?;
        let k = kek(pin, &salt, &kdf)?;
        Ok(WrappedKey {
            kdf,
            salt,
            sealed: seal(&k, ad, &master.0)?,
        })
    }

    /// Unwraps with `pin`; `None` when the PIN is wrong (the GCM tag decides, so the
    /// comparison is constant-time by construction).
    pub fn unwrap(&self, pin: &[u8], ad: &[u8]) -> Result<Option<Key32>> {
        let k = kek(pin, &self.salt, &self.kdf)?;
        Ok(open(&k, ad, &self.sealed).and_then(|p| {
            (p.len() == 32).then(|| {
                let mut m = Key32([0u8; 32]);
                m.0.copy_from_slice(&p);
                m
            })
        }))
    }
}

/// Keys derived from the master key once a user (or SO) is logged in.
#[derive(Clone, Debug)]
pub struct MasterKeys {
    /// The master key itself (needed to re-wrap it under a new PIN).
    pub master: Key32,
    /// Seals private records.
    pub records: Key32,
    /// Keys blind indexes of private records.
    pub index: Key32,
}

impl MasterKeys {
    /// Derives the working keys from the master key.
    pub fn new(master: Key32) -> MasterKeys {
        MasterKeys {
            records: master.derive(b"records"),
            index: master.derive(b"index"),
            master,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_detects_any_change() {
        let k = Key32::random().unwrap();
        let s = seal(&k, b"ad", b"hello world").unwrap();
        assert_eq!(&open(&k, b"ad", &s).unwrap()[..], b"hello world");
        assert!(open(&k, b"ad2", &s).is_none());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x40;
            assert!(open(&k, b"ad", &t).is_none(), "flip at {i} accepted");
        }
    }

    #[test]
    fn wrap_unwrap_with_pin() {
        let m = Key32::random().unwrap();
        let w = WrappedKey::wrap(&m, b"1234", KdfParams::TEST, b"t").unwrap();
        assert_eq!(w.unwrap(b"1234", b"t").unwrap().unwrap().0, m.0);
        assert!(w.unwrap(b"1235", b"t").unwrap().is_none());
        assert!(w.unwrap(b"1234", b"u").unwrap().is_none());
    }
}
