//! `CKM_VTOKEN_SEALED_ENVELOPE` (SPEC V8): `C_UnwrapKey` of a sealed envelope with
//! the token's device key. The entry here only makes the mechanism known
//! (`C_GetMechanismList`, `C_GetMechanismInfo`: unwrap, RSA 2048); the device key
//! is no PKCS#11 object, so `C_UnwrapKey` hands the call to the extension that owns
//! the key ([`crate::token::hooks::UnwrapHook`]) before any key object is looked up,
//! and this table function is never reached with a key.

use cryptoki_sys::CKF_UNWRAP;
use zeroize::Zeroizing;

use super::table::{MechEntry, Ops};
use super::{Key, Mechanism};
use crate::error::{Error, Result};
use crate::vendor::CKM_VTOKEN_SEALED_ENVELOPE;

pub(super) const ENTRIES: &[MechEntry] = &[MechEntry::new(
    CKM_VTOKEN_SEALED_ENVELOPE,
    (2048, 2048),
    CKF_UNWRAP,
    Ops {
        unwrap: Some(unwrap),
        ..Ops::NONE
    },
)];

/// Reached only with a key object: the envelope opens with the device key alone.
fn unwrap(_: &Mechanism, _: &Key, _: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    Err(Error::KeyHandleInvalid)
}
