//! AES-GCM (`CKM_AES_GCM`): aws-lc-rs or the `aes-gcm` crate for 96-bit IVs, and a
//! portable constant-time implementation ([`SoftGcm`]) for other IV lengths and
//! truncated tags on decryption. Decryption checks the tag before releasing any
//! plaintext.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use cipher::generic_array::GenericArray;
use cryptoki_sys::*;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::aes::{Blk, AES_BYTES};
use super::keys::secret_of;
use super::table::{MechEntry, Ops, ED};
use super::{param_err, CipherOp, Key, MechParam, Mechanism, MAX_BUFFER};
use crate::error::{Error, Result};

pub(super) const ENTRIES: &[MechEntry] = &[MechEntry::new(
    CKM_AES_GCM,
    AES_BYTES,
    ED,
    Ops {
        encrypt: Some(encrypt_init),
        decrypt: Some(decrypt_init),
        ..Ops::NONE
    },
)];

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let k = secret_of(key, &[CKK_AES])?;
    Blk::aes(k)?;
    let MechParam::Gcm { iv, aad, tag_bits } = &mech.param else {
        return Err(param_err("CK_GCM_PARAMS required"));
    };
    if iv.is_empty() || iv.len() > 1024 {
        return Err(param_err("GCM IV length"));
    }
    if !(96..=128).contains(tag_bits) || tag_bits % 8 != 0 {
        return Err(param_err("GCM tag length must be 96..=128 bits"));
    }
    Ok(Box::new(GcmOp {
        key: Zeroizing::new(k.to_vec()),
        iv: iv.clone(),
        aad: aad.clone(),
        tag_len: (*tag_bits / 8) as usize,
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

/// GF(2^128) multiplication in GCM's bit order (NIST SP 800-38D Algorithm 1),
/// constant time.
fn gf_mul(x: u128, y: u128) -> u128 {
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        let bit = (x >> (127 - i)) & 1;
        z ^= v & 0u128.wrapping_sub(bit);
        let lsb = v & 1;
        v = (v >> 1) ^ ((0xe1u128 << 120) & 0u128.wrapping_sub(lsb));
    }
    z
}

fn block_u128(chunk: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..chunk.len()].copy_from_slice(chunk);
    u128::from_be_bytes(b)
}

/// Portable GCM for what the `aes-gcm` fast path does not cover (IVs other than
/// 96 bits, truncated tags on decryption).
struct SoftGcm {
    blk: Blk,
    h: u128,
}

impl SoftGcm {
    fn new(key: &[u8]) -> Result<Self> {
        let blk = Blk::aes(key)?;
        let mut zero = [0u8; 16];
        blk.encrypt(&mut zero);
        Ok(SoftGcm {
            blk,
            h: u128::from_be_bytes(zero),
        })
    }

    fn ghash(&self, aad: &[u8], data: &[u8]) -> u128 {
        let mut y = 0u128;
        for c in aad.chunks(16) {
            y = gf_mul(y ^ block_u128(c), self.h);
        }
        for c in data.chunks(16) {
            y = gf_mul(y ^ block_u128(c), self.h);
        }
        let lens = ((aad.len() as u128 * 8) << 64) | (data.len() as u128 * 8);
        gf_mul(y ^ lens, self.h)
    }

    fn j0(&self, iv: &[u8]) -> [u8; 16] {
        if iv.len() == 12 {
            let mut j = [0u8; 16];
            j[..12].copy_from_slice(iv);
            j[15] = 1;
            j
        } else {
            self.ghash(&[], iv).to_be_bytes()
        }
    }

    fn ctr(&self, j0: &[u8; 16], data: &mut [u8]) {
        let mut cb = *j0;
        for chunk in data.chunks_mut(16) {
            let c = u32::from_be_bytes([cb[12], cb[13], cb[14], cb[15]]).wrapping_add(1);
            cb[12..].copy_from_slice(&c.to_be_bytes());
            let mut ks = cb;
            self.blk.encrypt(&mut ks);
            chunk.iter_mut().zip(ks.iter()).for_each(|(d, k)| *d ^= k);
        }
    }

    fn tag(&self, j0: &[u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut ek = *j0;
        self.blk.encrypt(&mut ek);
        (u128::from_be_bytes(ek) ^ self.ghash(aad, ct)).to_be_bytes()
    }

    /// Encrypts in place, returns the full tag.
    fn seal(&self, iv: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let j0 = self.j0(iv);
        self.ctr(&j0, data);
        self.tag(&j0, aad, data)
    }

    /// Checks the (possibly truncated) tag, then decrypts in place.
    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<()> {
        let j0 = self.j0(iv);
        let full = self.tag(&j0, aad, data);
        if !bool::from(full[..tag.len()].ct_eq(tag)) {
            return Err(Error::EncryptedDataInvalid);
        }
        self.ctr(&j0, data);
        Ok(())
    }
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, U12>;

macro_rules! gcm_fast {
    ($key:expr, $c:ident => $e:expr) => {
        match $key.len() {
            16 => {
                let $c = aes_gcm::Aes128Gcm::new_from_slice($key).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            24 => {
                let $c = Aes192Gcm::new_from_slice($key).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            32 => {
                let $c = aes_gcm::Aes256Gcm::new_from_slice($key).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            _ => return Err(Error::KeySizeRange),
        }
    };
}

/// AES-GCM through aws-lc-rs (`aws-lc` builds): 12-byte IVs, 128/192/256-bit keys.
#[cfg(feature = "aws-lc")]
fn lc_gcm_key(
    key: &[u8],
    iv: &[u8],
) -> Option<(aws_lc_rs::aead::LessSafeKey, aws_lc_rs::aead::Nonce)> {
    use aws_lc_rs::aead;
    let alg = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        _ => return None,
    };
    let nonce = aead::Nonce::try_assume_unique_for_key(iv).ok()?;
    let key = aead::UnboundKey::new(alg, key).ok()?;
    Some((aead::LessSafeKey::new(key), nonce))
}

/// AES-GCM encryption of `data` into `out` (at least `data.len() + tag_len`
/// bytes): ciphertext || tag. Returns the length written.
fn gcm_seal_into(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
    out: &mut [u8],
) -> Result<usize> {
    let n = data.len();
    let (ct, rest) = out
        .get_mut(..n + tag_len)
        .ok_or(Error::BufferTooSmall)?
        .split_at_mut(n);
    #[cfg(feature = "aws-lc")]
    if let Some((k, nonce)) = lc_gcm_key(key, iv) {
        // Out of place: the plaintext is read once and the ciphertext written once.
        let mut tag = [0u8; 16];
        k.seal_out_of_place_scatter(
            nonce,
            aws_lc_rs::aead::Aad::from(aad),
            data,
            ct,
            &[],
            &mut tag,
        )
        .map_err(|_| Error::DataLenRange)?;
        rest.copy_from_slice(&tag[..tag_len]);
        return Ok(n + tag_len);
    }
    ct.copy_from_slice(data);
    let tag: [u8; 16] = if iv.len() == 12 {
        let nonce = GenericArray::from_slice(iv);
        gcm_fast!(key, c => c
            .encrypt_in_place_detached(nonce, aad, ct)
            .map_err(|_| Error::DataLenRange)?
            .into())
    } else {
        SoftGcm::new(key)?.seal(iv, aad, ct)
    };
    rest.copy_from_slice(&tag[..tag_len]);
    Ok(n + tag_len)
}

/// AES-GCM decryption of ciphertext || tag into `out` (at least the ciphertext's
/// length). Returns the plaintext length. On a bad tag `out` is wiped: no
/// unauthenticated plaintext reaches the caller.
fn gcm_open_into(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
    out: &mut [u8],
) -> Result<usize> {
    if data.len() < tag_len {
        return Err(Error::EncryptedDataLenRange);
    }
    let (ct, tag) = data.split_at(data.len() - tag_len);
    let pt = out.get_mut(..ct.len()).ok_or(Error::BufferTooSmall)?;
    let r = gcm_open_in(key, iv, aad, ct, tag, pt);
    if r.is_err() {
        pt.zeroize();
    }
    r.map(|()| ct.len())
}

fn gcm_open_in(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
    pt: &mut [u8],
) -> Result<()> {
    #[cfg(feature = "aws-lc")]
    if tag.len() == 16 {
        if let Some((k, nonce)) = lc_gcm_key(key, iv) {
            return k
                .open_separate_gather(nonce, aws_lc_rs::aead::Aad::from(aad), ct, tag, pt)
                .map_err(|_| Error::EncryptedDataInvalid);
        }
    }
    pt.copy_from_slice(ct);
    if iv.len() == 12 && tag.len() == 16 {
        let nonce = GenericArray::from_slice(iv);
        let tag = GenericArray::from_slice(tag);
        gcm_fast!(key, c => c
            .decrypt_in_place_detached(nonce, aad, pt, tag)
            .map_err(|_| Error::EncryptedDataInvalid)?);
        Ok(())
    } else {
        SoftGcm::new(key)?.open(iv, aad, pt, tag)
    }
}

/// GCM buffers everything; output comes at `finish` (decryption must check the tag
/// before releasing any plaintext).
struct GcmOp {
    key: Zeroizing<Vec<u8>>,
    iv: Vec<u8>,
    aad: Vec<u8>,
    tag_len: usize,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl CipherOp for GcmOp {
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
        let data = std::mem::take(&mut *self.buf);
        let data = Zeroizing::new(data);
        self.once(&data)
    }

    fn once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.max_output_len(data.len())]);
        let n = self.once_into(data, &mut out)?;
        out.truncate(n);
        // Hand the buffer over without a copy; the caller owns the output now.
        Ok(std::mem::take(&mut *out))
    }

    /// Single part: works on the caller's data and buffer directly.
    fn once_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize> {
        if !self.buf.is_empty() {
            let mut all = Zeroizing::new(std::mem::take(&mut *self.buf));
            all.extend_from_slice(data);
            return self.once_into(&all, out);
        }
        if data.len() > MAX_BUFFER {
            return Err(if self.encrypt {
                Error::DataLenRange
            } else {
                Error::EncryptedDataLenRange
            });
        }
        if self.encrypt {
            gcm_seal_into(&self.key, &self.iv, &self.aad, data, self.tag_len, out)
        } else {
            gcm_open_into(&self.key, &self.iv, &self.aad, data, self.tag_len, out)
        }
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len() + input_len;
        if self.encrypt {
            total + self.tag_len
        } else {
            total.saturating_sub(self.tag_len)
        }
    }
}

#[cfg(test)]
#[path = "tests/gcm.rs"]
mod tests;
