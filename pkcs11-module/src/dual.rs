//! Dual-function updates (`CKF_DUAL_CRYPTO_OPERATIONS`, PKCS#11 §5.13): one call
//! feeds a part to two active operations. The cipher runs first and owns the
//! output's length protocol; the second operation is fed only once the output is
//! delivered, so a length query or a short buffer, repeated with the same part as
//! PKCS#11 requires, feeds it exactly once.

use cryptoki_sys::*;
use vault_core::session::{Operation, OutLen, Output, SessionRef};
use vault_core::token::Token;

use crate::convert::{bytes, OutBuf};
use crate::crypto::step;
use crate::guard::{CallResult, Rv};

/// Runs `cipher` (the operation whose output reaches the caller), then `second` on
/// the part (`on_input`) or on the output (`!on_input`), once the output is delivered.
#[allow(clippy::too_many_arguments)]
fn dual<'d>(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    kind: (Operation, Operation),
    out: OutBuf,
    part: impl FnOnce() -> Result<&'d [u8], Rv>,
    cipher: impl FnOnce(&Token, &SessionRef, &[u8], OutLen) -> vault_core::Result<Output>,
    second: impl FnOnce(&Token, &SessionRef, &[u8]) -> vault_core::Result<()>,
    on_input: bool,
) -> CK_RV {
    step(name, h, kind.0, |t, s| -> CallResult {
        let part = part()?;
        let room = out.room()?;
        // Both operations must be active before either moves.
        for op in [kind.0, kind.1] {
            if !t.operation_active(s, op)? {
                return Err(Rv(CKR_OPERATION_NOT_INITIALIZED));
            }
        }
        let o = cipher(t, s, part, room)?;
        if let Output::Bytes(v) = &o {
            second(t, s, if on_input { part } else { v })?;
        }
        out.deliver(o)
    })
}

/// `C_DigestEncryptUpdate`: the part is digested and encrypted.
///
/// # Safety
/// The caller's pointers as PKCS#11 describes them.
#[no_mangle]
pub unsafe extern "C" fn C_DigestEncryptUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    enc: *mut CK_BYTE,
    enc_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `enc`/`enc_len` are the caller's output buffer and length: NULL, or a
    // writable `CK_ULONG` and `*enc_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(enc, enc_len) };
    dual(
        "C_DigestEncryptUpdate",
        h,
        (Operation::Encrypt, Operation::Digest),
        out,
        // SAFETY: `part` is NULL with length 0 or points to `part_len` readable
        // bytes for the whole call (PKCS#11); `bytes` refuses NULL with a length.
        || unsafe { bytes(part, part_len) },
        |t, s, d, o| t.encrypt_update(s, d, o),
        |t, s, d| t.digest_update(s, d),
        true,
    )
}

/// `C_DecryptDigestUpdate`: the part is decrypted and the plaintext digested.
///
/// # Safety
/// The caller's pointers as PKCS#11 describes them.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptDigestUpdate(
    h: CK_SESSION_HANDLE,
    enc: *mut CK_BYTE,
    enc_len: CK_ULONG,
    part: *mut CK_BYTE,
    part_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `part`/`part_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*part_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(part, part_len) };
    dual(
        "C_DecryptDigestUpdate",
        h,
        (Operation::Decrypt, Operation::Digest),
        out,
        // SAFETY: `enc` is NULL with length 0 or points to `enc_len` readable bytes
        // for the whole call (PKCS#11); `bytes` refuses NULL with a length.
        || unsafe { bytes(enc, enc_len) },
        |t, s, d, o| t.decrypt_update(s, d, o),
        |t, s, d| t.digest_update(s, d),
        false,
    )
}

/// `C_SignEncryptUpdate`: the part is signed (MACed) and encrypted.
///
/// # Safety
/// The caller's pointers as PKCS#11 describes them.
#[no_mangle]
pub unsafe extern "C" fn C_SignEncryptUpdate(
    h: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    enc: *mut CK_BYTE,
    enc_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `enc`/`enc_len` are the caller's output buffer and length: NULL, or a
    // writable `CK_ULONG` and `*enc_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(enc, enc_len) };
    dual(
        "C_SignEncryptUpdate",
        h,
        (Operation::Encrypt, Operation::Sign),
        out,
        // SAFETY: `part` is NULL with length 0 or points to `part_len` readable
        // bytes for the whole call (PKCS#11); `bytes` refuses NULL with a length.
        || unsafe { bytes(part, part_len) },
        |t, s, d, o| t.encrypt_update(s, d, o),
        |t, s, d| t.sign_update(s, d),
        true,
    )
}

/// `C_DecryptVerifyUpdate`: the part is decrypted and the plaintext verified.
///
/// # Safety
/// The caller's pointers as PKCS#11 describes them.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptVerifyUpdate(
    h: CK_SESSION_HANDLE,
    enc: *mut CK_BYTE,
    enc_len: CK_ULONG,
    part: *mut CK_BYTE,
    part_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `part`/`part_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*part_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(part, part_len) };
    dual(
        "C_DecryptVerifyUpdate",
        h,
        (Operation::Decrypt, Operation::Verify),
        out,
        // SAFETY: `enc` is NULL with length 0 or points to `enc_len` readable bytes
        // for the whole call (PKCS#11); `bytes` refuses NULL with a length.
        || unsafe { bytes(enc, enc_len) },
        |t, s, d, o| t.decrypt_update(s, d, o),
        |t, s, d| t.verify_update(s, d),
        false,
    )
}
