//! AES key wrap (`CKM_AES_KEY_WRAP`, RFC 3394) and key wrap with padding
//! (`CKM_AES_KEY_WRAP_PAD`, RFC 5649), as ciphers and for `C_WrapKey`. Only the
//! default IVs of the RFCs are supported.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::aes::{Blk, AES_BYTES};
use super::keys::secret_of;
use super::table::{unwrap_with, wrap_with, MechEntry, Ops, ED, WU};
use super::{multiple_of, param_err, CipherOp, Key, MechParam, Mechanism, MAX_BUFFER};
use crate::error::{Error, Result};

const CIPHER_WRAP: Ops = Ops {
    encrypt: Some(encrypt_init),
    decrypt: Some(decrypt_init),
    wrap: Some(wrap),
    unwrap: Some(unwrap),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_AES_KEY_WRAP, AES_BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_AES_KEY_WRAP_PAD, AES_BYTES, ED | WU, CIPHER_WRAP),
];

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let k = secret_of(key, &[CKK_AES])?;
    Blk::aes(k)?;
    if let MechParam::Bytes(iv) = &mech.param {
        if !iv.is_empty() {
            return Err(param_err("custom key wrap IVs are not supported"));
        }
    }
    Ok(Box::new(KeyWrapOp {
        key: Zeroizing::new(k.to_vec()),
        pad: mech.ty == CKM_AES_KEY_WRAP_PAD,
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

/// Without padding (RFC 3394) the wrapped key must be at least 16 bytes and a
/// multiple of 8.
fn wrap(
    mech: &Mechanism,
    key: &Key,
    _class: Option<CK_OBJECT_CLASS>,
    data: &[u8],
) -> Result<Vec<u8>> {
    if mech.ty == CKM_AES_KEY_WRAP && (!multiple_of(data.len(), 8) || data.len() < 16) {
        return Err(Error::KeySizeRange);
    }
    wrap_with(encrypt_init(mech, key), data)
}

fn unwrap(mech: &Mechanism, key: &Key, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    unwrap_with(decrypt_init(mech, key), wrapped)
}

/// Buffers everything; the wrap or unwrap runs at `finish`.
struct KeyWrapOp {
    key: Zeroizing<Vec<u8>>,
    pad: bool,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

macro_rules! each_kek {
    ($key:expr, $k:ident => $e:expr) => {
        match $key.len() {
            16 => {
                let $k = aes_kw::KekAes128::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            24 => {
                let $k = aes_kw::KekAes192::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            32 => {
                let $k = aes_kw::KekAes256::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            _ => return Err(Error::KeySizeRange),
        }
    };
}

fn kw_wrap(key: &[u8], pad: bool, data: &[u8]) -> Result<Vec<u8>> {
    let ok_len = if pad {
        !data.is_empty()
    } else {
        data.len() >= 16 && multiple_of(data.len(), 8)
    };
    if !ok_len {
        return Err(Error::DataLenRange);
    }
    let r = each_kek!(key, k => if pad { k.wrap_with_padding_vec(data) } else { k.wrap_vec(data) });
    r.map_err(|_| Error::DataLenRange)
}

fn kw_unwrap(key: &[u8], pad: bool, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let min = if pad { 16 } else { 24 };
    if data.len() < min || !multiple_of(data.len(), 8) {
        return Err(Error::EncryptedDataLenRange);
    }
    let r = each_kek!(key, k => if pad {
        k.unwrap_with_padding_vec(data)
    } else {
        k.unwrap_vec(data)
    });
    r.map(Zeroizing::new).map_err(|e| match e {
        aes_kw::Error::IntegrityCheckFailed => Error::EncryptedDataInvalid,
        _ => Error::EncryptedDataLenRange,
    })
}

impl CipherOp for KeyWrapOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len() + data.len() > MAX_BUFFER {
            return Err(Error::DataLenRange);
        }
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = Zeroizing::new(std::mem::take(&mut *self.buf));
        if self.encrypt {
            kw_wrap(&self.key, self.pad, &data)
        } else {
            Ok(kw_unwrap(&self.key, self.pad, &data)?.to_vec())
        }
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len() + input_len;
        if self.encrypt {
            total.div_ceil(8) * 8 + 8
        } else {
            total.saturating_sub(8)
        }
    }
}

#[cfg(test)]
#[path = "tests/kw.rs"]
mod tests;
