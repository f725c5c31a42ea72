//! The frame around every exported call: panic containment, error mapping, logging.
//!
//! Each `C_*` function runs its body through [`call`]. The body returns
//! `Result<(), Rv>`; core errors convert into [`Rv`] through `?` (one CKR per core
//! error variant, see `vault_core::Error::ckr`). A panic is caught here and becomes
//! `CKR_GENERAL_ERROR`: unwinding into the host (Firefox, say) would abort it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::{CKR_GENERAL_ERROR, CKR_OK, CK_RV};

/// A PKCS#11 return value other than `CKR_OK`, as the error side of a call body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rv(pub CK_RV);

impl From<vault_core::Error> for Rv {
    fn from(e: vault_core::Error) -> Rv {
        // Core error texts never carry PINs or key material.
        tracing::debug!(error = %e, "core error");
        Rv(e.ckr())
    }
}

/// What a call body returns.
pub(crate) type CallResult = Result<(), Rv>;

/// Runs one exported function's body: catches panics, maps the result to a CK_RV
/// and logs the function name with its return value (never arguments).
pub(crate) fn call(name: &'static str, body: impl FnOnce() -> CallResult) -> CK_RV {
    let rv = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(Rv(rv))) => rv,
        Err(_) => {
            tracing::error!(
                function = name,
                "panic inside the token; returning CKR_GENERAL_ERROR"
            );
            CKR_GENERAL_ERROR
        }
    };
    tracing::debug!(rv = format_args!("0x{rv:x}"), "{name}");
    rv
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::CKR_PIN_INCORRECT;

    #[test]
    fn panics_become_general_error() {
        let rv = call("C_Test", || panic!("boom"));
        assert_eq!(rv, CKR_GENERAL_ERROR);
    }

    #[test]
    fn core_errors_map_through_ckr() {
        let rv = call("C_Test", || Err(vault_core::Error::PinIncorrect.into()));
        assert_eq!(rv, CKR_PIN_INCORRECT);
        assert_eq!(call("C_Test", || Ok(())), CKR_OK);
    }
}
