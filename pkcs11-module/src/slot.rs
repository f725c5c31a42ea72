//! Slot and token management: slot list, slot/token info, mechanisms,
//! `C_InitToken` and `C_WaitForSlotEvent` (SPEC T1).
//!
//! One slot per token file (its ID derives from the token serial), then one free
//! slot last, where `C_InitToken` creates a token. The token directory is rescanned
//! on every `C_GetSlotList`, so tokens made by other processes appear at once.

use std::ffi::c_void;
use std::time::Duration;

use cryptoki_sys::*;
use vault_core::mechanism;
use vault_core::token::{TokenInfo, MANUFACTURER, MODEL};

use crate::convert::{deliver_list, label32, non_null, padded, pin, BAD};
use crate::guard::{call, Rv};
use crate::state::{self, Slot};

const SLOT_DESCRIPTION: &str = "vtoken slot";
/// How often a blocking `C_WaitForSlotEvent` looks at the token directory.
const EVENT_POLL: Duration = Duration::from_millis(500);

/// `C_GetSlotList`: a slot per token and the free slot (whose token is blank); every
/// slot has a token present (slots are not removable devices).
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetSlotList", || {
        let st = state::state()?;
        non_null(count)?;
        let ids = st.slot_list()?;
        // SAFETY: `count` points to a readable, writable `CK_ULONG` and `list` is NULL
        // or holds `*count` writable slot IDs (PKCS#11); NULLs are checked there.
        unsafe { deliver_list(&ids, list, count) }
    })
}

/// `C_GetSlotInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    call("C_GetSlotInfo", || {
        let st = state::state()?;
        non_null(info)?;
        st.slot(slot)?;
        // Not a removable device, so a token is always present (PKCS#11 §5.5: the
        // flag never changes, and without it CKF_TOKEN_PRESENT is always set); a
        // token the gate locked says so in C_GetTokenInfo.
        let si = CK_SLOT_INFO {
            slotDescription: padded(SLOT_DESCRIPTION),
            manufacturerID: padded(MANUFACTURER),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: crate::LIBRARY_VERSION,
            firmwareVersion: crate::LIBRARY_VERSION,
        };
        // SAFETY: `info` is not NULL (checked above) and points to a writable
        // `CK_SLOT_INFO` (PKCS#11).
        unsafe { *info = si };
        Ok(())
    })
}

/// `CK_TOKEN_INFO` of a token.
///
/// # The token state (SPEC C6) in `utcTime`: a vendor use of the field
///
/// The picture gate's states have no `CKF_*` flag. What PKCS#11 has is reported
/// the standard way: `CKF_USER_PIN_INITIALIZED`, `CKF_USER_PIN_COUNT_LOW`,
/// `CKF_USER_PIN_FINAL_TRY`, `CKF_USER_PIN_LOCKED`, `CKF_USER_PIN_TO_BE_CHANGED`
/// (and the SO PIN's), and the gate's lock by refusing the call with
/// `CKR_DEVICE_REMOVED` (the key "unplugged", C5). Whether the user PIN was
/// verified in this process (`initial` / `pin-verified`, and `pin-locked`) goes in
/// `utcTime`, blank-padded ASCII: the standard gives that field a meaning only for
/// tokens that set `CKF_CLOCK_ON_TOKEN`, which this token never does, so a client
/// that follows the standard ignores it and no standard field changes meaning. A
/// vendor object would need a session and a find; this needs neither, so it also
/// works before any session exists.
fn token_info(i: &TokenInfo) -> CK_TOKEN_INFO {
    CK_TOKEN_INFO {
        label: padded(&i.label),
        manufacturerID: padded(&i.manufacturer),
        model: padded(&i.model),
        serialNumber: padded(&i.serial),
        flags: i.flags as CK_FLAGS,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: i.sessions as CK_ULONG,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: i.rw_sessions as CK_ULONG,
        ulMaxPinLen: i.max_pin_len as CK_ULONG,
        ulMinPinLen: i.min_pin_len as CK_ULONG,
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: crate::LIBRARY_VERSION,
        firmwareVersion: crate::LIBRARY_VERSION,
        utcTime: padded(i.state.as_str()),
    }
}

/// The free slot's uninitialized token.
fn free_token_info(min_pin: usize, max_pin: usize) -> CK_TOKEN_INFO {
    CK_TOKEN_INFO {
        label: [b' '; 32],
        manufacturerID: padded(MANUFACTURER),
        model: padded(MODEL),
        serialNumber: [b' '; 16],
        flags: CKF_RNG | CKF_LOGIN_REQUIRED,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: 0,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: 0,
        ulMaxPinLen: max_pin as CK_ULONG,
        ulMinPinLen: min_pin as CK_ULONG,
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: crate::LIBRARY_VERSION,
        firmwareVersion: crate::LIBRARY_VERSION,
        utcTime: [b' '; 16],
    }
}

/// `C_GetTokenInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    call("C_GetTokenInfo", || {
        let st = state::state()?;
        non_null(info)?;
        let ti = match st.slot(slot)? {
            Slot::Token(e) => {
                let t = st.token(&e)?;
                // A token the gate locked is "unplugged" until the SO reattaches it
                // (C5): its information is refused like every other call on it.
                if t.blocked()? {
                    return Err(Rv(CKR_DEVICE_REMOVED));
                }
                let mut ti = token_info(&t.info()?);
                // `[prompt] login = "agent"`: C_Login takes a NULL PIN and the
                // token's prompt agent asks (PKCS#11 3.0 §5.6; SPEC V6).
                if t.protected_login() {
                    ti.flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
                }
                ti
            }
            Slot::Free => {
                let p = st.pin_policy();
                free_token_info(p.min_len, p.max_len)
            }
        };
        // SAFETY: `info` is not NULL (checked above) and points to a writable
        // `CK_TOKEN_INFO` (PKCS#11).
        unsafe { *info = ti };
        Ok(())
    })
}

/// `C_GetMechanismList`: the same list for every slot.
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetMechanismList", || {
        let st = state::state()?;
        non_null(count)?;
        st.slot(slot)?;
        let mechs: Vec<CK_MECHANISM_TYPE> = mechanism::mechanism_list();
        // SAFETY: `count` points to a readable, writable `CK_ULONG` and `list` is NULL
        // or holds `*count` writable mechanism types (PKCS#11); NULLs are checked there.
        unsafe { deliver_list(&mechs, list, count) }
    })
}

/// `C_GetMechanismInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    ty: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    call("C_GetMechanismInfo", || {
        let st = state::state()?;
        non_null(info)?;
        st.slot(slot)?;
        let m = mechanism::mechanism_info(ty)?;
        let mi = CK_MECHANISM_INFO {
            ulMinKeySize: m.min_key_size as CK_ULONG,
            ulMaxKeySize: m.max_key_size as CK_ULONG,
            flags: m.flags,
        };
        // SAFETY: `info` is not NULL (checked above) and points to a writable
        // `CK_MECHANISM_INFO` (PKCS#11).
        unsafe { *info = mi };
        Ok(())
    })
}

/// `C_InitToken`: on the free slot creates a token (the slot keeps its ID and a
/// new free slot appears); on a token slot re-initializes it with the SO PIN.
#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    so_pin: *mut CK_UTF8CHAR,
    so_pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    call("C_InitToken", || {
        let st = state::state()?;
        // SAFETY: `so_pin` points to `so_pin_len` readable bytes (PKCS#11); `pin`
        // refuses NULL.
        let so_pin = unsafe { pin(so_pin, so_pin_len) }?;
        // SAFETY: `label` points to the 32 bytes of a blank-padded label (PKCS#11);
        // `label32` refuses NULL.
        let label = unsafe { label32(label) }?;
        match st.slot(slot)? {
            Slot::Free => st.create_token(&label, so_pin),
            Slot::Token(e) => {
                let token = st.token(&e)?;
                if st.has_sessions(&token) {
                    return Err(Rv(CKR_SESSION_EXISTS));
                }
                token.reinitialize(so_pin, &label)?;
                Ok(())
            }
        }
    })
}

/// `C_WaitForSlotEvent`: a slot whose token file appeared or disappeared since
/// the last call. `CKF_DONT_BLOCK` answers `CKR_NO_EVENT` at once; otherwise the
/// token directory is polled until a change or `C_Finalize`.
#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    call("C_WaitForSlotEvent", || {
        let st = state::state()?;
        non_null(slot)?;
        if !reserved.is_null() {
            return Err(BAD);
        }
        loop {
            if let Some(id) = st.slot_event()? {
                // SAFETY: `slot` is not NULL (checked above) and points to a writable
                // `CK_SLOT_ID` (PKCS#11).
                unsafe { *slot = id };
                return Ok(());
            }
            if flags & CKF_DONT_BLOCK != 0 {
                return Err(Rv(CKR_NO_EVENT));
            }
            std::thread::sleep(EVENT_POLL);
            if !state::is_current(&st) {
                return Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED));
            }
        }
    })
}
