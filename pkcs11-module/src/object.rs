//! Object management: create, copy, destroy, attributes, size, search (SPEC T3:
//! the attribute rules live in the core).
//!
//! Object handles are the core's object ids unchanged.

use cryptoki_sys::*;
use vault_core::session::AttrResult;

use crate::convert::{attr_slice, non_null, template, BAD};
use crate::guard::{call, Rv};
use crate::state;

/// `C_CreateObject`.
#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    h: CK_SESSION_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_CreateObject", || {
        let e = state::session(h)?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(object)?;
        let id = e.token.create_object(&e.core, &t)?;
        // SAFETY: `object` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *object = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_CopyObject`.
#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    h: CK_SESSION_HANDLE,
    source: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_CopyObject", || {
        let e = state::session(h)?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        non_null(object)?;
        let id = e.token.copy_object(&e.core, source, &t)?;
        // SAFETY: `object` is not NULL (checked above) and points to a writable
        // `CK_OBJECT_HANDLE` (PKCS#11).
        unsafe { *object = id as CK_OBJECT_HANDLE };
        Ok(())
    })
}

/// `C_DestroyObject`.
#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    call("C_DestroyObject", || {
        let e = state::session(h)?;
        e.token.destroy_object(&e.core, object)?;
        Ok(())
    })
}

/// `C_GetObjectSize`.
#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetObjectSize", || {
        let e = state::session(h)?;
        non_null(size)?;
        let n = e.token.object_size(&e.core, object)?;
        // SAFETY: `size` is not NULL (checked above) and points to a writable
        // `CK_ULONG` (PKCS#11).
        unsafe { *size = n as CK_ULONG };
        Ok(())
    })
}

/// Fills one caller attribute from the core's answer; returns its error, if any.
///
/// # Safety
/// `a.pValue` must be NULL or point to `a.ulValueLen` writable bytes.
unsafe fn fill(a: &mut CK_ATTRIBUTE, r: AttrResult) -> Option<CK_RV> {
    match r {
        AttrResult::Sensitive => {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            Some(CKR_ATTRIBUTE_SENSITIVE)
        }
        AttrResult::TypeInvalid => {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            Some(CKR_ATTRIBUTE_TYPE_INVALID)
        }
        AttrResult::Value(v) => {
            if a.pValue.is_null() {
                a.ulValueLen = v.len() as CK_ULONG;
                None
            } else if (a.ulValueLen as usize) < v.len() {
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                Some(CKR_BUFFER_TOO_SMALL)
            } else {
                // SAFETY: `pValue` is not NULL and holds `ulValueLen >= v.len()` writable
                // bytes (checked above; this function's contract); `v` is the core's
                // fresh vector, so the two cannot overlap.
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len()) };
                a.ulValueLen = v.len() as CK_ULONG;
                None
            }
        }
    }
}

/// `C_GetAttributeValue`: every attribute is processed; the first problem found
/// (sensitive, invalid type, short buffer) is the return value.
#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    call("C_GetAttributeValue", || {
        let e = state::session(h)?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes that the
        // caller leaves to us for the call (PKCS#11); the values are written below.
        let attrs = unsafe { attr_slice(tmpl, count) }?;
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let results = e.token.get_attributes(&e.core, object, &types)?;
        if results.len() != attrs.len() {
            return Err(Rv(CKR_GENERAL_ERROR));
        }
        let mut rv = None;
        for (a, r) in attrs.iter_mut().zip(results) {
            // SAFETY: each `pValue` of the caller's template is NULL or points to
            // `ulValueLen` writable bytes (PKCS#11).
            let err = unsafe { fill(a, r) };
            rv = rv.or(err);
        }
        match rv {
            Some(rv) => Err(Rv(rv)),
            None => Ok(()),
        }
    })
}

/// `C_SetAttributeValue`.
#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    call("C_SetAttributeValue", || {
        let e = state::session(h)?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        e.token.set_attributes(&e.core, object, &t)?;
        Ok(())
    })
}

/// `C_FindObjectsInit`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    h: CK_SESSION_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    call("C_FindObjectsInit", || {
        let e = state::session(h)?;
        // SAFETY: `tmpl` is NULL with `count` 0 or holds `count` attributes, each
        // value pointing to `ulValueLen` bytes (PKCS#11); `template` copies them.
        let t = unsafe { template(tmpl, count) }?;
        e.token.find_init(&e.core, &t)?;
        Ok(())
    })
}

/// `C_FindObjects`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    found: *mut CK_ULONG,
) -> CK_RV {
    call("C_FindObjects", || {
        let e = state::session(h)?;
        non_null(found)?;
        if objects.is_null() && max > 0 {
            return Err(BAD);
        }
        let ids = e.token.find_next(&e.core, max as usize)?;
        // `find_next` returns at most `max` handles; the bound is enforced here too,
        // so the writes below stay inside the caller's array whatever the core does.
        let ids = &ids[..ids.len().min(max as usize)];
        for (i, id) in ids.iter().enumerate() {
            // SAFETY: `i < ids.len() <= max`, so `max > 0` and `objects` is not NULL
            // (checked above); it holds `max` writable handles (PKCS#11).
            unsafe { *objects.add(i) = *id as CK_OBJECT_HANDLE };
        }
        // SAFETY: `found` is not NULL (checked above) and points to a writable
        // `CK_ULONG` (PKCS#11).
        unsafe { *found = ids.len() as CK_ULONG };
        Ok(())
    })
}

/// `C_FindObjectsFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    call("C_FindObjectsFinal", || {
        let e = state::session(h)?;
        e.token.find_final(&e.core)?;
        Ok(())
    })
}
