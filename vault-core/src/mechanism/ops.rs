//! The mechanism table and the operations: sign/verify (RSA, ECDSA, HMAC),
//! encrypt/decrypt (AES ECB/CBC/CBC-PAD/GCM/key wrap, DES3, RSA), wrap/unwrap and
//! ECDH derivation.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt};
use cryptoki_sys::*;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::backend::{
    EcPrivateOps, EcPublicOps, RsaPrivateOps, RsaPublicKey, RsaPublicOps, RSA_MAX_BITS,
    RSA_MIN_BITS,
};
use super::encoding::{ec_point_raw, private_key_pkcs8};
use super::keys::Material;
use super::{CipherOp, HashAlg, Key, MechInfo, MechParam, Mechanism, SignOp, VerifyOp};
use crate::attr::Attributes;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Mechanism table
// ---------------------------------------------------------------------------

const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const WU: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;
const RSA_MIN: u64 = RSA_MIN_BITS as u64;
const RSA_MAX: u64 = RSA_MAX_BITS as u64;

/// (mechanism, min key size, max key size, flags). Key sizes are in bits for RSA
/// and EC, in bytes for AES, DES3, HMAC and generic secrets (PKCS#11 §2).
const TABLE: &[(CK_MECHANISM_TYPE, u64, u64, CK_FLAGS)] = &[
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        RSA_MIN,
        RSA_MAX,
        CKF_GENERATE_KEY_PAIR,
    ),
    (CKM_RSA_PKCS, RSA_MIN, RSA_MAX, SV | ED | WU),
    (CKM_RSA_X_509, RSA_MIN, RSA_MAX, SV | ED),
    (CKM_SHA1_RSA_PKCS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA224_RSA_PKCS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA256_RSA_PKCS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA384_RSA_PKCS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA512_RSA_PKCS, RSA_MIN, RSA_MAX, SV),
    (CKM_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA1_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA224_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA256_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA384_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_SHA512_RSA_PKCS_PSS, RSA_MIN, RSA_MAX, SV),
    (CKM_RSA_PKCS_OAEP, RSA_MIN, RSA_MAX, ED | WU),
    (
        CKM_EC_KEY_PAIR_GEN,
        256,
        384,
        CKF_GENERATE_KEY_PAIR | EC_FLAGS,
    ),
    (CKM_ECDSA, 256, 384, SV | EC_FLAGS),
    (CKM_ECDSA_SHA1, 256, 384, SV | EC_FLAGS),
    (CKM_ECDSA_SHA224, 256, 384, SV | EC_FLAGS),
    (CKM_ECDSA_SHA256, 256, 384, SV | EC_FLAGS),
    (CKM_ECDSA_SHA384, 256, 384, SV | EC_FLAGS),
    (CKM_ECDSA_SHA512, 256, 384, SV | EC_FLAGS),
    (CKM_ECDH1_DERIVE, 256, 384, CKF_DERIVE | EC_FLAGS),
    (CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE),
    (CKM_AES_ECB, 16, 32, ED | WU),
    (CKM_AES_CBC, 16, 32, ED | WU),
    (CKM_AES_CBC_PAD, 16, 32, ED | WU),
    (CKM_AES_GCM, 16, 32, ED),
    (CKM_AES_KEY_WRAP, 16, 32, ED | WU),
    (CKM_AES_KEY_WRAP_PAD, 16, 32, ED | WU),
    (CKM_DES3_KEY_GEN, 24, 24, CKF_GENERATE),
    (CKM_DES3_ECB, 24, 24, ED | WU),
    (CKM_DES3_CBC, 24, 24, ED | WU),
    (CKM_DES3_CBC_PAD, 24, 24, ED | WU),
    (CKM_GENERIC_SECRET_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA_1_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA224_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA256_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA384_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA512_KEY_GEN, 1, 512, CKF_GENERATE),
    (CKM_SHA_1_HMAC, 1, 512, SV),
    (CKM_SHA224_HMAC, 1, 512, SV),
    (CKM_SHA256_HMAC, 1, 512, SV),
    (CKM_SHA384_HMAC, 1, 512, SV),
    (CKM_SHA512_HMAC, 1, 512, SV),
    (CKM_SHA_1, 0, 0, CKF_DIGEST),
    (CKM_SHA224, 0, 0, CKF_DIGEST),
    (CKM_SHA256, 0, 0, CKF_DIGEST),
    (CKM_SHA384, 0, 0, CKF_DIGEST),
    (CKM_SHA512, 0, 0, CKF_DIGEST),
];

/// Every mechanism the token implements (`C_GetMechanismList`).
pub fn mechanism_list() -> Vec<CK_MECHANISM_TYPE> {
    TABLE.iter().map(|e| e.0).collect()
}

/// `C_GetMechanismInfo`; `MechanismInvalid` for mechanisms the token lacks.
pub fn mechanism_info(ty: CK_MECHANISM_TYPE) -> Result<MechInfo> {
    TABLE
        .iter()
        .find(|e| e.0 == ty)
        .map(|&(_, min_key_size, max_key_size, flags)| MechInfo {
            min_key_size,
            max_key_size,
            flags: if ty == CKM_RSA_PKCS && !super::backend::rsa_pkcs1_decrypt_allowed() {
                flags & !(CKF_DECRYPT | CKF_UNWRAP)
            } else {
                flags
            },
        })
        .ok_or(Error::MechanismInvalid(ty))
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Upper limit for data buffered by single-part style mechanisms (raw ECDSA input,
/// GCM, key wrap): keeps a misbehaving client from exhausting memory.
const MAX_BUFFER: usize = 64 << 20;

fn param_err(msg: &str) -> Error {
    Error::MechanismParamInvalid(msg.into())
}

/// The hash of a hash-and-sign mechanism.
fn sign_hash(ty: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match ty {
        CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS | CKM_ECDSA_SHA1 => HashAlg::Sha1,
        CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS | CKM_ECDSA_SHA224 => HashAlg::Sha224,
        CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS | CKM_ECDSA_SHA256 => HashAlg::Sha256,
        CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS | CKM_ECDSA_SHA384 => HashAlg::Sha384,
        CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS | CKM_ECDSA_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

fn hmac_hash(ty: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match ty {
        CKM_SHA_1_HMAC => HashAlg::Sha1,
        CKM_SHA224_HMAC => HashAlg::Sha224,
        CKM_SHA256_HMAC => HashAlg::Sha256,
        CKM_SHA384_HMAC => HashAlg::Sha384,
        CKM_SHA512_HMAC => HashAlg::Sha512,
        _ => return None,
    })
}

/// The value of a secret key whose type is one of `types`.
fn secret_of<'k>(key: &'k Key, types: &[CK_KEY_TYPE]) -> Result<&'k [u8]> {
    match key.material() {
        Material::Secret { key_type, value } if types.contains(key_type) => Ok(value),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// Runs `f` with the RSA public key of `key` (public, or derived from private).
fn with_rsa_public<R>(key: &Key, f: impl FnOnce(&RsaPublicKey) -> Result<R>) -> Result<R> {
    match key.material() {
        Material::RsaPublic(k) => f(k),
        Material::RsaPrivate(k) => f(&k.public()),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// `n % m == 0` (`usize::is_multiple_of` needs Rust 1.87; the workspace MSRV is 1.80).
#[allow(clippy::manual_is_multiple_of)]
fn multiple_of(n: usize, m: usize) -> bool {
    n % m == 0
}

fn left_pad(v: &[u8], k: usize) -> Vec<u8> {
    let mut out = vec![0u8; k.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

// ---------------------------------------------------------------------------
// Sign / verify
// ---------------------------------------------------------------------------

/// How the data reaches the signature primitive.
enum Input {
    /// Single-part style: the data itself (raw RSA, PSS over a hash, raw ECDSA).
    Buffer(Zeroizing<Vec<u8>>),
    /// Hash-and-sign: a running hash.
    Hash(Box<dyn digest::DynDigest + Send + Sync>),
}

impl Input {
    fn new(prehash: Option<HashAlg>) -> Self {
        match prehash {
            Some(h) => Input::Hash(h.hasher()),
            None => Input::Buffer(Zeroizing::new(Vec::new())),
        }
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Input::Buffer(b) => {
                if b.len() + data.len() > MAX_BUFFER {
                    return Err(Error::DataLenRange);
                }
                b.extend_from_slice(data);
            }
            Input::Hash(h) => h.update(data),
        }
        Ok(())
    }

    fn take(&mut self) -> Zeroizing<Vec<u8>> {
        match self {
            Input::Buffer(b) => std::mem::take(b),
            Input::Hash(h) => Zeroizing::new(h.finalize_reset().into_vec()),
        }
    }
}

/// The asymmetric signature schemes.
#[derive(Clone, Copy)]
enum Scheme {
    /// PKCS#1 v1.5 type 1 over a DigestInfo (`Some(hash)`) or over raw data.
    RsaPkcs1(Option<HashAlg>),
    RsaX509,
    RsaPss {
        hash: HashAlg,
        mgf: HashAlg,
        salt: usize,
    },
    Ecdsa,
}

/// Parses the signature mechanism: scheme, the hash to run over the data (if any),
/// and whether it is an RSA scheme.
fn asym_scheme(mech: &Mechanism) -> Result<Option<(Scheme, Option<HashAlg>)>> {
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
        Ok(Scheme::RsaPss { hash, mgf, salt })
    };
    let h = sign_hash(mech.ty);
    Ok(Some(match mech.ty {
        CKM_RSA_PKCS => (Scheme::RsaPkcs1(None), None),
        CKM_RSA_X_509 => (Scheme::RsaX509, None),
        CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => (Scheme::RsaPkcs1(h), h),
        CKM_RSA_PKCS_PSS => (pss(None)?, None),
        CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => (pss(h)?, h),
        CKM_ECDSA => (Scheme::Ecdsa, None),
        CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => (Scheme::Ecdsa, h),
        _ => return Ok(None),
    }))
}

/// Checks that `key` fits `scheme` (`private` for signing) and returns the
/// signature length.
fn check_asym_key(scheme: Scheme, key: &Key, private: bool) -> Result<usize> {
    let len = match (scheme, key.material()) {
        (Scheme::Ecdsa, Material::EcPrivate(k)) => 2 * k.curve().field_len(),
        (Scheme::Ecdsa, Material::EcPublic(k)) if !private => 2 * k.curve().field_len(),
        (Scheme::Ecdsa, _) => return Err(Error::KeyTypeInconsistent),
        (_, Material::RsaPrivate(k)) => k.modulus_len(),
        (_, Material::RsaPublic(k)) if !private => k.modulus_len(),
        _ => return Err(Error::KeyTypeInconsistent),
    };
    if let Scheme::RsaPss { hash, salt, .. } = scheme {
        if hash.output_len() + salt + 2 > len {
            return Err(param_err("PSS salt too long for the key"));
        }
    }
    Ok(len)
}

struct AsymSign {
    key: Key,
    scheme: Scheme,
    input: Input,
    sig_len: usize,
}

impl SignOp for AsymSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = self.input.take();
        match (self.scheme, self.key.material()) {
            (Scheme::RsaPkcs1(prefix), Material::RsaPrivate(k)) => match prefix {
                Some(h) => {
                    let msg = Zeroizing::new([h.digest_info_prefix(), &data[..]].concat());
                    k.sign_pkcs1(&msg)
                }
                None => k.sign_pkcs1(&data),
            },
            (Scheme::RsaX509, Material::RsaPrivate(k)) => Ok(k.raw(&data)?.to_vec()),
            (Scheme::RsaPss { hash, mgf, salt }, Material::RsaPrivate(k)) => {
                k.sign_pss(&data, hash, mgf, salt)
            }
            (Scheme::Ecdsa, Material::EcPrivate(k)) => k.sign_prehash(&data),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

struct AsymVerify {
    key: Key,
    scheme: Scheme,
    input: Input,
}

impl VerifyOp for AsymVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }

    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        let data = self.input.take();
        match self.scheme {
            Scheme::RsaPkcs1(prefix) => with_rsa_public(&self.key, |k| match prefix {
                Some(h) => k.verify_pkcs1(&[h.digest_info_prefix(), &data[..]].concat(), sig),
                None => k.verify_pkcs1(&data, sig),
            }),
            Scheme::RsaX509 => with_rsa_public(&self.key, |k| {
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
            Scheme::RsaPss { hash, mgf, salt } => {
                with_rsa_public(&self.key, |k| k.verify_pss(&data, sig, hash, mgf, salt))
            }
            Scheme::Ecdsa => match self.key.material() {
                Material::EcPublic(k) => k.verify_prehash(&data, sig),
                Material::EcPrivate(k) => k.public().verify_prehash(&data, sig),
                _ => Err(Error::KeyTypeInconsistent),
            },
        }
    }
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
        if signature.len() != self.len {
            return Err(Error::SignatureLenRange);
        }
        let mac = self.mac()?;
        if bool::from(mac.ct_eq(signature)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

/// Starts a signature or MAC (`C_SignInit`).
pub fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    if let Some(h) = hmac_hash(mech.ty) {
        return Ok(Box::new(HmacOp::start(h, key)?));
    }
    let (scheme, prehash) = asym_scheme(mech)?.ok_or(Error::MechanismInvalid(mech.ty))?;
    let sig_len = check_asym_key(scheme, key, true)?;
    Ok(Box::new(AsymSign {
        key: key.clone(),
        scheme,
        input: Input::new(prehash),
        sig_len,
    }))
}

/// Starts a verification (`C_VerifyInit`).
pub fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    if let Some(h) = hmac_hash(mech.ty) {
        return Ok(Box::new(HmacOp::start(h, key)?));
    }
    let (scheme, prehash) = asym_scheme(mech)?.ok_or(Error::MechanismInvalid(mech.ty))?;
    check_asym_key(scheme, key, false)?;
    Ok(Box::new(AsymVerify {
        key: key.clone(),
        scheme,
        input: Input::new(prehash),
    }))
}

// ---------------------------------------------------------------------------
// Block ciphers: AES / DES3 in ECB, CBC, CBC-PAD
// ---------------------------------------------------------------------------

/// A keyed block cipher.
enum Blk {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
    Tdes(des::TdesEde3),
}

macro_rules! each_blk {
    ($s:expr, $c:ident => $e:expr) => {
        match $s {
            Blk::Aes128($c) => $e,
            Blk::Aes192($c) => $e,
            Blk::Aes256($c) => $e,
            Blk::Tdes($c) => $e,
        }
    };
}

impl Blk {
    fn aes(key: &[u8]) -> Result<Self> {
        use cipher::KeyInit;
        let e = |_| Error::KeySizeRange;
        Ok(match key.len() {
            16 => Blk::Aes128(aes::Aes128::new_from_slice(key).map_err(e)?),
            24 => Blk::Aes192(aes::Aes192::new_from_slice(key).map_err(e)?),
            32 => Blk::Aes256(aes::Aes256::new_from_slice(key).map_err(e)?),
            _ => return Err(Error::KeySizeRange),
        })
    }

    fn des3(key: &[u8]) -> Result<Self> {
        use cipher::KeyInit;
        des::TdesEde3::new_from_slice(key)
            .map(Blk::Tdes)
            .map_err(|_| Error::KeySizeRange)
    }

    fn block_size(&self) -> usize {
        match self {
            Blk::Tdes(_) => 8,
            _ => 16,
        }
    }

    fn encrypt(&self, block: &mut [u8]) {
        each_blk!(self, c => c.encrypt_block(GenericArray::from_mut_slice(block)))
    }

    fn decrypt(&self, block: &mut [u8]) {
        each_blk!(self, c => c.decrypt_block(GenericArray::from_mut_slice(block)))
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
                    let next = block.to_vec();
                    self.blk.decrypt(block);
                    block.iter_mut().zip(iv.iter()).for_each(|(b, v)| *b ^= v);
                    iv.copy_from_slice(&next);
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
                let p = rest[bs - 1] as usize;
                let mut bad = subtle::Choice::from((p == 0 || p > bs) as u8);
                for (i, &b) in rest.iter().enumerate() {
                    let in_pad = subtle::Choice::from((i >= bs.saturating_sub(p)) as u8);
                    bad |= in_pad & !b.ct_eq(&(p as u8));
                }
                if bool::from(bad) {
                    return Err(Error::EncryptedDataInvalid);
                }
                Ok(rest[..bs - p].to_vec())
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

// ---------------------------------------------------------------------------
// AES-GCM
// ---------------------------------------------------------------------------

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

/// AES-GCM encryption: ciphertext followed by the (truncated) tag.
fn gcm_seal(key: &[u8], iv: &[u8], aad: &[u8], data: &[u8], tag_len: usize) -> Result<Vec<u8>> {
    // One allocation, one copy: the ciphertext is produced in place and the tag
    // appended without growing the buffer.
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(data);
    #[cfg(feature = "aws-lc")]
    if let Some((k, nonce)) = lc_gcm_key(key, iv) {
        let tag = k
            .seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(aad), &mut out)
            .map_err(|_| Error::DataLenRange)?;
        out.extend_from_slice(&tag.as_ref()[..tag_len]);
        return Ok(out);
    }
    let tag: [u8; 16] = if iv.len() == 12 {
        let nonce = GenericArray::from_slice(iv);
        gcm_fast!(key, c => c
            .encrypt_in_place_detached(nonce, aad, &mut out)
            .map_err(|_| Error::DataLenRange)?
            .into())
    } else {
        SoftGcm::new(key)?.seal(iv, aad, &mut out)
    };
    out.extend_from_slice(&tag[..tag_len]);
    Ok(out)
}

/// AES-GCM decryption of ciphertext || tag.
fn gcm_open(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    if data.len() < tag_len {
        return Err(Error::EncryptedDataLenRange);
    }
    let (ct, tag) = data.split_at(data.len() - tag_len);
    #[cfg(feature = "aws-lc")]
    if tag_len == 16 {
        if let Some((k, nonce)) = lc_gcm_key(key, iv) {
            let mut out = Zeroizing::new(data.to_vec());
            let n = k
                .open_in_place(nonce, aws_lc_rs::aead::Aad::from(aad), &mut out)
                .map_err(|_| Error::EncryptedDataInvalid)?
                .len();
            out.truncate(n);
            return Ok(out);
        }
    }
    let mut out = Zeroizing::new(ct.to_vec());
    if iv.len() == 12 && tag_len == 16 {
        let nonce = GenericArray::from_slice(iv);
        let tag = GenericArray::from_slice(tag);
        gcm_fast!(key, c => c
            .decrypt_in_place_detached(nonce, aad, &mut out, tag)
            .map_err(|_| Error::EncryptedDataInvalid)?);
    } else {
        SoftGcm::new(key)?.open(iv, aad, &mut out, tag)?;
    }
    Ok(out)
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

    /// Single part: works on the caller's data directly (no staging buffer).
    fn once(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if !self.buf.is_empty() {
            let mut all = Zeroizing::new(std::mem::take(&mut *self.buf));
            all.extend_from_slice(data);
            return self.once(&all);
        }
        if data.len() > MAX_BUFFER {
            return Err(if self.encrypt {
                Error::DataLenRange
            } else {
                Error::EncryptedDataLenRange
            });
        }
        if self.encrypt {
            gcm_seal(&self.key, &self.iv, &self.aad, data, self.tag_len)
        } else {
            let mut plain = gcm_open(&self.key, &self.iv, &self.aad, data, self.tag_len)?;
            // Hand the buffer over without a copy; the caller owns the plaintext now.
            Ok(std::mem::take(&mut *plain))
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

// ---------------------------------------------------------------------------
// AES key wrap (RFC 3394 / RFC 5649) as a cipher
// ---------------------------------------------------------------------------

struct KeyWrapOp {
    key: Zeroizing<Vec<u8>>,
    pad: bool,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

macro_rules! each_kek {
    ($key:expr, $k:ident => $e:expr) => {
        match $key.len() {
            16 => {
                let $k = aes_kw::KekAes128::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            24 => {
                let $k = aes_kw::KekAes192::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            32 => {
                let $k = aes_kw::KekAes256::try_from(&$key[..]).map_err(|_| Error::KeySizeRange)?;
                $e
            }
            _ => return Err(Error::KeySizeRange),
        }
    };
}

fn kw_wrap(key: &[u8], pad: bool, data: &[u8]) -> Result<Vec<u8>> {
    let ok_len = if pad {
        !data.is_empty()
    } else {
        data.len() >= 16 && multiple_of(data.len(), 8)
    };
    if !ok_len {
        return Err(Error::DataLenRange);
    }
    let r = each_kek!(key, k => if pad { k.wrap_with_padding_vec(data) } else { k.wrap_vec(data) });
    r.map_err(|_| Error::DataLenRange)
}

fn kw_unwrap(key: &[u8], pad: bool, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let min = if pad { 16 } else { 24 };
    if data.len() < min || !multiple_of(data.len(), 8) {
        return Err(Error::EncryptedDataLenRange);
    }
    let r = each_kek!(key, k => if pad {
        k.unwrap_with_padding_vec(data)
    } else {
        k.unwrap_vec(data)
    });
    r.map(Zeroizing::new).map_err(|e| match e {
        aes_kw::Error::IntegrityCheckFailed => Error::EncryptedDataInvalid,
        _ => Error::EncryptedDataLenRange,
    })
}

impl CipherOp for KeyWrapOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len() + data.len() > MAX_BUFFER {
            return Err(Error::DataLenRange);
        }
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = Zeroizing::new(std::mem::take(&mut *self.buf));
        if self.encrypt {
            kw_wrap(&self.key, self.pad, &data)
        } else {
            Ok(kw_unwrap(&self.key, self.pad, &data)?.to_vec())
        }
    }

    fn max_output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len() + input_len;
        if self.encrypt {
            total.div_ceil(8) * 8 + 8
        } else {
            total.saturating_sub(8)
        }
    }
}

// ---------------------------------------------------------------------------
// RSA encryption
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

// ---------------------------------------------------------------------------
// encrypt_init / decrypt_init
// ---------------------------------------------------------------------------

fn cipher_init(mech: &Mechanism, key: &Key, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let block = |blk: Blk, cbc: bool, pad: bool| -> Result<Box<dyn CipherOp>> {
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
    };
    match mech.ty {
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD => {
            let blk = Blk::aes(secret_of(key, &[CKK_AES])?)?;
            block(blk, mech.ty != CKM_AES_ECB, mech.ty == CKM_AES_CBC_PAD)
        }
        CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD => {
            let blk = Blk::des3(secret_of(key, &[CKK_DES3])?)?;
            block(blk, mech.ty != CKM_DES3_ECB, mech.ty == CKM_DES3_CBC_PAD)
        }
        CKM_AES_GCM => {
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
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD => {
            let k = secret_of(key, &[CKK_AES])?;
            Blk::aes(k)?;
            if let MechParam::Bytes(iv) = &mech.param {
                // Only the default IVs of RFC 3394 / RFC 5649 are supported.
                if !iv.is_empty() {
                    return Err(param_err("custom key wrap IVs are not supported"));
                }
            }
            Ok(Box::new(KeyWrapOp {
                key: Zeroizing::new(k.to_vec()),
                pad: mech.ty == CKM_AES_KEY_WRAP_PAD,
                encrypt,
                buf: Zeroizing::new(Vec::new()),
            }))
        }
        CKM_RSA_PKCS | CKM_RSA_X_509 | CKM_RSA_PKCS_OAEP => {
            if mech.ty == CKM_RSA_PKCS && !encrypt {
                super::backend::check_rsa_pkcs1_decrypt()?;
            }
            let scheme = match mech.ty {
                CKM_RSA_PKCS => RsaEnc::Pkcs1,
                CKM_RSA_X_509 => RsaEnc::X509,
                _ => {
                    let MechParam::Oaep { hash, mgf, source } = &mech.param else {
                        return Err(param_err("CK_RSA_PKCS_OAEP_PARAMS required"));
                    };
                    let hash = HashAlg::from_digest_mechanism(*hash)
                        .ok_or_else(|| param_err("OAEP hash"))?;
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
        other => Err(Error::MechanismInvalid(other)),
    }
}

/// Starts an encryption (`C_EncryptInit`).
pub fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, true)
}

/// Starts a decryption (`C_DecryptInit`).
pub fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    cipher_init(mech, key, false)
}

// ---------------------------------------------------------------------------
// Wrap / unwrap / derive
// ---------------------------------------------------------------------------

/// Wraps a key (`C_WrapKey`): secret keys wrap their `CKA_VALUE`, private keys their
/// PKCS#8 DER. Mechanisms: AES key wrap (+pad), AES/DES3 ECB/CBC (key length a
/// block multiple) and CBC-PAD, RSA PKCS#1 v1.5 and OAEP (secret keys only).
pub fn wrap(mech: &Mechanism, wrapping_key: &Key, key_attrs: &Attributes) -> Result<Vec<u8>> {
    let class = key_attrs.class();
    let data: Zeroizing<Vec<u8>> = match class {
        Some(CKO_SECRET_KEY) => Zeroizing::new(
            key_attrs
                .get(CKA_VALUE)
                .ok_or(Error::KeyNotWrappable)?
                .to_vec(),
        ),
        Some(CKO_PRIVATE_KEY) => private_key_pkcs8(key_attrs)?,
        _ => return Err(Error::KeyNotWrappable),
    };
    match mech.ty {
        CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP if class != Some(CKO_SECRET_KEY) => {
            return Err(Error::KeyNotWrappable)
        }
        CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP => {}
        CKM_AES_KEY_WRAP if !multiple_of(data.len(), 8) || data.len() < 16 => {
            return Err(Error::KeySizeRange)
        }
        CKM_AES_ECB | CKM_AES_CBC if !multiple_of(data.len(), 16) || data.is_empty() => {
            return Err(Error::KeySizeRange)
        }
        CKM_DES3_ECB | CKM_DES3_CBC if !multiple_of(data.len(), 8) || data.is_empty() => {
            return Err(Error::KeySizeRange)
        }
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD | CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD
        | CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD => {}
        other => return Err(Error::MechanismInvalid(other)),
    }
    let mut op = encrypt_init(mech, wrapping_key)?;
    op.once(&data).map_err(|e| match e {
        Error::DataLenRange => Error::KeySizeRange,
        e => e,
    })
}

/// Unwraps a key (`C_UnwrapKey`): returns the plaintext key bytes (a secret key
/// value or a PKCS#8 blob, which the token parses with
/// [`super::encoding::pkcs8_to_attributes`]).
pub fn unwrap(
    mech: &Mechanism,
    unwrapping_key: &Key,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    match mech.ty {
        CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP | CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD
        | CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_DES3_ECB | CKM_DES3_CBC
        | CKM_DES3_CBC_PAD => {}
        other => return Err(Error::MechanismInvalid(other)),
    }
    let mut op = decrypt_init(mech, unwrapping_key)?;
    op.once(wrapped).map(Zeroizing::new).map_err(|e| match e {
        Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
        Error::EncryptedDataLenRange | Error::DataLenRange => Error::WrappedKeyLenRange,
        e => e,
    })
}

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

/// Derives a key value (`C_DeriveKey`). `CKM_ECDH1_DERIVE` with `CKD_NULL` (the
/// shared x-coordinate) or `CKD_SHA1/224/256/384/512_KDF` (X9.63). With
/// `CKA_VALUE_LEN` in the template the result has that length (for `CKD_NULL`
/// the trailing bytes are kept, as SoftHSM does); without it, `CKD_NULL` gives the
/// whole x-coordinate and a KDF one hash length.
pub fn derive(mech: &Mechanism, base: &Key, template: &Attributes) -> Result<Zeroizing<Vec<u8>>> {
    if mech.ty != CKM_ECDH1_DERIVE {
        return Err(Error::MechanismInvalid(mech.ty));
    }
    let MechParam::Ecdh1 {
        kdf,
        shared_data,
        public_data,
    } = &mech.param
    else {
        return Err(param_err("CK_ECDH1_DERIVE_PARAMS required"));
    };
    let Material::EcPrivate(k) = base.material() else {
        return Err(Error::KeyTypeInconsistent);
    };
    let want = template
        .get_ulong(CKA_VALUE_LEN)?
        .map(|l| l as usize)
        .filter(|&l| l > 0);
    let kdf_hash = match *kdf {
        CKD_NULL => None,
        CKD_SHA1_KDF => Some(HashAlg::Sha1),
        CKD_SHA224_KDF => Some(HashAlg::Sha224),
        CKD_SHA256_KDF => Some(HashAlg::Sha256),
        CKD_SHA384_KDF => Some(HashAlg::Sha384),
        CKD_SHA512_KDF => Some(HashAlg::Sha512),
        _ => return Err(param_err("unsupported ECDH KDF")),
    };
    if kdf_hash.is_none() && !shared_data.is_empty() {
        return Err(param_err("CKD_NULL takes no shared data"));
    }
    let point = ec_point_raw(k.curve(), public_data)
        .map_err(|_| param_err("ECDH public data is not a point on the key's curve"))?;
    let z = k.ecdh(&point)?;
    match kdf_hash {
        None => match want {
            None => Ok(z),
            Some(l) if l <= z.len() => Ok(Zeroizing::new(z[z.len() - l..].to_vec())),
            Some(_) => Err(Error::TemplateInconsistent(
                "CKA_VALUE_LEN exceeds the ECDH shared secret".into(),
            )),
        },
        Some(h) => {
            let len = want.unwrap_or(h.output_len());
            if len > 1024 {
                return Err(Error::TemplateInconsistent(
                    "CKA_VALUE_LEN too large".into(),
                ));
            }
            Ok(x963_kdf(h, &z, shared_data, len))
        }
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
