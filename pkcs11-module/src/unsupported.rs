//! Functions of the v2.40 and v3.0 lists that this token does not offer.
//!
//! They exist so every slot of the function lists is filled: operation state
//! save/restore and sign/verify with recovery answer `CKR_FUNCTION_NOT_SUPPORTED`;
//! the legacy parallel functions answer `CKR_FUNCTION_NOT_PARALLEL`.

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

refuse! {
    C_GetOperationState(_h: Session, _s: Bytes, _l: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SetOperationState(_h: Session, _s: Bytes, _l: Len, _e: Object, _a: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecoverInit(_h: Session, _m: Mech, _k: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_SignRecover(_h: Session, _d: Bytes, _dl: Len, _s: Bytes, _sl: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecoverInit(_h: Session, _m: Mech, _k: Object) => CKR_FUNCTION_NOT_SUPPORTED;
    C_VerifyRecover(_h: Session, _s: Bytes, _sl: Len, _d: Bytes, _dl: LenOut) => CKR_FUNCTION_NOT_SUPPORTED;
    C_GetFunctionStatus(_h: Session) => CKR_FUNCTION_NOT_PARALLEL;
    C_CancelFunction(_h: Session) => CKR_FUNCTION_NOT_PARALLEL;

}
