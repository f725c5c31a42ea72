//! Simple key derivations (PKCS#11 3.1 §2.43, §2.14.8, §2.16.14): concatenation of a
//! base key with another key or with data, XOR with data, extraction of bits, and the
//! "encrypt data" derivations (the derived value is the base key's AES or DES3
//! encryption of the data, ECB or CBC without padding).
//!
//! Concatenation, XOR and extraction put the base key's own bits into the derived
//! key ([`reveals_base`]): the session refuses what would let a caller read or
//! weaken a protected base key through them (`session::keys`), so this file only
//! computes values.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::keys::Material;
use super::table::{MechEntry, Ops};
use super::{encrypt_init, param_err, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Generic secret sizes in bytes: what a derivation may take and give.
const ANY: (u64, u64) = (1, MAX_LEN as u64);
/// The longest value a derivation makes (the longest generic secret the token
/// stores is far below; this only bounds the work a caller can ask for).
const MAX_LEN: usize = 4096;

const DERIVE: Ops = Ops {
    derive: Some(derive),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_CONCATENATE_BASE_AND_KEY, ANY, CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_CONCATENATE_BASE_AND_DATA, ANY, CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_CONCATENATE_DATA_AND_BASE, ANY, CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_XOR_BASE_AND_DATA, ANY, CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_EXTRACT_KEY_FROM_KEY, ANY, CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_DES3_ECB_ENCRYPT_DATA, (24, 24), CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_DES3_CBC_ENCRYPT_DATA, (24, 24), CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_AES_ECB_ENCRYPT_DATA, (16, 32), CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_AES_CBC_ENCRYPT_DATA, (16, 32), CKF_DERIVE, DERIVE),
];

/// Whether mechanism `ty` copies the base key's bits (or a second key's) into the
/// derived value, so the derived key is as secret as they are.
pub fn reveals_base(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(
        ty,
        CKM_CONCATENATE_BASE_AND_KEY
            | CKM_CONCATENATE_BASE_AND_DATA
            | CKM_CONCATENATE_DATA_AND_BASE
            | CKM_XOR_BASE_AND_DATA
            | CKM_EXTRACT_KEY_FROM_KEY
    )
}

/// The value of a secret key of any type.
fn value(key: &Key) -> Result<&[u8]> {
    match key.material() {
        Material::Secret { value, .. } => Ok(value),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// The length the template asks for: `CKA_VALUE_LEN`, else the fixed size of its
/// key type, else `None` (the mechanism's natural length).
fn wanted_len(template: &Attributes) -> Result<Option<usize>> {
    if let Some(l) = template.get_ulong(CKA_VALUE_LEN)? {
        return Ok(Some(l as usize));
    }
    Ok(match template.key_type() {
        Some(CKK_DES3) => Some(24),
        Some(CKK_DES) => Some(8),
        _ => None,
    })
}

/// `full` cut to the length the template asks for (never longer than `full`).
fn fit(mut full: Zeroizing<Vec<u8>>, template: &Attributes) -> Result<Zeroizing<Vec<u8>>> {
    match wanted_len(template)? {
        None => Ok(full),
        Some(0) => Err(Error::TemplateInconsistent("CKA_VALUE_LEN is zero".into())),
        Some(l) if l > full.len() => Err(Error::TemplateInconsistent(format!(
            "CKA_VALUE_LEN {l} is longer than the {} bytes the derivation gives",
            full.len()
        ))),
        Some(l) => {
            full.truncate(l);
            Ok(full)
        }
    }
}

/// The derivation data of `CK_KEY_DERIVATION_STRING_DATA` (never empty).
fn data(mech: &Mechanism) -> Result<&[u8]> {
    match &mech.param {
        MechParam::Bytes(d) if !d.is_empty() => Ok(d),
        _ => Err(param_err(
            "CK_KEY_DERIVATION_STRING_DATA with data required",
        )),
    }
}

/// The length in bytes of what the mechanism gives before the template cuts it:
/// for [`reveals_base`] mechanisms, the length that holds every bit of the base
/// (and other) key it takes in.
pub fn full_len(mech: &Mechanism, base_len: usize, other_len: usize) -> usize {
    match (mech.ty, &mech.param) {
        (CKM_CONCATENATE_BASE_AND_KEY, _) => base_len + other_len,
        (CKM_CONCATENATE_BASE_AND_DATA | CKM_CONCATENATE_DATA_AND_BASE, MechParam::Bytes(d)) => {
            base_len + d.len()
        }
        _ => base_len,
    }
}

fn derive(
    mech: &Mechanism,
    base: &Key,
    other: Option<&Key>,
    template: &Attributes,
) -> Result<Zeroizing<Vec<u8>>> {
    let b = value(base)?;
    let joined = |first: &[u8], second: &[u8]| -> Result<Zeroizing<Vec<u8>>> {
        if first.len() + second.len() > MAX_LEN {
            return Err(Error::TemplateInconsistent(
                "the derived key would be too long".into(),
            ));
        }
        let mut v = Zeroizing::new(Vec::with_capacity(first.len() + second.len()));
        v.extend_from_slice(first);
        v.extend_from_slice(second);
        Ok(v)
    };
    let full = match mech.ty {
        CKM_CONCATENATE_BASE_AND_KEY => {
            let o = other.ok_or_else(|| param_err("a second key handle required"))?;
            joined(b, value(o)?)?
        }
        CKM_CONCATENATE_BASE_AND_DATA => joined(b, data(mech)?)?,
        CKM_CONCATENATE_DATA_AND_BASE => joined(data(mech)?, b)?,
        CKM_XOR_BASE_AND_DATA => {
            // As long as the shorter of the two (PKCS#11 3.1 §2.43.5).
            let d = data(mech)?;
            Zeroizing::new(b.iter().zip(d).map(|(x, y)| x ^ y).collect())
        }
        CKM_EXTRACT_KEY_FROM_KEY => return extract(mech, b, template),
        CKM_AES_ECB_ENCRYPT_DATA
        | CKM_AES_CBC_ENCRYPT_DATA
        | CKM_DES3_ECB_ENCRYPT_DATA
        | CKM_DES3_CBC_ENCRYPT_DATA => encrypt_data(mech, base)?,
        ty => return Err(Error::MechanismInvalid(ty)),
    };
    fit(full, template)
}

/// `CKM_EXTRACT_KEY_FROM_KEY`: the derived key's bits are the base key's bits from
/// bit `start` on (bit 0 the most significant of the first byte), wrapping around
/// to the start of the base key; the length comes from the template.
fn extract(mech: &Mechanism, b: &[u8], template: &Attributes) -> Result<Zeroizing<Vec<u8>>> {
    let MechParam::Extract(start) = mech.param else {
        return Err(param_err("CK_EXTRACT_PARAMS required"));
    };
    let len = wanted_len(template)?.ok_or_else(|| {
        Error::TemplateIncomplete("CKA_VALUE_LEN (or a fixed-size key type) is required".into())
    })?;
    if len == 0 || len > b.len() {
        return Err(Error::TemplateInconsistent(format!(
            "CKA_VALUE_LEN must be 1..={} (the base key's length)",
            b.len()
        )));
    }
    let bits = b.len() * 8;
    let start = start as usize;
    if start >= bits {
        return Err(param_err("the first bit lies beyond the base key"));
    }
    let bit = |i: usize| (b[i / 8] >> (7 - i % 8)) & 1;
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, byte) in out.iter_mut().enumerate() {
        for j in 0..8 {
            *byte |= bit((start + i * 8 + j) % bits) << (7 - j);
        }
    }
    Ok(out)
}

/// The "encrypt data" derivations: the base key's ECB or CBC encryption of the data,
/// with no padding, so the data is a multiple of the block size.
fn encrypt_data(mech: &Mechanism, base: &Key) -> Result<Zeroizing<Vec<u8>>> {
    let (cipher, param, data) = match (mech.ty, &mech.param) {
        (CKM_AES_ECB_ENCRYPT_DATA, MechParam::Bytes(d)) => (CKM_AES_ECB, MechParam::None, d),
        (CKM_DES3_ECB_ENCRYPT_DATA, MechParam::Bytes(d)) => (CKM_DES3_ECB, MechParam::None, d),
        (CKM_AES_CBC_ENCRYPT_DATA, MechParam::CbcEncryptData { iv, data }) if iv.len() == 16 => {
            (CKM_AES_CBC, MechParam::Bytes(iv.clone()), data)
        }
        (CKM_DES3_CBC_ENCRYPT_DATA, MechParam::CbcEncryptData { iv, data }) if iv.len() == 8 => {
            (CKM_DES3_CBC, MechParam::Bytes(iv.clone()), data)
        }
        _ => return Err(param_err("encrypt-data parameters required")),
    };
    if data.is_empty() || data.len() > MAX_LEN {
        return Err(param_err("the data must be 1 to 4096 bytes"));
    }
    let op = Mechanism { ty: cipher, param };
    let out = encrypt_init(&op, base)?.once(data).map_err(|e| match e {
        Error::DataLenRange => param_err("the data must be a multiple of the cipher's block size"),
        e => e,
    })?;
    Ok(Zeroizing::new(out))
}

#[cfg(test)]
#[path = "tests/kdf.rs"]
mod tests;
