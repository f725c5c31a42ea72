//! ChaCha20-Poly1305 (RFC 8439; PKCS#11 3.0 `CKK_CHACHA20`, `CKM_CHACHA20_KEY_GEN`,
//! `CKM_CHACHA20_POLY1305`) with the RustCrypto `chacha20poly1305` crate in both
//! builds: a 256-bit key, a 96-bit nonce, a 128-bit tag appended to the ciphertext
//! (as `CKM_AES_GCM` does). Decryption checks the tag before releasing plaintext.
//! The message-based form is in `crate::session::message`.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::keys::{check_template_type, secret_key_attributes, secret_of};
use super::table::{MechEntry, Ops, ED};
use super::{param_err, random_secret, CipherOp, Key, MechParam, Mechanism, MAX_BUFFER};
use crate::attr::Attributes;
use crate::error::{Error, Result};

const BYTES: (u64, u64) = (32, 32);
/// The tag length.
pub(crate) const TAG: usize = 16;

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_CHACHA20_KEY_GEN,
        BYTES,
        CKF_GENERATE,
        Ops {
            generate: Some(generate),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_CHACHA20_POLY1305,
        BYTES,
        ED,
        Ops {
            encrypt: Some(encrypt_init),
            decrypt: Some(decrypt_init),
            ..Ops::NONE
        },
    ),
];

fn generate(_mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    check_template_type(template, CKO_SECRET_KEY, &[CKK_CHACHA20])?;
    if let Some(l) = template.get_ulong(CKA_VALUE_LEN)? {
        if l != 32 {
            return Err(Error::KeySizeRange);
        }
    }
    Ok(secret_key_attributes(
        CKK_CHACHA20,
        &random_secret(32)?,
        true,
    ))
}

/// Seals `data` (ciphertext ‖ tag) or opens `data` (ciphertext ‖ tag) under `key`.
pub(crate) fn seal_or_open(
    key: &Key,
    nonce: &[u8],
    aad: &[u8],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>> {
    let k = secret_of(key, &[CKK_CHACHA20])?;
    let cipher = ChaCha20Poly1305::new_from_slice(k).map_err(|_| Error::KeySizeRange)?;
    let nonce: &[u8; 12] = nonce
        .try_into()
        .map_err(|_| param_err("a ChaCha20-Poly1305 nonce is 96 bits"))?;
    let nonce = chacha20poly1305::Nonce::from_slice(nonce);
    if encrypt {
        let mut buf = Vec::with_capacity(data.len() + TAG);
        buf.extend_from_slice(data);
        cipher
            .encrypt_in_place(nonce, aad, &mut buf)
            .map_err(|_| Error::DataLenRange)?;
        Ok(buf)
    } else {
        if data.len() < TAG {
            return Err(Error::EncryptedDataLenRange);
        }
        let mut buf = Zeroizing::new(data.to_vec());
        cipher
            .decrypt_in_place(nonce, aad, &mut *buf)
            .map_err(|_| Error::EncryptedDataInvalid)?;
        Ok(std::mem::take(&mut *buf))
    }
}

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    secret_of(key, &[CKK_CHACHA20])?;
    let MechParam::ChaChaPoly { nonce, aad } = &mech.param else {
        return Err(param_err("CK_SALSA20_CHACHA20_POLY1305_PARAMS required"));
    };
    if nonce.len() != 12 {
        return Err(param_err("a ChaCha20-Poly1305 nonce is 96 bits"));
    }
    Ok(Box::new(ChaChaOp {
        key: key.clone(),
        nonce: nonce.clone(),
        aad: aad.clone(),
        encrypt,
        buf: Zeroizing::new(Vec::new()),
    }))
}

fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, true)
}

fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, false)
}

/// The whole message is gathered (the tag covers all of it) and processed at the end.
struct ChaChaOp {
    key: Key,
    nonce: Vec<u8>,
    aad: Vec<u8>,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl CipherOp for ChaChaOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len() + data.len() > MAX_BUFFER {
            return Err(if self.encrypt {
                Error::DataLenRange
            } else {
                Error::EncryptedDataLenRange
            });
        }
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = Zeroizing::new(std::mem::take(&mut *self.buf));
        seal_or_open(&self.key, &self.nonce, &self.aad, &data, self.encrypt)
    }

    fn once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len() + input_len;
        if self.encrypt {
            total + TAG
        } else {
            total.saturating_sub(TAG)
        }
    }
}

#[cfg(test)]
#[path = "tests/chacha.rs"]
mod tests;
