//! ML-KEM (FIPS 203; PKCS#11 3.2 `CKK_ML_KEM`, `CKM_ML_KEM_KEY_PAIR_GEN`,
//! `CKM_ML_KEM` for `C_EncapsulateKey`/`C_DecapsulateKey`), on RustCrypto's
//! `ml-kem` in both builds.
//!
//! Keys as PKCS#11 3.2 stores them: `CKA_PARAMETER_SET` (`CKP_ML_KEM_512/768/1024`)
//! on both halves; the public key's `CKA_VALUE` is the encapsulation key ek; the
//! private key holds `CKA_SEED` (d ‖ z, 64 bytes) and `CKA_VALUE` (the expanded
//! decapsulation key dk), both sensitive. As for ML-DSA, a private key is rebuilt
//! from its seed and a given expanded key must match it.
//!
//! Encapsulation draws the 32-byte m of ML-KEM.Encaps from the operating system's
//! generator; the 32-byte shared secret becomes the value of the new secret key.
//! Decapsulation of a tampered ciphertext does not fail: FIPS 203's implicit
//! rejection returns a pseudorandom secret, so both sides simply disagree.

use cryptoki_sys::*;
#[allow(deprecated)] // skEncode-style expanded dk: PKCS#11 keeps it in CKA_VALUE.
use ml_kem::ExpandedKeyEncoding;
use ml_kem::{Decapsulate, KeyExport, MlKem1024, MlKem512, MlKem768};
use zeroize::Zeroizing;

use super::keys::{pair_parameter_set, pair_parameter_set_attributes};
use super::table::{MechEntry, Ops};
use super::{param_err, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Encapsulation key sizes in bytes (what `C_GetMechanismInfo` reports).
const EK_BYTES: (u64, u64) = (800, 1568);

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_ML_KEM_KEY_PAIR_GEN,
        EK_BYTES,
        CKF_GENERATE_KEY_PAIR,
        Ops {
            generate_pair: Some(generate_pair),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_ML_KEM,
        EK_BYTES,
        CKF_ENCAPSULATE | CKF_DECAPSULATE,
        Ops {
            encapsulate: Some(encapsulate),
            decapsulate: Some(decapsulate),
            ..Ops::NONE
        },
    ),
];

/// A FIPS 203 parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamSet {
    P512,
    P768,
    P1024,
}

impl ParamSet {
    /// The set named by a `CKA_PARAMETER_SET` value.
    pub fn from_ckp(v: CK_ULONG) -> Result<ParamSet> {
        match v {
            CKP_ML_KEM_512 => Ok(ParamSet::P512),
            CKP_ML_KEM_768 => Ok(ParamSet::P768),
            CKP_ML_KEM_1024 => Ok(ParamSet::P1024),
            _ => Err(Error::AttributeValueInvalid(CKA_PARAMETER_SET)),
        }
    }

    pub fn ckp(self) -> CK_ULONG {
        match self {
            ParamSet::P512 => CKP_ML_KEM_512,
            ParamSet::P768 => CKP_ML_KEM_768,
            ParamSet::P1024 => CKP_ML_KEM_1024,
        }
    }

    /// Ciphertext length in bytes.
    pub fn ciphertext_len(self) -> usize {
        match self {
            ParamSet::P512 => 768,
            ParamSet::P768 => 1088,
            ParamSet::P1024 => 1568,
        }
    }
}

/// An ML-KEM decapsulation key.
pub(crate) trait PrivateOps: Send + Sync {
    fn set(&self) -> ParamSet;
    /// ML-KEM.Decaps: `None` for a ciphertext of the wrong length.
    fn decapsulate(&self, ct: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
}

/// An ML-KEM encapsulation key.
pub(crate) trait PublicOps: Send + Sync {
    fn set(&self) -> ParamSet;
    /// ML-KEM.Encaps with the given m: (ciphertext, shared secret).
    fn encapsulate(&self, m: &[u8; 32]) -> (Vec<u8>, Zeroizing<Vec<u8>>);
}

type Dk<P> = ml_kem::DecapsulationKey<P>;
type Ek<P> = ml_kem::EncapsulationKey<P>;

struct Private<K>(ParamSet, K);
struct Public<K>(ParamSet, K);

macro_rules! kem_impls {
    ($($p:ty),*) => {$(
        impl PrivateOps for Private<Dk<$p>> {
            fn set(&self) -> ParamSet {
                self.0
            }
            fn decapsulate(&self, ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
                let ct = ml_kem::Ciphertext::<$p>::try_from(ct).ok()?;
                Some(Zeroizing::new(self.1.decapsulate(&ct).to_vec()))
            }
        }

        impl PublicOps for Public<Ek<$p>> {
            fn set(&self) -> ParamSet {
                self.0
            }
            fn encapsulate(&self, m: &[u8; 32]) -> (Vec<u8>, Zeroizing<Vec<u8>>) {
                let (ct, k) = self.1.encapsulate_deterministic(&ml_kem::B32::from(*m));
                (ct.to_vec(), Zeroizing::new(k.to_vec()))
            }
        }
    )*};
}

kem_impls!(MlKem512, MlKem768, MlKem1024);

/// (encapsulation key, expanded decapsulation key, the private half) of a seed.
type Expanded = (Vec<u8>, Zeroizing<Vec<u8>>, Box<dyn PrivateOps>);

macro_rules! expand_as {
    ($p:ty, $set:expr, $seed:expr) => {{
        let dk = Dk::<$p>::from_seed(ml_kem::Seed::from(*$seed));
        let ek = dk.encapsulation_key().to_bytes().to_vec();
        #[allow(deprecated)]
        let enc = Zeroizing::new(dk.to_expanded_bytes().to_vec());
        (ek, enc, Box::new(Private($set, dk)) as Box<dyn PrivateOps>)
    }};
}

/// ML-KEM.KeyGen_internal(d, z) for `set`.
fn expand(set: ParamSet, seed: &[u8; 64]) -> Expanded {
    match set {
        ParamSet::P512 => expand_as!(MlKem512, set, seed),
        ParamSet::P768 => expand_as!(MlKem768, set, seed),
        ParamSet::P1024 => expand_as!(MlKem1024, set, seed),
    }
}

macro_rules! public_as {
    ($p:ty, $set:expr, $v:expr) => {{
        let enc = ml_kem::Key::<Ek<$p>>::try_from($v)
            .map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
        // The modulus check of FIPS 203 §7.2 (ek must encode reduced coefficients).
        let ek = Ek::<$p>::new(&enc).map_err(|_| Error::AttributeValueInvalid(CKA_VALUE))?;
        Box::new(Public($set, ek)) as Box<dyn PublicOps>
    }};
}

fn set_of(attrs: &Attributes) -> Result<ParamSet> {
    ParamSet::from_ckp(attrs.require_ulong(CKA_PARAMETER_SET)?)
}

fn seed_of(attrs: &Attributes) -> Result<Zeroizing<[u8; 64]>> {
    let seed: [u8; 64] = attrs
        .get(CKA_SEED)
        .ok_or_else(|| {
            Error::TemplateIncomplete(
                "an ML-KEM private key needs CKA_SEED (the expanded key alone is not accepted)"
                    .into(),
            )
        })?
        .try_into()
        .map_err(|_| Error::AttributeValueInvalid(CKA_SEED))?;
    Ok(Zeroizing::new(seed))
}

/// A private key from `CKA_PARAMETER_SET`, `CKA_SEED` and (if present) `CKA_VALUE`,
/// which must be the seed's expanded key.
pub(crate) fn private_from(attrs: &Attributes) -> Result<Box<dyn PrivateOps>> {
    use subtle::ConstantTimeEq;
    let set = set_of(attrs)?;
    let (_, enc, dk) = expand(set, &*seed_of(attrs)?);
    if let Some(v) = attrs.get(CKA_VALUE).filter(|v| !v.is_empty()) {
        if !bool::from(v.ct_eq(&enc[..])) {
            return Err(Error::AttributeValueInvalid(CKA_VALUE));
        }
    }
    Ok(dk)
}

/// A public key from `CKA_PARAMETER_SET` and `CKA_VALUE`.
pub(crate) fn public_from(attrs: &Attributes) -> Result<Box<dyn PublicOps>> {
    let set = set_of(attrs)?;
    let v = attrs.require(CKA_VALUE)?;
    Ok(match set {
        ParamSet::P512 => public_as!(MlKem512, set, v),
        ParamSet::P768 => public_as!(MlKem768, set, v),
        ParamSet::P1024 => public_as!(MlKem1024, set, v),
    })
}

/// Fills a created private key's `CKA_VALUE` from its seed (after the checks of
/// [`private_from`]).
pub(crate) fn complete_private(o: &mut Attributes) -> Result<()> {
    private_from(o)?;
    let (_, enc, _) = expand(set_of(o)?, &*seed_of(o)?);
    o.set(CKA_VALUE, enc.to_vec());
    Ok(())
}

/// `CKM_ML_KEM_KEY_PAIR_GEN`: the parameter set from the public template.
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    let set = ParamSet::from_ckp(pair_parameter_set(CKK_ML_KEM, pub_t, priv_t)?)?;
    let mut seed = Zeroizing::new([0u8; 64]);
    super::random(&mut seed[..])?;
    let (ek, enc, _) = expand(set, &seed);
    Ok(pair_parameter_set_attributes(
        CKK_ML_KEM,
        set.ckp(),
        ek,
        &seed[..],
        &enc,
    ))
}

fn no_param(mech: &Mechanism) -> Result<()> {
    match mech.param {
        MechParam::None => Ok(()),
        _ => Err(param_err("CKM_ML_KEM takes no parameter")),
    }
}

/// The ciphertext length `key` (public or private) encapsulates to.
pub fn ciphertext_len(key: &Key) -> Result<usize> {
    match key.material() {
        super::keys::Material::MlKemPublic(k) => Ok(k.set().ciphertext_len()),
        super::keys::Material::MlKemPrivate(k) => Ok(k.set().ciphertext_len()),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn encapsulate(mech: &Mechanism, key: &Key) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    no_param(mech)?;
    let super::keys::Material::MlKemPublic(k) = key.material() else {
        return Err(Error::KeyTypeInconsistent);
    };
    let mut m = Zeroizing::new([0u8; 32]);
    super::random(&mut m[..])?;
    Ok(k.encapsulate(&m))
}

fn decapsulate(mech: &Mechanism, key: &Key, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    no_param(mech)?;
    let super::keys::Material::MlKemPrivate(k) = key.material() else {
        return Err(Error::KeyTypeInconsistent);
    };
    k.decapsulate(ct).ok_or(Error::EncryptedDataLenRange)
}

#[cfg(test)]
#[path = "tests/mlkem.rs"]
mod tests;
