//! C types ↔ core types: byte buffers, attribute templates, mechanisms, the output
//! length protocol and blank-padded strings.
//!
//! Every function here takes raw pointers from the caller; each checks them
//! (NULL with a non-zero length is `CKR_ARGUMENTS_BAD`) before reading or writing.

use std::mem::size_of;

use cryptoki_sys::*;
use vault_core::mechanism::{MechParam, Mechanism};
use vault_core::session::{OutLen, Output};
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
    Ok(std::slice::from_raw_parts(p, len as usize))
}

/// A PIN argument. NULL (protected authentication path) is not supported.
///
/// # Safety
/// As [`bytes`].
pub(crate) unsafe fn pin<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8], Rv> {
    non_null(p)?;
    bytes(p, len)
}

/// A caller's attribute array as a slice. `count > 0` with a NULL array is bad.
///
/// # Safety
/// `p` must be NULL or point to `count` attributes.
pub(crate) unsafe fn attr_slice<'a>(
    p: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<&'a mut [CK_ATTRIBUTE], Rv> {
    if count == 0 {
        return Ok(&mut []);
    }
    non_null(p)?;
    Ok(std::slice::from_raw_parts_mut(p, count as usize))
}

/// A template (`CK_ATTRIBUTE` array with values) as core [`Attributes`], values
/// copied unchanged (PKCS#11 encoding).
///
/// # Safety
/// `p` must be NULL or point to `count` attributes whose `pValue`s are NULL or
/// point to `ulValueLen` readable bytes.
pub(crate) unsafe fn template(p: *mut CK_ATTRIBUTE, count: CK_ULONG) -> Result<Attributes, Rv> {
    let mut attrs = Attributes::new();
    for a in attr_slice(p, count)?.iter() {
        let v = bytes(a.pValue as *const u8, a.ulValueLen)?;
        attrs.set(a.type_, v.to_vec());
    }
    Ok(attrs)
}

/// Reads a parameter structure of type `T`, which must be exactly `len` bytes.
unsafe fn param_struct<T: Copy>(p: *const std::ffi::c_void, len: CK_ULONG) -> Result<T, Rv> {
    if p.is_null() || len as usize != size_of::<T>() {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(std::ptr::read_unaligned(p as *const T))
}

/// A byte string inside a mechanism parameter (bad pointers are a bad parameter).
unsafe fn param_bytes(p: *const u8, len: CK_ULONG) -> Result<Vec<u8>, Rv> {
    bytes(p, len)
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
    let m = std::ptr::read_unaligned(p);
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
    let param = match ty {
        CKM_AES_GCM => {
            if len as usize == size_of::<GcmParamsV240>() {
                let g: GcmParamsV240 = param_struct(pp, len)?;
                MechParam::Gcm {
                    iv: param_bytes(g.p_iv, g.ul_iv_len)?,
                    aad: param_bytes(g.p_aad, g.ul_aad_len)?,
                    tag_bits: g.ul_tag_bits,
                }
            } else {
                let g: CK_GCM_PARAMS = param_struct(pp, len)?;
                MechParam::Gcm {
                    iv: param_bytes(g.pIv, g.ulIvLen)?,
                    aad: param_bytes(g.pAAD, g.ulAADLen)?,
                    tag_bits: g.ulTagBits,
                }
            }
        }
        t if is_pss(t) => {
            let s: CK_RSA_PKCS_PSS_PARAMS = param_struct(pp, len)?;
            MechParam::Pss {
                hash: s.hashAlg,
                mgf: s.mgf,
                salt_len: s.sLen,
            }
        }
        CKM_RSA_PKCS_OAEP => {
            let o: CK_RSA_PKCS_OAEP_PARAMS = param_struct(pp, len)?;
            let source = match o.source {
                CKZ_DATA_SPECIFIED => param_bytes(o.pSourceData as *const u8, o.ulSourceDataLen)?,
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
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
            let e: CK_ECDH1_DERIVE_PARAMS = param_struct(pp, len)?;
            MechParam::Ecdh1 {
                kdf: e.kdf,
                shared_data: param_bytes(e.pSharedData, e.ulSharedDataLen)?,
                public_data: param_bytes(e.pPublicData, e.ulPublicDataLen)?,
            }
        }
        _ => MechParam::Bytes(param_bytes(pp as *const u8, len)?),
    };
    Ok(Mechanism { ty, param })
}

/// The caller's output room: a NULL buffer is a length query.
///
/// # Safety
/// `len` must be NULL or point to a readable `CK_ULONG`.
pub(crate) unsafe fn out_len(buf: *const u8, len: *const CK_ULONG) -> Result<OutLen, Rv> {
    non_null(len)?;
    Ok(if buf.is_null() {
        OutLen::Query
    } else {
        OutLen::Buffer(*len as usize)
    })
}

/// Writes a core [`Output`] back: bytes are copied and their length set; a needed
/// length is reported in `*len` with `CKR_OK` for a query and
/// `CKR_BUFFER_TOO_SMALL` for a short buffer.
///
/// # Safety
/// `buf` must be NULL or point to `*len` writable bytes; `len` must be writable.
pub(crate) unsafe fn deliver(out: Output, buf: *mut u8, len: *mut CK_ULONG) -> Result<(), Rv> {
    non_null(len)?;
    match out {
        Output::Needed(n) => {
            *len = n as CK_ULONG;
            if buf.is_null() {
                Ok(())
            } else {
                Err(Rv(CKR_BUFFER_TOO_SMALL))
            }
        }
        Output::Bytes(v) => {
            if buf.is_null() || (*len as usize) < v.len() {
                *len = v.len() as CK_ULONG;
                return Err(Rv(CKR_BUFFER_TOO_SMALL));
            }
            std::ptr::copy_nonoverlapping(v.as_ptr(), buf, v.len());
            *len = v.len() as CK_ULONG;
            Ok(())
        }
    }
}

/// Writes a list (`C_GetSlotList`, `C_GetMechanismList`) with the length protocol.
///
/// # Safety
/// `buf` must be NULL or point to `*count` writable elements; `count` writable.
pub(crate) unsafe fn deliver_list<T: Copy>(
    items: &[T],
    buf: *mut T,
    count: *mut CK_ULONG,
) -> Result<(), Rv> {
    non_null(count)?;
    let n = items.len();
    if buf.is_null() {
        *count = n as CK_ULONG;
        return Ok(());
    }
    if (*count as usize) < n {
        *count = n as CK_ULONG;
        return Err(Rv(CKR_BUFFER_TOO_SMALL));
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), buf, n);
    *count = n as CK_ULONG;
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
    let raw = std::slice::from_raw_parts(p, 32);
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
        let a = unsafe { template(t.as_mut_ptr(), 2) }.unwrap();
        assert_eq!(a.get_bool(CKA_TOKEN).unwrap(), Some(true));
        assert_eq!(a.get(CKA_LABEL), Some(&[][..]));
        t[1].ulValueLen = 3;
        assert_eq!(unsafe { template(t.as_mut_ptr(), 2) }.unwrap_err(), BAD);
        assert_eq!(
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
        assert_eq!(unsafe { mechanism(&m) }.unwrap().param, want);
        let m = CK_MECHANISM {
            ulParameterLen: 7,
            ..m
        };
        assert_eq!(
            unsafe { mechanism(&m) }.unwrap_err(),
            Rv(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(unsafe { mechanism(std::ptr::null()) }.unwrap_err(), BAD);
    }

    #[test]
    fn output_length_protocol() {
        let mut len: CK_ULONG = 0;
        unsafe { deliver(Output::Needed(9), std::ptr::null_mut(), &mut len) }.unwrap();
        assert_eq!(len, 9);
        let mut buf = [0u8; 4];
        len = 4;
        let e = unsafe { deliver(Output::Needed(9), buf.as_mut_ptr(), &mut len) }.unwrap_err();
        assert_eq!((e, len), (Rv(CKR_BUFFER_TOO_SMALL), 9));
        len = 4;
        unsafe { deliver(Output::Bytes(vec![1, 2]), buf.as_mut_ptr(), &mut len) }.unwrap();
        assert_eq!((len, &buf[..2]), (2, &[1u8, 2][..]));
    }
}
