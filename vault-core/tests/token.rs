//! Token lifecycle, PIN state machine (SPEC T2) and object semantics (T3) through
//! the public API, on real token files in a temporary directory.

use std::sync::Arc;

use vault_core::config::Config;
use vault_core::error::StoreError;
use vault_core::pkcs11::*;
use vault_core::session::AttrResult;
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";

fn setup() -> (tempfile::TempDir, Registry, Arc<Token>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("test", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    (dir, reg, t)
}

fn data_object(label: &str, private: bool, token: bool) -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, token);
    a.set_bool(CKA_PRIVATE, private);
    a.set(CKA_LABEL, label.as_bytes().to_vec());
    a.set(CKA_VALUE, format!("value of {label}").into_bytes());
    a
}

#[test]
fn lifecycle_and_info() {
    let (_d, reg, t) = setup();
    let info = t.info().unwrap();
    assert_eq!(info.label, "test");
    assert_eq!(info.serial.len(), 16);
    assert!(info.user_pin_initialized);
    assert!(info.flags & CKF_TOKEN_INITIALIZED != 0);
    assert!(info.flags & CKF_USER_PIN_INITIALIZED != 0);
    let all = reg.tokens().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].serial, info.serial);
    assert_eq!(reg.find("test").unwrap().serial, info.serial);
    assert_eq!(
        reg.find(&info.serial.to_lowercase()).unwrap().serial,
        info.serial
    );
    assert!(matches!(reg.find("nope"), Err(Error::TokenNotPresent(_))));
    // A second token gets a different serial and slot.
    let e2 = reg.create("second", SO, None).unwrap();
    assert_ne!(e2.serial, info.serial);
    assert_eq!(reg.tokens().unwrap().len(), 2);
}

#[test]
fn pin_length_policy() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path()));
    assert!(matches!(
        reg.create("x", b"123", None),
        Err(Error::PinLenRange { .. })
    ));
    let e = reg.create("x", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    assert!(matches!(
        t.login(UserType::User, USER),
        Err(Error::UserPinNotInitialized)
    ));
    t.login(UserType::So, SO).unwrap();
    assert!(matches!(t.init_pin(b"12"), Err(Error::PinLenRange { .. })));
    assert!(matches!(
        t.init_pin(&[b'1'; 65]),
        Err(Error::PinLenRange { .. })
    ));
    t.init_pin(b"123456").unwrap();
}

#[test]
fn lockout_flags_and_so_unlock() {
    let (_d, reg, t) = setup();
    for i in 1..=5u32 {
        let r = t.login(UserType::User, b"wrong-pin");
        let info = t.info().unwrap();
        assert_eq!(info.user_pin.failures, i);
        if i < 5 {
            assert!(matches!(r, Err(Error::PinIncorrect)), "try {i}: {r:?}");
            assert!(info.flags & CKF_USER_PIN_COUNT_LOW != 0);
            assert_eq!(info.flags & CKF_USER_PIN_FINAL_TRY != 0, i == 4);
        } else {
            assert!(matches!(r, Err(Error::PinLocked)));
            assert!(info.flags & CKF_USER_PIN_LOCKED != 0);
        }
    }
    // Even the right PIN is refused now, and the refusal costs nothing more.
    assert!(matches!(
        t.login(UserType::User, USER),
        Err(Error::PinLocked)
    ));
    // A fresh process view (a new Token on the same file) sees the lock.
    let e = reg.find("test").unwrap();
    let t2 = reg.open(&e).unwrap();
    assert!(matches!(
        t2.login(UserType::User, USER),
        Err(Error::PinLocked)
    ));
    // The SO resets and unlocks.
    assert!(matches!(
        t2.unlock_user(b"bad-so-pin", b"new-pin-1"),
        Err(Error::PinIncorrect)
    ));
    t2.unlock_user(SO, b"new-pin-1").unwrap();
    let info = t2.info().unwrap();
    assert_eq!(info.user_pin.failures, 0);
    assert_eq!(
        info.so_pin.failures, 0,
        "a successful SO check resets the SO counter"
    );
    t2.login(UserType::User, b"new-pin-1").unwrap();
}

#[test]
fn success_resets_counter_and_change_pin() {
    let (_d, _reg, t) = setup();
    assert!(t.login(UserType::User, b"wrong-pin").is_err());
    assert_eq!(t.info().unwrap().user_pin.failures, 1);
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.info().unwrap().user_pin.failures, 0);
    assert!(matches!(
        t.login(UserType::User, USER),
        Err(Error::UserAlreadyLoggedIn)
    ));
    assert!(matches!(
        t.login(UserType::So, SO),
        Err(Error::UserAnotherAlreadyLoggedIn)
    ));
    // Change the user PIN while logged in; data stays readable with the new PIN.
    let s = &t.open_session(true).unwrap();
    let id = t
        .create_object(s, &data_object("secret", true, true))
        .unwrap();
    t.set_pin(USER, b"changed-1").unwrap();
    t.logout().unwrap();
    assert!(matches!(
        t.login(UserType::User, USER),
        Err(Error::PinIncorrect)
    ));
    t.login(UserType::User, b"changed-1").unwrap();
    assert_eq!(
        t.attributes(id).unwrap().get(CKA_VALUE),
        Some(&b"value of secret"[..])
    );
    // SO PIN change.
    t.logout().unwrap();
    t.change_pin(UserType::So, SO, b"so-changed").unwrap();
    t.close_all_sessions();
    t.login(UserType::So, b"so-changed").unwrap();
}

#[test]
fn so_lock_is_final_until_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_dir(dir.path());
    cfg.pin.so_max_tries = 2;
    let reg = Registry::new(cfg);
    let e = reg.create("x", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    assert!(matches!(
        t.login(UserType::So, b"nope-nope"),
        Err(Error::PinIncorrect)
    ));
    assert!(matches!(
        t.login(UserType::So, b"nope-nope"),
        Err(Error::PinLocked)
    ));
    assert!(t.so_locked().unwrap());
    assert!(matches!(t.reinitialize(SO, "new"), Err(Error::PinLocked)));
    assert!(matches!(
        t.unlock_user(SO, b"1234567"),
        Err(Error::PinLocked)
    ));
    reg.delete(&e).unwrap();
    assert!(reg.tokens().unwrap().is_empty());
}

#[test]
fn reinitialize_wipes_objects() {
    let (_d, _reg, t) = setup();
    t.login(UserType::User, USER).unwrap();
    let s = &t.open_session(true).unwrap();
    t.create_object(s, &data_object("a", false, true)).unwrap();
    t.close_all_sessions();
    assert!(matches!(
        t.reinitialize(b"wrong-so", "fresh"),
        Err(Error::PinIncorrect)
    ));
    t.reinitialize(SO, "fresh").unwrap();
    let info = t.info().unwrap();
    assert_eq!(info.label, "fresh");
    assert!(!info.user_pin_initialized);
    assert_eq!(info.public_objects + info.private_objects, 0);
}

/// Re-initialization gives what a new token has: the gate off and unlocked, the
/// creator configuration's prompt policy, no identity key, no PIN flags; only the
/// vault's factory mode survives. (A kept gate policy made the first signature on
/// a re-initialized token fail.)
#[test]
fn reinitialize_resets_every_policy_and_state() {
    use vault_core::gate::{GatePolicy, OpClass};
    use vault_core::prompt::policy::{AgentSpec, PromptPolicy};
    let (_d, reg, t) = setup();
    let fresh_prompt = t.prompt_policy().unwrap();
    t.gate_configure_so(
        SO,
        GatePolicy {
            classes: vec![OpClass::Sign, OpClass::Decrypt],
            ..GatePolicy::default()
        },
    )
    .unwrap();
    t.set_prompt_policy(
        SO,
        PromptPolicy {
            agent: AgentSpec::Deny,
            confirm: vec![],
        },
    )
    .unwrap();
    assert!(t.identity_info().is_ok(), "setup made the identity key");
    assert_ne!(t.prompt_policy().unwrap(), fresh_prompt);

    t.reinitialize(SO, "again").unwrap();
    let gate = t.gate_status().unwrap();
    assert_eq!(gate.policy, GatePolicy::default());
    assert!(!gate.locked);
    assert_eq!(gate.failures, 0);
    assert_eq!(t.prompt_policy().unwrap(), fresh_prompt);
    assert!(matches!(t.identity_info(), Err(Error::Identity(_))));
    let info = t.info().unwrap();
    assert!(!info.user_pin_initialized);
    // The same holds for a process that opens the file afresh.
    let t2 = reg.open(&reg.find("again").unwrap()).unwrap();
    assert_eq!(t2.gate_policy().unwrap(), GatePolicy::default());
    assert_eq!(t2.prompt_policy().unwrap(), fresh_prompt);
    // A new user PIN makes a new identity key; signing needs no picture.
    t2.login(UserType::So, SO).unwrap();
    t2.init_pin(USER).unwrap();
    t2.logout().unwrap();
    assert!(t2.identity_info().is_ok());
    assert!(!t2.gate_applies(OpClass::Sign, None).unwrap());
}

#[test]
fn private_objects_need_login_and_sessions_rules() {
    let (_d, reg, t) = setup();
    let ro = &t.open_session(false).unwrap();
    // R/O session: no token objects.
    assert!(matches!(
        t.create_object(ro, &data_object("p", false, true)),
        Err(Error::SessionReadOnly)
    ));
    // Session objects are fine in an R/O session.
    let sess_obj = t
        .create_object(ro, &data_object("s", false, false))
        .unwrap();
    let rw = &t.open_session(true).unwrap();
    // Private objects need the user.
    assert!(matches!(
        t.create_object(rw, &data_object("p", true, true)),
        Err(Error::UserNotLoggedIn)
    ));
    let public = t
        .create_object(rw, &data_object("pub", false, true))
        .unwrap();
    t.login(UserType::User, USER).unwrap();
    let private = t
        .create_object(rw, &data_object("priv", true, true))
        .unwrap();
    let all = t.search(&Attributes::new()).unwrap();
    assert!(all.contains(&public) && all.contains(&private) && all.contains(&sess_obj));
    t.logout().unwrap();
    let visible = t.search(&Attributes::new()).unwrap();
    assert!(visible.contains(&public) && !visible.contains(&private));
    assert!(matches!(
        t.attributes(private),
        Err(Error::ObjectHandleInvalid)
    ));
    // Session objects die with their session.
    t.close_session(ro).unwrap();
    assert!(matches!(
        t.attributes(sess_obj),
        Err(Error::ObjectHandleInvalid)
    ));
    // Another process view sees the token objects, not the session object.
    let t2 = reg.open(&reg.find("test").unwrap()).unwrap();
    let mut lbl = Attributes::new();
    lbl.set(CKA_LABEL, b"pub".to_vec());
    assert_eq!(t2.search(&lbl).unwrap().len(), 1);
}

#[test]
fn search_by_label_id_class_and_find_protocol() {
    let (_d, _reg, t) = setup();
    t.login(UserType::User, USER).unwrap();
    let s = &t.open_session(true).unwrap();
    for i in 0..20 {
        // Keys carry CKA_ID (data objects may not: CKR_ATTRIBUTE_TYPE_INVALID).
        // Secret keys are always private (CKA_PRIVATE=false is refused on keys).
        let mut a = data_object(&format!("obj{i}"), true, true);
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        a.set(CKA_ID, vec![i as u8]);
        t.create_object(s, &a).unwrap();
    }
    let mut bad = data_object("x", false, true);
    bad.set(CKA_ID, vec![1]);
    assert!(matches!(
        t.create_object(s, &bad),
        Err(Error::AttributeTypeInvalid(_))
    ));
    let mut q = Attributes::new();
    q.set(CKA_LABEL, b"obj7".to_vec());
    assert_eq!(t.search(&q).unwrap().len(), 1);
    let mut q = Attributes::new();
    q.set(CKA_ID, vec![4u8]);
    let hit = t.search(&q).unwrap();
    assert_eq!(hit.len(), 1);
    assert_eq!(t.attributes(hit[0]).unwrap().label(), "obj4");
    let mut q = Attributes::new();
    q.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    q.set_bool(CKA_PRIVATE, true);
    assert_eq!(t.search(&q).unwrap().len(), 20);
    q.set_bool(CKA_PRIVATE, false);
    assert_eq!(t.search(&q).unwrap().len(), 0);
    // C_FindObjects protocol in chunks.
    t.find_init(s, &Attributes::new()).unwrap();
    assert!(matches!(
        t.find_init(s, &Attributes::new()),
        Err(Error::OperationActive)
    ));
    let mut n = 0;
    loop {
        let chunk = t.find_next(s, 3).unwrap();
        if chunk.is_empty() {
            break;
        }
        n += chunk.len();
    }
    assert_eq!(n, 20);
    t.find_final(s).unwrap();
    assert!(matches!(
        t.find_next(s, 1),
        Err(Error::OperationNotInitialized)
    ));
}

#[test]
fn attributes_sensitive_and_updates() {
    let (_d, _reg, t) = setup();
    t.login(UserType::User, USER).unwrap();
    let s = &t.open_session(true).unwrap();
    let mut k = Attributes::new();
    k.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    k.set_ulong(CKA_KEY_TYPE, CKK_AES);
    k.set_bool(CKA_TOKEN, true);
    k.set(CKA_VALUE, vec![0x42; 32]);
    k.set(CKA_LABEL, b"aes".to_vec());
    let id = t.create_object(s, &k).unwrap();
    let r = t
        .get_attributes(s, id, &[CKA_VALUE, CKA_LABEL, CKA_MODULUS, CKA_VALUE_LEN])
        .unwrap();
    assert_eq!(r[0], AttrResult::Sensitive);
    assert_eq!(r[1], AttrResult::Value(b"aes".to_vec()));
    assert_eq!(r[2], AttrResult::TypeInvalid);
    assert_eq!(r[3], AttrResult::Value(32u64.to_le_bytes().to_vec()));
    // CKA_ID may change (NSS does this), CKA_VALUE may not, SENSITIVE only one way.
    let mut u = Attributes::new();
    u.set(CKA_ID, b"nss-id".to_vec());
    t.set_attributes(s, id, &u).unwrap();
    let mut q = Attributes::new();
    q.set(CKA_ID, b"nss-id".to_vec());
    assert_eq!(t.search(&q).unwrap(), vec![id]);
    let mut u = Attributes::new();
    u.set(CKA_VALUE, vec![0; 32]);
    assert!(matches!(
        t.set_attributes(s, id, &u),
        Err(Error::AttributeReadOnly(_))
    ));
    let mut u = Attributes::new();
    u.set_bool(CKA_SENSITIVE, false);
    assert!(matches!(
        t.set_attributes(s, id, &u),
        Err(Error::AttributeReadOnly(_))
    ));
    // Copy into a session object, then destroy both.
    let mut c = Attributes::new();
    c.set_bool(CKA_TOKEN, false);
    let copy = t.copy_object(s, id, &c).unwrap();
    assert_eq!(
        t.attributes(copy).unwrap().get(CKA_VALUE),
        Some(&[0x42u8; 32][..])
    );
    t.destroy_object(s, copy).unwrap();
    t.destroy_object(s, id).unwrap();
    assert!(matches!(
        t.destroy_object(s, id),
        Err(Error::ObjectHandleInvalid)
    ));
    // A session closed since: its reference names nothing.
    let gone = t.open_session(true).unwrap();
    t.close_session(&gone).unwrap();
    assert!(matches!(
        t.get_attributes(&gone, id, &[CKA_LABEL]),
        Err(Error::SessionHandleInvalid)
    ));
}

#[test]
fn newer_format_version_is_refused_and_file_untouched() {
    let (d, reg, t) = setup();
    let path = t.path().to_path_buf();
    drop(t);
    let before = std::fs::read(&path).unwrap();
    // Bump the format record with SQLite directly.
    let conn = rusqlite_bump(&path);
    drop(conn);
    let bumped = std::fs::read(&path).unwrap();
    assert_ne!(before, bumped);
    match Token::open(&path, reg.config()) {
        Err(Error::Store(StoreError::UnsupportedVersion(99))) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer format was accepted"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bumped,
        "refusing must not modify the file"
    );
    // Empty and garbage files are clear errors, never panics.
    let empty = d.path().join("tokens").join("empty.vtoken");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Token::open(&empty, reg.config()),
        Err(Error::Store(StoreError::Corrupt { .. }))
    ));
    let garbage = d.path().join("tokens").join("garbage.vtoken");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        Token::open(&garbage, reg.config()),
        Err(Error::Store(StoreError::Corrupt { .. }))
    ));
    assert_eq!(reg.problems().unwrap().len(), 3);
}

fn rusqlite_bump(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute(
        "UPDATE meta SET v = ?1 WHERE k = 'format'",
        [99u32.to_le_bytes().to_vec()],
    )
    .unwrap();
    c
}

#[test]
fn truncated_and_read_only_files_give_clear_errors_and_stay_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let (d, reg, t) = setup();
    t.login(UserType::User, USER).unwrap();
    let s = &t.open_session(true).unwrap();
    for i in 0..50 {
        t.create_object(s, &data_object(&format!("o{i}"), i % 2 == 0, true))
            .unwrap();
    }
    let path = t.path().to_path_buf();
    drop(t);
    let full = std::fs::read(&path).unwrap();
    // Truncated copies: a clear error (or, cut inside free pages, a token that still
    // opens), never a panic, and the file is not modified by the attempt.
    for cut in [10usize, 100, 4096, full.len() / 2, full.len() - 1] {
        let p = d.path().join("tokens").join(format!("cut{cut}.vtoken"));
        std::fs::write(&p, &full[..cut]).unwrap();
        let r = Token::open(&p, reg.config()).and_then(|t| {
            t.login(UserType::User, USER)?;
            t.search(&Attributes::new())
        });
        if let Err(e) = &r {
            assert!(
                matches!(
                    e,
                    Error::Store(StoreError::Corrupt { .. })
                        | Error::Store(StoreError::Sqlite(_) | StoreError::Io(_))
                ),
                "cut at {cut}: unexpected error {e:?}"
            );
        }
        assert_eq!(
            std::fs::read(&p).unwrap(),
            &full[..cut],
            "cut at {cut}: file modified"
        );
    }
    // A read-only token file: public objects readable, writes and logins refused
    // with TokenWriteProtected (a login must be able to count a failure first).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let ro = Token::open(&path, reg.config()).unwrap();
    assert!(ro.info().unwrap().read_only);
    let mut q = Attributes::new();
    q.set_bool(CKA_PRIVATE, false);
    assert_eq!(ro.search(&q).unwrap().len(), 25);
    assert!(matches!(
        ro.login(UserType::User, USER),
        Err(Error::TokenWriteProtected(_))
    ));
    let s = &ro.open_session(true).unwrap();
    assert!(matches!(
        ro.create_object(s, &data_object("new", false, true)),
        Err(Error::TokenWriteProtected(_))
    ));
    drop(ro);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        full,
        "the read-only file was modified"
    );
}

/// Searches by label or ID (with or without a class) use that tag's index, never a
/// walk over every object of the class (10 000-object tokens stay fast).
#[test]
fn label_and_id_searches_use_their_index() {
    use vault_core::store::{IndexFilter, Store};
    let (_d, reg, t) = setup();
    t.login(UserType::User, USER).unwrap();
    let s = &t.open_session(true).unwrap();
    for i in 0..20 {
        t.create_object(s, &data_object(&format!("o{i}"), true, true))
            .unwrap();
    }
    let path = reg.tokens().unwrap()[0].path.clone();
    drop(t);
    let st = Store::open(&path).unwrap();
    let plan = |class: Option<u64>, label: bool, id: bool| {
        st.explain_candidates(&IndexFilter {
            class,
            label: label.then(|| b"o7".to_vec()),
            id: id.then(|| b"\x01".to_vec()),
            include_private: true,
        })
        .unwrap()
    };
    let p = plan(Some(CKO_DATA), true, false);
    assert!(p.contains("objects_label"), "{p}");
    let p = plan(Some(CKO_DATA), false, true);
    assert!(p.contains("objects_id"), "{p}");
    let p = plan(None, true, false);
    assert!(p.contains("objects_label"), "{p}");
    let p = plan(Some(CKO_DATA), false, false);
    assert!(p.contains("objects_class"), "{p}");
}

#[test]
fn another_connections_changes_are_seen_within_the_look_window() {
    let (_d, reg, a) = setup();
    // `b` is a second, independent open of the same file: another process, in effect.
    let b = Token::open(a.path(), reg.config()).unwrap();
    let sa = &a.open_session(true).unwrap();
    let id = a
        .create_object(sa, &data_object("before", false, true))
        .unwrap();
    let label = |t: &Token, s| match &t.get_attributes(s, id, &[CKA_LABEL]).unwrap()[0] {
        AttrResult::Value(v) => String::from_utf8(v.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(label(&a, sa), "before"); // cached in `a`
    let sb = &b.open_session(true).unwrap();
    let mut u = Attributes::new();
    u.set(CKA_LABEL, b"after".to_vec());
    b.set_attributes(sb, id, &u).unwrap();
    // A search always looks at the file: `a` finds the new label at once.
    let mut q = Attributes::new();
    q.set(CKA_LABEL, b"after".to_vec());
    assert_eq!(a.search(&q).unwrap(), vec![id]);
    // Attribute reads and operation inits trust a look for LOOK_WINDOW at most.
    std::thread::sleep(vault_core::store::LOOK_WINDOW * 2);
    assert_eq!(label(&a, sa), "after");
    // A destroyed object: gone for `a` after the window, through any entry point.
    b.destroy_object(sb, id).unwrap();
    std::thread::sleep(vault_core::store::LOOK_WINDOW * 2);
    assert!(matches!(
        a.get_attributes(sa, id, &[CKA_LABEL]),
        Err(Error::ObjectHandleInvalid)
    ));
}
