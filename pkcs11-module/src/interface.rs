//! The function lists and the entry points that hand them out:
//! `C_GetFunctionList` (v2.40 list), `C_GetInterfaceList` and `C_GetInterface`
//! (two "PKCS 11" interfaces: the v3.0 list, the default, and the v2.40 list).
//!
//! These three work before `C_Initialize`, as the standard requires.

use std::ffi::{c_void, CStr};

use cryptoki_sys::*;

use crate::convert::{non_null, BAD};
use crate::crypto::*;
use crate::general::*;
use crate::guard::{call, Rv};
use crate::keys::*;
use crate::object::*;
use crate::session::*;
use crate::slot::*;
use crate::unsupported::*;

const V2_40: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
const V3_0: CK_VERSION = CK_VERSION { major: 3, minor: 0 };

/// The PKCS#11 v2.40 function list.
static FUNCTIONS_V2: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: V2_40,
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

/// The PKCS#11 v3.0 function list (its `C_GetInfo` reports Cryptoki 3.0).
static FUNCTIONS_V3: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
    version: V3_0,
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(get_info_v3),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
    C_GetInterfaceList: Some(C_GetInterfaceList),
    C_GetInterface: Some(C_GetInterface),
    C_LoginUser: Some(C_LoginUser),
    C_SessionCancel: Some(C_SessionCancel),
    C_MessageEncryptInit: Some(C_MessageEncryptInit),
    C_EncryptMessage: Some(C_EncryptMessage),
    C_EncryptMessageBegin: Some(C_EncryptMessageBegin),
    C_EncryptMessageNext: Some(C_EncryptMessageNext),
    C_MessageEncryptFinal: Some(C_MessageEncryptFinal),
    C_MessageDecryptInit: Some(C_MessageDecryptInit),
    C_DecryptMessage: Some(C_DecryptMessage),
    C_DecryptMessageBegin: Some(C_DecryptMessageBegin),
    C_DecryptMessageNext: Some(C_DecryptMessageNext),
    C_MessageDecryptFinal: Some(C_MessageDecryptFinal),
    C_MessageSignInit: Some(C_MessageSignInit),
    C_SignMessage: Some(C_SignMessage),
    C_SignMessageBegin: Some(C_SignMessageBegin),
    C_SignMessageNext: Some(C_SignMessageNext),
    C_MessageSignFinal: Some(C_MessageSignFinal),
    C_MessageVerifyInit: Some(C_MessageVerifyInit),
    C_VerifyMessage: Some(C_VerifyMessage),
    C_VerifyMessageBegin: Some(C_VerifyMessageBegin),
    C_VerifyMessageNext: Some(C_VerifyMessageNext),
    C_MessageVerifyFinal: Some(C_MessageVerifyFinal),
};

/// The interface name every PKCS#11 3.0 module offers.
const INTERFACE_NAME: &CStr = c"PKCS 11";

/// The interface table (raw pointers to the immutable statics above).
struct Interfaces([(CK_INTERFACE, CK_VERSION); 2]);

// SAFETY: the pointers point to immutable statics that are never written through.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
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
        *list = &FUNCTIONS_V2 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

/// `C_GetInterfaceList`: both interfaces, v3.0 first.
#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetInterfaceList", || {
        non_null(count)?;
        let all: Vec<CK_INTERFACE> = INTERFACES.0.iter().map(|(i, _)| *i).collect();
        crate::convert::deliver_list(&all, list, count)
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
        if !name.is_null() && CStr::from_ptr(name as *const std::ffi::c_char) != INTERFACE_NAME {
            return Err(BAD);
        }
        let want = if version.is_null() {
            None
        } else {
            Some(*version)
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
                *interface = i as *const CK_INTERFACE as *mut CK_INTERFACE;
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
    fn default_interface_is_v3() {
        let mut p: *mut CK_INTERFACE = std::ptr::null_mut();
        assert_eq!(
            unsafe { C_GetInterface(std::ptr::null_mut(), std::ptr::null_mut(), &mut p, 0) },
            CKR_OK
        );
        let list = unsafe { (*p).pFunctionList as *const CK_FUNCTION_LIST_3_0 };
        assert_eq!(unsafe { (*list).version.major }, 3);
        let mut v = V2_40;
        let mut n = *b"PKCS 11\0";
        assert_eq!(
            unsafe { C_GetInterface(n.as_mut_ptr(), &mut v, &mut p, 0) },
            CKR_OK
        );
        let list = unsafe { (*p).pFunctionList as *const CK_FUNCTION_LIST };
        assert_eq!(unsafe { (*list).version.minor }, 40);
        let mut bad = *b"Vendor\0";
        assert_eq!(
            unsafe { C_GetInterface(bad.as_mut_ptr(), &mut v, &mut p, 0) },
            CKR_ARGUMENTS_BAD
        );
    }

    #[test]
    fn interface_list_length_protocol() {
        let mut n: CK_ULONG = 0;
        assert_eq!(
            unsafe { C_GetInterfaceList(std::ptr::null_mut(), &mut n) },
            CKR_OK
        );
        assert_eq!(n, 2);
        let mut buf = [CK_INTERFACE::default(); 1];
        n = 1;
        assert_eq!(
            unsafe { C_GetInterfaceList(buf.as_mut_ptr(), &mut n) },
            CKR_BUFFER_TOO_SMALL
        );
    }
}
