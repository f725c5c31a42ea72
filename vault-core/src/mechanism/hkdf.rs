//! HKDF (RFC 5869; PKCS#11 3.0 `CKM_HKDF_DERIVE`, `CKM_HKDF_DATA`,
//! `CKM_HKDF_KEY_GEN`, `CKK_HKDF`): extract, expand or both, with SHA-1 or SHA-2, a
//! salt that is empty, given as data, or the value of another key
//! (`CKF_HKDF_SALT_KEY`, looked up by the session and passed as the second key).
//! `CKM_HKDF_DATA` computes the same bytes; the session stores them as a data
//! object (`CKO_DATA`) instead of a key.

use ::hkdf::Hkdf;
use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::keys::{check_template_type, secret_key_attributes, Material};
use super::table::{MechEntry, Ops};
use super::{param_err, random_secret, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Key sizes in bytes.
const BYTES: (u64, u64) = (1, 512);

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_HKDF_KEY_GEN,
        BYTES,
        CKF_GENERATE,
        Ops {
            generate: Some(generate),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_HKDF_DERIVE,
        BYTES,
        CKF_DERIVE,
        Ops {
            derive: Some(derive),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_HKDF_DATA,
        BYTES,
        CKF_DERIVE,
        Ops {
            derive: Some(derive),
            ..Ops::NONE
        },
    ),
];

/// Where the salt comes from (`ulSaltType`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Salt {
    /// `CKF_HKDF_SALT_NULL`: HashLen zero bytes.
    Null,
    /// `CKF_HKDF_SALT_DATA`.
    Data(Vec<u8>),
    /// `CKF_HKDF_SALT_KEY`: the value of this key object.
    Key(u64),
}

/// `CK_HKDF_PARAMS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub extract: bool,
    pub expand: bool,
    /// `CKM_SHA_1`, `CKM_SHA224`, `CKM_SHA256`, `CKM_SHA384` or `CKM_SHA512`.
    pub prf: CK_MECHANISM_TYPE,
    pub salt: Salt,
    pub info: Vec<u8>,
}

/// Key types HKDF takes as input keying material or salt.
const INPUT_TYPES: [CK_KEY_TYPE; 7] = [
    CKK_HKDF,
    CKK_GENERIC_SECRET,
    CKK_SHA_1_HMAC,
    CKK_SHA224_HMAC,
    CKK_SHA256_HMAC,
    CKK_SHA384_HMAC,
    CKK_SHA512_HMAC,
];

fn secret(key: &Key) -> Result<&[u8]> {
    match key.material() {
        Material::Secret { key_type, value } if INPUT_TYPES.contains(key_type) => Ok(value),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// `CKM_HKDF_KEY_GEN`: a `CKK_HKDF` (or generic) key of `CKA_VALUE_LEN` bytes.
fn generate(_mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    check_template_type(template, CKO_SECRET_KEY, &[CKK_HKDF, CKK_GENERIC_SECRET])?;
    let len = template.require_ulong(CKA_VALUE_LEN)? as usize;
    if !(1..=512).contains(&len) {
        return Err(Error::KeySizeRange);
    }
    let kt = template.key_type().unwrap_or(CKK_HKDF);
    Ok(secret_key_attributes(kt, &random_secret(len)?, true))
}

/// RFC 5869 with hash `D`: extract (PRK), expand (from `ikm` as the PRK), or both.
fn run<D>(p: &Params, ikm: &[u8], salt: Option<&[u8]>, len: usize) -> Result<Zeroizing<Vec<u8>>>
where
    D: hmac::digest::core_api::CoreProxy + hmac::digest::OutputSizeUser,
    D::Core: hmac::digest::HashMarker
        + hmac::digest::core_api::UpdateCore
        + hmac::digest::core_api::FixedOutputCore
        + hmac::digest::core_api::BufferKindUser<BufferKind = hmac::digest::block_buffer::Eager>
        + Default
        + Clone,
    <D::Core as hmac::digest::core_api::BlockSizeUser>::BlockSize:
        hmac::digest::typenum::IsLess<hmac::digest::typenum::U256>,
    hmac::digest::typenum::Le<
        <D::Core as hmac::digest::core_api::BlockSizeUser>::BlockSize,
        hmac::digest::typenum::U256,
    >: hmac::digest::typenum::NonZero,
{
    let too_long = || Error::TemplateInconsistent("the HKDF output is too long".into());
    match (p.extract, p.expand) {
        (true, false) => {
            let (prk, _) = Hkdf::<D>::extract(salt, ikm);
            if len != prk.len() {
                return Err(Error::TemplateInconsistent(format!(
                    "an HKDF extract gives {} bytes",
                    prk.len()
                )));
            }
            Ok(Zeroizing::new(prk.to_vec()))
        }
        (true, true) => {
            let h = Hkdf::<D>::new(salt, ikm);
            let mut out = Zeroizing::new(vec![0u8; len]);
            h.expand(&p.info, &mut out).map_err(|_| too_long())?;
            Ok(out)
        }
        (false, true) => {
            let h = Hkdf::<D>::from_prk(ikm)
                .map_err(|_| param_err("an HKDF expand needs a key at least one hash long"))?;
            let mut out = Zeroizing::new(vec![0u8; len]);
            h.expand(&p.info, &mut out).map_err(|_| too_long())?;
            Ok(out)
        }
        (false, false) => Err(param_err("HKDF needs extract, expand or both")),
    }
}

/// The output length: `CKA_VALUE_LEN`, the key type's fixed size, or (extract
/// only) the hash length.
fn out_len(p: &Params, template: &Attributes, hash_len: usize) -> Result<usize> {
    if let Some(l) = template.get_ulong(CKA_VALUE_LEN)? {
        return Ok(l as usize);
    }
    match template.key_type() {
        Some(CKK_DES3) => Ok(24),
        _ if p.extract && !p.expand => Ok(hash_len),
        _ => Err(Error::TemplateIncomplete(
            "CKA_VALUE_LEN is required for an HKDF expand".into(),
        )),
    }
}

fn derive(
    mech: &Mechanism,
    base: &Key,
    other: Option<&Key>,
    template: &Attributes,
) -> Result<Zeroizing<Vec<u8>>> {
    let MechParam::Hkdf(p) = &mech.param else {
        return Err(param_err("CK_HKDF_PARAMS required"));
    };
    let ikm = secret(base)?;
    let salt = match (&p.salt, other) {
        (Salt::Null, _) => None,
        (Salt::Data(d), _) if !d.is_empty() => Some(&d[..]),
        (Salt::Key(_), Some(k)) => Some(secret(k)?),
        (Salt::Data(_), _) | (Salt::Key(_), None) => {
            return Err(param_err("the HKDF salt is missing"))
        }
    };
    if p.extract && !p.expand && !p.info.is_empty() {
        return Err(param_err("an HKDF extract takes no info"));
    }
    let hash_len = match p.prf {
        CKM_SHA_1 => 20,
        CKM_SHA224 => 28,
        CKM_SHA256 => 32,
        CKM_SHA384 => 48,
        CKM_SHA512 => 64,
        _ => return Err(param_err("unsupported HKDF hash")),
    };
    let len = out_len(p, template, hash_len)?;
    if len == 0 {
        return Err(Error::TemplateInconsistent("CKA_VALUE_LEN is zero".into()));
    }
    match p.prf {
        CKM_SHA_1 => run::<sha1::Sha1>(p, ikm, salt, len),
        CKM_SHA224 => run::<sha2::Sha224>(p, ikm, salt, len),
        CKM_SHA256 => run::<sha2::Sha256>(p, ikm, salt, len),
        CKM_SHA384 => run::<sha2::Sha384>(p, ikm, salt, len),
        _ => run::<sha2::Sha512>(p, ikm, salt, len),
    }
}

#[cfg(test)]
#[path = "tests/hkdf.rs"]
mod tests;
