//! Cryptographic operations: encrypt, decrypt, digest, sign, verify, random
//! (SPEC T4).
//!
//! Each call finds the session's token (locks released), then runs the operation
//! under the core's per-session lock only, so sessions work in parallel. Output
//! follows the PKCS#11 length protocol (see `convert::deliver`).

use cryptoki_sys::*;
use vault_core::session::{Filled, Operation, OutLen, Output, SessionRef};
use vault_core::token::Token;

use crate::convert::{bytes, MechPtr, OutBuf, BAD};
use crate::guard::{call, CallResult, Rv};
use crate::state;

/// Runs a step of the active operation `kind` that produces output into the
/// caller's buffer `out`.
fn produce(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    kind: Operation,
    out: OutBuf,
    op: impl FnOnce(&Token, &SessionRef, OutLen) -> Result<Output, Rv>,
) -> CK_RV {
    step(name, h, kind, |t, s| {
        let room = out.room()?;
        let output = op(t, s, room)?;
        out.deliver(output)
    })
}

/// Runs a step of the active operation `kind`. A call refused for its arguments
/// (`CKR_ARGUMENTS_BAD`, decided here before the token sees it) ends the
/// operation, as every other failure but a short buffer does in the token.
pub(crate) fn step(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    kind: Operation,
    body: impl FnOnce(&Token, &SessionRef) -> CallResult,
) -> CK_RV {
    call(name, || {
        let e = state::session(h)?;
        let r = body(&e.token, &e.core);
        if r == Err(BAD) {
            e.token.end_operation(&e.core, kind)?;
        }
        r
    })
}

/// Runs a single-part encryption or decryption: straight into the caller's buffer
/// when it is given and apart from the input, else through the length protocol.
fn produce_once<'d>(
    h: CK_SESSION_HANDLE,
    kind: Operation,
    mut out: OutBuf,
    data: impl FnOnce() -> Result<&'d [u8], Rv>,
    into: impl FnOnce(&Token, &SessionRef, &[u8], Option<&mut [u8]>) -> vault_core::Result<Filled>,
    copying: impl FnOnce(&Token, &SessionRef, &[u8], OutLen) -> vault_core::Result<Output>,
) -> CallResult {
    // Checked in the order of every other output call: session, length, input.
    let e = state::session(h)?;
    let r = (|| {
        let room = out.room()?;
        let data = data()?;
        if let Some(buf) = out.apart_from(data) {
            let f = into(&e.token, &e.core, data, Some(buf))?;
            return out.filled(f);
        }
        let output = copying(&e.token, &e.core, data, room)?;
        out.deliver(output)
    })();
    if r == Err(BAD) {
        e.token.end_operation(&e.core, kind)?;
    }
    r
}

/// Runs an operation without output.
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

/// Runs an `*Init` call: decodes the mechanism, then `op`.
fn init(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    mech: MechPtr,
    op: impl FnOnce(&Token, &SessionRef, &vault_core::mechanism::Mechanism) -> vault_core::Result<()>,
) -> CK_RV {
    call(name, || {
        let e = state::session(h)?;
        let m = mech.decode()?;
        op(&e.token, &e.core, &m)?;
        Ok(())
    })
}

// ---------------------------------------------------------------- encryption

/// `C_EncryptInit`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_EncryptInit", h, mech, |t, s, m| {
        t.encrypt_init(s, m, key)
    })
}

/// `C_Encrypt`.
#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    call("C_Encrypt", || {
        produce_once(
            h,
            Operation::Encrypt,
            out,
            // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
            // bytes (PKCS#11); `bytes` refuses NULL with a length.
            || unsafe { bytes(data, data_len) },
            |t, s, d, o| t.encrypt_into(s, d, o),
            |t, s, d, o| t.encrypt(s, d, o),
        )
    })
}

/// `C_EncryptUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_EncryptUpdate", h, Operation::Encrypt, out, |t, s, o| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        Ok(t.encrypt_update(s, data, o)?)
    })
}

/// `C_EncryptFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_EncryptFinal", h, Operation::Encrypt, out, |t, s, o| {
        Ok(t.encrypt_final(s, o)?)
    })
}

/// `C_DecryptInit`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_DecryptInit", h, mech, |t, s, m| {
        t.decrypt_init(s, m, key)
    })
}

/// `C_Decrypt`.
#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    call("C_Decrypt", || {
        produce_once(
            h,
            Operation::Decrypt,
            out,
            // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
            // bytes (PKCS#11); `bytes` refuses NULL with a length.
            || unsafe { bytes(data, data_len) },
            |t, s, d, o| t.decrypt_into(s, d, o),
            |t, s, d, o| t.decrypt(s, d, o),
        )
    })
}

/// `C_DecryptUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_DecryptUpdate", h, Operation::Decrypt, out, |t, s, o| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        Ok(t.decrypt_update(s, data, o)?)
    })
}

/// `C_DecryptFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_DecryptFinal", h, Operation::Decrypt, out, |t, s, o| {
        Ok(t.decrypt_final(s, o)?)
    })
}

// ---------------------------------------------------------------- digests

/// `C_DigestInit`.
#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_DigestInit", h, mech, |t, s, m| t.digest_init(s, m))
}

/// `C_Digest`.
#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_Digest", h, Operation::Digest, out, |t, s, o| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        Ok(t.digest(s, data, o)?)
    })
}

/// `C_DigestUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    step("C_DigestUpdate", h, Operation::Digest, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        t.digest_update(s, data)?;
        Ok(())
    })
}

/// `C_DigestKey`.
#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    step("C_DigestKey", h, Operation::Digest, |t, s| {
        t.digest_key(s, key)?;
        Ok(())
    })
}

/// `C_DigestFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `out`/`out_len` are the caller's output buffer and length: NULL, or
    // a writable `CK_ULONG` and `*out_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(out, out_len) };
    produce("C_DigestFinal", h, Operation::Digest, out, |t, s, o| {
        Ok(t.digest_final(s, o)?)
    })
}

// ---------------------------------------------------------------- signatures and MACs

/// `C_SignInit`.
#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_SignInit", h, mech, |t, s, m| t.sign_init(s, m, key))
}

/// `C_Sign`.
#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `sig`/`sig_len` are the caller's signature buffer and length: NULL, or
    // a writable `CK_ULONG` and `*sig_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(sig, sig_len) };
    produce("C_Sign", h, Operation::Sign, out, |t, s, o| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        Ok(t.sign(s, data, o)?)
    })
}

/// `C_SignUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    step("C_SignUpdate", h, Operation::Sign, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        t.sign_update(s, data)?;
        Ok(())
    })
}

/// `C_SignFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `sig`/`sig_len` are the caller's signature buffer and length: NULL, or
    // a writable `CK_ULONG` and `*sig_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(sig, sig_len) };
    produce("C_SignFinal", h, Operation::Sign, out, |t, s, o| {
        Ok(t.sign_final(s, o)?)
    })
}

/// `C_VerifyInit`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    init("C_VerifyInit", h, mech, |t, s, m| t.verify_init(s, m, key))
}

/// `C_Verify`.
#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    step("C_Verify", h, Operation::Verify, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        // SAFETY: `sig` is NULL with length 0 or points to `sig_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let sig = unsafe { bytes(sig, sig_len) }?;
        t.verify(s, data, sig)?;
        Ok(())
    })
}

/// `C_VerifyUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    step("C_VerifyUpdate", h, Operation::Verify, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        t.verify_update(s, data)?;
        Ok(())
    })
}

/// `C_VerifyFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    h: CK_SESSION_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    step("C_VerifyFinal", h, Operation::Verify, |t, s| {
        // SAFETY: `sig` is NULL with length 0 or points to `sig_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let sig = unsafe { bytes(sig, sig_len) }?;
        t.verify_final(s, sig)?;
        Ok(())
    })
}

/// `C_VerifySignatureInit` (PKCS#11 3.2): the signature is given first.
#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureInit(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
    // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
    let mech = unsafe { MechPtr::new(mech) };
    call("C_VerifySignatureInit", || {
        let e = state::session(h)?;
        // SAFETY: `sig` is NULL with length 0 or points to `sig_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let sig = unsafe { bytes(sig, sig_len) }?;
        let m = mech.decode()?;
        e.token.verify_signature_init(&e.core, &m, key, sig)?;
        Ok(())
    })
}

/// `C_VerifySignature` (PKCS#11 3.2).
#[no_mangle]
pub unsafe extern "C" fn C_VerifySignature(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    step("C_VerifySignature", h, Operation::Verify, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        t.verify_signature(s, data)?;
        Ok(())
    })
}

/// `C_VerifySignatureUpdate` (PKCS#11 3.2).
#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureUpdate(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    step("C_VerifySignatureUpdate", h, Operation::Verify, |t, s| {
        // SAFETY: `data` is NULL with length 0 or points to `data_len` readable
        // bytes (PKCS#11); `bytes` refuses NULL with a length.
        let data = unsafe { bytes(data, data_len) }?;
        t.verify_signature_update(s, data)?;
        Ok(())
    })
}

/// `C_VerifySignatureFinal` (PKCS#11 3.2).
#[no_mangle]
pub unsafe extern "C" fn C_VerifySignatureFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    step("C_VerifySignatureFinal", h, Operation::Verify, |t, s| {
        t.verify_signature_final(s)?;
        Ok(())
    })
}

// ---------------------------------------------------------------- random

/// `C_SeedRandom`: accepted and ignored, as SoftHSM does. Random bytes come from
/// the operating system's CSPRNG, which seeds itself; clients (the `cryptoki`
/// crate's suite, `pkcs11-tool --test`) expect `CKR_OK` here.
#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    h: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    seed_len: CK_ULONG,
) -> CK_RV {
    run("C_SeedRandom", h, |_, _| {
        // SAFETY: `seed` is NULL with length 0 or points to `seed_len` readable
        // bytes (PKCS#11); it is checked, then ignored.
        unsafe { bytes(seed, seed_len) }?;
        Ok(())
    })
}

/// `C_GenerateRandom`: bytes from the operating system's CSPRNG.
#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    run("C_GenerateRandom", h, |_, _| {
        if len == 0 {
            return Ok(());
        }
        if out.is_null() {
            return Err(BAD);
        }
        // SAFETY: `out` is not NULL (checked above) and points to `len` writable
        // bytes that nothing else uses during the call (PKCS#11).
        let buf = unsafe { std::slice::from_raw_parts_mut(out, len as usize) };
        vault_core::mechanism::random(buf)?;
        Ok(())
    })
}
