//! Functions of the v2.40, v3.0 and v3.2 lists that this token does not offer.
//!
//! They exist so every slot of the function lists is filled: operation state
//! save/restore, sign/verify with recovery, and of 3.2 the asynchronous
//! functions and authenticated wrapping answer
//! `CKR_FUNCTION_NOT_SUPPORTED`; the legacy parallel functions answer
//! `CKR_FUNCTION_NOT_PARALLEL`.

use cryptoki_sys::*;

use crate::guard::{call, Rv};
use crate::state;

macro_rules! refuse {
    ($($name:ident($($arg:ident: $ty:ty),*) => $rv:expr;)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: not supported by this token.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            call(stringify!($name), || {
                state::state()?;
                Err(Rv($rv))
            })
        }
    )*};
}

type Session = CK_SESSION_HANDLE;
type Bytes = *mut CK_BYTE;
type Len = CK_ULONG;
type LenOut = *mut CK_ULONG;
type Mech = *mut CK_MECHANISM;
type Object = CK_OBJECT_HANDLE;
type ObjectOut = *mut CK_OBJECT_HANDLE;
type Template = *mut CK_ATTRIBUTE;
type Name = *mut CK_UTF8CHAR;

refuse! {
    C_GetOperationState(_h: Session, _s: Bytes, _l: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SetOperationState(_h: Session, _s: Bytes, _l: Len, _e: Object, _a: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecoverInit(_h: Session, _m: Mech, _k: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecover(_h: Session, _d: Bytes, _dl: Len, _s: Bytes, _sl: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecoverInit(_h: Session, _m: Mech, _k: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecover(_h: Session, _s: Bytes, _sl: Len, _d: Bytes, _dl: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_GetFunctionStatus(_h: Session) => CKR_FUNCTION_NOT_PARALLEL;
    C_CancelFunction(_h: Session) => CKR_FUNCTION_NOT_PARALLEL;
    C_AsyncComplete(_h: Session, _f: Name, _r: *mut CK_ASYNC_DATA) => CKR_FUNCTION_NOT_SUPPORTED;
    C_AsyncGetID(_h: Session, _f: Name, _i: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_AsyncJoin(_h: Session, _f: Name, _i: Len, _d: Bytes, _l: Len) => CKR_FUNCTION_NOT_SUPPORTED;
    C_WrapKeyAuthenticated(_h: Session, _m: Mech, _w: Object, _k: Object, _a: Bytes, _al: Len, _o: Bytes, _ol: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_UnwrapKeyAuthenticated(_h: Session, _m: Mech, _u: Object, _w: Bytes, _wl: Len, _t: Template, _n: Len, _a: Bytes, _al: Len, _o: ObjectOut) => CKR_FUNCTION_NOT_SUPPORTED;

}
