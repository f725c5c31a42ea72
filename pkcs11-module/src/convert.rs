//! C types ↔ core types: byte buffers, attribute templates, mechanisms, the output
//! length protocol and blank-padded strings.
//!
//! Every function here takes raw pointers from the caller; each checks them
//! (NULL with a non-zero length is `CKR_ARGUMENTS_BAD`) before reading or writing.
//! What no function can check (that a non-NULL pointer really points to as many
//! bytes as its length says) is the PKCS#11 caller's contract: the `# Safety`
//! section of each function states it, and each adapter asserts it in a `SAFETY:`
//! comment where it passes the caller's pointers on.

use std::mem::size_of;

use cryptoki_sys::*;
use vault_core::mechanism::{MechParam, Mechanism};
use vault_core::session::{Filled, OutLen, Output};
use vault_core::Attributes;

use crate::guard::Rv;

/// `CKR_ARGUMENTS_BAD` as an error.
pub(crate) const BAD: Rv = Rv(CKR_ARGUMENTS_BAD);

/// Fails with `CKR_ARGUMENTS_BAD` when `p` is NULL.
pub(crate) fn non_null<T>(p: *const T) -> Result<(), Rv> {
    if p.is_null() {
        Err(BAD)
    } else {
        Ok(())
    }
}

/// An input byte string (`pData`/`ulDataLen`). NULL is allowed only with length 0.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that outlive the returned slice.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8], Rv> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(p)?;
    // SAFETY: `p` is not NULL (checked above) and, by this function's contract,
    // points to `len` readable bytes that outlive `'a`.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// A PIN argument. NULL (protected authentication path) is not supported.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn pin<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8], Rv> {
    non_null(p)?;
    // SAFETY: this function's contract is `bytes`'s.
    unsafe { bytes(p, len) }
}

/// A caller's attribute array as a slice. `count > 0` with a NULL array is bad.
///
/// # Safety
/// `p` must be NULL or point to `count` attributes, readable and writable, that
/// outlive `'a` and that nothing else accesses meanwhile.
pub(crate) unsafe fn attr_slice<'a>(
    p: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<&'a mut [CK_ATTRIBUTE], Rv> {
    if count == 0 {
        return Ok(&mut []);
    }
    non_null(p)?;
    // SAFETY: `p` is not NULL (checked above) and, by this function's contract,
    // points to `count` attributes exclusively ours for `'a`.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, count as usize) })
}

/// A template (`CK_ATTRIBUTE` array with values) as core [`Attributes`], values
/// copied unchanged (PKCS#11 encoding).
///
/// # Safety
/// `p` must be NULL or point to `count` attributes whose `pValue`s are NULL or
/// point to `ulValueLen` readable bytes.
pub(crate) unsafe fn template(p: *mut CK_ATTRIBUTE, count: CK_ULONG) -> Result<Attributes, Rv> {
    let mut attrs = Attributes::new();
    // SAFETY: by this function's contract `p` is NULL or points to `count`
    // attributes; they are only read here.
    for a in unsafe { attr_slice(p, count) }?.iter() {
        // SAFETY: by this function's contract each `pValue` is NULL or points to
        // `ulValueLen` readable bytes; the bytes are copied before returning.
        let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen) }?;
        attrs.set(a.type_, v.to_vec());
    }
    Ok(attrs)
}

/// Reads a parameter structure of type `T`, which must be exactly `len` bytes.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes; `T` must be a plain C
/// structure (integers and raw pointers: every bit pattern is a value).
pub(crate) unsafe fn param_struct<T: Copy>(
    p: *const std::ffi::c_void,
    len: CK_ULONG,
) -> Result<T, Rv> {
    if p.is_null() || len as usize != size_of::<T>() {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    // SAFETY: `p` is not NULL and points to `len == size_of::<T>()` readable bytes
    // (checked above and by the contract); any bits are a valid `T`; the caller's
    // buffer need not be aligned, hence the unaligned read.
    Ok(unsafe { std::ptr::read_unaligned(p as *const T) })
}

/// A byte string inside a mechanism parameter (bad pointers are a bad parameter).
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn param_bytes(p: *const u8, len: CK_ULONG) -> Result<Vec<u8>, Rv> {
    // SAFETY: this function's contract is `bytes`'s; the bytes are copied at once.
    unsafe { bytes(p, len) }
        .map(|b| b.to_vec())
        .map_err(|_| Rv(CKR_MECHANISM_PARAM_INVALID))
}

/// The pre-errata v2.40 `CK_GCM_PARAMS` (no `ulIvBits`), still sent by some clients.
#[repr(C)]
#[derive(Clone, Copy)]
struct GcmParamsV240 {
    p_iv: *mut CK_BYTE,
    ul_iv_len: CK_ULONG,
    p_aad: *mut CK_BYTE,
    ul_aad_len: CK_ULONG,
    ul_tag_bits: CK_ULONG,
}

fn is_pss(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(
        ty,
        CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
    )
}

/// A `CK_MECHANISM` with its parameter decoded.
///
/// # Safety
/// `p` must be NULL or point to a `CK_MECHANISM` whose parameter pointer, if not
/// NULL, points to `ulParameterLen` readable bytes (and so on for nested pointers).
pub(crate) unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<Mechanism, Rv> {
    non_null(p)?;
    // SAFETY: `p` is not NULL (checked above) and points to a `CK_MECHANISM` by
    // this function's contract; the caller's copy may be unaligned.
    let m = unsafe { std::ptr::read_unaligned(p) };
    let ty = m.mechanism;
    let (pp, len) = (m.pParameter as *const std::ffi::c_void, m.ulParameterLen);
    if pp.is_null() && len != 0 {
        // A length without a structure: never read, never replaced by defaults.
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    if pp.is_null() || len == 0 {
        // Missing parameters: the core applies defaults or refuses.
        return Ok(Mechanism::new(ty));
    }
    // Each arm reads the structure its mechanism defines, then the byte strings it
    // points to; a length that does not fit the structure is refused unread.
    let param = match ty {
        CKM_AES_GCM => {
            if len as usize == size_of::<GcmParamsV240>() {
                // SAFETY: `pp` points to `len` readable bytes (this function's
                // contract); `GcmParamsV240` is a plain C structure.
                let g: GcmParamsV240 = unsafe { param_struct(pp, len) }?;
                // SAFETY: the IV and AAD pointers of a GCM parameter point to their
                // lengths' bytes (this function's contract: nested pointers).
                let (iv, aad) = unsafe {
                    (
                        param_bytes(g.p_iv, g.ul_iv_len)?,
                        param_bytes(g.p_aad, g.ul_aad_len)?,
                    )
                };
                MechParam::Gcm {
                    iv,
                    aad,
                    tag_bits: g.ul_tag_bits,
                }
            } else {
                // SAFETY: as above, for the `CK_GCM_PARAMS` layout.
                let g: CK_GCM_PARAMS = unsafe { param_struct(pp, len) }?;
                // SAFETY: as above.
                let (iv, aad) = unsafe {
                    (
                        param_bytes(g.pIv, g.ulIvLen)?,
                        param_bytes(g.pAAD, g.ulAADLen)?,
                    )
                };
                MechParam::Gcm {
                    iv,
                    aad,
                    tag_bits: g.ulTagBits,
                }
            }
        }
        t if is_pss(t) => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_RSA_PKCS_PSS_PARAMS` holds integers only.
            let s: CK_RSA_PKCS_PSS_PARAMS = unsafe { param_struct(pp, len) }?;
            MechParam::Pss {
                hash: s.hashAlg,
                mgf: s.mgf,
                salt_len: s.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_RSA_PKCS_OAEP_PARAMS` is a plain C structure.
            let o: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param_struct(pp, len) }?;
            let source = match o.source {
                CKZ_DATA_SPECIFIED => {
                    // SAFETY: the label points to `ulSourceDataLen` bytes (this
                    // function's contract: nested pointers).
                    unsafe { param_bytes(o.pSourceData as *const u8, o.ulSourceDataLen) }?
                }
                // Some clients leave the source type zero for "no label".
                0 if o.ulSourceDataLen == 0 => Vec::new(),
                _ => return Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
            };
            MechParam::Oaep {
                hash: o.hashAlg,
                mgf: o.mgf,
                source,
            }
        }
        CKM_EDDSA => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_EDDSA_PARAMS` is a plain C structure.
            let e: CK_EDDSA_PARAMS = unsafe { param_struct(pp, len) }?;
            // SAFETY: the context pointer points to `ulContextDataLen` bytes (this
            // function's contract: nested pointers).
            let context = unsafe { param_bytes(e.pContextData, e.ulContextDataLen) }?;
            MechParam::Eddsa {
                prehash: e.phFlag != CK_FALSE,
                context,
            }
        }
        CKM_ML_DSA
        | CKM_HASH_ML_DSA_SHA224
        | CKM_HASH_ML_DSA_SHA256
        | CKM_HASH_ML_DSA_SHA384
        | CKM_HASH_ML_DSA_SHA512
        | CKM_HASH_ML_DSA_SHA3_224
        | CKM_HASH_ML_DSA_SHA3_256
        | CKM_HASH_ML_DSA_SHA3_384
        | CKM_HASH_ML_DSA_SHA3_512
        | CKM_HASH_ML_DSA_SHAKE128
        | CKM_HASH_ML_DSA_SHAKE256 => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_SIGN_ADDITIONAL_CONTEXT` holds integers and a pointer.
            let c: CK_SIGN_ADDITIONAL_CONTEXT = unsafe { param_struct(pp, len) }?;
            MechParam::SignContext {
                hedge: c.hedgeVariant,
                // SAFETY: the context points to `ulContextLen` bytes (nested pointers).
                context: unsafe { param_bytes(c.pContext, c.ulContextLen) }?,
                hash: None,
            }
        }
        CKM_HASH_ML_DSA => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_HASH_SIGN_ADDITIONAL_CONTEXT` holds integers and a
            // pointer.
            let c: CK_HASH_SIGN_ADDITIONAL_CONTEXT = unsafe { param_struct(pp, len) }?;
            MechParam::SignContext {
                hedge: c.hedgeVariant,
                // SAFETY: the context points to `ulContextLen` bytes (nested pointers).
                context: unsafe { param_bytes(c.pContext, c.ulContextLen) }?,
                hash: Some(c.hash),
            }
        }
        CKM_AES_CTR => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_AES_CTR_PARAMS` holds an integer and an array.
            let c: CK_AES_CTR_PARAMS = unsafe { param_struct(pp, len) }?;
            MechParam::Ctr {
                counter_bits: c.ulCounterBits,
                cb: c.cb,
            }
        }
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_ECDH1_DERIVE_PARAMS` is a plain C structure.
            let e: CK_ECDH1_DERIVE_PARAMS = unsafe { param_struct(pp, len) }?;
            // SAFETY: the shared and public data pointers point to their lengths'
            // bytes (this function's contract: nested pointers).
            let (shared_data, public_data) = unsafe {
                (
                    param_bytes(e.pSharedData, e.ulSharedDataLen)?,
                    param_bytes(e.pPublicData, e.ulPublicDataLen)?,
                )
            };
            MechParam::Ecdh1 {
                kdf: e.kdf,
                shared_data,
                public_data,
            }
        }
        CKM_CONCATENATE_BASE_AND_DATA
        | CKM_CONCATENATE_DATA_AND_BASE
        | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA
        | CKM_DES3_ECB_ENCRYPT_DATA => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_KEY_DERIVATION_STRING_DATA` is a plain C structure.
            let d: CK_KEY_DERIVATION_STRING_DATA = unsafe { param_struct(pp, len) }?;
            // SAFETY: the data pointer points to `ulLen` bytes (this function's
            // contract: nested pointers).
            MechParam::Bytes(unsafe { param_bytes(d.pData, d.ulLen) }?)
        }
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_FEEDBACK_KDF => {
            // SAFETY: `pp` points to `len` readable bytes and the structure's
            // pointers to their lengths' bytes (this function's contract).
            MechParam::Kbkdf(Box::new(unsafe { crate::kbkdf::params(ty, pp, len) }?))
        }
        CKM_CHACHA20_POLY1305 => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); the structure holds pointers and lengths.
            let c: CK_SALSA20_CHACHA20_POLY1305_PARAMS = unsafe { param_struct(pp, len) }?;
            // SAFETY: the nonce and AAD point to their lengths' bytes (nested pointers).
            let (nonce, aad) = unsafe {
                (
                    param_bytes(c.pNonce, c.ulNonceLen)?,
                    param_bytes(c.pAAD, c.ulAADLen)?,
                )
            };
            MechParam::ChaChaPoly { nonce, aad }
        }
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); `CK_HKDF_PARAMS` holds integers and pointers.
            let h: CK_HKDF_PARAMS = unsafe { param_struct(pp, len) }?;
            use vault_core::mechanism::hkdf::{Params, Salt};
            let salt = match h.ulSaltType {
                CKF_HKDF_SALT_NULL => Salt::Null,
                // SAFETY: the salt points to `ulSaltLen` bytes (nested pointers).
                CKF_HKDF_SALT_DATA => Salt::Data(unsafe { param_bytes(h.pSalt, h.ulSaltLen) }?),
                CKF_HKDF_SALT_KEY => Salt::Key(h.hSaltKey),
                _ => return Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
            };
            MechParam::Hkdf(Box::new(Params {
                extract: h.bExtract != CK_FALSE,
                expand: h.bExpand != CK_FALSE,
                prf: h.prfHashMechanism,
                salt,
                // SAFETY: the info points to `ulInfoLen` bytes (nested pointers).
                info: unsafe { param_bytes(h.pInfo, h.ulInfoLen) }?,
            }))
        }
        CKM_CONCATENATE_BASE_AND_KEY => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); a `CK_OBJECT_HANDLE` is an integer.
            MechParam::KeyHandle(unsafe { param_struct::<CK_OBJECT_HANDLE>(pp, len) }?)
        }
        CKM_EXTRACT_KEY_FROM_KEY => {
            // SAFETY: as above, `CK_EXTRACT_PARAMS` is an integer.
            MechParam::Extract(unsafe { param_struct::<CK_EXTRACT_PARAMS>(pp, len) }?)
        }
        CKM_AES_CBC_ENCRYPT_DATA => {
            // SAFETY: `pp` points to `len` readable bytes (this function's
            // contract); the structure holds an array, a pointer and an integer.
            let c: CK_AES_CBC_ENCRYPT_DATA_PARAMS = unsafe { param_struct(pp, len) }?;
            MechParam::CbcEncryptData {
                iv: c.iv.to_vec(),
                // SAFETY: the data pointer points to `length` bytes (nested pointers).
                data: unsafe { param_bytes(c.pData, c.length) }?,
            }
        }
        CKM_DES3_CBC_ENCRYPT_DATA => {
            // SAFETY: as for the AES form, with an 8-byte IV.
            let c: CK_DES_CBC_ENCRYPT_DATA_PARAMS = unsafe { param_struct(pp, len) }?;
            MechParam::CbcEncryptData {
                iv: c.iv.to_vec(),
                // SAFETY: the data pointer points to `length` bytes (nested pointers).
                data: unsafe { param_bytes(c.pData, c.length) }?,
            }
        }
        // SAFETY: any other parameter is an opaque byte string of `len` bytes at
        // `pp` (this function's contract).
        _ => MechParam::Bytes(unsafe { param_bytes(pp as *const u8, len) }?),
    };
    Ok(Mechanism { ty, param })
}

/// The caller's `CK_MECHANISM` pointer, decoded when the call gets to it (after
/// the session lookup, so a bad handle is reported first).
///
/// Only [`MechPtr::new`] is unsafe: it takes the caller's word for the pointer.
#[derive(Clone, Copy)]
pub(crate) struct MechPtr(*const CK_MECHANISM);

impl MechPtr {
    /// # Safety
    /// Until the call returns, `p` must satisfy [`mechanism`]'s contract.
    pub(crate) unsafe fn new(p: *const CK_MECHANISM) -> MechPtr {
        MechPtr(p)
    }

    /// The mechanism with its parameter, as [`mechanism`] decodes it.
    pub(crate) fn decode(self) -> Result<Mechanism, Rv> {
        // SAFETY: `new`'s contract is `mechanism`'s, for as long as the call runs.
        unsafe { mechanism(self.0) }
    }

    /// The mechanism without its parameter (`CKR_ARGUMENTS_BAD` for NULL).
    pub(crate) fn type_only(self) -> Result<Mechanism, Rv> {
        non_null(self.0)?;
        // SAFETY: not NULL (checked) and readable (`new`'s contract); the caller's
        // structure may be unaligned.
        let m = unsafe { std::ptr::read_unaligned(self.0) };
        Ok(Mechanism::new(m.mechanism))
    }
}

/// The caller's output buffer and its length (`pBuf`/`pulBufLen`) for the
/// PKCS#11 length protocol: a NULL buffer is a length query.
///
/// Only [`OutBuf::new`] is unsafe: it takes the caller's word for the two pointers,
/// so reading the room and delivering the output are safe and check the NULLs.
#[derive(Clone, Copy)]
pub(crate) struct OutBuf {
    buf: *mut u8,
    len: *mut CK_ULONG,
}

impl OutBuf {
    /// # Safety
    /// Until the call returns, `len` must be NULL or point to a readable and
    /// writable `CK_ULONG`, and `buf` must be NULL or point to `*len` writable bytes.
    pub(crate) unsafe fn new(buf: *mut u8, len: *mut CK_ULONG) -> OutBuf {
        OutBuf { buf, len }
    }

    /// The room the caller offers (`CKR_ARGUMENTS_BAD` for a NULL length).
    pub(crate) fn room(&self) -> Result<OutLen, Rv> {
        non_null(self.len)?;
        Ok(if self.buf.is_null() {
            OutLen::Query
        } else {
            // SAFETY: `len` is not NULL (checked above) and readable (`new`'s contract).
            OutLen::Buffer(unsafe { *self.len } as usize)
        })
    }

    /// The caller's buffer as a slice, for a mechanism to write into directly:
    /// `None` for a length query, a NULL length, or a buffer that overlaps `data`
    /// (PKCS#11 lets input and output be the same location; a Rust slice may not
    /// alias another), which then take the copying path.
    pub(crate) fn apart_from(&mut self, data: &[u8]) -> Option<&mut [u8]> {
        if self.buf.is_null() || self.len.is_null() {
            return None;
        }
        // SAFETY: `len` is not NULL (checked above) and readable (`new`'s contract).
        let n = unsafe { *self.len } as usize;
        let (b, d) = (self.buf as usize, data.as_ptr() as usize);
        let overlaps = !data.is_empty() && n > 0 && b < d + data.len() && d < b + n;
        if overlaps {
            return None;
        }
        // SAFETY: `buf` is not NULL and holds `n` writable bytes for the whole call
        // (`new`'s contract); it does not overlap `data` (checked above), and the
        // borrow of `self` keeps this the only slice made from it while it lives.
        Some(unsafe { std::slice::from_raw_parts_mut(self.buf, n) })
    }

    /// Reports a [`Filled`] result: the written length, or a needed length with
    /// `CKR_OK` for a query and `CKR_BUFFER_TOO_SMALL` for a short buffer.
    pub(crate) fn filled(&self, f: Filled) -> Result<(), Rv> {
        match f {
            Filled::Needed(n) => self.deliver(Output::Needed(n)),
            Filled::Wrote(n) => {
                non_null(self.len)?;
                // SAFETY: `len` is not NULL (checked above) and writable (`new`'s contract).
                unsafe { *self.len = n as CK_ULONG };
                Ok(())
            }
        }
    }

    /// Writes a core [`Output`] back: bytes are copied and their length set; a
    /// needed length is reported in `*len` with `CKR_OK` for a query and
    /// `CKR_BUFFER_TOO_SMALL` for a short buffer.
    pub(crate) fn deliver(&self, out: Output) -> Result<(), Rv> {
        let (buf, len) = (self.buf, self.len);
        non_null(len)?;
        match out {
            Output::Needed(n) => {
                // SAFETY: `len` is not NULL (checked above) and writable (`new`'s contract).
                unsafe { *len = n as CK_ULONG };
                if buf.is_null() {
                    Ok(())
                } else {
                    Err(Rv(CKR_BUFFER_TOO_SMALL))
                }
            }
            Output::Bytes(v) => {
                // SAFETY: `len` is not NULL (checked above) and readable (`new`'s contract).
                let room = unsafe { *len } as usize;
                if buf.is_null() || room < v.len() {
                    // SAFETY: `len` is not NULL and writable, as above.
                    unsafe { *len = v.len() as CK_ULONG };
                    return Err(Rv(CKR_BUFFER_TOO_SMALL));
                }
                // SAFETY: `buf` is not NULL and holds `*len >= v.len()` writable bytes
                // (checked above; `new`'s contract); the caller's buffer cannot overlap
                // the core's fresh vector; `len` is writable, as above.
                unsafe {
                    std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len());
                    *len = v.len() as CK_ULONG;
                }
                Ok(())
            }
        }
    }
}

/// Writes a list (`C_GetSlotList`, `C_GetMechanismList`) with the length protocol.
///
/// # Safety
/// `buf` must be NULL or point to `*count` writable elements; `count` must be
/// NULL or point to a readable, writable `CK_ULONG`.
pub(crate) unsafe fn deliver_list<T: Copy>(
    items: &[T],
    buf: *mut T,
    count: *mut CK_ULONG,
) -> Result<(), Rv> {
    non_null(count)?;
    let n = items.len();
    if buf.is_null() {
        // SAFETY: `count` is not NULL (checked above) and writable (contract).
        unsafe { *count = n as CK_ULONG };
        return Ok(());
    }
    // SAFETY: `count` is not NULL (checked above) and readable (contract).
    let room = unsafe { *count } as usize;
    if room < n {
        // SAFETY: `count` is not NULL and writable, as above.
        unsafe { *count = n as CK_ULONG };
        return Err(Rv(CKR_BUFFER_TOO_SMALL));
    }
    // SAFETY: `buf` is not NULL and holds `*count >= n` writable elements (checked
    // above; contract); `items` is ours, so it cannot overlap the caller's array;
    // `count` is writable, as above.
    unsafe {
        std::ptr::copy_nonoverlapping(items.as_ptr(), buf, n);
        *count = n as CK_ULONG;
    }
    Ok(())
}

/// A blank-padded fixed-width PKCS#11 string (cut at a character boundary).
pub(crate) fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// A 32-byte blank-padded label from `C_InitToken`, trimmed (a NUL also ends it).
///
/// # Safety
/// `p` must be NULL or point to 32 readable bytes.
pub(crate) unsafe fn label32(p: *const u8) -> Result<String, Rv> {
    non_null(p)?;
    // SAFETY: `p` is not NULL (checked above) and points to the 32 bytes of a
    // `C_InitToken` label (contract).
    let raw = unsafe { std::slice::from_raw_parts(p, 32) };
    let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
    let s = std::str::from_utf8(raw).map_err(|_| BAD)?;
    Ok(s.trim_end_matches(' ').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_respects_utf8() {
        assert_eq!(&padded::<4>("ab"), b"ab  ");
        assert_eq!(&padded::<3>("aé"), b"a\xc3\xa9");
        assert_eq!(&padded::<2>("aé"), b"a ");
    }

    #[test]
    fn labels_are_trimmed() {
        let l = padded::<32>("Test Token");
        // SAFETY: `l` is 32 bytes.
        assert_eq!(unsafe { label32(l.as_ptr()) }.unwrap(), "Test Token");
    }

    #[test]
    fn templates_and_null_values() {
        let mut v: CK_BBOOL = CK_TRUE;
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_TOKEN,
                pValue: &mut v as *mut _ as *mut _,
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: std::ptr::null_mut(),
                ulValueLen: 0,
            },
        ];
        // SAFETY: `t` holds 2 attributes whose values are NULL or `v`'s 1 byte.
        let a = unsafe { template(t.as_mut_ptr(), 2) }.unwrap();
        assert_eq!(a.get_bool(CKA_TOKEN).unwrap(), Some(true));
        assert_eq!(a.get(CKA_LABEL), Some(&[][..]));
        t[1].ulValueLen = 3;
        // SAFETY: as above; the NULL value with a length is refused unread.
        assert_eq!(unsafe { template(t.as_mut_ptr(), 2) }.unwrap_err(), BAD);
        assert_eq!(
            // SAFETY: a NULL array is refused unread.
            unsafe { template(std::ptr::null_mut(), 1) }.unwrap_err(),
            BAD
        );
    }

    #[test]
    fn gcm_params_both_layouts() {
        let mut iv = [7u8; 12];
        let mut aad = *b"aad";
        let mut g = CK_GCM_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: 12,
            ulIvBits: 96,
            pAAD: aad.as_mut_ptr(),
            ulAADLen: 3,
            ulTagBits: 128,
        };
        let m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &mut g as *mut _ as *mut _,
            ulParameterLen: size_of::<CK_GCM_PARAMS>() as CK_ULONG,
        };
        let want = MechParam::Gcm {
            iv: iv.to_vec(),
            aad: aad.to_vec(),
            tag_bits: 128,
        };
        // SAFETY: `m` points to `g`, whose IV and AAD point to `iv` and `aad`.
        assert_eq!(unsafe { mechanism(&m) }.unwrap().param, want);
        let mut old = GcmParamsV240 {
            p_iv: iv.as_mut_ptr(),
            ul_iv_len: 12,
            p_aad: aad.as_mut_ptr(),
            ul_aad_len: 3,
            ul_tag_bits: 128,
        };
        let m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &mut old as *mut _ as *mut _,
            ulParameterLen: size_of::<GcmParamsV240>() as CK_ULONG,
        };
        // SAFETY: `m` points to `old`, whose IV and AAD point to `iv` and `aad`.
        assert_eq!(unsafe { mechanism(&m) }.unwrap().param, want);
        let m = CK_MECHANISM {
            ulParameterLen: 7,
            ..m
        };
        assert_eq!(
            // SAFETY: a length of no known layout is refused unread.
            unsafe { mechanism(&m) }.unwrap_err(),
            Rv(CKR_MECHANISM_PARAM_INVALID)
        );
        // SAFETY: NULL is refused unread.
        assert_eq!(unsafe { mechanism(std::ptr::null()) }.unwrap_err(), BAD);
    }

    #[test]
    fn output_length_protocol() {
        let mut len: CK_ULONG = 0;
        // SAFETY: `len` is a live local; the buffer is NULL.
        let query = unsafe { OutBuf::new(std::ptr::null_mut(), &mut len) };
        query.deliver(Output::Needed(9)).unwrap();
        assert_eq!(len, 9);
        let mut buf = [0u8; 4];
        len = 4;
        // SAFETY: `buf` holds the 4 bytes `len` says; both are live locals.
        let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) };
        let e = out.deliver(Output::Needed(9)).unwrap_err();
        assert_eq!((e, len), (Rv(CKR_BUFFER_TOO_SMALL), 9));
        len = 4;
        // SAFETY: as above (a fresh pointer: `len` was written directly meanwhile).
        let out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len) };
        out.deliver(Output::Bytes(vec![1, 2])).unwrap();
        assert_eq!((len, &buf[..2]), (2, &[1u8, 2][..]));
    }
}
