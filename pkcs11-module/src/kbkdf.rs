//! The SP 800-108 KDF parameters (`CK_SP800_108_KDF_PARAMS`,
//! `CK_SP800_108_FEEDBACK_KDF_PARAMS`): their data parameters and the templates of
//! the additional keys, decoded into the core's form, and the caller's handle slots
//! for those keys, written after the derivation.

use cryptoki_sys::*;
use vault_core::mechanism::kbkdf::{CounterFormat, DataParam, DkmFormat, Params};

use crate::convert::{param_bytes, param_struct, template};
use crate::guard::Rv;

/// More data parameters or additional keys than this are refused unread.
const MAX_ITEMS: CK_ULONG = 64;

const INVALID: Rv = Rv(CKR_MECHANISM_PARAM_INVALID);

/// The fields both parameter structures share, and feedback mode's IV.
struct Raw {
    prf: CK_MECHANISM_TYPE,
    data: (*mut CK_PRF_DATA_PARAM, CK_ULONG),
    iv: (*mut CK_BYTE, CK_ULONG),
    keys: (*mut CK_DERIVED_KEY, CK_ULONG),
}

/// # Safety
/// `pp` points to `len` readable bytes (the mechanism parameter).
unsafe fn raw(
    ty: CK_MECHANISM_TYPE,
    pp: *const std::ffi::c_void,
    len: CK_ULONG,
) -> Result<Raw, Rv> {
    Ok(if ty == CKM_SP800_108_FEEDBACK_KDF {
        // SAFETY: this function's contract; the structure holds integers and pointers.
        let f: CK_SP800_108_FEEDBACK_KDF_PARAMS = unsafe { param_struct(pp, len) }?;
        Raw {
            prf: f.prfType,
            data: (f.pDataParams, f.ulNumberOfDataParams),
            iv: (f.pIV, f.ulIVLen),
            keys: (f.pAdditionalDerivedKeys, f.ulAdditionalDerivedKeys),
        }
    } else {
        // SAFETY: as above.
        let c: CK_SP800_108_KDF_PARAMS = unsafe { param_struct(pp, len) }?;
        Raw {
            prf: c.prfType,
            data: (c.pDataParams, c.ulNumberOfDataParams),
            iv: (std::ptr::null_mut(), 0),
            keys: (c.pAdditionalDerivedKeys, c.ulAdditionalDerivedKeys),
        }
    })
}

/// `n` structures at `p` (NULL only with `n` 0), copied.
///
/// # Safety
/// `p` is NULL or points to `n` readable `T`s; `T` is a plain C structure.
unsafe fn array<T: Copy>(p: *const T, n: CK_ULONG) -> Result<Vec<T>, Rv> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || n > MAX_ITEMS {
        return Err(INVALID);
    }
    // SAFETY: `p` is not NULL and points to `n` `T`s (this function's contract); the
    // caller's array need not be aligned, hence the unaligned reads.
    Ok((0..n as usize)
        .map(|i| unsafe { std::ptr::read_unaligned(p.add(i)) })
        .collect())
}

/// # Safety
/// `p` points to `len` readable bytes.
unsafe fn counter(p: *const std::ffi::c_void, len: CK_ULONG) -> Result<CounterFormat, Rv> {
    // SAFETY: this function's contract; the structure holds integers.
    let c: CK_SP800_108_COUNTER_FORMAT = unsafe { param_struct(p, len) }?;
    Ok(CounterFormat {
        little_endian: c.bLittleEndian != CK_FALSE,
        bits: c.ulWidthInBits,
    })
}

/// The decoded parameters of `CKM_SP800_108_COUNTER_KDF` or `…_FEEDBACK_KDF`.
///
/// # Safety
/// `pp` points to `len` readable bytes, and every pointer in the structure (data
/// parameters, their values, the IV, the additional keys and their templates) to
/// as many readable bytes as its length says (PKCS#11).
pub(crate) unsafe fn params(
    ty: CK_MECHANISM_TYPE,
    pp: *const std::ffi::c_void,
    len: CK_ULONG,
) -> Result<Params, Rv> {
    // SAFETY: this function's contract.
    let r = unsafe { raw(ty, pp, len) }?;
    let mut data = Vec::new();
    // SAFETY: the data parameter array holds its count of entries (contract).
    for d in unsafe { array(r.data.0, r.data.1) }? {
        let v = d.pValue as *const std::ffi::c_void;
        data.push(match d.type_ {
            CK_SP800_108_ITERATION_VARIABLE if v.is_null() && d.ulValueLen == 0 => {
                DataParam::Iteration(None)
            }
            CK_SP800_108_ITERATION_VARIABLE => {
                // SAFETY: each value points to `ulValueLen` bytes (contract).
                DataParam::Iteration(Some(unsafe { counter(v, d.ulValueLen) }?))
            }
            // SAFETY: as above.
            CK_SP800_108_COUNTER => DataParam::Counter(unsafe { counter(v, d.ulValueLen) }?),
            CK_SP800_108_DKM_LENGTH => {
                // SAFETY: as above; the structure holds integers.
                let f: CK_SP800_108_DKM_LENGTH_FORMAT = unsafe { param_struct(v, d.ulValueLen) }?;
                DataParam::DkmLength(DkmFormat {
                    method: f.dkmLengthMethod,
                    little_endian: f.bLittleEndian != CK_FALSE,
                    bits: f.ulWidthInBits,
                })
            }
            CK_SP800_108_BYTE_ARRAY => {
                // SAFETY: as above.
                DataParam::Bytes(unsafe { param_bytes(v as *const u8, d.ulValueLen) }?)
            }
            _ => return Err(INVALID),
        });
    }
    // SAFETY: the IV points to its length's bytes (contract).
    let iv = unsafe { param_bytes(r.iv.0, r.iv.1) }?;
    let mut additional = Vec::new();
    // SAFETY: the additional keys array holds its count of entries (contract).
    for k in unsafe { array(r.keys.0, r.keys.1) }? {
        if k.phKey.is_null() {
            return Err(INVALID);
        }
        // SAFETY: each template holds its count of attributes (contract).
        additional.push(unsafe { template(k.pTemplate, k.ulAttributeCount) }.map_err(|_| INVALID)?);
    }
    Ok(Params {
        prf: r.prf,
        data,
        iv,
        additional,
    })
}

/// The caller's handle slots for the additional keys of an SP 800-108 derivation
/// (none for any other mechanism), in the order of the parameter.
///
/// # Safety
/// As [`params`], for the mechanism `m` (already decoded once, so readable).
pub(crate) unsafe fn key_slots(m: *const CK_MECHANISM) -> Result<Vec<*mut CK_OBJECT_HANDLE>, Rv> {
    // SAFETY: `m` was decoded by `convert::mechanism` before: not NULL, readable.
    let m = unsafe { std::ptr::read_unaligned(m) };
    if !matches!(
        m.mechanism,
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_FEEDBACK_KDF
    ) {
        return Ok(Vec::new());
    }
    // SAFETY: this function's contract.
    let r = unsafe { raw(m.mechanism, m.pParameter, m.ulParameterLen) }?;
    // SAFETY: as in `params`.
    Ok(unsafe { array(r.keys.0, r.keys.1) }?
        .iter()
        .map(|k| k.phKey)
        .collect())
}
