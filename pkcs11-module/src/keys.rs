//! Key management: generate, generate pair, wrap, unwrap, derive.

use cryptoki_sys::*;

use crate::convert::{bytes, deliver, mechanism, non_null, out_len, template};
use crate::guard::call;
use crate::state;

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
        let m = mechanism(mech)?;
        let t = template(tmpl, count)?;
        non_null(key)?;
        *key = e.token.generate_key(h, &m, &t)? as CK_OBJECT_HANDLE;
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
        let m = mechanism(mech)?;
        let pt = template(pub_tmpl, pub_count)?;
        let st = template(priv_tmpl, priv_count)?;
        non_null(pub_key)?;
        non_null(priv_key)?;
        let (p, s) = e.token.generate_key_pair(h, &m, &pt, &st)?;
        *pub_key = p as CK_OBJECT_HANDLE;
        *priv_key = s as CK_OBJECT_HANDLE;
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
    call("C_WrapKey", || {
        let e = state::session(h)?;
        let m = mechanism(mech)?;
        let room = out_len(wrapped, wrapped_len)?;
        let out = e.token.wrap_key(h, &m, wrapping, key, room)?;
        deliver(out, wrapped, wrapped_len)
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
        let m = mechanism(mech)?;
        let w = bytes(wrapped, wrapped_len)?;
        let t = template(tmpl, count)?;
        non_null(key)?;
        *key = e.token.unwrap_key(h, &m, unwrapping, w, &t)? as CK_OBJECT_HANDLE;
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
        let m = mechanism(mech)?;
        let t = template(tmpl, count)?;
        non_null(key)?;
        *key = e.token.derive_key(h, &m, base, &t)? as CK_OBJECT_HANDLE;
        Ok(())
    })
}
