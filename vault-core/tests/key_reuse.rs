//! An operation's init reuses the key its session used last while nothing changed
//! (`Token::init_keyed`): these tests change the key, the login state, the gate
//! policy and the file in every way an init checks, in this process and in another
//! (a second open of the same file), and check that the next init sees each change.

use std::sync::Arc;

use vault_core::config::Config;
use vault_core::gate::{GatePolicy, OpClass};
use vault_core::mechanism::Mechanism;
use vault_core::pkcs11::*;
use vault_core::session::{OutLen, Output, SessionRef};
use vault_core::slots::{Registry, TokenEntry};
use vault_core::store::LOOK_WINDOW;
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

struct Fixture {
    _dir: tempfile::TempDir,
    reg: Registry,
    entry: TokenEntry,
    t: Arc<Token>,
    sid: SessionRef,
    public: u64,
    private: u64,
}

/// A token with the user logged in, one R/W session and an EC P-256 token key pair.
fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let entry = reg.create("reuse", SO, None).unwrap();
    let t = reg.open(&entry).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    let sid = t.open_session(true).unwrap();
    t.login(UserType::User, USER).unwrap();
    let mut pub_t = Attributes::new();
    pub_t.set(CKA_EC_PARAMS, P256.to_vec());
    pub_t.set_bool(CKA_VERIFY, true);
    pub_t.set_bool(CKA_TOKEN, true);
    let mut priv_t = Attributes::new();
    priv_t.set_bool(CKA_SIGN, true);
    priv_t.set_bool(CKA_TOKEN, true);
    priv_t.set_bool(CKA_PRIVATE, true);
    let (public, private) = t
        .generate_key_pair(&sid, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &pub_t, &priv_t)
        .unwrap();
    Fixture {
        _dir: dir,
        reg,
        entry,
        t,
        sid,
        public,
        private,
    }
}

fn sign(t: &Token, sid: &SessionRef, key: u64) -> vault_core::Result<Vec<u8>> {
    t.sign_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), key)?;
    match t.sign(sid, b"message", OutLen::Buffer(256))? {
        Output::Bytes(b) => Ok(b),
        o => panic!("{o:?}"),
    }
}

fn verify(t: &Token, sid: &SessionRef, key: u64, sig: &[u8]) -> vault_core::Result<()> {
    t.verify_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), key)?;
    t.verify(sid, b"message", sig)
}

fn set_bool(t: &Token, sid: &SessionRef, key: u64, attr: CK_ATTRIBUTE_TYPE, v: bool) {
    let mut a = Attributes::new();
    a.set_bool(attr, v);
    t.set_attributes(sid, key, &a).unwrap();
}

#[test]
fn changes_in_this_process_end_the_reuse() {
    let f = setup();
    let (t, s1) = (&f.t, &f.sid);
    // Two inits in a row with the same key: the second reuses the first's lookup.
    let sig = sign(t, s1, f.private).unwrap();
    sign(t, s1, f.private).unwrap();
    verify(t, s1, f.public, &sig).unwrap();
    verify(t, s1, f.public, &sig).unwrap();

    // Another session of this process takes the usage away: the next init sees it.
    let s2 = &t.open_session(true).unwrap();
    set_bool(t, s2, f.private, CKA_SIGN, false);
    let e = sign(t, s1, f.private).unwrap_err();
    assert!(matches!(e, Error::KeyFunctionNotPermitted), "{e:?}");
    set_bool(t, s2, f.private, CKA_SIGN, true);
    sign(t, s1, f.private).unwrap();

    // CKA_ALLOWED_MECHANISMS narrowed to another mechanism.
    let mut a = Attributes::new();
    a.set(CKA_ALLOWED_MECHANISMS, CKM_ECDSA.to_le_bytes().to_vec());
    t.set_attributes(s2, f.private, &a).unwrap();
    let e = sign(t, s1, f.private).unwrap_err();
    assert!(matches!(e, Error::MechanismInvalid(_)), "{e:?}");
    t.sign_init(s1, &Mechanism::new(CKM_ECDSA), f.private)
        .unwrap();
    assert!(matches!(
        t.sign(s1, &[0x11; 32], OutLen::Buffer(256)).unwrap(),
        Output::Bytes(_)
    ));

    // Logout (the login state is the token's, not the session's) hides the private
    // key; a new login shows it again.
    sign(t, s1, f.public).unwrap_err(); // a public key cannot sign
    t.logout().unwrap();
    let e = t
        .sign_init(s1, &Mechanism::new(CKM_ECDSA), f.private)
        .unwrap_err();
    assert!(matches!(e, Error::KeyHandleInvalid), "{e:?}");
    // The public key stays usable after logout.
    verify(t, s1, f.public, &sig).unwrap();
    t.login(UserType::User, USER).unwrap();
    t.sign_init(s1, &Mechanism::new(CKM_ECDSA), f.private)
        .unwrap();
    t.sign(s1, &[0x11; 32], OutLen::Buffer(256)).unwrap();

    // Destroyed from another session: gone at once.
    t.destroy_object(s2, f.private).unwrap();
    let e = t
        .sign_init(s1, &Mechanism::new(CKM_ECDSA), f.private)
        .unwrap_err();
    assert!(matches!(e, Error::KeyHandleInvalid), "{e:?}");
}

#[test]
fn another_process_is_seen_within_the_look_window() {
    let f = setup();
    let (a, sa) = (&f.t, &f.sid);
    let sig = sign(a, sa, f.private).unwrap();
    sign(a, sa, f.private).unwrap();

    // `b`: a second open of the file, as another process would have.
    let b = f.reg.open(&f.entry).unwrap();
    let sb = &b.open_session(true).unwrap();
    b.login(UserType::User, USER).unwrap();
    set_bool(&b, sb, f.private, CKA_SIGN, false);
    std::thread::sleep(LOOK_WINDOW * 2);
    let e = sign(a, sa, f.private).unwrap_err();
    assert!(matches!(e, Error::KeyFunctionNotPermitted), "{e:?}");
    set_bool(&b, sb, f.private, CKA_SIGN, true);
    std::thread::sleep(LOOK_WINDOW * 2);
    sign(a, sa, f.private).unwrap();
    sign(a, sa, f.private).unwrap();

    // `b` gates signing: `a`'s next init asks the gate, whose agent here refuses
    // (no prompt configured), instead of reusing the key.
    b.gate_configure(GatePolicy {
        classes: vec![OpClass::Sign],
        ..GatePolicy::default()
    })
    .unwrap();
    std::thread::sleep(LOOK_WINDOW * 2);
    let e = sign(a, sa, f.private).unwrap_err();
    assert!(!matches!(e, Error::KeyHandleInvalid), "{e:?}");
    // Verification is never gated: still fine.
    verify(a, sa, f.public, &sig).unwrap();

    // `b` destroys the key: gone for `a` after the window.
    b.destroy_object(sb, f.private).unwrap();
    std::thread::sleep(LOOK_WINDOW * 2);
    let e = a
        .sign_init(sa, &Mechanism::new(CKM_ECDSA), f.private)
        .unwrap_err();
    assert!(matches!(e, Error::KeyHandleInvalid), "{e:?}");
}

#[test]
fn two_sessions_reuse_their_own_keys_on_two_threads() {
    let f = setup();
    let t = f.t.clone();
    let s2 = &t.open_session(false).unwrap();
    let sig = sign(&t, &f.sid, f.private).unwrap();
    std::thread::scope(|sc| {
        for (sid, n) in [(&f.sid, 200), (s2, 200)] {
            let t = &t;
            let sig = &sig;
            sc.spawn(move || {
                for i in 0..n {
                    if i % 2 == 0 {
                        sign(t, sid, f.private).unwrap();
                    } else {
                        verify(t, sid, f.public, sig).unwrap();
                    }
                }
            });
        }
    });
    // A logout in the middle of it all: both sessions' next inits fail.
    t.logout().unwrap();
    for sid in [&f.sid, s2] {
        let e = t
            .sign_init(sid, &Mechanism::new(CKM_ECDSA), f.private)
            .unwrap_err();
        assert!(matches!(e, Error::KeyHandleInvalid), "{e:?}");
    }
}

#[test]
fn a_session_ref_names_its_session_on_its_token_only_while_open() {
    let f = setup();
    let r = f.sid.clone();
    let m = Mechanism::new(CKM_ECDSA);
    f.t.sign_init(&r, &m, f.private).unwrap();
    // A clone names the same session: the operation is active there.
    let e = f.t.sign_init(&f.sid, &m, f.private).unwrap_err();
    assert!(matches!(e, Error::OperationActive), "{e:?}");
    assert!(matches!(
        f.t.sign(&r, &[0x11; 32], OutLen::Buffer(256)).unwrap(),
        Output::Bytes(_)
    ));
    // Another open of the same file is another token: the reference means nothing there.
    let b = f.reg.open(&f.entry).unwrap();
    let e = b.sign_init(&r, &m, f.private).unwrap_err();
    assert!(matches!(e, Error::SessionHandleInvalid), "{e:?}");
    assert!(matches!(
        b.close_session(&r).unwrap_err(),
        Error::SessionHandleInvalid
    ));
    // Kept past its close, a reference names nothing, as the handle would not.
    f.t.sign_init(&r, &m, f.private).unwrap();
    let keep = f.t.open_session(true).unwrap();
    f.t.close_session(&f.sid).unwrap();
    for e in [
        f.t.sign(&r, &[0x11; 32], OutLen::Buffer(256)).unwrap_err(),
        f.t.sign_init(&r, &m, f.private).unwrap_err(),
        f.t.session_info(&r).unwrap_err(),
        f.t.close_session(&r).unwrap_err(),
    ] {
        assert!(matches!(e, Error::SessionHandleInvalid), "{e:?}");
    }
    // The other session is untouched (and so is the login: it was not the last).
    f.t.sign_init(&keep, &m, f.private).unwrap();
    // C_CloseAllSessions closes every reference too.
    f.t.close_all_sessions();
    let e =
        f.t.sign(&keep, &[0x11; 32], OutLen::Buffer(256))
            .unwrap_err();
    assert!(matches!(e, Error::SessionHandleInvalid), "{e:?}");
}
