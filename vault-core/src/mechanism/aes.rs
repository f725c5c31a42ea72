//! AES key generation and AES in ECB, CBC and CBC-PAD, with the block-mode engine
//! ([`Blk`], [`BlockOp`]) that DES3 ([`super::des3`]) shares. GCM and key wrap,
//! also over AES, have their own files ([`super::gcm`], [`super::kw`]).

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt};
use cryptoki_sys::*;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{check_template_type, secret_key_attributes, secret_of};
use super::table::{unwrap_with, wrap_with, MechEntry, Ops, ED, WU};
use super::{multiple_of, param_err, random_secret, CipherOp, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// AES key sizes in bytes.
pub(super) const AES_BYTES: (u64, u64) = (16, 32);

const CIPHER_WRAP: Ops = Ops {
    encrypt: Some(encrypt_init),
    decrypt: Some(decrypt_init),
    wrap: Some(wrap),
    unwrap: Some(unwrap),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_AES_KEY_GEN,
        AES_BYTES,
        CKF_GENERATE,
        Ops {
            generate: Some(generate),
            ..Ops::NONE
        },
    ),
    MechEntry::new(CKM_AES_ECB, AES_BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_AES_CBC, AES_BYTES, ED | WU, CIPHER_WRAP),
    MechEntry::new(CKM_AES_CBC_PAD, AES_BYTES, ED | WU, CIPHER_WRAP),
];

/// `CKM_AES_KEY_GEN`: a key of `CKA_VALUE_LEN` (16, 24 or 32) bytes.
fn generate(_mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    check_template_type(template, CKO_SECRET_KEY, &[CKK_AES])?;
    let len = template.require_ulong(CKA_VALUE_LEN)? as usize;
    if !matches!(len, 16 | 24 | 32) {
        return Err(Error::KeySizeRange);
    }
    Ok(secret_key_attributes(CKK_AES, &random_secret(len)?, true))
}

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let blk = Blk::aes(secret_of(key, &[CKK_AES])?)?;
    block_op(
        mech,
        blk,
        encrypt,
        mech.ty != CKM_AES_ECB,
        mech.ty == CKM_AES_CBC_PAD,
    )
}

fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, true)
}

fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, false)
}

/// Without padding the wrapped key must be a non-empty multiple of the block.
fn wrap(
    mech: &Mechanism,
    key: &Key,
    _class: Option<CK_OBJECT_CLASS>,
    data: &[u8],
) -> Result<Vec<u8>> {
    if mech.ty != CKM_AES_CBC_PAD && (!multiple_of(data.len(), 16) || data.is_empty()) {
        return Err(Error::KeySizeRange);
    }
    wrap_with(encrypt_init(mech, key), data)
}

fn unwrap(mech: &Mechanism, key: &Key, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    unwrap_with(decrypt_init(mech, key), wrapped)
}

/// An ECB (`cbc` false) or CBC operation over `blk`; CBC takes a one-block IV as
/// the mechanism parameter.
pub(super) fn block_op(
    mech: &Mechanism,
    blk: Blk,
    encrypt: bool,
    cbc: bool,
    pad: bool,
) -> Result<Box<dyn CipherOp>> {
    let chain = if cbc {
        let bs = blk.block_size();
        match &mech.param {
            MechParam::Bytes(iv) if iv.len() == bs => Some(iv.clone()),
            _ => return Err(param_err("CBC needs an IV of one block")),
        }
    } else {
        None
    };
    Ok(Box::new(BlockOp {
        blk,
        encrypt,
        chain,
        pad,
        buf: Zeroizing::new(Vec::new()),
    }))
}

/// A keyed block cipher.
pub(super) enum Blk {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
    Tdes(des::TdesEde3),
    Des(des::Des),
}

macro_rules! each_blk {
    ($s:expr, $c:ident => $e:expr) => {
        match $s {
            Blk::Aes128($c) => $e,
            Blk::Aes192($c) => $e,
            Blk::Aes256($c) => $e,
            Blk::Tdes($c) => $e,
            Blk::Des($c) => $e,
        }
    };
}

impl Blk {
    pub(super) fn aes(key: &[u8]) -> Result<Self> {
        use cipher::KeyInit;
        let e = |_| Error::KeySizeRange;
        Ok(match key.len() {
            16 => Blk::Aes128(aes::Aes128::new_from_slice(key).map_err(e)?),
            24 => Blk::Aes192(aes::Aes192::new_from_slice(key).map_err(e)?),
            32 => Blk::Aes256(aes::Aes256::new_from_slice(key).map_err(e)?),
            _ => return Err(Error::KeySizeRange),
        })
    }

    pub(super) fn des3(key: &[u8]) -> Result<Self> {
        use cipher::KeyInit;
        des::TdesEde3::new_from_slice(key)
            .map(Blk::Tdes)
            .map_err(|_| Error::KeySizeRange)
    }

    /// Single DES (legacy, `[policy] legacy_mechanisms`); any parity bits.
    pub(super) fn des(key: &[u8]) -> Result<Self> {
        use cipher::KeyInit;
        des::Des::new_from_slice(key)
            .map(Blk::Des)
            .map_err(|_| Error::KeySizeRange)
    }

    pub(super) fn block_size(&self) -> usize {
        match self {
            Blk::Tdes(_) | Blk::Des(_) => 8,
            _ => 16,
        }
    }

    pub(super) fn encrypt(&self, block: &mut [u8]) {
        each_blk!(self, c => c.encrypt_block(GenericArray::from_mut_slice(block)))
    }

    pub(super) fn decrypt(&self, block: &mut [u8]) {
        each_blk!(self, c => c.decrypt_block(GenericArray::from_mut_slice(block)))
    }
}

/// The PKCS#7 padding length of a decrypted last block, checked in constant time
/// (a padding oracle must not learn where the check failed).
fn unpad(last: &[u8]) -> Result<usize> {
    let bs = last.len();
    let p = last[bs - 1] as usize;
    let mut bad = subtle::Choice::from((p == 0 || p > bs) as u8);
    for (i, &b) in last.iter().enumerate() {
        let in_pad = subtle::Choice::from((i >= bs.saturating_sub(p)) as u8);
        bad |= in_pad & !b.ct_eq(&(p as u8));
    }
    if bool::from(bad) {
        Err(Error::EncryptedDataInvalid)
    } else {
        Ok(p)
    }
}

/// ECB / CBC / CBC-PAD, streaming: `update` outputs every complete block (holding
/// back the last one when decrypting with padding), `finish` pads or unpads.
struct BlockOp {
    blk: Blk,
    encrypt: bool,
    /// CBC chaining value; `None` for ECB.
    chain: Option<Vec<u8>>,
    pad: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl BlockOp {
    fn process(&mut self, data: &mut [u8]) {
        let bs = self.blk.block_size();
        for block in data.chunks_exact_mut(bs) {
            match (&mut self.chain, self.encrypt) {
                (None, true) => self.blk.encrypt(block),
                (None, false) => self.blk.decrypt(block),
                (Some(iv), true) => {
                    block.iter_mut().zip(iv.iter()).for_each(|(b, v)| *b ^= v);
                    self.blk.encrypt(block);
                    iv.copy_from_slice(block);
                }
                (Some(iv), false) => {
                    let mut next = [0u8; 16];
                    next[..bs].copy_from_slice(block);
                    self.blk.decrypt(block);
                    block.iter_mut().zip(iv.iter()).for_each(|(b, v)| *b ^= v);
                    iv.copy_from_slice(&next[..bs]);
                }
            }
        }
    }
}

impl CipherOp for BlockOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let bs = self.blk.block_size();
        self.buf.extend_from_slice(data);
        let mut n = self.buf.len() / bs * bs;
        if !self.encrypt && self.pad && n == self.buf.len() {
            // The last block may carry the padding: keep it for `finish`.
            n = n.saturating_sub(bs);
        }
        let mut out: Vec<u8> = self.buf.drain(..n).collect();
        self.process(&mut out);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let bs = self.blk.block_size();
        let mut rest = Zeroizing::new(std::mem::take(&mut *self.buf));
        match (self.encrypt, self.pad) {
            (true, false) | (false, false) => {
                if rest.is_empty() {
                    Ok(Vec::new())
                } else if self.encrypt {
                    Err(Error::DataLenRange)
                } else {
                    Err(Error::EncryptedDataLenRange)
                }
            }
            (true, true) => {
                let p = bs - rest.len() % bs;
                let mut out = rest.to_vec();
                out.resize(out.len() + p, p as u8);
                self.process(&mut out);
                Ok(out)
            }
            (false, true) => {
                if rest.len() != bs {
                    return Err(Error::EncryptedDataLenRange);
                }
                self.process(&mut rest);
                let p = unpad(&rest)?;
                Ok(rest[..bs - p].to_vec())
            }
        }
    }

    /// Single part with nothing buffered: the data is copied once into the
    /// caller's buffer and processed there.
    fn once_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize> {
        if !self.buf.is_empty() {
            let v = Zeroizing::new(self.once(data)?);
            out.get_mut(..v.len())
                .ok_or(Error::BufferTooSmall)?
                .copy_from_slice(&v);
            return Ok(v.len());
        }
        let bs = self.blk.block_size();
        let n = data.len();
        if self.encrypt {
            if !self.pad && !n.is_multiple_of(bs) {
                return Err(Error::DataLenRange);
            }
            let total = if self.pad { (n / bs + 1) * bs } else { n };
            let dst = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
            dst[..n].copy_from_slice(data);
            dst[n..].fill((total - n) as u8);
            self.process(dst);
            Ok(total)
        } else {
            if !n.is_multiple_of(bs) || (self.pad && n == 0) {
                return Err(Error::EncryptedDataLenRange);
            }
            let dst = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
            dst.copy_from_slice(data);
            self.process(dst);
            if !self.pad {
                return Ok(n);
            }
            match unpad(&dst[n - bs..]) {
                Ok(p) => Ok(n - p),
                Err(e) => {
                    dst.zeroize();
                    Err(e)
                }
            }
        }
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        let bs = self.blk.block_size();
        let total = self.buf.len() + input_len;
        match (self.encrypt, self.pad) {
            (true, true) => (total / bs + 1) * bs,
            (false, true) => total,
            _ => total / bs * bs,
        }
    }
}

#[cfg(test)]
#[path = "tests/aes.rs"]
mod tests;
