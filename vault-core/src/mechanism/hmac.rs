//! HMAC (`CKM_SHA*_HMAC`) and the generation of the secrets it uses
//! (`CKM_GENERIC_SECRET_KEY_GEN`, the PKCS#11 3.0 `CKM_SHA*_KEY_GEN`).

use cryptoki_sys::*;
use hmac::{Hmac, Mac};

use super::keys::{check_template_type, secret_key_attributes, secret_of};
use super::table::{MechEntry, Ops, SV};
use super::{random_secret, HashAlg, Key, Mechanism, SignOp, VerifyOp};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Secret sizes in bytes.
const BYTES: (u64, u64) = (1, 512);

const GENERATE: Ops = Ops {
    generate: Some(generate),
    ..Ops::NONE
};

const SIGN: Ops = Ops {
    sign: Some(sign_init),
    verify: Some(verify_init),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_GENERIC_SECRET_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA_1_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA224_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA256_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA384_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA512_KEY_GEN, BYTES, CKF_GENERATE, GENERATE),
    MechEntry::new(CKM_SHA_1_HMAC, BYTES, SV, SIGN),
    MechEntry::new(CKM_SHA224_HMAC, BYTES, SV, SIGN),
    MechEntry::new(CKM_SHA256_HMAC, BYTES, SV, SIGN),
    MechEntry::new(CKM_SHA384_HMAC, BYTES, SV, SIGN),
    MechEntry::new(CKM_SHA512_HMAC, BYTES, SV, SIGN),
];

/// `CKM_GENERIC_SECRET_KEY_GEN`: `CKA_VALUE_LEN` (required) bytes of a generic or
/// HMAC key type. `CKM_SHA*_KEY_GEN` (PKCS#11 3.0 HMAC key generation): a secret of
/// `CKA_VALUE_LEN` bytes (default: the hash's output length) of the matching
/// `CKK_SHA*_HMAC` type.
fn generate(mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    let (key_type, len) = match mech.ty {
        CKM_GENERIC_SECRET_KEY_GEN => {
            let allowed = [
                CKK_GENERIC_SECRET,
                CKK_SHA_1_HMAC,
                CKK_SHA224_HMAC,
                CKK_SHA256_HMAC,
                CKK_SHA384_HMAC,
                CKK_SHA512_HMAC,
            ];
            check_template_type(template, CKO_SECRET_KEY, &allowed)?;
            let len = template.require_ulong(CKA_VALUE_LEN)? as usize;
            if !(1..=512).contains(&len) {
                return Err(Error::KeySizeRange);
            }
            (template.key_type().unwrap_or(CKK_GENERIC_SECRET), len)
        }
        CKM_SHA_1_KEY_GEN | CKM_SHA224_KEY_GEN | CKM_SHA256_KEY_GEN | CKM_SHA384_KEY_GEN
        | CKM_SHA512_KEY_GEN => {
            let (kt, default_len) = match mech.ty {
                CKM_SHA_1_KEY_GEN => (CKK_SHA_1_HMAC, 20),
                CKM_SHA224_KEY_GEN => (CKK_SHA224_HMAC, 28),
                CKM_SHA256_KEY_GEN => (CKK_SHA256_HMAC, 32),
                CKM_SHA384_KEY_GEN => (CKK_SHA384_HMAC, 48),
                _ => (CKK_SHA512_HMAC, 64),
            };
            check_template_type(template, CKO_SECRET_KEY, &[kt, CKK_GENERIC_SECRET])?;
            let len = template.get_ulong(CKA_VALUE_LEN)?.unwrap_or(default_len) as usize;
            if !(1..=512).contains(&len) {
                return Err(Error::KeySizeRange);
            }
            (template.key_type().unwrap_or(kt), len)
        }
        other => return Err(Error::MechanismInvalid(other)),
    };
    Ok(secret_key_attributes(key_type, &random_secret(len)?, true))
}

/// The hash of an HMAC mechanism.
fn hmac_hash(ty: CK_MECHANISM_TYPE) -> Result<HashAlg> {
    Ok(match ty {
        CKM_SHA_1_HMAC => HashAlg::Sha1,
        CKM_SHA224_HMAC => HashAlg::Sha224,
        CKM_SHA256_HMAC => HashAlg::Sha256,
        CKM_SHA384_HMAC => HashAlg::Sha384,
        CKM_SHA512_HMAC => HashAlg::Sha512,
        other => return Err(Error::MechanismInvalid(other)),
    })
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    Ok(Box::new(HmacOp::start(hmac_hash(mech.ty)?, key)?))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    Ok(Box::new(HmacOp::start(hmac_hash(mech.ty)?, key)?))
}

/// Running HMAC, one variant per hash.
enum HmacState {
    Sha1(Hmac<sha1::Sha1>),
    Sha224(Hmac<sha2::Sha224>),
    Sha256(Hmac<sha2::Sha256>),
    Sha384(Hmac<sha2::Sha384>),
    Sha512(Hmac<sha2::Sha512>),
}

macro_rules! each_hmac {
    ($s:expr, $m:ident => $e:expr) => {
        match $s {
            HmacState::Sha1($m) => $e,
            HmacState::Sha224($m) => $e,
            HmacState::Sha256($m) => $e,
            HmacState::Sha384($m) => $e,
            HmacState::Sha512($m) => $e,
        }
    };
}

impl HmacState {
    fn new(alg: HashAlg, key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        const ANY: &str = "HMAC takes any key length";
        match alg {
            HashAlg::Sha1 => HmacState::Sha1(Mac::new_from_slice(key).expect(ANY)),
            HashAlg::Sha224 => HmacState::Sha224(Mac::new_from_slice(key).expect(ANY)),
            HashAlg::Sha256 => HmacState::Sha256(Mac::new_from_slice(key).expect(ANY)),
            HashAlg::Sha384 => HmacState::Sha384(Mac::new_from_slice(key).expect(ANY)),
            HashAlg::Sha512 => HmacState::Sha512(Mac::new_from_slice(key).expect(ANY)),
        }
    }

    fn update(&mut self, data: &[u8]) {
        each_hmac!(self, m => m.update(data))
    }

    fn finalize(self) -> Vec<u8> {
        each_hmac!(self, m => m.finalize().into_bytes().to_vec())
    }
}

/// HMAC key types: generic secrets, the HMAC key types, and AES keys (as SoftHSM).
const HMAC_KEY_TYPES: &[CK_KEY_TYPE] = &[
    CKK_GENERIC_SECRET,
    CKK_SHA_1_HMAC,
    CKK_SHA224_HMAC,
    CKK_SHA256_HMAC,
    CKK_SHA384_HMAC,
    CKK_SHA512_HMAC,
    CKK_AES,
];

struct HmacOp {
    state: Option<HmacState>,
    len: usize,
}

impl HmacOp {
    fn start(alg: HashAlg, key: &Key) -> Result<Self> {
        let k = secret_of(key, HMAC_KEY_TYPES)?;
        Ok(HmacOp {
            state: Some(HmacState::new(alg, k)),
            len: alg.output_len(),
        })
    }

    fn mac(&mut self) -> Result<Vec<u8>> {
        self.state
            .take()
            .map(HmacState::finalize)
            .ok_or(Error::OperationNotInitialized)
    }

    fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.state
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data);
        Ok(())
    }
}

impl SignOp for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        self.mac()
    }

    fn sig_len(&self) -> usize {
        self.len
    }
}

impl VerifyOp for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }

    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        super::check_mac(self.len, || self.mac(), signature)
    }
}

#[cfg(test)]
#[path = "tests/hmac.rs"]
mod tests;
