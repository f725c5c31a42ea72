//! `CKM_VTOKEN_SEALED_ENVELOPE` (SPEC V8 through PKCS#11): `C_UnwrapKey` opens a
//! sealed envelope — a CMS envelope to the device certificate or data encrypted
//! directly to the device key, both delivery options — with the token's device
//! key ([`Token::open_sealed`]) and the kernel stores the plaintext as the object
//! the template describes: `CKO_DATA` (made as `C_CreateObject` makes it, so a
//! vault entry is shown and confirmed, V5) or `CKO_SECRET_KEY`.
//!
//! The device key has no object handle (it lives outside the object space,
//! [`super::identity`]), so the unwrapping key handle must be `CK_INVALID_HANDLE`;
//! any other handle is `CKR_KEY_HANDLE_INVALID`. The user must be
//! logged in. An envelope sealed to another token, or changed on its way, fails
//! to open (`CKR_WRAPPED_KEY_INVALID`) and nothing is stored.

use cryptoki_sys::CK_MECHANISM_TYPE;
use tracing::warn;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::token::hooks::UnwrapHook;
use crate::token::{Token, UserType};
use crate::vendor::CKM_VTOKEN_SEALED_ENVELOPE;

/// The unwrap hook of [`CKM_VTOKEN_SEALED_ENVELOPE`].
pub struct SealedEnvelopeUnwrap;

impl UnwrapHook for SealedEnvelopeUnwrap {
    fn mechanism(&self) -> CK_MECHANISM_TYPE {
        CKM_VTOKEN_SEALED_ENVELOPE
    }

    fn unwrap(&self, t: &Token, unwrapping: u64, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if unwrapping != 0 {
            warn!(serial = %t.serial(), unwrapping,
                  "sealed-envelope unwrap names a key object; the device key has none (use CK_INVALID_HANDLE)");
            return Err(Error::KeyHandleInvalid);
        }
        if t.logged_in() != Some(UserType::User) {
            return Err(Error::UserNotLoggedIn);
        }
        t.open_sealed(wrapped).map_err(|e| match e {
            // Not for this token, or changed on its way: the wrapped data is bad.
            Error::Envelope(_) => {
                warn!(serial = %t.serial(), error = %e, "sealed envelope refused");
                Error::WrappedKeyInvalid
            }
            e => e,
        })
    }
}
