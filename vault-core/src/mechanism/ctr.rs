//! AES-CTR (`CKM_AES_CTR`, `CK_AES_CTR_PARAMS`): a stream mode, so output follows
//! input byte for byte, in one part or many.
//!
//! The low `ulCounterBits` bits of the counter block count blocks; the token refuses
//! data that would wrap them (`CKR_DATA_LEN_RANGE`), since a wrapped counter reuses
//! key stream. Below that limit, incrementing the whole block (big-endian) is the same
//! as incrementing the low bits: no carry ever leaves them.

use cipher::{KeyIvInit, StreamCipher};
use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::aes::AES_BYTES;
use super::keys::secret_of;
use super::table::{MechEntry, Ops, ED};
use super::{param_err, CipherOp, Key, MechParam, Mechanism};
use crate::error::{Error, Result};

pub(super) const ENTRIES: &[MechEntry] = &[MechEntry::new(
    CKM_AES_CTR,
    AES_BYTES,
    ED,
    Ops {
        encrypt: Some(encrypt_init),
        decrypt: Some(decrypt_init),
        ..Ops::NONE
    },
)];

enum Ctr {
    Aes128(ctr::Ctr128BE<aes::Aes128>),
    Aes192(ctr::Ctr128BE<aes::Aes192>),
    Aes256(ctr::Ctr128BE<aes::Aes256>),
}

struct CtrOp {
    ctr: Ctr,
    /// Bytes the counter may still cover before its low bits wrap (`None`: more
    /// than any input can reach).
    left: Option<u128>,
    encrypt: bool,
}

fn start(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let MechParam::Ctr { counter_bits, cb } = &mech.param else {
        return Err(param_err("AES-CTR needs CK_AES_CTR_PARAMS"));
    };
    if !(1..=128).contains(counter_bits) {
        return Err(param_err("ulCounterBits must be 1 to 128"));
    }
    let k = Zeroizing::new(secret_of(key, &[CKK_AES])?.to_vec());
    let e = |_| Error::KeySizeRange;
    let iv = &cb[..];
    let ctr = match k.len() {
        16 => Ctr::Aes128(ctr::Ctr128BE::new_from_slices(&k, iv).map_err(e)?),
        24 => Ctr::Aes192(ctr::Ctr128BE::new_from_slices(&k, iv).map_err(e)?),
        32 => Ctr::Aes256(ctr::Ctr128BE::new_from_slices(&k, iv).map_err(e)?),
        _ => return Err(Error::KeySizeRange),
    };
    let left = (*counter_bits < 128).then(|| {
        let mask = (1u128 << counter_bits) - 1;
        let used = u128::from_be_bytes(*cb) & mask;
        (mask - used + 1) * 16
    });
    Ok(Box::new(CtrOp { ctr, left, encrypt }))
}

fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    start(mech, key, true)
}

fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    start(mech, key, false)
}

impl CtrOp {
    fn apply(&mut self, buf: &mut [u8]) -> Result<()> {
        if let Some(left) = self.left.as_mut() {
            let n = buf.len() as u128;
            if n > *left {
                return Err(if self.encrypt {
                    Error::DataLenRange
                } else {
                    Error::EncryptedDataLenRange
                });
            }
            *left -= n;
        }
        match &mut self.ctr {
            Ctr::Aes128(c) => c.apply_keystream(buf),
            Ctr::Aes192(c) => c.apply_keystream(buf),
            Ctr::Aes256(c) => c.apply_keystream(buf),
        }
        Ok(())
    }
}

impl CipherOp for CtrOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = data.to_vec();
        self.apply(&mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        input_len
    }

    fn once_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize> {
        let dst = out.get_mut(..data.len()).ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(data);
        self.apply(dst)?;
        Ok(data.len())
    }
}

#[cfg(test)]
#[path = "tests/ctr.rs"]
mod tests;
