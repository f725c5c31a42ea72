//! NIST SP 800-108 key-based key derivation in counter and feedback mode
//! (`CKM_SP800_108_COUNTER_KDF`, `CKM_SP800_108_FEEDBACK_KDF`, PKCS#11 3.0 §2.42),
//! with HMAC (SHA-1, SHA-2) or AES-CMAC as the pseudorandom function.
//!
//! The caller describes each PRF input as a list of data parameters, fed in order:
//! the iteration variable (the counter in counter mode; the previous block, or the
//! IV, in feedback mode), an optional counter (feedback mode), the length of the
//! derived keying material, and byte strings (label, context). One call can derive
//! several keys: the key of the template first, then each additional key, each
//! starting on a fresh PRF block.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::keys::Material;
use super::table::{MechEntry, Ops};
use super::{param_err, sign_init, Key, MechParam, Mechanism};
use crate::attr::Attributes;
use crate::error::{Error, Result};

const DERIVE: Ops = Ops {
    derive: Some(derive),
    ..Ops::NONE
};

pub(super) const ENTRIES: &[MechEntry] = &[
    MechEntry::new(CKM_SP800_108_COUNTER_KDF, (1, 512), CKF_DERIVE, DERIVE),
    MechEntry::new(CKM_SP800_108_FEEDBACK_KDF, (1, 512), CKF_DERIVE, DERIVE),
];

/// The longest keying material one call derives (all keys, block-aligned).
const MAX_DKM: usize = 64 * 1024;

/// `CK_SP800_108_COUNTER_FORMAT`: how a counter is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterFormat {
    pub little_endian: bool,
    pub bits: u64,
}

/// `CK_SP800_108_DKM_LENGTH_FORMAT`: how the derived length is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DkmFormat {
    /// `CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS` or `…_SUM_OF_SEGMENTS`.
    pub method: u64,
    pub little_endian: bool,
    pub bits: u64,
}

/// One `CK_PRF_DATA_PARAM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataParam {
    /// `CK_SP800_108_ITERATION_VARIABLE`: with a format in counter mode, without
    /// one in feedback mode.
    Iteration(Option<CounterFormat>),
    /// `CK_SP800_108_OPTIONAL_COUNTER` (feedback mode only).
    Counter(CounterFormat),
    /// `CK_SP800_108_DKM_LENGTH`.
    DkmLength(DkmFormat),
    /// `CK_SP800_108_BYTE_ARRAY`.
    Bytes(Vec<u8>),
}

/// `CK_SP800_108_KDF_PARAMS` / `CK_SP800_108_FEEDBACK_KDF_PARAMS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The PRF: `CKM_SHA*_HMAC` or `CKM_AES_CMAC`.
    pub prf: CK_MECHANISM_TYPE,
    pub data: Vec<DataParam>,
    /// Feedback mode's IV (may be empty).
    pub iv: Vec<u8>,
    /// The templates of the additional keys (`CK_DERIVED_KEY`).
    pub additional: Vec<Attributes>,
}

/// `value` in `bits` bits (8, 16, 24 or 32 for counters; up to 64 for lengths).
fn encode(value: u64, bits: u64, little_endian: bool, max_bits: u64) -> Result<Vec<u8>> {
    if bits == 0 || bits > max_bits || !super::multiple_of(bits as usize, 8) {
        return Err(param_err(
            "a counter or length width must be 8 to 32 (64) bits",
        ));
    }
    let n = (bits / 8) as usize;
    if bits < 64 && value >> bits != 0 {
        return Err(param_err("the counter or length does not fit its width"));
    }
    Ok(if little_endian {
        value.to_le_bytes()[..n].to_vec()
    } else {
        value.to_be_bytes()[8 - n..].to_vec()
    })
}

/// Checks the data parameters for `mode` once, before any PRF call: exactly one
/// iteration variable (with a format in counter mode, without in feedback mode), at
/// most one length, an optional counter only in feedback mode.
fn check(mode: CK_MECHANISM_TYPE, data: &[DataParam]) -> Result<()> {
    let (mut iter, mut counters, mut lengths) = (0, 0, 0);
    for d in data {
        match d {
            DataParam::Iteration(f) => {
                iter += 1;
                if f.is_some() != (mode == CKM_SP800_108_COUNTER_KDF) {
                    return Err(param_err(
                        "the iteration variable has a format in counter mode and none in \
                         feedback mode",
                    ));
                }
            }
            DataParam::Counter(_) => counters += 1,
            DataParam::DkmLength(f) => {
                lengths += 1;
                if !matches!(
                    f.method,
                    CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS | CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS
                ) {
                    return Err(param_err("unknown DKM length method"));
                }
            }
            DataParam::Bytes(_) => {}
        }
    }
    if iter != 1 || lengths > 1 || counters > usize::from(mode == CKM_SP800_108_FEEDBACK_KDF) {
        return Err(param_err(
            "SP 800-108 needs one iteration variable, at most one length, and a counter \
             only in feedback mode",
        ));
    }
    Ok(())
}

/// The length in bytes a template asks for: `CKA_VALUE_LEN`, or the fixed size of
/// its key type.
fn key_len(template: &Attributes) -> Result<usize> {
    let len = match template.get_ulong(CKA_VALUE_LEN)? {
        Some(l) => l as usize,
        None => match template.key_type() {
            Some(CKK_DES3) => 24,
            Some(CKK_DES) => 8,
            _ => {
                return Err(Error::TemplateIncomplete(
                    "CKA_VALUE_LEN is required for an SP 800-108 derived key".into(),
                ))
            }
        },
    };
    if len == 0 || len > MAX_DKM {
        return Err(Error::TemplateInconsistent(
            "CKA_VALUE_LEN out of range".into(),
        ));
    }
    Ok(len)
}

/// The keys' values, in the order of `templates` (the main key's template first,
/// then the additional keys').
pub fn derive_all(
    mech: &Mechanism,
    base: &Key,
    templates: &[&Attributes],
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let MechParam::Kbkdf(p) = &mech.param else {
        return Err(param_err("CK_SP800_108_KDF_PARAMS required"));
    };
    check(mech.ty, &p.data)?;
    if mech.ty == CKM_SP800_108_COUNTER_KDF && !p.iv.is_empty() {
        return Err(param_err("counter mode takes no IV"));
    }
    let key_ok = match (p.prf, base.material()) {
        (CKM_AES_CMAC, Material::Secret { key_type, .. }) => *key_type == CKK_AES,
        (
            CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC,
            Material::Secret { key_type, .. },
        ) => matches!(
            *key_type,
            CKK_GENERIC_SECRET
                | CKK_SHA_1_HMAC
                | CKK_SHA224_HMAC
                | CKK_SHA256_HMAC
                | CKK_SHA384_HMAC
                | CKK_SHA512_HMAC
        ),
        (
            CKM_AES_CMAC | CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC
            | CKM_SHA512_HMAC,
            _,
        ) => false,
        _ => return Err(param_err("unsupported SP 800-108 PRF")),
    };
    if !key_ok {
        return Err(Error::KeyTypeInconsistent);
    }
    let prf = Mechanism::new(p.prf);
    let block = sign_init(&prf, base)?.sig_len();
    let lens = templates
        .iter()
        .map(|t| key_len(t))
        .collect::<Result<Vec<_>>>()?;
    // Each key starts on a fresh block ("sum of segments" counts whole blocks).
    let seg = |l: usize| l.div_ceil(block) * block;
    let keys_bits: u64 = lens.iter().map(|&l| l as u64 * 8).sum();
    let segs: usize = lens.iter().map(|&l| seg(l)).sum();
    if segs > MAX_DKM {
        return Err(Error::TemplateInconsistent(
            "the derived keys are too long".into(),
        ));
    }
    let mut dkm = Zeroizing::new(Vec::with_capacity(segs));
    let mut i: u64 = 1;
    while dkm.len() < segs {
        let mut op = sign_init(&prf, base)?;
        for d in &p.data {
            match d {
                DataParam::Iteration(Some(f)) | DataParam::Counter(f) => {
                    op.update(&encode(i, f.bits, f.little_endian, 32)?)?
                }
                DataParam::Iteration(None) => {
                    // Feedback: the previous block, the IV for the first one.
                    let prev = if dkm.is_empty() {
                        &p.iv[..]
                    } else {
                        &dkm[dkm.len() - block..]
                    };
                    op.update(prev)?
                }
                DataParam::DkmLength(f) => {
                    let bits = if f.method == CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS {
                        keys_bits
                    } else {
                        segs as u64 * 8
                    };
                    op.update(&encode(bits, f.bits, f.little_endian, 64)?)?
                }
                DataParam::Bytes(b) => op.update(b)?,
            }
        }
        dkm.extend_from_slice(&Zeroizing::new(op.finish()?));
        i += 1;
    }
    let mut at = 0;
    Ok(lens
        .iter()
        .map(|&l| {
            let v = Zeroizing::new(dkm[at..at + l].to_vec());
            at += seg(l);
            v
        })
        .collect())
}

/// The table's derive function: the main key only (the session derives the
/// additional keys with [`derive_all`]).
fn derive(
    mech: &Mechanism,
    base: &Key,
    _other: Option<&Key>,
    template: &Attributes,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut all = derive_all(mech, base, &[template])?;
    Ok(all.remove(0))
}

#[cfg(test)]
#[path = "tests/kbkdf.rs"]
mod tests;
