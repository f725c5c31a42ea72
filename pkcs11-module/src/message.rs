//! The PKCS#11 3.0 message-based functions: encryption and decryption with
//! AES-GCM (`CK_GCM_MESSAGE_PARAMS` per message: IV, IV generator, tag) or
//! ChaCha20-Poly1305 (`CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS`: nonce, tag), and
//! signatures and MACs with every signing mechanism (no per-message parameter).
//! The core keeps the contexts (`vault_core::session::message`); this file decodes
//! the caller's parameter and writes the generated IV and the tag back into it.

use std::ffi::c_void;

use cryptoki_sys::*;
use vault_core::session::{AeadParams, MessageKind, Output, SessionRef};
use vault_core::token::Token;

use crate::convert::{bytes, MechPtr, OutBuf, BAD};
use crate::guard::{call, CallResult, Rv};
use crate::state;

const PARAM_INVALID: Rv = Rv(CKR_MECHANISM_PARAM_INVALID);

/// Runs `op` on the session's token.
fn run(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    op: impl FnOnce(&Token, &SessionRef) -> CallResult,
) -> CK_RV {
    call(name, || {
        let e = state::session(h)?;
        op(&e.token, &e.core)
    })
}

fn init(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    mech: MechPtr,
    key: CK_OBJECT_HANDLE,
    kind: MessageKind,
) -> CK_RV {
    run(name, h, |t, s| {
        // An AEAD context's parameter comes with each message (`CK_GCM_MESSAGE_PARAMS`;
        // what the init carries is not used); a signature's applies to every message.
        let m = match kind {
            MessageKind::Encrypt | MessageKind::Decrypt => mech.type_only()?,
            MessageKind::Sign | MessageKind::Verify => mech.decode()?,
        };
        t.message_init(s, &m, key, kind)?;
        Ok(())
    })
}

fn fin(name: &'static str, h: CK_SESSION_HANDLE, kind: MessageKind) -> CK_RV {
    run(name, h, |t, s| Ok(t.message_final(s, kind)?))
}

/// The caller's `CK_GCM_MESSAGE_PARAMS`: the decoded copy, and where to write the
/// IV and tag back.
struct GcmMessage {
    params: AeadParams,
    iv_out: *mut u8,
    tag_out: *mut u8,
}

/// The caller's message parameter: `CK_GCM_MESSAGE_PARAMS` or (told apart by its
/// size) `CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS`, whose 16-byte tag and nonce
/// map onto the same fields with no IV generation.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes; its IV (nonce) and tag pointers
/// point to their lengths' bytes, readable and writable (PKCS#11).
unsafe fn gcm_message(p: *mut c_void, len: CK_ULONG) -> Result<GcmMessage, Rv> {
    if p.is_null() {
        return Err(PARAM_INVALID);
    }
    let (iv_ptr, iv_len, fixed, generator, tag_ptr, tag_bits) =
        if len as usize == std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() {
            // SAFETY: `p` points to a whole `CK_GCM_MESSAGE_PARAMS` (checked length,
            // this function's contract), possibly unaligned.
            let g: CK_GCM_MESSAGE_PARAMS = unsafe { std::ptr::read_unaligned(p as *const _) };
            (
                g.pIv,
                g.ulIvLen,
                g.ulIvFixedBits,
                g.ivGenerator,
                g.pTag,
                g.ulTagBits,
            )
        } else if len as usize == std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS>() {
            // SAFETY: as above, for the ChaCha20-Poly1305 structure.
            let c: CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS =
                unsafe { std::ptr::read_unaligned(p as *const _) };
            (c.pNonce, c.ulNonceLen, 0, CKG_NO_GENERATE, c.pTag, 128)
        } else {
            return Err(PARAM_INVALID);
        };
    let tag_len = (tag_bits / 8) as usize;
    if iv_ptr.is_null() || tag_ptr.is_null() || tag_bits & 7 != 0 || tag_len > 16 {
        return Err(PARAM_INVALID);
    }
    // SAFETY: the IV and tag point to their lengths' bytes (contract).
    let (iv, tag) = unsafe {
        (
            bytes(iv_ptr, iv_len)?.to_vec(),
            bytes(tag_ptr, tag_len as CK_ULONG)?.to_vec(),
        )
    };
    Ok(GcmMessage {
        params: AeadParams {
            iv,
            iv_fixed_bits: fixed,
            generator,
            tag,
            tag_bits,
        },
        iv_out: iv_ptr,
        tag_out: tag_ptr,
    })
}

impl GcmMessage {
    /// Writes the (possibly generated) IV and the tag back to the caller.
    fn write_back(&self) {
        // SAFETY: both pointers are not NULL and point to as many writable bytes as
        // were read from them (`gcm_message`'s contract); the core keeps the lengths.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.params.iv.as_ptr(),
                self.iv_out,
                self.params.iv.len(),
            );
            std::ptr::copy_nonoverlapping(
                self.params.tag.as_ptr(),
                self.tag_out,
                self.params.tag.len(),
            );
        }
    }
}

/// `C_EncryptMessage` / `C_DecryptMessage`.
///
/// # Safety
/// The PKCS#11 contract of both functions.
#[allow(clippy::too_many_arguments)]
unsafe fn aead_once(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    encrypt: bool,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: (*const u8, CK_ULONG),
    data: (*const u8, CK_ULONG),
    out: OutBuf,
) -> CK_RV {
    run(name, h, |t, s| {
        let room = out.room()?;
        // SAFETY: the caller's parameter, AAD and data (this function's contract).
        let mut g = unsafe { gcm_message(param, param_len) }?;
        // SAFETY: as above.
        let (aad, data) = unsafe { (bytes(aad.0, aad.1)?, bytes(data.0, data.1)?) };
        let o = t.aead_message(s, encrypt, &mut g.params, aad, data, room)?;
        if encrypt && matches!(o, Output::Bytes(_)) {
            g.write_back();
        }
        out.deliver(o)
    })
}

/// `C_EncryptMessage`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessage(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's buffers (PKCS#11's contract for this function).
    unsafe {
        let out = OutBuf::new(out, out_len);
        aead_once(
            "C_EncryptMessage",
            h,
            true,
            param,
            param_len,
            (aad, aad_len),
            (data, data_len),
            out,
        )
    }
}

/// `C_DecryptMessage`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessage(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: as for `C_EncryptMessage`.
    unsafe {
        let out = OutBuf::new(out, out_len);
        aead_once(
            "C_DecryptMessage",
            h,
            false,
            param,
            param_len,
            (aad, aad_len),
            (data, data_len),
            out,
        )
    }
}

/// # Safety
/// The PKCS#11 contract of `C_EncryptMessageBegin` / `C_DecryptMessageBegin`.
unsafe fn aead_begin(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    encrypt: bool,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *const u8,
    aad_len: CK_ULONG,
) -> CK_RV {
    run(name, h, |t, s| {
        // SAFETY: the caller's parameter and AAD (this function's contract).
        let g = unsafe { gcm_message(param, param_len) }?;
        // SAFETY: as above.
        let aad = unsafe { bytes(aad, aad_len) }?;
        t.aead_message_begin(s, encrypt, &g.params, aad)?;
        Ok(())
    })
}

/// # Safety
/// The PKCS#11 contract of `C_EncryptMessageNext` / `C_DecryptMessageNext`.
#[allow(clippy::too_many_arguments)]
unsafe fn aead_next(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    encrypt: bool,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: (*const u8, CK_ULONG),
    out: OutBuf,
    flags: CK_FLAGS,
) -> CK_RV {
    run(name, h, |t, s| {
        if flags & !CKF_END_OF_MESSAGE != 0 {
            return Err(BAD);
        }
        let end = flags & CKF_END_OF_MESSAGE != 0;
        let room = out.room()?;
        // SAFETY: the caller's parameter and data (this function's contract).
        let mut g = unsafe { gcm_message(param, param_len) }?;
        // SAFETY: as above.
        let data = unsafe { bytes(data.0, data.1) }?;
        let o = t.aead_message_next(s, encrypt, &mut g.params, data, end, room)?;
        if end && encrypt && matches!(o, Output::Bytes(_)) {
            g.write_back();
        }
        out.deliver(o)
    })
}

/// `C_EncryptMessageBegin`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageBegin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's buffers (PKCS#11's contract for this function).
    unsafe {
        aead_begin(
            "C_EncryptMessageBegin",
            h,
            true,
            param,
            param_len,
            aad,
            aad_len,
        )
    }
}

/// `C_DecryptMessageBegin`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageBegin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: as above.
    unsafe {
        aead_begin(
            "C_DecryptMessageBegin",
            h,
            false,
            param,
            param_len,
            aad,
            aad_len,
        )
    }
}

/// `C_EncryptMessageNext`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageNext(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> CK_RV {
    // SAFETY: the caller's buffers (PKCS#11's contract for this function).
    unsafe {
        let out = OutBuf::new(out, out_len);
        aead_next(
            "C_EncryptMessageNext",
            h,
            true,
            param,
            param_len,
            (data, data_len),
            out,
            flags,
        )
    }
}

/// `C_DecryptMessageNext`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageNext(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> CK_RV {
    // SAFETY: as above.
    unsafe {
        let out = OutBuf::new(out, out_len);
        aead_next(
            "C_DecryptMessageNext",
            h,
            false,
            param,
            param_len,
            (data, data_len),
            out,
            flags,
        )
    }
}

/// `C_MessageEncryptInit`.
#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's `CK_MECHANISM` pointer (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_MessageEncryptInit", h, mech, key, MessageKind::Encrypt)
}

/// `C_MessageDecryptInit`.
#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: as above.
    let mech = unsafe { MechPtr::new(mech) };
    init("C_MessageDecryptInit", h, mech, key, MessageKind::Decrypt)
}

/// `C_MessageSignInit`.
#[no_mangle]
pub unsafe extern "C" fn C_MessageSignInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: as above.
    let mech = unsafe { MechPtr::new(mech) };
    init("C_MessageSignInit", h, mech, key, MessageKind::Sign)
}

/// `C_MessageVerifyInit`.
#[no_mangle]
pub unsafe extern "C" fn C_MessageVerifyInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: as above.
    let mech = unsafe { MechPtr::new(mech) };
    init("C_MessageVerifyInit", h, mech, key, MessageKind::Verify)
}

/// `C_MessageEncryptFinal`.
#[no_mangle]
pub extern "C" fn C_MessageEncryptFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    fin("C_MessageEncryptFinal", h, MessageKind::Encrypt)
}

/// `C_MessageDecryptFinal`.
#[no_mangle]
pub extern "C" fn C_MessageDecryptFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    fin("C_MessageDecryptFinal", h, MessageKind::Decrypt)
}

/// `C_MessageSignFinal`.
#[no_mangle]
pub extern "C" fn C_MessageSignFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    fin("C_MessageSignFinal", h, MessageKind::Sign)
}

/// `C_MessageVerifyFinal`.
#[no_mangle]
pub extern "C" fn C_MessageVerifyFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    fin("C_MessageVerifyFinal", h, MessageKind::Verify)
}

/// Signature messages take no per-message parameter.
fn no_param(param: *mut c_void, len: CK_ULONG) -> Result<(), Rv> {
    if param.is_null() && len == 0 {
        Ok(())
    } else {
        Err(PARAM_INVALID)
    }
}

/// `C_SignMessage`.
#[no_mangle]
pub unsafe extern "C" fn C_SignMessage(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's signature buffer and length (PKCS#11).
    let out = unsafe { OutBuf::new(sig, sig_len) };
    run("C_SignMessage", h, |t, s| {
        no_param(param, param_len)?;
        let room = out.room()?;
        // SAFETY: `data` points to `data_len` bytes (PKCS#11).
        let data = unsafe { bytes(data, data_len) }?;
        out.deliver(t.sign_message(s, data, room)?)
    })
}

/// `C_VerifyMessage`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyMessage(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    run("C_VerifyMessage", h, |t, s| {
        no_param(param, param_len)?;
        // SAFETY: `data` and `sig` point to their lengths' bytes (PKCS#11).
        let (data, sig) = unsafe { (bytes(data, data_len)?, bytes(sig, sig_len)?) };
        t.verify_message(s, data, sig)?;
        Ok(())
    })
}

/// `C_SignMessageBegin`.
#[no_mangle]
pub extern "C" fn C_SignMessageBegin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
) -> CK_RV {
    run("C_SignMessageBegin", h, |t, s| {
        no_param(param, param_len)?;
        Ok(t.signature_message_begin(s, true)?)
    })
}

/// `C_VerifyMessageBegin`.
#[no_mangle]
pub extern "C" fn C_VerifyMessageBegin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
) -> CK_RV {
    run("C_VerifyMessageBegin", h, |t, s| {
        no_param(param, param_len)?;
        Ok(t.signature_message_begin(s, false)?)
    })
}

/// `C_SignMessageNext`: a NULL `pulSignatureLen` feeds a part; otherwise the part
/// is the last and the signature is returned (length protocol).
#[no_mangle]
pub unsafe extern "C" fn C_SignMessageNext(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's signature buffer and length (PKCS#11).
    let out = unsafe { OutBuf::new(sig, sig_len) };
    run("C_SignMessageNext", h, |t, s| {
        no_param(param, param_len)?;
        // SAFETY: `data` points to `data_len` bytes (PKCS#11).
        let data = unsafe { bytes(data, data_len) }?;
        if sig_len.is_null() {
            t.sign_message_next(s, data, None)?;
            return Ok(());
        }
        let room = out.room()?;
        out.deliver(t.sign_message_next(s, data, Some(room))?)
    })
}

/// `C_VerifyMessageNext`: a NULL `pSignature` feeds a part; otherwise the part is
/// the last and the signature is checked.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyMessageNext(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    run("C_VerifyMessageNext", h, |t, s| {
        no_param(param, param_len)?;
        // SAFETY: `data` and `sig` point to their lengths' bytes (PKCS#11).
        let data = unsafe { bytes(data, data_len) }?;
        let sig = if sig.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(unsafe { bytes(sig, sig_len) }?)
        };
        t.verify_message_next(s, data, sig)?;
        Ok(())
    })
}
