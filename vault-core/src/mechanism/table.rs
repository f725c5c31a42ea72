//! The mechanism table (SPEC T4): every mechanism the token implements, with its key
//! sizes, its `CKF_` flags and the functions that run it.
//!
//! Each family file declares its mechanisms once, in an `ENTRIES` slice of
//! [`MechEntry`]; [`TABLE`] gathers them at compile time. `C_GetMechanismList`
//! ([`mechanism_list`]), `C_GetMechanismInfo` ([`mechanism_info`]) and every dispatch
//! function below read the same entries, so what the token advertises and what it
//! runs cannot drift apart: a mechanism runs an operation exactly when its entry has
//! the function for it, and [`consistent`] (checked at compile time) refuses an entry
//! whose flags and functions disagree.
//!
//! Cost: a lookup is a binary search over an index sorted by mechanism type, built at
//! compile time. It happens once per `C_*Init` (or per one-shot call such as
//! `C_WrapKey`); the operation objects it returns run every update and final call
//! without going back to the table.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::encoding::private_key_pkcs8;
use super::{
    aes, chacha, cmac, ctr, des3, digest, ecdh, ecdsa, eddsa, gcm, hkdf, hmac, kbkdf, kdf, kw,
    mldsa, mlkem, rsa, sealed_envelope, x25519, CipherOp, DigestOp, Key, MechInfo, Mechanism,
    SignOp, VerifyOp,
};
use crate::attr::Attributes;
use crate::error::{Error, Result};

/// The PKCS#11 3.0 message-based flags (`crate::session::message`): AES-GCM and
/// ChaCha20-Poly1305 encrypt and decrypt messages, every signature mechanism signs and verifies
/// them, each with several messages per context.
fn message_flags(ty: CK_MECHANISM_TYPE, flags: CK_FLAGS) -> CK_FLAGS {
    let mut m = 0;
    if matches!(ty, CKM_AES_GCM | CKM_CHACHA20_POLY1305) {
        m |= CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT;
    }
    if has(flags, CKF_SIGN) {
        m |= CKF_MESSAGE_SIGN;
    }
    if has(flags, CKF_VERIFY) {
        m |= CKF_MESSAGE_VERIFY;
    }
    if m != 0 {
        m |= CKF_MULTI_MESSAGE;
    }
    m
}

/// Starts a signature or MAC (`C_SignInit`).
pub(super) type SignInit = fn(&Mechanism, &Key) -> Result<Box<dyn SignOp>>;
/// Starts a verification (`C_VerifyInit`).
pub(super) type VerifyInit = fn(&Mechanism, &Key) -> Result<Box<dyn VerifyOp>>;
/// Starts an encryption or decryption (`C_EncryptInit`, `C_DecryptInit`).
pub(super) type CipherInit = fn(&Mechanism, &Key) -> Result<Box<dyn CipherOp>>;
/// Starts a digest (`C_DigestInit`).
pub(super) type DigestInit = fn(&Mechanism) -> Result<Box<dyn DigestOp>>;
/// Wraps the encoded key `data` (its `CKA_VALUE` or PKCS#8) of an object of class
/// `class` under the wrapping key (`C_WrapKey`).
pub(super) type WrapFn = fn(&Mechanism, &Key, Option<CK_OBJECT_CLASS>, &[u8]) -> Result<Vec<u8>>;
/// Unwraps to the plaintext key bytes (`C_UnwrapKey`).
pub(super) type UnwrapFn = fn(&Mechanism, &Key, &[u8]) -> Result<Zeroizing<Vec<u8>>>;
/// Derives a key value from a base key and the new key's template (`C_DeriveKey`).
/// `other` is the second key of `CKM_CONCATENATE_BASE_AND_KEY`.
pub(super) type DeriveFn =
    fn(&Mechanism, &Key, Option<&Key>, &Attributes) -> Result<Zeroizing<Vec<u8>>>;
/// Generates a secret key's attributes from the template (`C_GenerateKey`).
pub(super) type GenerateFn = fn(&Mechanism, &Attributes) -> Result<Attributes>;
/// Generates a key pair's public and private attributes (`C_GenerateKeyPair`).
pub(super) type GeneratePairFn =
    fn(&Mechanism, &Attributes, &Attributes) -> Result<(Attributes, Attributes)>;

/// Encapsulates a fresh shared secret to a public key (`C_EncapsulateKey`):
/// (ciphertext, shared secret).
pub(super) type EncapsulateFn = fn(&Mechanism, &Key) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)>;
/// Recovers the shared secret of a ciphertext with the private key
/// (`C_DecapsulateKey`).
pub(super) type DecapsulateFn = fn(&Mechanism, &Key, &[u8]) -> Result<Zeroizing<Vec<u8>>>;

/// The functions that run a mechanism, one per operation it supports.
#[derive(Clone, Copy)]
pub(super) struct Ops {
    pub sign: Option<SignInit>,
    pub verify: Option<VerifyInit>,
    pub encrypt: Option<CipherInit>,
    pub decrypt: Option<CipherInit>,
    pub digest: Option<DigestInit>,
    pub wrap: Option<WrapFn>,
    pub unwrap: Option<UnwrapFn>,
    pub derive: Option<DeriveFn>,
    pub generate: Option<GenerateFn>,
    pub generate_pair: Option<GeneratePairFn>,
    pub encapsulate: Option<EncapsulateFn>,
    pub decapsulate: Option<DecapsulateFn>,
}

impl Ops {
    /// No operation; entries fill in theirs with `..Ops::NONE`.
    pub const NONE: Ops = Ops {
        sign: None,
        verify: None,
        encrypt: None,
        decrypt: None,
        digest: None,
        wrap: None,
        unwrap: None,
        derive: None,
        generate: None,
        generate_pair: None,
        encapsulate: None,
        decapsulate: None,
    };
}

/// One mechanism: what `C_GetMechanismInfo` reports and the functions that run it.
#[derive(Clone, Copy)]
pub(super) struct MechEntry {
    /// `CKM_*` value.
    pub ty: CK_MECHANISM_TYPE,
    /// Key sizes: bits for RSA and EC, bytes for AES, DES3, HMAC and generic
    /// secrets (PKCS#11 §2); zero for digests.
    pub min_key_size: u64,
    pub max_key_size: u64,
    /// Every flag the mechanism can have; each operation flag matches a function
    /// in `ops`.
    pub flags: CK_FLAGS,
    /// The part of `flags` that needs `[policy] rsa_pkcs1_decrypt` in a build
    /// without aws-lc ([`super::backend::rsa_pkcs1_decrypt_allowed`]): not
    /// advertised while it is off, and the functions refuse then too.
    pub policy_gated: CK_FLAGS,
    /// A legacy mechanism: offered only under `[policy] legacy_mechanisms`
    /// ([`super::backend::legacy_mechanisms_allowed`]); off, the token lacks it.
    pub legacy: bool,
    pub ops: Ops,
}

impl MechEntry {
    /// An entry whose flags are all available whatever the policy.
    pub const fn new(
        ty: CK_MECHANISM_TYPE,
        (min_key_size, max_key_size): (u64, u64),
        flags: CK_FLAGS,
        ops: Ops,
    ) -> MechEntry {
        MechEntry {
            ty,
            min_key_size,
            max_key_size,
            flags,
            policy_gated: 0,
            legacy: false,
            ops,
        }
    }

    /// The same entry as a legacy mechanism.
    pub const fn legacy(self) -> MechEntry {
        MechEntry {
            legacy: true,
            ..self
        }
    }

    /// The same entry with `flags` available only under the RSA decryption policy.
    pub const fn policy_gated(self, flags: CK_FLAGS) -> MechEntry {
        MechEntry {
            policy_gated: flags,
            ..self
        }
    }
}

/// `CKF_SIGN | CKF_VERIFY`.
pub(super) const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
/// `CKF_ENCRYPT | CKF_DECRYPT`.
pub(super) const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
/// `CKF_WRAP | CKF_UNWRAP`.
pub(super) const WU: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;

/// The families, in the order `C_GetMechanismList` reports them.
const FAMILIES: [&[MechEntry]; 20] = [
    rsa::ENTRIES,
    ecdsa::ENTRIES,
    eddsa::ENTRIES,
    mldsa::ENTRIES,
    mlkem::ENTRIES,
    ecdh::ENTRIES,
    x25519::ENTRIES,
    aes::ENTRIES,
    cmac::ENTRIES,
    ctr::ENTRIES,
    gcm::ENTRIES,
    chacha::ENTRIES,
    kw::ENTRIES,
    des3::ENTRIES,
    hmac::ENTRIES,
    digest::ENTRIES,
    kdf::ENTRIES,
    kbkdf::ENTRIES,
    hkdf::ENTRIES,
    sealed_envelope::ENTRIES,
];

const fn count(families: &[&[MechEntry]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < families.len() {
        n += families[i].len();
        i += 1;
    }
    n
}

const N: usize = count(&FAMILIES);

const fn gather(families: &[&[MechEntry]]) -> [MechEntry; N] {
    let mut out = [MechEntry::new(0, (0, 0), 0, Ops::NONE); N];
    let (mut n, mut i) = (0, 0);
    while i < families.len() {
        let mut j = 0;
        while j < families[i].len() {
            out[n] = families[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Every mechanism of every family.
static TABLE: [MechEntry; N] = gather(&FAMILIES);

/// `(type, index into TABLE)`, sorted by type (insertion sort at compile time).
const fn sorted_index(table: &[MechEntry; N]) -> [(CK_MECHANISM_TYPE, usize); N] {
    let mut out = [(0, 0); N];
    let mut i = 0;
    while i < N {
        let item = (table[i].ty, i);
        let mut j = i;
        while j > 0 && out[j - 1].0 > item.0 {
            out[j] = out[j - 1];
            j -= 1;
        }
        out[j] = item;
        i += 1;
    }
    out
}

static BY_TYPE: [(CK_MECHANISM_TYPE, usize); N] = sorted_index(&gather(&FAMILIES));

const fn has(flags: CK_FLAGS, flag: CK_FLAGS) -> bool {
    flags & flag != 0
}

/// Whether every entry's operation flags match its functions exactly, the policy
/// gated flags are among its flags, its key sizes are ordered, and no mechanism
/// is declared twice.
const fn consistent(table: &[MechEntry; N]) -> bool {
    let mut i = 0;
    while i < N {
        let e = &table[i];
        let (f, o) = (e.flags, &e.ops);
        if has(f, CKF_SIGN) != o.sign.is_some()
            || has(f, CKF_VERIFY) != o.verify.is_some()
            || has(f, CKF_ENCRYPT) != o.encrypt.is_some()
            || has(f, CKF_DECRYPT) != o.decrypt.is_some()
            || has(f, CKF_DIGEST) != o.digest.is_some()
            || has(f, CKF_WRAP) != o.wrap.is_some()
            || has(f, CKF_UNWRAP) != o.unwrap.is_some()
            || has(f, CKF_DERIVE) != o.derive.is_some()
            || has(f, CKF_GENERATE) != o.generate.is_some()
            || has(f, CKF_GENERATE_KEY_PAIR) != o.generate_pair.is_some()
            || has(f, CKF_ENCAPSULATE) != o.encapsulate.is_some()
            || has(f, CKF_DECAPSULATE) != o.decapsulate.is_some()
            || e.policy_gated & !f != 0
            || e.min_key_size > e.max_key_size
        {
            return false;
        }
        let mut j = i + 1;
        while j < N {
            if table[j].ty == e.ty {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    consistent(&gather(&FAMILIES)),
    "a mechanism's flags and functions disagree, or it is declared twice"
);

/// The entry of mechanism `ty`, if the token implements it.
#[inline]
fn lookup(ty: CK_MECHANISM_TYPE) -> Option<&'static MechEntry> {
    let i = BY_TYPE.binary_search_by_key(&ty, |&(t, _)| t).ok()?;
    let e = &TABLE[BY_TYPE[i].1];
    if e.legacy && !super::backend::legacy_mechanisms_allowed() {
        return None;
    }
    Some(e)
}

/// The function `pick` selects from the entry of `ty`, or `MechanismInvalid` when
/// the token lacks the mechanism or the mechanism lacks the operation.
#[inline]
fn op<F>(ty: CK_MECHANISM_TYPE, pick: impl FnOnce(&Ops) -> Option<F>) -> Result<F> {
    lookup(ty)
        .and_then(|e| pick(&e.ops))
        .ok_or(Error::MechanismInvalid(ty))
}

/// Every mechanism the token implements (`C_GetMechanismList`).
pub fn mechanism_list() -> Vec<CK_MECHANISM_TYPE> {
    let legacy = super::backend::legacy_mechanisms_allowed();
    TABLE
        .iter()
        .filter(|e| legacy || !e.legacy)
        .map(|e| e.ty)
        .collect()
}

/// `C_GetMechanismInfo`; `MechanismInvalid` for mechanisms the token lacks.
pub fn mechanism_info(ty: CK_MECHANISM_TYPE) -> Result<MechInfo> {
    let e = lookup(ty).ok_or(Error::MechanismInvalid(ty))?;
    let flags = if e.policy_gated != 0 && !super::backend::rsa_pkcs1_decrypt_allowed() {
        e.flags & !e.policy_gated
    } else {
        e.flags
    };
    Ok(MechInfo {
        min_key_size: e.min_key_size,
        max_key_size: e.max_key_size,
        flags: flags | message_flags(ty, flags),
    })
}

/// Starts a signature or MAC (`C_SignInit`).
pub fn sign_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn SignOp>> {
    op(mech.ty, |o| o.sign)?(mech, key)
}

/// Starts a verification (`C_VerifyInit`).
pub fn verify_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn VerifyOp>> {
    op(mech.ty, |o| o.verify)?(mech, key)
}

/// Starts an encryption (`C_EncryptInit`).
pub fn encrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    op(mech.ty, |o| o.encrypt)?(mech, key)
}

/// Starts a decryption (`C_DecryptInit`).
pub fn decrypt_init(mech: &Mechanism, key: &Key) -> Result<Box<dyn CipherOp>> {
    op(mech.ty, |o| o.decrypt)?(mech, key)
}

/// Starts a digest (`C_DigestInit`).
pub fn digest_init(mech: &Mechanism) -> Result<Box<dyn DigestOp>> {
    op(mech.ty, |o| o.digest)?(mech)
}

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
    op(mech.ty, |o| o.wrap)?(mech, wrapping_key, class, &data)
}

/// Unwraps a key (`C_UnwrapKey`): returns the plaintext key bytes (a secret key
/// value or a PKCS#8 blob, which the token parses with
/// [`super::encoding::pkcs8_to_attributes`]).
pub fn unwrap(
    mech: &Mechanism,
    unwrapping_key: &Key,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    op(mech.ty, |o| o.unwrap)?(mech, unwrapping_key, wrapped)
}

/// Derives a key value (`C_DeriveKey`); see [`super::ecdh`] and [`super::kdf`].
/// `other` is the second key of `CKM_CONCATENATE_BASE_AND_KEY`.
pub fn derive(
    mech: &Mechanism,
    base: &Key,
    other: Option<&Key>,
    template: &Attributes,
) -> Result<Zeroizing<Vec<u8>>> {
    op(mech.ty, |o| o.derive)?(mech, base, other, template)
}

/// Encapsulates a shared secret to a public key (`C_EncapsulateKey`).
pub fn encapsulate(mech: &Mechanism, key: &Key) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    op(mech.ty, |o| o.encapsulate)?(mech, key)
}

/// Recovers an encapsulated shared secret (`C_DecapsulateKey`).
pub fn decapsulate(mech: &Mechanism, key: &Key, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    op(mech.ty, |o| o.decapsulate)?(mech, key, ciphertext)
}

/// Generates a secret key (`C_GenerateKey`). Returns the attributes to add to the
/// new object: `CKA_CLASS`, `CKA_KEY_TYPE`, `CKA_VALUE` and (AES, generic secret,
/// HMAC keys) `CKA_VALUE_LEN`.
pub fn generate_key(mech: &Mechanism, template: &Attributes) -> Result<Attributes> {
    op(mech.ty, |o| o.generate)?(mech, template)
}

/// Generates a key pair (`C_GenerateKeyPair`). Returns the attributes to add to the
/// public and the private object.
///
/// RSA: `CKA_MODULUS_BITS` (required, 2048..=4096 — the range `mechanism_info`
/// reports) and optional `CKA_PUBLIC_EXPONENT` (default 65537) from the public
/// template. EC: `CKA_EC_PARAMS` (P-256, P-384 or P-521) from the public template.
pub fn generate_key_pair(
    mech: &Mechanism,
    pub_t: &Attributes,
    priv_t: &Attributes,
) -> Result<(Attributes, Attributes)> {
    op(mech.ty, |o| o.generate_pair)?(mech, pub_t, priv_t)
}

/// Wraps `data` with a started encryption: one single-part pass, an input length
/// the mechanism refuses reported as the key's size.
pub(super) fn wrap_with(op: Result<Box<dyn CipherOp>>, data: &[u8]) -> Result<Vec<u8>> {
    op?.once(data).map_err(|e| match e {
        Error::DataLenRange => Error::KeySizeRange,
        e => e,
    })
}

/// Unwraps `wrapped` with a started decryption, with the unwrap error codes.
pub(super) fn unwrap_with(
    op: Result<Box<dyn CipherOp>>,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    op?.once(wrapped).map(Zeroizing::new).map_err(|e| match e {
        Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
        Error::EncryptedDataLenRange | Error::DataLenRange => Error::WrappedKeyLenRange,
        e => e,
    })
}

#[cfg(test)]
#[path = "tests/table.rs"]
mod tests;
