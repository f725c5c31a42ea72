//! General-purpose functions: `C_Initialize`, `C_Finalize`, `C_GetInfo`.

use std::ffi::c_void;

use cryptoki_sys::*;
use vault_core::config::{init_logging, Config, LogConfig};

use crate::convert::{non_null, padded, BAD};
use crate::guard::{call, Rv};
use crate::state;

/// Library description reported by `C_GetInfo`.
const DESCRIPTION: &str = "vtoken PKCS#11 module";

/// Checks `CK_C_INITIALIZE_ARGS`: we lock with the OS, so application mutex
/// callbacks are accepted only together with `CKF_OS_LOCKING_OK`.
///
/// # Safety
/// `args` must be NULL or point to a readable `CK_C_INITIALIZE_ARGS`.
unsafe fn check_init_args(args: *const CK_C_INITIALIZE_ARGS) -> Result<(), Rv> {
    if args.is_null() {
        return Ok(());
    }
    // SAFETY: `args` is not NULL (checked above) and points to a readable
    // `CK_C_INITIALIZE_ARGS` (contract); the caller's copy may be unaligned.
    let a = unsafe { std::ptr::read_unaligned(args) };
    if !a.pReserved.is_null() {
        return Err(BAD);
    }
    let set = [
        a.CreateMutex.is_some(),
        a.DestroyMutex.is_some(),
        a.LockMutex.is_some(),
        a.UnlockMutex.is_some(),
    ];
    if set.iter().any(|&s| s) && !set.iter().all(|&s| s) {
        return Err(BAD);
    }
    if set[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
        return Err(Rv(CKR_CANT_LOCK));
    }
    Ok(())
}

/// `C_Initialize`: loads the configuration (`VTOKEN_CONF`), sets up logging and
/// the slot state.
#[no_mangle]
pub unsafe extern "C" fn C_Initialize(init_args: *mut c_void) -> CK_RV {
    call("C_Initialize", || {
        // SAFETY: `init_args` is NULL or points to a `CK_C_INITIALIZE_ARGS` (PKCS#11).
        unsafe { check_init_args(init_args as *const CK_C_INITIALIZE_ARGS) }?;
        let config = match Config::load() {
            Ok(c) => c,
            Err(e) => {
                init_logging(&LogConfig::default());
                tracing::error!(error = %e, "cannot load the vtoken configuration");
                return Err(e.into());
            }
        };
        init_logging(&config.log);
        state::initialize(config)
    })
}

/// `C_Finalize`: closes every session and token of this process.
#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    call("C_Finalize", || {
        if !reserved.is_null() {
            return Err(BAD);
        }
        state::finalize()
    })
}

/// `C_GetInfo` reporting Cryptoki `version`.
///
/// # Safety
/// `info` must be NULL or point to a writable `CK_INFO`.
unsafe fn get_info(info: *mut CK_INFO, version: CK_VERSION) -> CK_RV {
    call("C_GetInfo", || {
        state::state()?;
        non_null(info)?;
        let i = CK_INFO {
            cryptokiVersion: version,
            manufacturerID: padded(vault_core::token::MANUFACTURER),
            flags: 0,
            libraryDescription: padded(DESCRIPTION),
            libraryVersion: crate::LIBRARY_VERSION,
        };
        // SAFETY: `info` is not NULL (checked above) and writable (contract).
        unsafe { *info = i };
        Ok(())
    })
}

/// `C_GetInfo` of the v2.40 function list: reports Cryptoki 2.40.
#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    // SAFETY: `info` is NULL or points to a writable `CK_INFO` (PKCS#11).
    unsafe {
        get_info(
            info,
            CK_VERSION {
                major: 2,
                minor: 40,
            },
        )
    }
}

/// `C_GetInfo` of the v3.0 function list: reports Cryptoki 3.0.
pub(crate) unsafe extern "C" fn get_info_v3(info: *mut CK_INFO) -> CK_RV {
    // SAFETY: `info` is NULL or points to a writable `CK_INFO` (PKCS#11).
    unsafe { get_info(info, CK_VERSION { major: 3, minor: 0 }) }
}

/// `C_GetInfo` of the v3.2 function list: reports Cryptoki 3.2.
pub(crate) unsafe extern "C" fn get_info_v32(info: *mut CK_INFO) -> CK_RV {
    // SAFETY: `info` is NULL or points to a writable `CK_INFO` (PKCS#11).
    unsafe { get_info(info, CK_VERSION { major: 3, minor: 2 }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_args_rules() {
        unsafe extern "C" fn create(_: *mut *mut c_void) -> CK_RV {
            CKR_OK
        }
        unsafe extern "C" fn other(_: *mut c_void) -> CK_RV {
            CKR_OK
        }
        let mut a = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: std::ptr::null_mut(),
        };
        // SAFETY: `&a` is a live `CK_C_INITIALIZE_ARGS` (so are all below).
        assert!(unsafe { check_init_args(&a) }.is_ok());
        a.CreateMutex = Some(create);
        // SAFETY: as above.
        assert_eq!(unsafe { check_init_args(&a) }, Err(BAD));
        a.DestroyMutex = Some(other);
        a.LockMutex = Some(other);
        a.UnlockMutex = Some(other);
        // SAFETY: as above.
        assert!(unsafe { check_init_args(&a) }.is_ok());
        a.flags = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { check_init_args(&a) }, Err(Rv(CKR_CANT_LOCK)));
        a.pReserved = std::ptr::dangling_mut::<c_void>();
        // SAFETY: as above; `pReserved` is only compared with NULL.
        assert_eq!(unsafe { check_init_args(&a) }, Err(BAD));
    }
}
