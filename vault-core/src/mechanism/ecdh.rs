//! ECDH key derivation (`CKM_ECDH1_DERIVE`) with the raw shared secret, the ANSI
//! X9.63 KDF or the NIST SP 800-56 single-step KDF, for P-256/P-384/P-521 keys (the point multiplication runs in the backend,
//! [`super::backend`]) and X25519/X448 keys ([`super::x25519`]).

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::backend::EcPrivateOps;
use super::ecdsa::{EC_BITS, EC_FLAGS};
use super::encoding::ec_point_raw;
use super::keys::Material;
use super::table::{MechEntry, Ops};
use super::{param_err, HashAlg, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

pub(super) const ENTRIES: &[MechEntry] = &[MechEntry::new(
    CKM_ECDH1_DERIVE,
    EC_BITS,
    CKF_DERIVE | EC_FLAGS,
    Ops {
        derive: Some(derive),
        ..Ops::NONE
    },
)];

/// ANSI X9.63 KDF (the `CKD_SHA*_KDF` functions).
fn x963_kdf(hash: HashAlg, z: &[u8], shared: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut counter = 1u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[z, &counter.to_be_bytes(), shared]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// NIST SP 800-56A/C single-step KDF (the `CKD_SHA*_KDF_SP800` functions): the
/// counter comes first, `H(counter || Z || OtherInfo)`, where X9.63 puts it after Z.
fn sp800_kdf(hash: HashAlg, z: &[u8], other: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut counter = 1u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[&counter.to_be_bytes(), z, other]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Derives a key value (`C_DeriveKey`). `CKM_ECDH1_DERIVE` with `CKD_NULL` (the
/// shared x-coordinate) or `CKD_SHA1/224/256/384/512_KDF` (X9.63). With
/// `CKA_VALUE_LEN` in the template the result has that length (for `CKD_NULL`
/// the trailing bytes are kept, as SoftHSM does); without it, `CKD_NULL` gives the
/// whole x-coordinate and a KDF one hash length.
fn derive(
    mech: &Mechanism,
    base: &Key,
    _other: Option<&Key>,
    template: &Attributes,
) -> Result<Zeroizing<Vec<u8>>> {
    let MechParam::Ecdh1 {
        kdf,
        shared_data,
        public_data,
    } = &mech.param
    else {
        return Err(param_err("CK_ECDH1_DERIVE_PARAMS required"));
    };
    let want = template
        .get_ulong(CKA_VALUE_LEN)?
        .map(|l| l as usize)
        .filter(|&l| l > 0);
    // (hash, SP 800-56 form rather than X9.63)
    let kdf_hash = match *kdf {
        CKD_NULL => None,
        CKD_SHA1_KDF => Some((HashAlg::Sha1, false)),
        CKD_SHA224_KDF => Some((HashAlg::Sha224, false)),
        CKD_SHA256_KDF => Some((HashAlg::Sha256, false)),
        CKD_SHA384_KDF => Some((HashAlg::Sha384, false)),
        CKD_SHA512_KDF => Some((HashAlg::Sha512, false)),
        CKD_SHA1_KDF_SP800 => Some((HashAlg::Sha1, true)),
        CKD_SHA224_KDF_SP800 => Some((HashAlg::Sha224, true)),
        CKD_SHA256_KDF_SP800 => Some((HashAlg::Sha256, true)),
        CKD_SHA384_KDF_SP800 => Some((HashAlg::Sha384, true)),
        CKD_SHA512_KDF_SP800 => Some((HashAlg::Sha512, true)),
        _ => return Err(param_err("unsupported ECDH KDF")),
    };
    if kdf_hash.is_none() && !shared_data.is_empty() {
        return Err(param_err("CKD_NULL takes no shared data"));
    }
    let z = match base.material() {
        Material::EcPrivate(k) => {
            let point = ec_point_raw(k.curve(), public_data)
                .map_err(|_| param_err("ECDH public data is not a point on the key's curve"))?;
            k.ecdh(&point)?
        }
        Material::XPrivate(k) => super::x25519::shared(k, public_data)
            .map_err(|_| param_err("ECDH public data is not an X25519 public key of order > 8"))?,
        Material::X448Private(k) => super::x25519::shared448(k, public_data)
            .map_err(|_| param_err("ECDH public data is not an X448 public key of order > 4"))?,
        _ => return Err(Error::KeyTypeInconsistent),
    };
    match kdf_hash {
        None => match want {
            None => Ok(z),
            Some(l) if l <= z.len() => Ok(Zeroizing::new(z[z.len() - l..].to_vec())),
            Some(_) => Err(Error::TemplateInconsistent(
                "CKA_VALUE_LEN exceeds the ECDH shared secret".into(),
            )),
        },
        Some((h, sp800)) => {
            let len = want.unwrap_or(h.output_len());
            if len > 1024 {
                return Err(Error::TemplateInconsistent(
                    "CKA_VALUE_LEN too large".into(),
                ));
            }
            Ok(if sp800 {
                sp800_kdf(h, &z, shared_data, len)
            } else {
                x963_kdf(h, &z, shared_data, len)
            })
        }
    }
}

#[cfg(test)]
#[path = "tests/ecdh.rs"]
mod tests;
