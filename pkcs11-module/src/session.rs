//! Session management and login: open/close, session info, login/logout, PINs
//! (SPEC T2: the PIN rules live in the core).
//!
//! Login state is per application: the core's `Token` is shared by every session
//! this process has on it, so logging in on one session logs in all of them.

use std::ffi::c_void;

use cryptoki_sys::*;
use vault_core::token::UserType;

use crate::convert::{bytes, non_null, pin};
use crate::guard::{call, Rv};
use crate::state::{self, SessionEntry};

/// `C_OpenSession`: serial sessions only; the free slot has no token to open.
#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    call("C_OpenSession", || {
        let st = state::state()?;
        non_null(session)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Rv(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let token = st.slot_token(slot)?;
        let core = token.open_session(flags & CKF_RW_SESSION != 0)?;
        let h = core.id();
        st.add_session(h as CK_SESSION_HANDLE, SessionEntry::new(slot, token, core));
        // SAFETY: `session` is not NULL (checked above) and points to a writable
        // `CK_SESSION_HANDLE` (PKCS#11).
        unsafe { *session = h as CK_SESSION_HANDLE };
        Ok(())
    })
}

/// `C_CloseSession`.
#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    call("C_CloseSession", || {
        let st = state::state()?;
        let e = st.remove_session(h).ok_or(Rv(CKR_SESSION_HANDLE_INVALID))?;
        e.token.close_session(&e.core)?;
        Ok(())
    })
}

/// `C_CloseAllSessions`: every session of this process on the slot's token.
#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    call("C_CloseAllSessions", || {
        let st = state::state()?;
        match st.slot(slot)? {
            state::Slot::Free => Ok(()),
            state::Slot::Token(e) => {
                let token = st.token(&e)?;
                st.remove_token_sessions(&token);
                token.close_all_sessions();
                Ok(())
            }
        }
    })
}

/// `C_GetSessionInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    h: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    call("C_GetSessionInfo", || {
        let st = state::state()?;
        let e = st.session(h)?;
        non_null(info)?;
        let si = e.token.session_info(&e.core)?;
        let mut flags = CKF_SERIAL_SESSION;
        if si.rw {
            flags |= CKF_RW_SESSION;
        }
        let answer = CK_SESSION_INFO {
            slotID: e.slot,
            state: si.state,
            flags,
            ulDeviceError: 0,
        };
        // SAFETY: `info` is not NULL (checked above) and points to a writable
        // `CK_SESSION_INFO` (PKCS#11).
        unsafe { *info = answer };
        Ok(())
    })
}

/// `C_GetSessionValidationFlags` (PKCS#11 3.2): no operation of this token is
/// claimed as FIPS-validated, so the flags of the last operation are always 0.
#[no_mangle]
pub unsafe extern "C" fn C_GetSessionValidationFlags(
    h: CK_SESSION_HANDLE,
    kind: CK_SESSION_VALIDATION_FLAGS_TYPE,
    flags: *mut CK_FLAGS,
) -> CK_RV {
    call("C_GetSessionValidationFlags", || {
        let st = state::state()?;
        st.session(h)?;
        non_null(flags)?;
        if kind != CKS_LAST_VALIDATION_OK {
            return Err(crate::guard::Rv(CKR_ARGUMENTS_BAD));
        }
        // SAFETY: `flags` is not NULL (checked above) and points to a writable
        // `CK_FLAGS` (PKCS#11).
        unsafe { *flags = 0 };
        Ok(())
    })
}

fn login(e: &SessionEntry, user: CK_USER_TYPE, pin: &[u8]) -> Result<(), Rv> {
    e.token.session_info(&e.core)?;
    if user == CKU_CONTEXT_SPECIFIC {
        // Also lets an operation waiting for it (CKA_ALWAYS_AUTHENTICATE key) run.
        e.token.context_login(&e.core, pin)?;
    } else {
        e.token.login(UserType::from_ck(user)?, pin)?;
    }
    Ok(())
}

/// `C_Login` with a NULL PIN: the protected authentication path (PKCS#11 3.0
/// §5.6). The token's prompt agent asks for the PIN (SPEC V6), which then logs in
/// like a typed one and is zeroized when dropped. A user who refuses or lets the
/// prompt time out cancels the login: `CKR_FUNCTION_CANCELED` (PKCS#11 3.0 §5.1:
/// it "also happens to a function that performs PIN entry through a protected
/// path"), no PIN tried and nothing counted; `CKR_PIN_INCORRECT` is kept for a
/// wrong PIN, so a client such as NSS, which asks again on it, does not ask again
/// after a refusal. A token without the path (`[prompt] login = "agent"` unset)
/// answers `CKR_ARGUMENTS_BAD`, as for any NULL PIN.
fn login_on_prompt(e: &SessionEntry, user: CK_USER_TYPE) -> Result<(), Rv> {
    e.token.session_info(&e.core)?;
    let who = UserType::from_ck(user)?;
    let pin = e
        .token
        .pin_from_prompt(who, user == CKU_CONTEXT_SPECIFIC)
        .map_err(|err| match err {
            vault_core::Error::FunctionRejected => Rv(CKR_FUNCTION_CANCELED),
            err => Rv::from(err),
        })?;
    login(e, user, pin.as_bytes())
}

/// `C_Login`. `CKU_CONTEXT_SPECIFIC` re-verifies the user PIN; a NULL PIN asks the
/// token's prompt agent when the token has a protected authentication path.
#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin_ptr: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    call("C_Login", || {
        let e = state::session(h)?;
        if pin_ptr.is_null() {
            return login_on_prompt(&e, user);
        }
        // SAFETY: `pin_ptr` is not NULL (checked above) and points to `pin_len`
        // readable bytes (PKCS#11).
        let pin = unsafe { pin(pin_ptr, pin_len) }?;
        login(&e, user, pin)
    })
}

/// `C_LoginUser` (3.0): user names are not supported by this token and ignored.
#[no_mangle]
pub unsafe extern "C" fn C_LoginUser(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin_ptr: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    username: *mut CK_UTF8CHAR,
    username_len: CK_ULONG,
) -> CK_RV {
    call("C_LoginUser", || {
        let e = state::session(h)?;
        // SAFETY: `username` is NULL with length 0 or points to `username_len`
        // readable bytes (PKCS#11); it is checked, then ignored.
        unsafe { bytes(username, username_len) }?;
        if pin_ptr.is_null() {
            return login_on_prompt(&e, user);
        }
        // SAFETY: `pin_ptr` is not NULL (checked above) and points to `pin_len`
        // readable bytes (PKCS#11).
        let pin = unsafe { pin(pin_ptr, pin_len) }?;
        login(&e, user, pin)
    })
}

/// `C_Logout`.
#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    call("C_Logout", || {
        let e = state::session(h)?;
        e.token.logout()?;
        Ok(())
    })
}

/// Fails with `CKR_SESSION_READ_ONLY` for a read-only session.
fn require_rw(e: &SessionEntry) -> Result<(), Rv> {
    if e.token.session_info(&e.core)?.rw {
        Ok(())
    } else {
        Err(Rv(CKR_SESSION_READ_ONLY))
    }
}

/// `C_InitPIN`: the SO sets the user PIN.
#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    h: CK_SESSION_HANDLE,
    pin_ptr: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    call("C_InitPIN", || {
        let e = state::session(h)?;
        require_rw(&e)?;
        // SAFETY: `pin_ptr` points to `pin_len` readable bytes (PKCS#11); `pin`
        // refuses NULL.
        let pin = unsafe { pin(pin_ptr, pin_len) }?;
        e.token.init_pin(pin)?;
        Ok(())
    })
}

/// `C_SetPIN`: changes the PIN of whoever is logged in (the user when no one is).
#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    call("C_SetPIN", || {
        let e = state::session(h)?;
        require_rw(&e)?;
        // SAFETY: `old` and `new` point to `old_len` and `new_len` readable bytes
        // (PKCS#11); `pin` refuses NULL.
        let (old, new) = unsafe { (pin(old, old_len)?, pin(new, new_len)?) };
        e.token.set_pin(old, new)?;
        Ok(())
    })
}

/// `C_SessionCancel` (3.0): ends every active operation of the session.
#[no_mangle]
pub unsafe extern "C" fn C_SessionCancel(h: CK_SESSION_HANDLE, _flags: CK_FLAGS) -> CK_RV {
    call("C_SessionCancel", || {
        let e = state::session(h)?;
        e.token.cancel(&e.core)?;
        Ok(())
    })
}
