//! RSA: key-pair generation, PKCS#1 v1.5, raw (X.509) and PSS signatures, PKCS#1
//! v1.5, raw and OAEP encryption, and key wrapping with PKCS#1 v1.5 and OAEP.
//!
//! The primitives run in the backend ([`super::backend`]); this file parses the
//! mechanism parameters, checks keys against them and feeds the data.
//! `CKM_RSA_PKCS` decryption and unwrap depend on `[policy] rsa_pkcs1_decrypt` in a
//! build without aws-lc ([`super::backend::check_rsa_pkcs1_decrypt`]).

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::backend::{
    RsaPrivateKey, RsaPrivateOps, RsaPublicKey, RsaPublicOps, RSA_MAX_BITS, RSA_MIN_BITS,
};
use super::digest::SignInput;
use super::keys::{check_template_type, rsa_pair_attributes, Material};
use super::table::{unwrap_with, wrap_with, MechEntry, Ops, ED, SV, WU};
use super::{left_pad, param_err, CipherOp, HashAlg, Key, MechParam, Mechanism, SignOp, VerifyOp};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// Modulus sizes in bits a key may have (1024-bit keys made elsewhere still import,
/// verify and sign, for legacy).
const BITS: (u64, u64) = (RSA_MIN_BITS as u64, RSA_MAX_BITS as u64);

/// The smallest modulus the token generates: below 2048 bits RSA is under NIST's
/// 112-bit floor (SP 800-131A), so a new key never starts there.
const GEN_MIN_BITS: usize = 2048;

const SIGN: Ops = Ops {
    sign: Some(sign_init),
    verify: Some(verify_init),
    ..Ops::NONE
};

/// Encryption and key wrapping.
const CIPHER_WRAP: Ops = Ops {
    encrypt: Some(encrypt_init),
    decrypt: Some(decrypt_init),
    wrap: Some(wrap),
    unwrap: Some(unwrap),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        (GEN_MIN_BITS as u64, RSA_MAX_BITS as u64),
        CKF_GENERATE_KEY_PAIR,
        Ops {
            generate_pair: Some(generate_pair),
            ..Ops::NONE
        },
    ),
    MechEntry::new(
        CKM_RSA_PKCS,
        BITS,
        SV | ED | WU,
        Ops {
            sign: Some(sign_init),
            verify: Some(verify_init),
            ..CIPHER_WRAP
        },
    )
    .policy_gated(CKF_DECRYPT | CKF_UNWRAP),
    MechEntry::new(
        CKM_RSA_X_509,
        BITS,
        SV | ED,
        Ops {
            encrypt: Some(encrypt_init),
            decrypt: Some(decrypt_init),
            ..SIGN
        },
    ),
    MechEntry::new(CKM_SHA1_RSA_PKCS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA224_RSA_PKCS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA256_RSA_PKCS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA384_RSA_PKCS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA512_RSA_PKCS, BITS, SV, SIGN),
    MechEntry::new(CKM_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA1_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA224_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA256_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA384_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_SHA512_RSA_PKCS_PSS, BITS, SV, SIGN),
    MechEntry::new(CKM_RSA_PKCS_OAEP, BITS, ED | WU, CIPHER_WRAP),
];

/// Runs `f` with the RSA public key of `key` (public, or derived from private).
fn with_rsa_public<R>(key: &Key, f: impl FnOnce(&RsaPublicKey) -> Result<R>) -> Result<R> {
    match key.material() {
        Material::RsaPublic(k) => f(k),
        Material::RsaPrivate(k) => f(&k.public()),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

// ---------------------------------------------------------------------------
// Sign / verify
// ---------------------------------------------------------------------------

/// The RSA signature schemes.
#[derive(Clone, Copy)]
enum Scheme {
    /// PKCS#1 v1.5 type 1 over a DigestInfo (`Some(hash)`) or over raw data.
    Pkcs1(Option<HashAlg>),
    X509,
    Pss {
        hash: HashAlg,
        mgf: HashAlg,
        salt: usize,
    },
}

/// The hash of a hash-and-sign mechanism.
fn sign_hash(ty: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match ty {
        CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS => HashAlg::Sha1,
        CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS => HashAlg::Sha224,
        CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS => HashAlg::Sha256,
        CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS => HashAlg::Sha384,
        CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS => HashAlg::Sha512,
        _ => return None,
    })
}

/// Parses the signature mechanism: the scheme and the hash to run over the data
/// (if any).
fn scheme(mech: &Mechanism) -> Result<(Scheme, Option<HashAlg>)> {
    let pss = |expect: Option<HashAlg>| -> Result<Scheme> {
        let MechParam::Pss {
            hash,
            mgf,
            salt_len,
        } = &mech.param
        else {
            return Err(param_err("CK_RSA_PKCS_PSS_PARAMS required"));
        };
        let hash = HashAlg::from_digest_mechanism(*hash).ok_or_else(|| param_err("PSS hash"))?;
        let mgf = HashAlg::from_mgf(*mgf).ok_or_else(|| param_err("PSS MGF"))?;
        if expect.is_some_and(|e| e != hash) {
            return Err(param_err("PSS hash differs from the mechanism's hash"));
        }
        let salt = usize::try_from(*salt_len).map_err(|_| param_err("PSS salt length"))?;
        Ok(Scheme::Pss { hash, mgf, salt })
    };
    let h = sign_hash(mech.ty);
    Ok(match mech.ty {
        CKM_RSA_PKCS => (Scheme::Pkcs1(None), None),
        CKM_RSA_X_509 => (Scheme::X509, None),
        CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => (Scheme::Pkcs1(h), h),
        CKM_RSA_PKCS_PSS => (pss(None)?, None),
        CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => (pss(h)?, h),
        other => return Err(Error::MechanismInvalid(other)),
    })
}

/// Checks that `key` fits `scheme` (`private` for signing) and returns the
/// signature length.
fn check_key(scheme: Scheme, key: &Key, private: bool) -> Result<usize> {
    let len = match key.material() {
        Material::RsaPrivate(k) => k.modulus_len(),
        Material::RsaPublic(k) if !private => k.modulus_len(),
        _ => return Err(Error::KeyTypeInconsistent),
    };
    if let Scheme::Pss { hash, salt, .. } = scheme {
        if hash.output_len() + salt + 2 > len {
            return Err(param_err("PSS salt too long for the key"));
        }
    }
    Ok(len)
}

struct RsaSign {
    key: Key,
    scheme: Scheme,
    input: SignInput,
    sig_len: usize,
}

impl SignOp for RsaSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = self.input.take();
        let Material::RsaPrivate(k) = self.key.material() else {
            return Err(Error::KeyTypeInconsistent);
        };
        match self.scheme {
            Scheme::Pkcs1(Some(h)) => {
                let msg = Zeroizing::new([h.digest_info_prefix(), &data[..]].concat());
                k.sign_pkcs1(&msg)
            }
            Scheme::Pkcs1(None) => k.sign_pkcs1(&data),
            Scheme::X509 => Ok(k.raw(&data)?.to_vec()),
            Scheme::Pss { hash, mgf, salt } => k.sign_pss(&data, hash, mgf, salt),
        }
    }

    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

struct RsaVerify {
    key: Key,
    scheme: Scheme,
    input: SignInput,
}

impl VerifyOp for RsaVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        let data = self.input.take();
        match self.scheme {
            Scheme::Pkcs1(prefix) => with_rsa_public(&self.key, |k| match prefix {
                Some(h) => k.verify_pkcs1(&[h.digest_info_prefix(), &data[..]].concat(), sig),
                None => k.verify_pkcs1(&data, sig),
            }),
            Scheme::X509 => with_rsa_public(&self.key, |k| {
                let n = k.modulus_len();
                if data.len() > n {
                    return Err(Error::DataLenRange);
                }
                if sig.len() != n {
                    return Err(Error::SignatureLenRange);
                }
                let m = k.raw(sig).map_err(|_| Error::SignatureInvalid)?;
                if m == left_pad(&data, n) {
                    Ok(())
                } else {
                    Err(Error::SignatureInvalid)
                }
            }),
            Scheme::Pss { hash, mgf, salt } => {
                with_rsa_public(&self.key, |k| k.verify_pss(&data, sig, hash, mgf, salt))
            }
        }
    }
}

fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    let (scheme, prehash) = scheme(mech)?;
    let sig_len = check_key(scheme, key, true)?;
    Ok(Box::new(RsaSign {
        key: key.clone(),
        scheme,
        input: SignInput::new(prehash),
        sig_len,
    }))
}

fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    let (scheme, prehash) = scheme(mech)?;
    check_key(scheme, key, false)?;
    Ok(Box::new(RsaVerify {
        key: key.clone(),
        scheme,
        input: SignInput::new(prehash),
    }))
}

// ---------------------------------------------------------------------------
// Encryption and key wrapping
// ---------------------------------------------------------------------------

#[derive(Clone)]
enum RsaEnc {
    Pkcs1,
    X509,
    Oaep {
        hash: HashAlg,
        mgf: HashAlg,
        label: Vec<u8>,
    },
}

struct RsaCipherOp {
    key: Key,
    scheme: RsaEnc,
    encrypt: bool,
    k: usize,
    buf: Zeroizing<Vec<u8>>,
}

impl CipherOp for RsaCipherOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len() + data.len() > self.k {
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
        let data = Zeroizing::new(std::mem::take(&mut *self.buf));
        if self.encrypt {
            with_rsa_public(&self.key, |k| match &self.scheme {
                RsaEnc::Pkcs1 => k.encrypt_pkcs1(&data),
                RsaEnc::X509 => k.raw(&data),
                RsaEnc::Oaep { hash, mgf, label } => k.encrypt_oaep(&data, *hash, *mgf, label),
            })
        } else {
            let Material::RsaPrivate(k) = self.key.material() else {
                return Err(Error::KeyTypeInconsistent);
            };
            let out = match &self.scheme {
                RsaEnc::Pkcs1 => k.decrypt_pkcs1(&data)?,
                RsaEnc::X509 => {
                    if data.len() != self.k {
                        return Err(Error::EncryptedDataLenRange);
                    }
                    k.raw(&data).map_err(|_| Error::EncryptedDataInvalid)?
                }
                RsaEnc::Oaep { hash, mgf, label } => k.decrypt_oaep(&data, *hash, *mgf, label)?,
            };
            Ok(out.to_vec())
        }
    }

    fn max_output_len(&self, _input_len: usize) -> usize {
        self.k
    }
}

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    if mech.ty == CKM_RSA_PKCS && !encrypt {
        super::backend::check_rsa_pkcs1_decrypt()?;
    }
    let scheme = match mech.ty {
        CKM_RSA_PKCS => RsaEnc::Pkcs1,
        CKM_RSA_X_509 => RsaEnc::X509,
        CKM_RSA_PKCS_OAEP => {
            let MechParam::Oaep { hash, mgf, source } = &mech.param else {
                return Err(param_err("CK_RSA_PKCS_OAEP_PARAMS required"));
            };
            let hash =
                HashAlg::from_digest_mechanism(*hash).ok_or_else(|| param_err("OAEP hash"))?;
            let mgf = HashAlg::from_mgf(*mgf).ok_or_else(|| param_err("OAEP MGF"))?;
            if std::str::from_utf8(source).is_err() {
                return Err(param_err("OAEP label must be UTF-8"));
            }
            RsaEnc::Oaep {
                hash,
                mgf,
                label: source.clone(),
            }
        }
        other => return Err(Error::MechanismInvalid(other)),
    };
    let k = match (key.material(), encrypt) {
        (Material::RsaPrivate(k), _) => k.modulus_len(),
        (Material::RsaPublic(k), true) => k.modulus_len(),
        _ => return Err(Error::KeyTypeInconsistent),
    };
    if let RsaEnc::Oaep { hash, .. } = &scheme {
        if 2 * hash.output_len() + 2 > k {
            return Err(param_err("OAEP hash too long for the key"));
        }
    }
    Ok(Box::new(RsaCipherOp {
        key: key.clone(),
        scheme,
        encrypt,
        k,
        buf: Zeroizing::new(Vec::new()),
    }))
}

fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, true)
}

fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, false)
}

/// RSA wraps secret keys only: a PKCS#8 private key does not fit in one block.
fn wrap(
    mech: &Mechanism,
    key: &Key,
    class: Option<CK_OBJECT_CLASS>,
    data: &[u8],
) -> Result<Vec<u8>> {
    if class != Some(CKO_SECRET_KEY) {
        return Err(Error::KeyNotWrappable);
    }
    wrap_with(encrypt_init(mech, key), data)
}

fn unwrap(mech: &Mechanism, key: &Key, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    unwrap_with(decrypt_init(mech, key), wrapped)
}

// ---------------------------------------------------------------------------
// Key-pair generation
// ---------------------------------------------------------------------------

/// `CKM_RSA_PKCS_KEY_PAIR_GEN`: `CKA_MODULUS_BITS` (required, [`GEN_MIN_BITS`] up to
/// the largest size in [`BITS`]) and
/// `CKA_PUBLIC_EXPONENT` (default 65537) from the public template.
fn generate_pair(
    _mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    check_template_type(pub_t, CKO_PUBLIC_KEY, &[CKK_RSA])?;
    check_template_type(priv_t, CKO_PRIVATE_KEY, &[CKK_RSA])?;
    let bits = pub_t.require_ulong(CKA_MODULUS_BITS)? as usize;
    if !(GEN_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(Error::KeySizeRange);
    }
    let e = pub_t
        .get(CKA_PUBLIC_EXPONENT)
        .filter(|e| !e.is_empty())
        .unwrap_or(&[0x01, 0x00, 0x01]);
    let c = RsaPrivateKey::generate(bits, e)?;
    Ok(rsa_pair_attributes(&c))
}

#[cfg(test)]
#[path = "tests/rsa.rs"]
mod tests;
