//! EC key-pair generation (P-256, P-384, P-521) and ECDSA, raw (`CKM_ECDSA`, over a hash the
//! caller computed) and hash-and-sign (`CKM_ECDSA_SHA*`). Signatures are `r || s`,
//! each the field length. The primitives run in the backend ([`super::backend`]).

use cryptoki_sys::*;

use super::backend::{Curve, EcPrivateKey, EcPrivateOps, EcPublicOps};
use super::digest::SignInput;
use super::keys::{check_template_type, ec_pair_attributes, Material};
use super::table::{MechEntry, Ops, SV};
use super::{HashAlg, Key, Mechanism, SignOp, VerifyOp};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Curve sizes in bits.
pub(super) const EC_BITS: (u64, u64) = (256, 521);

/// The EC capability flags every EC mechanism reports.
pub(super) const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

const SIGN: Ops = Ops {
    sign: Some(sign_init),
    verify: Some(verify_init),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_EC_KEY_PAIR_GEN,
        EC_BITS,
        CKF_GENERATE_KEY_PAIR | EC_FLAGS,
        Ops {
            generate_pair: Some(generate_pair),
            ..Ops::NONE
        },
    ),
    MechEntry::new(CKM_ECDSA, EC_BITS, SV | EC_FLAGS, SIGN),
    MechEntry::new(CKM_ECDSA_SHA1, EC_BITS, SV | EC_FLAGS, SIGN),
    MechEntry::new(CKM_ECDSA_SHA224, EC_BITS, SV | EC_FLAGS, SIGN),
    MechEntry::new(CKM_ECDSA_SHA256, EC_BITS, SV | EC_FLAGS, SIGN),
    MechEntry::new(CKM_ECDSA_SHA384, EC_BITS, SV | EC_FLAGS, SIGN),
    MechEntry::new(CKM_ECDSA_SHA512, EC_BITS, SV | EC_FLAGS, SIGN),
];

/// The hash to run over the data: none for raw `CKM_ECDSA`.
fn prehash(ty: CK_MECHANISM_TYPE) -> Result<Option<HashAlg>> {
    Ok(match ty {
        CKM_ECDSA => None,
        CKM_ECDSA_SHA1 => Some(HashAlg::Sha1),
        CKM_ECDSA_SHA224 => Some(HashAlg::Sha224),
        CKM_ECDSA_SHA256 => Some(HashAlg::Sha256),
        CKM_ECDSA_SHA384 => Some(HashAlg::Sha384),
        CKM_ECDSA_SHA512 => Some(HashAlg::Sha512),
        other => return Err(Error::MechanismInvalid(other)),
    })
}

struct EcdsaSign {
    key: Key,
    input: SignInput,
    sig_len: usize,
}

impl SignOp for EcdsaSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = self.input.take();
        match self.key.material() {
            Material::EcPrivate(k) => k.sign_prehash(&data),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

struct EcdsaVerify {
    key: Key,
    input: SignInput,
}

impl VerifyOp for EcdsaVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        let data = self.input.take();
        match self.key.material() {
            Material::EcPublic(k) => k.verify_prehash(&data, sig),
            Material::EcPrivate(k) => k.public().verify_prehash(&data, sig),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    let prehash = prehash(mech.ty)?;
    let Material::EcPrivate(k) = key.material() else {
        return Err(Error::KeyTypeInconsistent);
    };
    Ok(Box::new(EcdsaSign {
        sig_len: 2 * k.curve().field_len(),
        key: key.clone(),
        input: SignInput::new(prehash),
    }))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    let prehash = prehash(mech.ty)?;
    if !matches!(
        key.material(),
        Material::EcPrivate(_) | Material::EcPublic(_)
    ) {
        return Err(Error::KeyTypeInconsistent);
    }
    Ok(Box::new(EcdsaVerify {
        key: key.clone(),
        input: SignInput::new(prehash),
    }))
}

/// `CKM_EC_KEY_PAIR_GEN`: the curve from the public template's `CKA_EC_PARAMS`
/// (stored as given, OID or curve name form).
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    check_template_type(pub_t, CKO_PUBLIC_KEY, &[CKK_EC])?;
    check_template_type(priv_t, CKO_PRIVATE_KEY, &[CKK_EC])?;
    let params = pub_t.require(CKA_EC_PARAMS)?;
    let curve = Curve::from_ec_params(params).ok_or(Error::AttributeValueInvalid(CKA_EC_PARAMS))?;
    if let Some(p2) = priv_t.get(CKA_EC_PARAMS) {
        if Curve::from_ec_params(p2) != Some(curve) {
            return Err(Error::TemplateInconsistent(
                "public and private CKA_EC_PARAMS differ".into(),
            ));
        }
    }
    let key = EcPrivateKey::generate(curve)?;
    Ok(ec_pair_attributes(params, &key))
}

#[cfg(test)]
#[path = "tests/ecdsa.rs"]
mod tests;
