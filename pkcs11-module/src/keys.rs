//! Key management: generate, generate pair, wrap, unwrap, derive (SPEC T4).

use cryptoki_sys::*;

use crate::convert::{bytes, mechanism, non_null, template, OutBuf};
use crate::guard::call;
use crate::state;
use vault_core::session::{OutLen, Output};

/// `C_GenerateKey`.
#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_GenerateKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(key)?;
        let id = e.token.generate_key(&e.core, &m, &t)?;
        // SAFETY: `key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *key = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_GenerateKeyPair`.
#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_tmpl: *mut CK_ATTRIBUTE,
    pub_count: CK_ULONG,
    priv_tmpl: *mut CK_ATTRIBUTE,
    priv_count: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_GenerateKeyPair", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `pub_tmpl` is NULL with `pub_count` 0 or holds `pub_count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let pt = unsafe { template(pub_tmpl, pub_count) }?;
        // SAFETY: `priv_tmpl` is NULL with `priv_count` 0 or holds `priv_count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let st = unsafe { template(priv_tmpl, priv_count) }?;
        non_null(pub_key)?;
        non_null(priv_key)?;
        let (p, s) = e.token.generate_key_pair(&e.core, &m, &pt, &st)?;
        // SAFETY: `pub_key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *pub_key = p as CK_OBJECT_HANDLE };
        // SAFETY: `priv_key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *priv_key = s as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_WrapKey`.
#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: `wrapped`/`wrapped_len` are the caller's output buffer and length:
    // NULL, or a writable `CK_ULONG` and `*wrapped_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(wrapped, wrapped_len) };
    call("C_WrapKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        let room = out.room()?;
        let output = e.token.wrap_key(&e.core, &m, wrapping, key, room)?;
        out.deliver(output)
    })
}

/// `C_UnwrapKey`.
#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_UnwrapKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `wrapped` is NULL with length 0 or points to `wrapped_len`
        // readable bytes (PKCS#11); `bytes` refuses NULL with a length.
        let w = unsafe { bytes(wrapped, wrapped_len) }?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(key)?;
        let id = e.token.unwrap_key(&e.core, &m, unwrapping, w, &t)?;
        // SAFETY: `key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *key = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_EncapsulateKey` (PKCS#11 3.2). The ciphertext follows the length protocol:
/// a NULL or short buffer gets the length and makes no key.
#[no_mangle]
pub unsafe extern "C" fn C_EncapsulateKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    public: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    ct: *mut CK_BYTE,
    ct_len: *mut CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: `ct`/`ct_len` are the caller's output buffer and length: NULL, or a
    // writable `CK_ULONG` and `*ct_len` writable bytes (PKCS#11).
    let out = unsafe { OutBuf::new(ct, ct_len) };
    call("C_EncapsulateKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        let need = e.token.encapsulated_len(&e.core, &m, public)?;
        match out.room()? {
            OutLen::Buffer(n) if n >= need => {}
            _ => return out.deliver(Output::Needed(need)),
        }
        non_null(key)?;
        let (c, id) = e.token.encapsulate_key(&e.core, &m, public, &t)?;
        out.deliver(Output::Bytes(c))?;
        // SAFETY: `key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *key = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_DecapsulateKey` (PKCS#11 3.2).
#[no_mangle]
pub unsafe extern "C" fn C_DecapsulateKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    private: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    ct: *mut CK_BYTE,
    ct_len: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_DecapsulateKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `ct` is NULL with length 0 or points to `ct_len` readable bytes
        // (PKCS#11); `bytes` refuses NULL with a length.
        let c = unsafe { bytes(ct, ct_len) }?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(key)?;
        let id = e.token.decapsulate_key(&e.core, &m, private, &t, c)?;
        // SAFETY: `key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *key = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_DeriveKey`.
#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_DeriveKey", || {
        let e = state::session(h)?;
        // SAFETY: `mech` is the caller's `CK_MECHANISM` pointer: NULL (refused) or a
        // mechanism whose parameter points to `ulParameterLen` bytes (PKCS#11).
        let m = unsafe { mechanism(mech) }?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(key)?;
        // SAFETY: `mech` was decoded above, so its parameter is readable.
        let slots = unsafe { crate::kbkdf::key_slots(mech) }?;
        let ids = match e.token.derive_keys(&e.core, &m, base, &t) {
            Ok(ids) => ids,
            Err(err) => {
                for s in &slots {
                    // SAFETY: each additional key's `phKey` is not NULL (checked
                    // when decoded) and points to a writable handle (PKCS#11).
                    unsafe { **s = CK_INVALID_HANDLE };
                }
                return Err(err.into());
            }
        };
        // SAFETY: `key` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *key = ids[0] as CK_OBJECT_HANDLE };
        for (s, id) in slots.iter().zip(&ids[1..]) {
            // SAFETY: as above, for the additional keys' handles.
            unsafe { **s = *id as CK_OBJECT_HANDLE };
        }
        Ok(())
    })
}
