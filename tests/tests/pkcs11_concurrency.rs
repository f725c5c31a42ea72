//! PKCS#11 through `cryptoki` and raw calls: threads signing at once, a second
//! process writing the same token, `fork()`, and NULL arguments.
mod pkcs11_common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki_sys::*;
use pkcs11_common::*;

const SLOT_ENV: &str = "VTOKEN_P11_TEST_SLOT";

/// Child role "objects": on the parent's token, check that the login state of
/// the parent does not leak, then log in and create token objects and a key.
#[test]
fn child_entry() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("objects") {
        return;
    }
    let slot: u64 = std::env::var(SLOT_ENV).unwrap().parse().unwrap();
    let slot = Slot::try_from(slot).unwrap();
    let p11 = Pkcs11::new(module_path()).unwrap();
    p11.initialize(init_args()).unwrap();
    {
        let s = p11.open_rw_session(slot).unwrap();
        let state = s.get_session_info().unwrap().session_state();
        assert_eq!(state, SessionState::RwPublic, "login state is per process");
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        for i in 0..3 {
            s.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(i == 0),
                Attribute::Label(format!("child-{i}").into_bytes()),
                Attribute::Value(vec![i as u8; 8]),
            ])
            .unwrap();
        }
        ec_pair(&s, P256, "child-key", true);
    }
    p11.finalize().unwrap();
}

#[test]
fn two_threads_sign_at_once() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "threads", false);
    let p11 = ctx.p11().clone();
    let barrier = Barrier::new(2);
    let results: Vec<Vec<(Vec<u8>, Vec<u8>)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (p11, barrier) = (&p11, &barrier);
                sc.spawn(move || {
                    let s = p11.open_rw_session(slot).unwrap();
                    barrier.wait();
                    (0..200)
                        .map(|i| {
                            let msg = format!("thread {t} message {i}").into_bytes();
                            let sig = s.sign(&Mechanism::EcdsaSha256, private, &msg).unwrap();
                            (msg, sig)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().map(Vec::len).sum::<usize>(), 400);
    for (msg, sig) in results.iter().flatten() {
        s.verify(&Mechanism::EcdsaSha256, public, msg, sig).unwrap();
    }
}

#[test]
fn child_process_creates_token_objects() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let out = run_child(
        "child_entry",
        "objects",
        &[(SLOT_ENV, slot.id().to_string())],
    );
    assert_child_ok(&out);
    // No re-initialization: the same context and session see the new objects.
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    for i in 0..3u8 {
        let found = s
            .find_objects(&[Attribute::Label(format!("child-{i}").into_bytes())])
            .unwrap();
        assert_eq!(found.len(), 1, "child-{i} not found");
        assert_eq!(attr_bytes(&s, found[0], AttributeType::Value), vec![i; 8]);
    }
    let key = s
        .find_objects(&[
            Attribute::Label(b"child-key".to_vec()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .unwrap();
    let public = s
        .find_objects(&[
            Attribute::Label(b"child-key".to_vec()),
            Attribute::Class(ObjectClass::PUBLIC_KEY),
        ])
        .unwrap();
    assert_eq!((key.len(), public.len()), (1, 1));
    let sig = s.sign(&Mechanism::EcdsaSha256, key[0], b"hello").unwrap();
    s.verify(&Mechanism::EcdsaSha256, public[0], b"hello", &sig)
        .unwrap();
}

/// Waits for `pid` up to `limit`; kills it when it hangs. Returns the wait status.
fn wait_child(pid: libc::pid_t, limit: Duration) -> i32 {
    let start = Instant::now();
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        assert!(r == 0, "waitpid failed");
        if start.elapsed() > limit {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("forked child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The forked child's work: every step returns its own exit code on failure.
fn forked_child(slot: CK_SLOT_ID, sig_file: &std::path::Path) -> i32 {
    let mut n: CK_ULONG = 0;
    if rawcall!(C_GetSlotList, CK_FALSE, std::ptr::null_mut(), &mut n)
        != CKR_CRYPTOKI_NOT_INITIALIZED
    {
        return 10;
    }
    if rawcall!(C_Initialize, std::ptr::null_mut()) != CKR_OK {
        return 11;
    }
    let mut h: CK_SESSION_HANDLE = 0;
    let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
    if rawcall!(
        C_OpenSession,
        slot,
        flags,
        std::ptr::null_mut(),
        None,
        &mut h
    ) != CKR_OK
    {
        return 12;
    }
    let mut user_pin = USER_PIN.as_bytes().to_vec();
    let pin_len = user_pin.len() as CK_ULONG;
    if rawcall!(C_Login, h, CKU_USER, user_pin.as_mut_ptr(), pin_len) != CKR_OK {
        return 13;
    }
    let mut label = b"fork-key".to_vec();
    let mut class = CKO_PRIVATE_KEY.to_ne_bytes();
    let mut t = [
        raw_attr(CKA_LABEL, Some(&mut label)),
        raw_attr(CKA_CLASS, Some(&mut class)),
    ];
    if rawcall!(C_FindObjectsInit, h, t.as_mut_ptr(), 2) != CKR_OK {
        return 14;
    }
    let mut key: CK_OBJECT_HANDLE = 0;
    let mut found: CK_ULONG = 0;
    if rawcall!(C_FindObjects, h, &mut key, 1, &mut found) != CKR_OK || found != 1 {
        return 15;
    }
    let _ = rawcall!(C_FindObjectsFinal, h);
    let mut mech = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    if rawcall!(C_SignInit, h, &mut mech, key) != CKR_OK {
        return 16;
    }
    let mut msg = b"signed in a forked child".to_vec();
    let mut sig = [0u8; 64];
    let mut len: CK_ULONG = 64;
    let msg_len = msg.len() as CK_ULONG;
    if rawcall!(
        C_Sign,
        h,
        msg.as_mut_ptr(),
        msg_len,
        sig.as_mut_ptr(),
        &mut len
    ) != CKR_OK
    {
        return 17;
    }
    if std::fs::write(sig_file, &sig[..len as usize]).is_err() {
        return 18;
    }
    if rawcall!(C_Finalize, std::ptr::null_mut()) != CKR_OK {
        return 19;
    }
    0
}

#[test]
fn fork_child_initializes_again_and_signs() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "fork-key", true);
    let sig_file = ctx.dir.path().join("fork.sig");
    let raw_slot: CK_SLOT_ID = slot.into();
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(|| forked_child(raw_slot, &sig_file)).unwrap_or(99);
        unsafe { libc::_exit(code) };
    }
    let status = wait_child(pid, Duration::from_secs(60));
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status:#x}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child failed (see forked_child)"
    );
    let sig = std::fs::read(&sig_file).unwrap();
    s.verify(
        &Mechanism::EcdsaSha256,
        public,
        b"signed in a forked child",
        &sig,
    )
    .unwrap();
    // The parent's state is untouched by the child's C_Initialize/C_Finalize.
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    let sig = s.sign(&Mechanism::EcdsaSha256, private, b"parent").unwrap();
    s.verify(&Mechanism::EcdsaSha256, public, b"parent", &sig)
        .unwrap();
}

#[test]
fn raw_null_arguments_are_bad() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let slot: CK_SLOT_ID = slot.into();
    let h = s.handle();
    let obj = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Label(b"null".to_vec()),
        ])
        .unwrap()
        .handle();
    assert_eq!(
        rawcall!(
            C_GetSlotList,
            CK_FALSE,
            std::ptr::null_mut(),
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_GetInfo, std::ptr::null_mut()), CKR_ARGUMENTS_BAD);
    assert_eq!(
        rawcall!(C_GetSlotInfo, slot, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_GetTokenInfo, slot, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(
            C_GetMechanismList,
            slot,
            std::ptr::null_mut(),
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_GetMechanismInfo, slot, CKM_SHA256, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(
            C_OpenSession,
            slot,
            CKF_SERIAL_SESSION,
            std::ptr::null_mut(),
            None,
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_GetSessionInfo, h, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_GetAttributeValue, h, obj, std::ptr::null_mut(), 2),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_SetAttributeValue, h, obj, std::ptr::null_mut(), 1),
        CKR_ARGUMENTS_BAD
    );
    let mut out: CK_OBJECT_HANDLE = 0;
    assert_eq!(
        rawcall!(C_CreateObject, h, std::ptr::null_mut(), 1, &mut out),
        CKR_ARGUMENTS_BAD
    );
    let mut class = CKO_DATA.to_ne_bytes();
    let mut t = [raw_attr(CKA_CLASS, Some(&mut class))];
    assert_eq!(
        rawcall!(C_CreateObject, h, t.as_mut_ptr(), 1, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_GenerateRandom, h, std::ptr::null_mut(), 16),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        rawcall!(C_DigestInit, h, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    s.logout().unwrap();
    assert_eq!(
        rawcall!(C_Login, h, CKU_USER, std::ptr::null_mut(), 4),
        CKR_ARGUMENTS_BAD
    );
    let mut size: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetObjectSize, h, obj, &mut size),
        CKR_OK,
        "the session still works"
    );

    // C_Initialize argument checks (on a finalized module).
    drop(s);
    assert_eq!(rawcall!(C_Finalize, std::ptr::null_mut()), CKR_OK);
    let mut reserved = 0u8;
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: &mut reserved as *mut u8 as *mut std::ffi::c_void,
    };
    let args_ptr = &mut args as *mut CK_C_INITIALIZE_ARGS as *mut std::ffi::c_void;
    assert_eq!(rawcall!(C_Initialize, args_ptr), CKR_ARGUMENTS_BAD);
    args.pReserved = std::ptr::null_mut();
    let args_ptr = &mut args as *mut CK_C_INITIALIZE_ARGS as *mut std::ffi::c_void;
    assert_eq!(rawcall!(C_Initialize, args_ptr), CKR_OK);
    assert!(!ctx.p11().get_all_slots().unwrap().is_empty());
}
