//! PKCS#11 through `cryptoki` (real `dlopen` of `libvtoken_pkcs11.so`): library
//! init/finalize, info, interfaces, slots and tokens, mechanisms, PINs, sessions.
mod pkcs11_common;

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{SessionState, UserType};
use cryptoki_sys::*;
use pkcs11_common::*;

/// Child role: initialize the module and create a token on the free slot.
#[test]
fn child_entry() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("init_token") {
        return;
    }
    let p11 = Pkcs11::new(module_path()).unwrap();
    p11.initialize(init_args()).unwrap();
    let slot = *p11.get_all_slots().unwrap().last().unwrap();
    p11.init_token(slot, &pin(SO_PIN), "from child").unwrap();
    println!("child-slot={}", slot.id());
    p11.finalize().unwrap();
}

#[test]
fn initialize_twice_is_already_initialized() {
    let ctx = Ctx::new();
    assert_eq!(
        rv(ctx.p11().initialize(init_args())),
        RvError::CryptokiAlreadyInitialized
    );
    // Still usable.
    ctx.p11().get_all_slots().unwrap();
}

#[test]
fn calls_after_finalize_are_not_initialized() {
    let mut ctx = Ctx::new();
    ctx.finalize().unwrap();
    let mut count: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetSlotList, CK_FALSE, std::ptr::null_mut(), &mut count),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    let mut info = CK_INFO::default();
    assert_eq!(rawcall!(C_GetInfo, &mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
    let mut h: CK_SESSION_HANDLE = 0;
    assert_eq!(
        rawcall!(
            C_OpenSession,
            0,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        ),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    assert_eq!(
        rawcall!(C_Finalize, std::ptr::null_mut()),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    // And C_Initialize works again.
    assert_eq!(rawcall!(C_Initialize, std::ptr::null_mut()), CKR_OK);
    assert_eq!(rawcall!(C_Finalize, std::ptr::null_mut()), CKR_OK);
}

#[test]
fn get_info() {
    let ctx = Ctx::new();
    let info = ctx.p11().get_library_info().unwrap();
    assert!(info.cryptoki_version().major() >= 2);
    assert!(!info.manufacturer_id().trim().is_empty());
    assert!(!info.library_description().trim().is_empty());
    let mut raw_info = CK_INFO::default();
    assert_eq!(rawcall!(C_GetInfo, &mut raw_info), CKR_OK);
    assert_eq!(raw_info.flags, 0);
}

#[test]
fn interface_list_and_get_interface() {
    let _ctx = Ctx::uninitialized();
    unsafe {
        let list_fn: CK_C_GetInterfaceList = std::mem::transmute(dlsym("C_GetInterfaceList"));
        let get_fn: CK_C_GetInterface = std::mem::transmute(dlsym("C_GetInterface"));
        let (list_fn, get_fn) = (list_fn.unwrap(), get_fn.unwrap());

        let mut n: CK_ULONG = 0;
        assert_eq!(list_fn(std::ptr::null_mut(), &mut n), CKR_OK);
        assert!(n >= 1, "at least one interface");
        if n > 1 {
            let mut short = vec![CK_INTERFACE::default(); 1];
            let mut m: CK_ULONG = 1;
            assert_eq!(list_fn(short.as_mut_ptr(), &mut m), CKR_BUFFER_TOO_SMALL);
            assert_eq!(m, n);
        }
        let mut ifs = vec![CK_INTERFACE::default(); n as usize];
        assert_eq!(list_fn(ifs.as_mut_ptr(), &mut n), CKR_OK);
        let mut majors = Vec::new();
        for i in &ifs {
            let name = std::ffi::CStr::from_ptr(i.pInterfaceName as *const std::ffi::c_char);
            assert_eq!(name.to_bytes(), b"PKCS 11");
            let fl = &*(i.pFunctionList as *const CK_FUNCTION_LIST);
            majors.push(fl.version.major);
        }
        assert!(majors.contains(&3), "a 3.x interface: {majors:?}");
        assert_eq!(
            list_fn(ifs.as_mut_ptr(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );

        // Default interface.
        let mut ifc: *mut CK_INTERFACE = std::ptr::null_mut();
        assert_eq!(
            get_fn(std::ptr::null_mut(), std::ptr::null_mut(), &mut ifc, 0),
            CKR_OK
        );
        assert!(!ifc.is_null());
        // By name and version 3.0.
        let mut name = *b"PKCS 11\0";
        let mut v30 = CK_VERSION { major: 3, minor: 0 };
        ifc = std::ptr::null_mut();
        assert_eq!(get_fn(name.as_mut_ptr(), &mut v30, &mut ifc, 0), CKR_OK);
        let fl = &*((*ifc).pFunctionList as *const CK_FUNCTION_LIST_3_0);
        assert_eq!((fl.version.major, fl.version.minor), (3, 0));
        assert!(fl.C_LoginUser.is_some() && fl.C_SessionCancel.is_some());
        // Version 2.40 through the same entry point.
        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        assert_eq!(get_fn(name.as_mut_ptr(), &mut v240, &mut ifc, 0), CKR_OK);
        let fl = &*((*ifc).pFunctionList as *const CK_FUNCTION_LIST);
        assert_eq!((fl.version.major, fl.version.minor), (2, 40));
        // Unknown name and NULL output.
        let mut bad = *b"Vendor XYZ\0";
        assert_ne!(
            get_fn(bad.as_mut_ptr(), std::ptr::null_mut(), &mut ifc, 0),
            CKR_OK
        );
        assert_eq!(
            get_fn(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0
            ),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn slot_list_length_protocol() {
    let ctx = Ctx::new();
    ctx.init_token();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetSlotList, CK_TRUE, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    assert_eq!(n, 2, "one token slot and the free slot");
    let mut short = [0 as CK_SLOT_ID; 1];
    let mut m: CK_ULONG = 1;
    assert_eq!(
        rawcall!(C_GetSlotList, CK_TRUE, short.as_mut_ptr(), &mut m),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(m, 2, "CKR_BUFFER_TOO_SMALL reports the needed count");
    let mut ids = [0 as CK_SLOT_ID; 4];
    let mut m: CK_ULONG = 4;
    assert_eq!(
        rawcall!(C_GetSlotList, CK_FALSE, ids.as_mut_ptr(), &mut m),
        CKR_OK
    );
    assert_eq!(m, 2);
    let via_crate: Vec<CK_SLOT_ID> = ctx
        .p11()
        .get_all_slots()
        .unwrap()
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(&ids[..2], &via_crate[..]);
}

#[test]
fn free_slot_becomes_token_slot_and_ids_are_stable() {
    let mut ctx = Ctx::new();
    let slots = ctx.p11().get_all_slots().unwrap();
    assert_eq!(slots.len(), 1, "a fresh directory has only the free slot");
    let free = slots[0];
    assert!(free.id() < 1 << 31, "slot IDs stay below 2^31");
    let info = ctx.p11().get_token_info(free).unwrap();
    assert!(!info.token_initialized());

    ctx.p11().init_token(free, &pin(SO_PIN), "first").unwrap();
    let slots = ctx.p11().get_all_slots().unwrap();
    assert_eq!(slots.len(), 2, "a new free slot appears");
    assert_eq!(slots[0], free, "the initialized token keeps the slot ID");
    let info = ctx.p11().get_token_info(free).unwrap();
    assert!(info.token_initialized());
    assert_eq!(info.label(), "first");
    assert!(!ctx
        .p11()
        .get_token_info(slots[1])
        .unwrap()
        .token_initialized());
    let second = ctx.init_token_no_user("second");
    let serials: Vec<String> = [free, second]
        .iter()
        .map(|s| {
            ctx.p11()
                .get_token_info(*s)
                .unwrap()
                .serial_number()
                .to_string()
        })
        .collect();
    assert_ne!(serials[0], serials[1]);

    ctx.reinit();
    let after = ctx.p11().get_all_slots().unwrap();
    assert_eq!(after.len(), 3);
    assert!(after[..2].contains(&free) && after[..2].contains(&second));
    assert!(after.iter().all(|s| s.id() < 1 << 31));
    assert_eq!(ctx.p11().get_token_info(free).unwrap().label(), "first");
    assert!(!ctx
        .p11()
        .get_token_info(after[2])
        .unwrap()
        .token_initialized());
}

/// Child role: print the free slot's ID, or initialize the slot given by ID.
#[test]
fn child_free_slot() {
    let role = std::env::var(CHILD_ENV).unwrap_or_default();
    let Some(arg) = role.strip_prefix("free_slot:") else {
        return;
    };
    let p11 = Pkcs11::new(module_path()).unwrap();
    p11.initialize(init_args()).unwrap();
    let slots = p11.get_all_slots().unwrap();
    let free = *slots.last().unwrap();
    if arg == "list" {
        println!("free-slot={}", free.id());
    } else {
        let id: CK_SLOT_ID = arg.parse().unwrap();
        let slot = slots
            .iter()
            .find(|s| s.id() == id)
            .expect("slot listed by ID");
        p11.init_token(*slot, &pin(SO_PIN), "by id").unwrap();
        println!("initialized={id}");
    }
    p11.finalize().unwrap();
}

fn child_value(out: &std::process::Output, key: &str) -> CK_SLOT_ID {
    assert_child_ok(out);
    String::from_utf8_lossy(&out.stdout)
        .split(&format!("{key}="))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("child prints {key}"))
        .parse()
        .unwrap()
}

/// A script's habit (pkcs11-tool -L, then --slot ID --init-token in the next
/// process): the free slot has the same ID in every process until a token is created
/// in it; the token keeps that ID and the next free slot gets a new one, again the
/// same everywhere.
#[test]
fn free_slot_id_is_the_same_in_every_process() {
    let ctx = Ctx::new();
    let list = || {
        child_value(
            &run_child("child_free_slot", "free_slot:list", &[]),
            "free-slot",
        )
    };
    let first = list();
    assert_eq!(list(), first, "two processes list the same free slot");
    assert_eq!(
        ctx.p11().get_all_slots().unwrap().last().unwrap().id(),
        first
    );
    let out = run_child("child_free_slot", &format!("free_slot:{first}"), &[]);
    assert_eq!(child_value(&out, "initialized"), first);
    let next = list();
    assert_ne!(next, first);
    assert_eq!(list(), next);
    // This process, which listed before, follows: the token under the old ID, the new
    // free slot last.
    let slots = ctx.p11().get_all_slots().unwrap();
    assert_eq!(slots.last().unwrap().id(), next);
    let token = slots.iter().find(|s| s.id() == first).unwrap();
    assert_eq!(ctx.p11().get_token_info(*token).unwrap().label(), "by id");
    // Deleting the token does not hand its serial (and slot ID) out again.
    for e in std::fs::read_dir(ctx.dir.path().join("tokens"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "vtoken") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    assert_eq!(list(), next);
}

#[test]
fn token_created_by_another_process_appears() {
    let ctx = Ctx::new();
    let before = ctx.p11().get_all_slots().unwrap();
    let out = run_child("child_entry", "init_token", &[]);
    assert_child_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child_slot: CK_SLOT_ID = stdout
        .split("child-slot=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("child reports its slot")
        .parse()
        .unwrap();
    let after = ctx.p11().get_all_slots().unwrap();
    assert_eq!(after.len(), before.len() + 1);
    let found = after
        .iter()
        .find(|s| s.id() == child_slot)
        .expect("child's token listed");
    let info = ctx.p11().get_token_info(*found).unwrap();
    assert!(info.token_initialized());
    assert_eq!(info.label(), "from child");
    // The child initialized the free slot this process listed: its token has that
    // slot's ID (one reservation for every process), and a new free slot is last.
    assert_eq!(Some(found), before.last());
    assert_ne!(after.last(), before.last());
    assert!(!ctx
        .p11()
        .get_token_info(*after.last().unwrap())
        .unwrap()
        .token_initialized());
}

#[test]
fn slot_info_and_invalid_slot() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let info = ctx.p11().get_slot_info(slot).unwrap();
    assert!(info.token_present());
    let bad = cryptoki::slot::Slot::try_from(0x7fff_fff0u64).unwrap();
    assert_ne!(bad, slot);
    assert_eq!(rv(ctx.p11().get_slot_info(bad)), RvError::SlotIdInvalid);
    assert_eq!(rv(ctx.p11().get_token_info(bad)), RvError::SlotIdInvalid);
    assert_eq!(
        rv(ctx.p11().get_mechanism_list(bad)),
        RvError::SlotIdInvalid
    );
    assert_eq!(rv(ctx.p11().open_ro_session(bad)), RvError::SlotIdInvalid);
    assert_eq!(
        rv(ctx.p11().init_token(bad, &pin(SO_PIN), "x")),
        RvError::SlotIdInvalid
    );
}

#[test]
fn token_info_flags() {
    let ctx = Ctx::new();
    let free = ctx.free_slot();
    let info = ctx.p11().get_token_info(free).unwrap();
    assert!(info.rng());
    let slot = ctx.init_token_no_user("flags");
    let info = ctx.p11().get_token_info(slot).unwrap();
    assert!(info.token_initialized() && info.login_required() && info.rng());
    assert!(!info.user_pin_initialized(), "no user PIN yet");
    let s = ctx.p11().open_rw_session(slot).unwrap();
    // No user PIN: user login fails.
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserPinNotInitialized
    );
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    let info = ctx.p11().get_token_info(slot).unwrap();
    assert!(info.user_pin_initialized());
    assert!(!info.user_pin_count_low() && !info.user_pin_locked());
    assert!(info.min_pin_length() <= 6 && info.max_pin_length() >= 8);
    assert_eq!(info.session_count(), Some(1));
    assert_eq!(info.rw_session_count(), Some(1));
}

#[test]
fn wrong_pins_set_count_flags_then_lock() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    let flags = || ctx.p11().get_token_info(slot).unwrap();
    let wrong = pin("999999");
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    let i = flags();
    assert!(i.user_pin_count_low() && !i.user_pin_final_try() && !i.user_pin_locked());
    // A success resets the counter.
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    s.logout().unwrap();
    assert!(!flags().user_pin_count_low());
    // Default: 5 tries.
    for _ in 0..4 {
        assert_eq!(
            rv(s.login(UserType::User, Some(&wrong))),
            RvError::PinIncorrect
        );
    }
    let i = flags();
    assert!(
        i.user_pin_final_try() && !i.user_pin_locked(),
        "one try left"
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinLocked
    );
    assert!(flags().user_pin_locked());
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked,
        "the right PIN no longer works"
    );
    // The SO unlocks by setting a new user PIN.
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin("567890")).unwrap();
    s.logout().unwrap();
    assert!(!flags().user_pin_locked());
    s.login(UserType::User, Some(&pin("567890"))).unwrap();
}

#[test]
fn mechanism_list_and_info() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let list = ctx.p11().get_mechanism_list(slot).unwrap();
    for m in [
        MechanismType::RSA_PKCS_PSS,
        MechanismType::ECDSA_SHA256,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::AES_GCM,
        MechanismType::SHA256_HMAC,
    ] {
        assert!(list.contains(&m), "{m} missing from the mechanism list");
    }
    let pss = ctx
        .p11()
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_PSS)
        .unwrap();
    assert!(pss.sign() && pss.verify());
    assert!(pss.min_key_size() <= 2048 && pss.max_key_size() >= 4096);
    let gcm = ctx
        .p11()
        .get_mechanism_info(slot, MechanismType::AES_GCM)
        .unwrap();
    assert!(gcm.encrypt() && gcm.decrypt() && !gcm.sign());
    let ecdsa = ctx
        .p11()
        .get_mechanism_info(slot, MechanismType::ECDSA_SHA256)
        .unwrap();
    assert!(ecdsa.sign() && ecdsa.verify());

    let raw_slot: CK_SLOT_ID = slot.into();
    let mut n: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetMechanismList, raw_slot, std::ptr::null_mut(), &mut n),
        CKR_OK
    );
    assert!(n as usize >= list.len());
    let mut short = vec![0 as CK_MECHANISM_TYPE; 1];
    let mut m: CK_ULONG = 1;
    assert_eq!(
        rawcall!(C_GetMechanismList, raw_slot, short.as_mut_ptr(), &mut m),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(m, n);
    let mut info = CK_MECHANISM_INFO::default();
    for unknown in [CKM_VENDOR_DEFINED | 0x1234, CKM_DSA_SHA224] {
        assert_eq!(
            rawcall!(C_GetMechanismInfo, raw_slot, unknown, &mut info),
            CKR_MECHANISM_INVALID
        );
    }
}

#[test]
fn wait_for_slot_event_dont_block() {
    let ctx = Ctx::new();
    ctx.init_token();
    // Our own C_InitToken may count as an event once; then there is none.
    let _ = ctx.p11().get_slot_event().unwrap();
    assert_eq!(ctx.p11().get_slot_event().unwrap(), None);
    let mut slot: CK_SLOT_ID = 0;
    assert_eq!(
        rawcall!(
            C_WaitForSlotEvent,
            CKF_DONT_BLOCK,
            &mut slot,
            std::ptr::null_mut()
        ),
        CKR_NO_EVENT
    );
}

#[test]
fn login_errors() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    assert_eq!(rv(s.logout()), RvError::UserNotLoggedIn);
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("000000")))),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv(s.login(UserType::So, Some(&pin("00000000")))),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv(s.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::UserAnotherAlreadyLoggedIn
    );
    // Login state is shared by all sessions of the application.
    let s2 = ctx.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        s2.get_session_info().unwrap().session_state(),
        SessionState::RoUser
    );
    s2.logout().unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    assert_eq!(rv(s.logout()), RvError::UserNotLoggedIn);
    // A user type out of range.
    let h = s.handle();
    let mut p = *b"123456";
    assert_eq!(
        rawcall!(C_Login, h, 7, p.as_mut_ptr(), 4),
        CKR_USER_TYPE_INVALID
    );
}

#[test]
fn pin_length_range() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let long = "9".repeat(300);
    assert_eq!(
        rv(s.set_pin(&pin(USER_PIN), &pin("12"))),
        RvError::PinLenRange
    );
    assert_eq!(
        rv(s.set_pin(&pin(USER_PIN), &pin(&long))),
        RvError::PinLenRange
    );
    s.logout().unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(rv(s.init_pin(&pin("1"))), RvError::PinLenRange);
    assert_eq!(rv(s.init_pin(&pin(&long))), RvError::PinLenRange);
    s.logout().unwrap();
    // The old PIN still works.
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn set_pin_changes_the_pin() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let ro = ctx.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        rv(ro.set_pin(&pin(USER_PIN), &pin("654321"))),
        RvError::SessionReadOnly
    );
    drop(ro);
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        rv(s.set_pin(&pin("000000"), &pin("654321"))),
        RvError::PinIncorrect
    );
    s.set_pin(&pin(USER_PIN), &pin("654321")).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin("654321"))).unwrap();
    s.logout().unwrap();
    // The SO changes its own PIN.
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.set_pin(&pin(SO_PIN), &pin("87654321")).unwrap();
    s.logout().unwrap();
    s.login(UserType::So, Some(&pin("87654321"))).unwrap();
}

#[test]
fn so_login_with_read_only_session_open() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let ro = ctx.p11().open_ro_session(slot).unwrap();
    let rw = ctx.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rv(rw.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::SessionReadOnlyExists
    );
    assert_eq!(
        rv(ro.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::SessionReadOnlyExists
    );
    drop(ro);
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    // While the SO is logged in, no R/O session can be opened.
    assert_eq!(
        rv(ctx.p11().open_ro_session(slot)),
        RvError::SessionReadWriteSoExists
    );
}

#[test]
fn open_session_requires_serial_flag() {
    let ctx = Ctx::new();
    let slot: CK_SLOT_ID = ctx.init_token().into();
    let mut h: CK_SESSION_HANDLE = 0;
    assert_eq!(
        rawcall!(
            C_OpenSession,
            slot,
            CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        ),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    assert_eq!(
        rawcall!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            &mut h
        ),
        CKR_OK
    );
    assert_ne!(h, CK_INVALID_HANDLE);
    assert_eq!(rawcall!(C_CloseSession, h), CKR_OK);
}

#[test]
fn session_info_states() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let ro = ctx.p11().open_ro_session(slot).unwrap();
    let rw = ctx.p11().open_rw_session(slot).unwrap();
    let state = |s: &cryptoki::session::Session| s.get_session_info().unwrap().session_state();
    assert_eq!(state(&ro), SessionState::RoPublic);
    assert_eq!(state(&rw), SessionState::RwPublic);
    let info = rw.get_session_info().unwrap();
    assert_eq!(info.slot_id(), slot);
    assert!(info.read_write());
    assert!(!ro.get_session_info().unwrap().read_write());
    rw.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(state(&ro), SessionState::RoUser);
    assert_eq!(state(&rw), SessionState::RwUser);
    rw.logout().unwrap();
    drop(ro);
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(state(&rw), SessionState::RwSecurityOfficer);
    rw.logout().unwrap();
    assert_eq!(state(&rw), SessionState::RwPublic);
}

#[test]
fn invalid_session_handles() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(
        rawcall!(C_GetSessionInfo, 0xdead_beef, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        rawcall!(C_CloseSession, 0xdead_beef),
        CKR_SESSION_HANDLE_INVALID
    );
    let s = ctx.p11().open_rw_session(slot).unwrap();
    let h = s.handle();
    s.close().unwrap();
    assert_eq!(
        rawcall!(C_GetSessionInfo, h, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
    let a = ctx.p11().open_rw_session(slot).unwrap();
    let b = ctx.p11().open_ro_session(slot).unwrap();
    a.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(rawcall!(C_CloseAllSessions, slot.into()), CKR_OK);
    assert_eq!(rv(a.get_session_info()), RvError::SessionHandleInvalid);
    assert_eq!(rv(b.get_session_info()), RvError::SessionHandleInvalid);
    // Closing the last session logs the application out.
    let c = ctx.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        c.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    assert_eq!(
        rawcall!(C_CloseAllSessions, 0x7fff_fff0),
        CKR_SLOT_ID_INVALID
    );
}

#[test]
fn init_token_on_existing_token() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    assert_eq!(
        rv(ctx.p11().init_token(slot, &pin("00000000"), "again")),
        RvError::PinIncorrect
    );
    let s = ctx.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        rv(ctx.p11().init_token(slot, &pin(SO_PIN), "again")),
        RvError::SessionExists
    );
    drop(s);
    ctx.p11().init_token(slot, &pin(SO_PIN), "again").unwrap();
    let info = ctx.p11().get_token_info(slot).unwrap();
    assert_eq!(info.label(), "again");
    assert!(
        !info.user_pin_initialized(),
        "re-initialization clears the user PIN"
    );
}

/// `CKF_USER_PIN_TO_BE_CHANGED`: set when the SO replaces an existing user PIN
/// (`C_InitPIN`), cleared by the user's `C_SetPIN`; a first PIN does not set it.
#[test]
fn user_pin_to_be_changed_after_so_reset() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let to_be_changed = || {
        ctx.p11()
            .get_token_info(slot)
            .unwrap()
            .user_pin_to_be_changed()
    };
    assert!(!to_be_changed(), "the first user PIN is the user's");
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin("reset-by-so")).unwrap();
    s.logout().unwrap();
    assert!(to_be_changed());
    s.login(UserType::User, Some(&pin("reset-by-so"))).unwrap();
    s.set_pin(&pin("reset-by-so"), &pin(USER_PIN)).unwrap();
    s.logout().unwrap();
    assert!(!to_be_changed());
}

#[test]
fn session_handles_do_not_survive_finalize() {
    let mut ctx = Ctx::new();
    let slot = ctx.init_token();
    let h = ctx.p11().open_rw_session_no_drop(slot).unwrap().handle();
    ctx.reinit();
    let mut info = CK_SESSION_INFO::default();
    assert_eq!(
        rawcall!(C_GetSessionInfo, h, &mut info),
        CKR_SESSION_HANDLE_INVALID
    );
    let s = ctx.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    let info = ctx.p11().get_token_info(slot).unwrap();
    assert_eq!(
        (info.session_count(), info.rw_session_count()),
        (Some(1), Some(1))
    );
}
