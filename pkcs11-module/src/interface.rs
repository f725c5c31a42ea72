//! The function lists and the entry points that hand them out:
//! `C_GetFunctionList` (v2.40 list), `C_GetInterfaceList` and `C_GetInterface`
//! (three "PKCS 11" interfaces: the v3.2 list, the default, the v3.0 list and the
//! v2.40 list), as SPEC T5 asks. The 3.2 list is the 3.0 list with 3.2's functions
//! appended, so a host that reads it as 3.0 reads the same functions.
//!
//! These three work before `C_Initialize`, as the standard requires.

use std::ffi::{c_void, CStr};

use cryptoki_sys::*;

use crate::convert::{non_null, BAD};
use crate::crypto::*;
use crate::dual::*;
use crate::general::*;
use crate::guard::{call, Rv};
use crate::keys::*;
use crate::message::*;
use crate::object::*;
use crate::session::*;
use crate::slot::*;
use crate::unsupported::*;

const V2_40: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
const V3_0: CK_VERSION = CK_VERSION { major: 3, minor: 0 };
const V3_2: CK_VERSION = CK_VERSION { major: 3, minor: 2 };

/// Builds the three function lists from one list of names, so they cannot drift:
/// `both` fills the v2.40 `CK_FUNCTION_LIST` and the same fields of the v3.0
/// `CK_FUNCTION_LIST_3_0` and v3.2 `CK_FUNCTION_LIST_3_2` (a name with `(v3: f,
/// v32: g)` puts `f` in the 3.0 list and `g` in the 3.2 list instead), `v3_only`
/// fills the fields that exist from 3.0 on, `v32_only` those of 3.2. Each field holds the
/// adapter's own address: a host calls the `extern "C"` function directly, as it
/// calls the exported symbol. Neither literal has a `..` default, so the compiler
/// refuses a list that leaves a field out.
macro_rules! function_lists {
    (
        both: [$($f:ident $((v3: $f3:ident, v32: $f32:ident))?),* $(,)?],
        v3_only: [$($g:ident),* $(,)?],
        v32_only: [$($k:ident),* $(,)?] $(,)?
    ) => {
        /// The PKCS#11 v2.40 function list.
        static FUNCTIONS_V2: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
            version: V2_40,
            $($f: Some($f),)*
        };

        /// The PKCS#11 v3.0 function list.
        static FUNCTIONS_V3: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
            version: V3_0,
            $($f: Some(v3_entry!($f $(, $f3)?)),)*
            $($g: Some($g),)*
        };

        /// The PKCS#11 v3.2 function list.
        static FUNCTIONS_V32: CK_FUNCTION_LIST_3_2 = CK_FUNCTION_LIST_3_2 {
            version: V3_2,
            $($f: Some(v3_entry!($f $(, $f32)?)),)*
            $($g: Some($g),)*
            $($k: Some($k),)*
        };
    };
}

/// The 3.0 list's function for a field of both lists: the shared one unless
/// `function_lists!` names another.
macro_rules! v3_entry {
    ($f:ident) => {
        $f
    };
    ($f:ident, $f3:ident) => {
        $f3
    };
}

function_lists! {
    both: [
        C_Initialize,
        C_Finalize,
        // The 3.0 list's `C_GetInfo` reports Cryptoki 3.0.
        C_GetInfo (v3: get_info_v3, v32: get_info_v32),
        C_GetFunctionList,
        C_GetSlotList,
        C_GetSlotInfo,
        C_GetTokenInfo,
        C_GetMechanismList,
        C_GetMechanismInfo,
        C_InitToken,
        C_InitPIN,
        C_SetPIN,
        C_OpenSession,
        C_CloseSession,
        C_CloseAllSessions,
        C_GetSessionInfo,
        C_GetOperationState,
        C_SetOperationState,
        C_Login,
        C_Logout,
        C_CreateObject,
        C_CopyObject,
        C_DestroyObject,
        C_GetObjectSize,
        C_GetAttributeValue,
        C_SetAttributeValue,
        C_FindObjectsInit,
        C_FindObjects,
        C_FindObjectsFinal,
        C_EncryptInit,
        C_Encrypt,
        C_EncryptUpdate,
        C_EncryptFinal,
        C_DecryptInit,
        C_Decrypt,
        C_DecryptUpdate,
        C_DecryptFinal,
        C_DigestInit,
        C_Digest,
        C_DigestUpdate,
        C_DigestKey,
        C_DigestFinal,
        C_SignInit,
        C_Sign,
        C_SignUpdate,
        C_SignFinal,
        C_SignRecoverInit,
        C_SignRecover,
        C_VerifyInit,
        C_Verify,
        C_VerifyUpdate,
        C_VerifyFinal,
        C_VerifyRecoverInit,
        C_VerifyRecover,
        C_DigestEncryptUpdate,
        C_DecryptDigestUpdate,
        C_SignEncryptUpdate,
        C_DecryptVerifyUpdate,
        C_GenerateKey,
        C_GenerateKeyPair,
        C_WrapKey,
        C_UnwrapKey,
        C_DeriveKey,
        C_SeedRandom,
        C_GenerateRandom,
        C_GetFunctionStatus,
        C_CancelFunction,
        C_WaitForSlotEvent,
    ],
    v3_only: [
        C_GetInterfaceList,
        C_GetInterface,
        C_LoginUser,
        C_SessionCancel,
        C_MessageEncryptInit,
        C_EncryptMessage,
        C_EncryptMessageBegin,
        C_EncryptMessageNext,
        C_MessageEncryptFinal,
        C_MessageDecryptInit,
        C_DecryptMessage,
        C_DecryptMessageBegin,
        C_DecryptMessageNext,
        C_MessageDecryptFinal,
        C_MessageSignInit,
        C_SignMessage,
        C_SignMessageBegin,
        C_SignMessageNext,
        C_MessageSignFinal,
        C_MessageVerifyInit,
        C_VerifyMessage,
        C_VerifyMessageBegin,
        C_VerifyMessageNext,
        C_MessageVerifyFinal,
    ],
    v32_only: [
        C_EncapsulateKey,
        C_DecapsulateKey,
        C_VerifySignatureInit,
        C_VerifySignature,
        C_VerifySignatureUpdate,
        C_VerifySignatureFinal,
        C_GetSessionValidationFlags,
        C_AsyncComplete,
        C_AsyncGetID,
        C_AsyncJoin,
        C_WrapKeyAuthenticated,
        C_UnwrapKeyAuthenticated,
    ],
}

/// The interface name every PKCS#11 3.0 module offers.
const INTERFACE_NAME: &CStr = c"PKCS 11";

/// The interface table (raw pointers to the immutable statics above).
struct Interfaces([(CK_INTERFACE, CK_VERSION); 3]);

// SAFETY: the raw pointers point to the immutable statics `INTERFACE_NAME`,
// `FUNCTIONS_V32`, `FUNCTIONS_V3` and `FUNCTIONS_V2`, which live for the whole program and are
// never written through (PKCS#11 hosts only read interfaces), so sharing them
// between threads shares read-only data.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
    (
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTIONS_V32 as *const CK_FUNCTION_LIST_3_2 as *mut c_void,
            flags: 0,
        },
        V3_2,
    ),
    (
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTIONS_V3 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
            flags: 0,
        },
        V3_0,
    ),
    (
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTIONS_V2 as *const CK_FUNCTION_LIST as *mut c_void,
            flags: 0,
        },
        V2_40,
    ),
]);

/// `C_GetFunctionList`: the v2.40 list.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    call("C_GetFunctionList", || {
        non_null(list)?;
        // SAFETY: `list` is not NULL (checked above) and points to a writable
        // `CK_FUNCTION_LIST_PTR` (PKCS#11); the list itself is a static.
        unsafe { *list = &FUNCTIONS_V2 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST };
        Ok(())
    })
}

/// `C_GetInterfaceList`: the three interfaces, newest first.
#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetInterfaceList", || {
        non_null(count)?;
        let all: Vec<CK_INTERFACE> = INTERFACES.0.iter().map(|(i, _)| *i).collect();
        // SAFETY: `count` points to a readable, writable `CK_ULONG` (checked not NULL
        // above) and `list` is NULL or holds `*count` writable interfaces (PKCS#11).
        unsafe { crate::convert::deliver_list(&all, list, count) }
    })
}

/// `C_GetInterface`: by name (NULL: "PKCS 11"), version (NULL: the newest) and
/// flags; no match is `CKR_ARGUMENTS_BAD`.
#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    call("C_GetInterface", || {
        non_null(interface)?;
        if !name.is_null() {
            // SAFETY: `name` is not NULL (checked above) and points to a NUL-terminated
            // string (PKCS#11: `pInterfaceName` is a C string).
            let name = unsafe { CStr::from_ptr(name as *const std::ffi::c_char) };
            if name != INTERFACE_NAME {
                return Err(BAD);
            }
        }
        let want = if version.is_null() {
            None
        } else {
            // SAFETY: `version` is not NULL (checked above) and points to a readable
            // `CK_VERSION` (PKCS#11).
            Some(unsafe { *version })
        };
        let found = INTERFACES.0.iter().find(|(i, v)| {
            let version_ok = match want {
                Some(w) => w.major == v.major && w.minor == v.minor,
                None => true,
            };
            version_ok && i.flags & flags == flags
        });
        match found {
            Some((i, _)) => {
                // SAFETY: `interface` is not NULL (checked above) and points to a
                // writable `CK_INTERFACE_PTR` (PKCS#11); `i` is inside a static.
                unsafe { *interface = i as *const CK_INTERFACE as *mut CK_INTERFACE };
                Ok(())
            }
            None => Err(Rv(CKR_ARGUMENTS_BAD)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_interface_is_v3_2() {
        let mut p: *mut CK_INTERFACE = std::ptr::null_mut();
        let mut v = V2_40;
        let mut n = *b"PKCS 11\0";
        let mut bad = *b"Vendor\0";
        // SAFETY: every pointer passed is a live local (names NUL-terminated); `p` is
        // read only after `CKR_OK` set it to one of the static interfaces.
        unsafe {
            assert_eq!(
                C_GetInterface(std::ptr::null_mut(), std::ptr::null_mut(), &mut p, 0),
                CKR_OK
            );
            let list = (*p).pFunctionList as *const CK_FUNCTION_LIST_3_2;
            assert_eq!(((*list).version.major, (*list).version.minor), (3, 2));
            assert!((*list).C_VerifySignature.is_some());
            let mut v30 = V3_0;
            assert_eq!(C_GetInterface(n.as_mut_ptr(), &mut v30, &mut p, 0), CKR_OK);
            let list = (*p).pFunctionList as *const CK_FUNCTION_LIST_3_0;
            assert_eq!(((*list).version.major, (*list).version.minor), (3, 0));
            assert_eq!(C_GetInterface(n.as_mut_ptr(), &mut v, &mut p, 0), CKR_OK);
            let list = (*p).pFunctionList as *const CK_FUNCTION_LIST;
            assert_eq!((*list).version.minor, 40);
            assert_eq!(
                C_GetInterface(bad.as_mut_ptr(), &mut v, &mut p, 0),
                CKR_ARGUMENTS_BAD
            );
        }
    }

    #[test]
    fn interface_list_length_protocol() {
        let mut n: CK_ULONG = 0;
        // SAFETY: a NULL list with a live count is a length query.
        let rv = unsafe { C_GetInterfaceList(std::ptr::null_mut(), &mut n) };
        assert_eq!((rv, n), (CKR_OK, 3));
        let mut buf = [CK_INTERFACE::default(); 1];
        n = 1;
        // SAFETY: `buf` holds the 1 interface `n` says.
        let rv = unsafe { C_GetInterfaceList(buf.as_mut_ptr(), &mut n) };
        assert_eq!(rv, CKR_BUFFER_TOO_SMALL);
    }

    #[test]
    fn lists_share_their_functions() {
        // The lists hold the adapters themselves, the same in both but `C_GetInfo`.
        let (v2, v3, v32) = (&FUNCTIONS_V2, &FUNCTIONS_V3, &FUNCTIONS_V32);
        let sign: unsafe extern "C" fn(_, _, _, _, _) -> CK_RV = C_Sign;
        assert_eq!(v2.C_Sign.map(|f| f as usize), Some(sign as usize));
        assert_eq!(v3.C_Sign.map(|f| f as usize), Some(sign as usize));
        assert_eq!(v32.C_Sign.map(|f| f as usize), Some(sign as usize));
        let info_v32: unsafe extern "C" fn(_) -> CK_RV = get_info_v32;
        assert_eq!(v32.C_GetInfo.map(|f| f as usize), Some(info_v32 as usize));
        let info_v2: unsafe extern "C" fn(_) -> CK_RV = C_GetInfo;
        let info_v3: unsafe extern "C" fn(_) -> CK_RV = get_info_v3;
        assert_eq!(v2.C_GetInfo.map(|f| f as usize), Some(info_v2 as usize));
        assert_eq!(v3.C_GetInfo.map(|f| f as usize), Some(info_v3 as usize));
    }
}
