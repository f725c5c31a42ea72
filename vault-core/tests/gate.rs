//! The picture-verification gate (SPEC C1–C6) through the public API, on real token
//! files.
//!
//! Tests that need the right answer read it through the test-only hook and run only
//! with the `test-hooks` feature:
//!
//! ```sh
//! cargo test -p vault-core --features test-hooks --test gate
//! ```
//!
//! The others (wrong answers, refreshes, timeouts, refusals, the lock, reattach,
//! policy) run in every build, with a scripted agent that never sees the answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vault_core::config::Config;
use vault_core::error::{GateError, GateFailure};
use vault_core::gate::{GatePolicy, GateState, OpClass, CKA_VTOKEN_GATED, COUNTER};
use vault_core::mechanism::Mechanism;
use vault_core::pkcs11::*;
use vault_core::prompt::{Answer, Captcha, CaptchaReply, Prompt, Request};
use vault_core::session::{OutLen, Output, SessionRef};
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};
use zeroize::Zeroizing;

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// What the scripted agent does with the next picture.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // `Right` and `RightAfter` are used with test-hooks only
enum Step {
    /// Reads the answer through the test hook and types it.
    Right,
    /// Like `Right`, after waiting.
    RightAfter(Duration),
    Wrong,
    Refresh,
    TimedOut,
    Refused,
    /// The agent fails after showing the picture.
    Fail,
    /// The agent cannot show pictures at all.
    Unsupported,
}

/// A scripted prompt agent. Without the test hook it never knows the answer.
struct Scripted {
    steps: Mutex<VecDeque<Step>>,
    captchas: Mutex<Vec<(String, String, usize)>>,
    notices: Mutex<Vec<Request>>,
}

impl Scripted {
    fn new(steps: &[Step]) -> Arc<Scripted> {
        Arc::new(Scripted {
            steps: Mutex::new(steps.iter().copied().collect()),
            captchas: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
        })
    }
    fn push(&self, steps: &[Step]) {
        self.steps.lock().unwrap().extend(steps.iter().copied());
    }
    fn shown(&self) -> usize {
        self.captchas.lock().unwrap().len()
    }
}

#[cfg(feature = "test-hooks")]
fn hooked_answer() -> String {
    std::fs::read_to_string(hook::file()).unwrap()
}

#[cfg(not(feature = "test-hooks"))]
fn hooked_answer() -> String {
    panic!("this step needs the test-hooks feature")
}

impl Prompt for Scripted {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.notices.lock().unwrap().push(req.clone());
        Ok(Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "scripted"
    }
    fn captcha(&self, c: &Captcha<'_>) -> vault_core::Result<CaptchaReply> {
        assert_eq!(&c.png[..8], b"\x89PNG\r\n\x1a\n");
        self.captchas
            .lock()
            .unwrap()
            .push((c.title.clone(), c.description.clone(), c.png.len()));
        let step = self
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .expect("an unexpected picture");
        match step {
            Step::Right => Ok(CaptchaReply::Answer(Zeroizing::new(hooked_answer()))),
            Step::RightAfter(d) => {
                std::thread::sleep(d);
                Ok(CaptchaReply::Answer(Zeroizing::new(hooked_answer())))
            }
            Step::Wrong => Ok(CaptchaReply::Answer(Zeroizing::new("WRONG!".into()))),
            Step::Refresh => Ok(CaptchaReply::Refresh),
            Step::TimedOut => Ok(CaptchaReply::TimedOut),
            Step::Refused => Ok(CaptchaReply::Refused),
            Step::Fail => Err(Error::General("the agent crashed".into())),
            Step::Unsupported => Err(Error::FunctionNotSupported),
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    reg: Registry,
    entry: TokenEntry,
    t: Arc<Token>,
    p: Arc<Scripted>,
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let entry = reg.create("gate", SO, None).unwrap();
    let t = reg.open(&entry).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    let p = Scripted::new(&[]);
    t.set_prompt(p.clone());
    Fixture {
        _dir: dir,
        reg,
        entry,
        t,
        p,
    }
}

/// An EC P-256 token key pair; the private half flagged gated when `gated`.
fn ec_pair(t: &Token, sid: &SessionRef, label: &str, gated: bool) -> (u64, u64) {
    let mut pub_t = Attributes::new();
    pub_t.set(CKA_EC_PARAMS, P256.to_vec());
    pub_t.set_bool(CKA_VERIFY, true);
    pub_t.set_bool(CKA_TOKEN, true);
    pub_t.set(CKA_LABEL, label.as_bytes().to_vec());
    let mut priv_t = Attributes::new();
    priv_t.set_bool(CKA_SIGN, true);
    priv_t.set_bool(CKA_TOKEN, true);
    priv_t.set(CKA_LABEL, label.as_bytes().to_vec());
    if gated {
        priv_t.set_bool(CKA_VTOKEN_GATED, true);
    }
    t.generate_key_pair(sid, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &pub_t, &priv_t)
        .unwrap()
}

fn sign(t: &Token, sid: &SessionRef, key: u64, data: &[u8]) -> vault_core::Result<Vec<u8>> {
    t.sign_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), key)?;
    match t.sign(sid, data, OutLen::Buffer(256))? {
        Output::Bytes(b) => Ok(b),
        o => panic!("{o:?}"),
    }
}

fn verify(t: &Token, sid: &SessionRef, key: u64, data: &[u8], sig: &[u8]) {
    t.verify_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), key)
        .unwrap();
    t.verify(sid, data, sig).unwrap();
}

fn failures(t: &Token) -> u32 {
    t.gate_status().unwrap().failures
}

fn gate_sign() -> GatePolicy {
    GatePolicy {
        classes: vec![OpClass::Sign],
        ..GatePolicy::default()
    }
}

#[test]
fn off_by_default_and_states() {
    let f = setup();
    let t = &f.t;
    let s = t.gate_status().unwrap();
    assert_eq!(s.policy, GatePolicy::default());
    assert!(s.policy.classes.is_empty());
    assert_eq!(s.policy.chances, 3);
    assert_eq!((s.policy.lifetime_ms, s.policy.transport_ms), (5000, 1000));
    assert_eq!(s.policy.length, 6);
    assert_eq!(s.state, GateState::Initial);
    assert_eq!(t.info().unwrap().gate, GateState::Initial);
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.gate_state().unwrap(), GateState::PinVerified);
    assert_eq!(t.info().unwrap().gate, GateState::PinVerified);
    let sid = &t.open_session(true).unwrap();
    // An unflagged key, no gated class: no picture at all.
    let (pk, sk) = ec_pair(t, sid, "plain", false);
    let sig = sign(t, sid, sk, b"data").unwrap();
    verify(t, sid, pk, b"data", &sig);
    assert_eq!(f.p.shown(), 0);
    t.logout().unwrap();
    assert_eq!(t.gate_state().unwrap(), GateState::Initial);
}

#[test]
fn gated_flag_is_fixed_at_creation() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    let sid = &t.open_session(true).unwrap();
    let (_, sk) = ec_pair(t, sid, "k", true);
    let (_, plain) = ec_pair(t, sid, "p", false);
    let mut on = Attributes::new();
    on.set_bool(CKA_VTOKEN_GATED, true);
    let mut off = Attributes::new();
    off.set_bool(CKA_VTOKEN_GATED, false);
    assert!(matches!(
        t.set_attributes(sid, sk, &off),
        Err(Error::AttributeReadOnly(_))
    ));
    assert!(matches!(
        t.set_attributes(sid, plain, &on),
        Err(Error::AttributeReadOnly(_))
    ));
    assert!(t.attributes(sk).unwrap().bool_or(CKA_VTOKEN_GATED, false));
}

#[test]
fn low_privilege_requests_never_see_the_gate() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    t.gate_configure(GatePolicy {
        classes: vec![OpClass::Decrypt],
        ..GatePolicy::default()
    })
    .unwrap();
    let sid = &t.open_session(true).unwrap();
    let (gpk, _gated) = ec_pair(t, sid, "gated", true);
    let (pk, sk) = ec_pair(t, sid, "plain", false);
    // A digest.
    t.digest_init(sid, &Mechanism::new(CKM_SHA256)).unwrap();
    assert!(matches!(
        t.digest(sid, b"abc", OutLen::Buffer(64)).unwrap(),
        Output::Bytes(b) if b.len() == 32
    ));
    // An unflagged key's signature (sign is not a gated class here).
    let sig = sign(t, sid, sk, b"m").unwrap();
    verify(t, sid, pk, b"m", &sig);
    // Verification with a gated key's public half.
    t.verify_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), gpk)
        .unwrap();
    assert!(t.verify(sid, b"m", &sig).is_err());
    assert_eq!(f.p.shown(), 0);
    assert_eq!(failures(t), 0);
}

#[test]
fn wrong_refresh_wrong_locks_and_lock_survives_reopen_until_reattach() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    let sid = &t.open_session(true).unwrap();
    let (_, sk) = ec_pair(t, sid, "transfer key", true);
    let (_, plain) = ec_pair(t, sid, "plain", false);

    // Through the agent: a wrong answer and a refresh each bring a new picture and
    // use a chance; the third failure locks.
    f.p.push(&[Step::Wrong, Step::Refresh, Step::Wrong]);
    let e = sign(t, sid, sk, b"pay 100").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gate(GateError::LockedNow {
                last: GateFailure::Wrong
            })
        ),
        "{e:?}"
    );
    assert_eq!(e.ckr(), CKR_DEVICE_REMOVED);
    assert_eq!(f.p.shown(), 3);
    let seen = f.p.captchas.lock().unwrap().clone();
    assert!(seen[0].0.contains("transfer key"), "{:?}", seen[0]);
    assert!(seen[0].1.contains("3 chances left"), "{:?}", seen[0]);
    assert!(seen[1].1.contains("Wrong answer"), "{:?}", seen[1]);
    assert!(seen[2].1.contains("1 chance left"), "{:?}", seen[2]);
    // The user was warned.
    let notices = f.p.notices.lock().unwrap().clone();
    assert!(
        notices
            .iter()
            .any(|n| n.description.contains("may be compromised")),
        "{notices:?}"
    );
    // ... and told what became of the last chance.
    assert!(
        notices.iter().any(|n| n
            .description
            .starts_with("the answer to the last picture was wrong; the token locked itself")),
        "{notices:?}"
    );

    // Locked: the process is logged out and every operation fails.
    let s = t.gate_status().unwrap();
    assert!(s.locked && s.locked_at.is_some());
    assert_eq!(s.state, GateState::Locked);
    assert_eq!(t.info().unwrap().gate, GateState::Locked);
    assert_eq!(t.logged_in(), None);
    let locked = |r: vault_core::Result<()>| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Gate(GateError::Locked)), "{e:?}");
    };
    locked(t.login(UserType::User, USER));
    locked(t.open_session(false).map(|_| ()));
    locked(t.digest_init(sid, &Mechanism::new(CKM_SHA256)));
    locked(t.sign_init(sid, &Mechanism::new(CKM_ECDSA_SHA256), plain));
    locked(t.search(&Attributes::new()).map(|_| ()));
    locked(t.gate_challenge(OpClass::Sign).map(|_| ()));
    locked(t.gate_configure(GatePolicy::default()));
    locked(t.vault_require());
    assert_eq!(f.p.shown(), 3);

    // A new process (a new handle on the file) is locked too.
    let t2 = f.reg.open(&f.entry).unwrap();
    assert!(t2.gate_locked().unwrap());
    assert_eq!(t2.gate_state().unwrap(), GateState::Locked);
    locked(t2.login(UserType::User, USER));
    locked(t2.open_session(true).map(|_| ()));

    // Reattach: a wrong PIN does nothing (and counts like an SO login), the user
    // PIN is no better (it is not the SO PIN), the SO PIN clears the lock.
    assert!(matches!(
        t2.gate_reattach(b"wrong-pin-1"),
        Err(Error::PinIncorrect)
    ));
    assert!(t2.gate_locked().unwrap());
    assert_eq!(t2.info().unwrap().so_pin.failures, 1);
    assert!(matches!(t2.gate_reattach(USER), Err(Error::PinIncorrect)));
    assert!(t2.gate_locked().unwrap());
    assert_eq!(t2.info().unwrap().so_pin.failures, 2);
    t2.gate_reattach(SO).unwrap();
    assert!(!t2.gate_locked().unwrap());
    assert_eq!(t2.info().unwrap().so_pin.failures, 0);
    assert_eq!(failures(&t2), 0);
    assert_eq!(t2.gate_state().unwrap(), GateState::Initial);
    // The first handle sees it too.
    assert!(!t.gate_locked().unwrap());
    t.login(UserType::User, USER).unwrap();
    let sid = &t.open_session(true).unwrap();
    sign(t, sid, plain, b"ok again").unwrap();
}

#[test]
fn a_last_chance_lost_to_time_says_so_in_the_lock_warning() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    let sid = &t.open_session(true).unwrap();
    let (_, sk) = ec_pair(t, sid, "late key", true);
    // Two wrong answers, then no answer in time to the third and last picture.
    f.p.push(&[Step::Wrong, Step::Wrong, Step::TimedOut]);
    let e = sign(t, sid, sk, b"pay 100").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gate(GateError::LockedNow {
                last: GateFailure::Unanswered
            })
        ),
        "{e:?}"
    );
    assert_eq!(f.p.shown(), 3);
    let notices = f.p.notices.lock().unwrap().clone();
    assert!(
        notices.iter().any(|n| n
            .description
            .starts_with("the answer to the last picture came too late; the token locked itself")),
        "{notices:?}"
    );
    assert!(
        !notices.iter().any(|n| n.description.contains("was wrong")),
        "{notices:?}"
    );
}

#[test]
fn timeout_refusal_and_agent_failure() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    t.gate_configure(gate_sign()).unwrap();
    let sid = &t.open_session(true).unwrap();
    let (_, sk) = ec_pair(t, sid, "k", false);

    // No answer in time: rejected, one chance used, no second picture.
    f.p.push(&[Step::TimedOut]);
    let e = sign(t, sid, sk, b"x").unwrap_err();
    assert!(
        matches!(e, Error::Gate(GateError::Rejected { .. })),
        "{e:?}"
    );
    assert_eq!(e.ckr(), CKR_FUNCTION_REJECTED);
    assert_eq!((f.p.shown(), failures(t)), (1, 1));

    // An agent that cannot show pictures: rejected, the chance given back.
    f.p.push(&[Step::Unsupported]);
    let e = sign(t, sid, sk, b"x").unwrap_err();
    assert!(
        matches!(e, Error::FunctionRejected | Error::NotConfirmed(_)),
        "{e:?}"
    );
    assert_eq!(failures(t), 1);
    // The default `deny` agent behaves the same.
    t.set_prompt(Arc::new(vault_core::prompt::Deny));
    let e = sign(t, sid, sk, b"x").unwrap_err();
    assert_eq!(e.ckr(), CKR_FUNCTION_REJECTED);
    assert_eq!(failures(t), 1);
    t.set_prompt(f.p.clone());

    // A refusal: CKR_FUNCTION_REJECTED, and the picture's chance is used.
    f.p.push(&[Step::Refused]);
    let e = sign(t, sid, sk, b"x").unwrap_err();
    assert!(
        matches!(e, Error::FunctionRejected | Error::NotConfirmed(_)),
        "{e:?}"
    );
    assert_eq!(failures(t), 2);

    // An agent failing after the picture: rejected; that was the last chance.
    f.p.push(&[Step::Fail]);
    let e = sign(t, sid, sk, b"x").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gate(GateError::LockedNow {
                last: GateFailure::AgentFailed
            })
        ),
        "{e:?}"
    );
    assert!(t.gate_locked().unwrap());
}

#[test]
fn captcha_aware_api_wrong_answers_and_refreshes() {
    let f = setup();
    let t = &f.t;
    // Needs the user logged in.
    assert!(matches!(
        t.gate_challenge(OpClass::Sign),
        Err(Error::UserNotLoggedIn)
    ));
    t.login(UserType::User, USER).unwrap();
    t.gate_configure(gate_sign()).unwrap();
    let c = t.gate_challenge(OpClass::Sign).unwrap();
    assert_eq!(&c.png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(c.lifetime, Duration::from_secs(5));
    assert_eq!(c.chances_left, 3);
    assert_eq!(
        failures(t),
        1,
        "the chance is used when the picture is handed out"
    );
    let e = t.gate_answer(c.id, "nope").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gate(GateError::Rejected {
                reason: GateFailure::Wrong,
                ..
            })
        ),
        "{e:?}"
    );
    // The challenge is gone once answered.
    assert!(matches!(
        t.gate_answer(c.id, "nope"),
        Err(Error::ArgumentsBad(_))
    ));
    // A refresh replaces the picture and uses a chance.
    let c2 = t.gate_challenge(OpClass::Sign).unwrap();
    assert_eq!(c2.chances_left, 2);
    let c3 = t.gate_challenge(OpClass::Sign).unwrap();
    assert_eq!(c3.chances_left, 1);
    assert!(matches!(
        t.gate_answer(c2.id, "x"),
        Err(Error::ArgumentsBad(_))
    ));
    let e = t.gate_answer(c3.id, "still wrong").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gate(GateError::LockedNow {
                last: GateFailure::Wrong
            })
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("the answer to the last picture was wrong; the token is locked"),
        "{e}"
    );
    assert_eq!(e.ckr(), CKR_DEVICE_REMOVED);
    assert!(t.gate_locked().unwrap());
    assert_eq!(f.p.shown(), 0);
}

#[test]
fn policy_validation_persistence_and_weakening() {
    let f = setup();
    let t = &f.t;
    assert!(matches!(
        t.gate_configure(gate_sign()),
        Err(Error::UserNotLoggedIn)
    ));
    t.login(UserType::User, USER).unwrap();
    for bad in [
        GatePolicy {
            chances: 0,
            ..GatePolicy::default()
        },
        GatePolicy {
            lifetime_ms: 500,
            ..GatePolicy::default()
        },
        GatePolicy {
            length: 2,
            ..GatePolicy::default()
        },
        GatePolicy {
            alphabet: "ABC".into(),
            ..GatePolicy::default()
        },
        GatePolicy {
            alphabet: "ABCDEFGHJK-!".into(),
            ..GatePolicy::default()
        },
        GatePolicy {
            classes: vec![OpClass::Configure],
            ..GatePolicy::default()
        },
    ] {
        assert!(
            matches!(t.gate_configure(bad.clone()), Err(Error::ArgumentsBad(_))),
            "{bad:?}"
        );
    }
    assert!(OpClass::parse("vault-password").is_ok());
    assert!(OpClass::parse("configure").is_err());
    // Strengthening needs only the PIN.
    let strong = GatePolicy {
        classes: vec![OpClass::Sign, OpClass::OtpCode, OpClass::Decrypt],
        chances: 2,
        lifetime_ms: 4000,
        ..GatePolicy::default()
    };
    t.gate_configure(strong.clone()).unwrap();
    assert_eq!(f.p.shown(), 0);
    // It is in the token file.
    let t2 = f.reg.open(&f.entry).unwrap();
    let p = t2.gate_policy().unwrap();
    assert_eq!(
        p.classes,
        vec![OpClass::Sign, OpClass::Decrypt, OpClass::OtpCode]
    );
    assert_eq!((p.chances, p.lifetime_ms), (2, 4000));
    // Weakening (switching off, dropping a class, more chances) needs a picture:
    // refused here, so nothing changes.
    for weak in [
        GatePolicy {
            enabled: false,
            ..p.clone()
        },
        GatePolicy {
            classes: vec![OpClass::Sign],
            ..p.clone()
        },
        GatePolicy {
            chances: 5,
            ..p.clone()
        },
    ] {
        assert!(p.weakened_by(&weak));
        f.p.push(&[Step::Refused]);
        assert!(matches!(
            t.gate_configure(weak),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        // Reset the used chance for the next round (the refusal used one).
        assert!(!t.gate_locked().unwrap());
        t.gate_reattach(SO).unwrap();
    }
    assert_eq!(t.gate_policy().unwrap().classes.len(), 3);
    // While the gate is off, anything goes.
    assert!(!GatePolicy {
        enabled: false,
        ..p.clone()
    }
    .weakened_by(&GatePolicy {
        enabled: false,
        chances: 9,
        ..p
    }));
}

#[test]
fn lock_seen_by_an_other_open_handle() {
    let f = setup();
    let t = &f.t;
    // A second "process" with a session and a login, before the lock.
    let other = f.reg.open(&f.entry).unwrap();
    other.login(UserType::User, USER).unwrap();
    let osid = &other.open_session(true).unwrap();
    let (_, plain) = ec_pair(&other, osid, "plain", false);
    sign(&other, osid, plain, b"before").unwrap();
    // Session opens check the gate; the second reuses the first's look.
    for _ in 0..2 {
        let s = &other.open_session(false).unwrap();
        other.close_session(s).unwrap();
    }

    t.login(UserType::User, USER).unwrap();
    for _ in 0..3 {
        let c = t.gate_challenge(OpClass::Sign).unwrap();
        let _ = t.gate_answer(c.id, "bad");
    }
    assert!(t.gate_locked().unwrap());
    // A fresh look at the file (token info reads the header) and, within the look
    // window, a session open: the open must not trust its earlier "unlocked".
    assert_eq!(other.info().unwrap().gate, GateState::Locked);
    let e = &other.open_session(false).unwrap_err();
    assert!(matches!(e, Error::Gate(GateError::Locked)), "{e:?}");
    let e = sign(&other, osid, plain, b"after").unwrap_err();
    assert_eq!(e.ckr(), CKR_DEVICE_REMOVED);
    assert!(matches!(
        other.otp_list(),
        Err(Error::Gate(GateError::Locked))
    ));
    // Closing sessions still works.
    other.close_session(osid).unwrap();
}

#[test]
fn counter_is_committed_before_the_answer() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    let _c = t.gate_challenge(OpClass::Sign).unwrap();
    // Another handle sees the used chance while the picture is out.
    let t2 = f.reg.open(&f.entry).unwrap();
    assert_eq!(failures(&t2), 1);
    // A "process" that dies holding its pictures loses their chances: after the
    // last one, the next picture request locks.
    drop(_c);
    for _ in 0..2 {
        let t3 = f.reg.open(&f.entry).unwrap();
        t3.login(UserType::User, USER).unwrap();
        let _ = t3.gate_challenge(OpClass::Sign).unwrap();
    }
    assert_eq!(failures(&t2), 3);
    assert!(matches!(
        t2.gate_check(OpClass::Sign, None, "test"),
        Ok(()) // sign is not a gated class: no picture, no lock
    ));
    t2.login(UserType::User, USER).unwrap();
    assert!(matches!(
        t2.gate_challenge(OpClass::Sign),
        Err(Error::Gate(GateError::Locked))
    ));
    assert!(t.gate_locked().unwrap());
    let _ = COUNTER;
}

/// Post-quantum keys are gated by effect like the others: an ML-DSA signature is a
/// `sign`, an ML-KEM decapsulation an `unwrap` (a private key opens a secret), and
/// a refused picture makes no signature and no key. Encapsulation to a public key
/// needs no picture.
#[test]
fn post_quantum_keys_are_gated_by_effect() {
    let f = setup();
    let t = &f.t;
    t.login(UserType::User, USER).unwrap();
    t.gate_configure(GatePolicy {
        classes: vec![OpClass::Sign, OpClass::Unwrap],
        ..GatePolicy::default()
    })
    .unwrap();
    let sid = &t.open_session(true).unwrap();
    let pair = |gen, set| {
        let mut pt = Attributes::new();
        pt.set_ulong(CKA_PARAMETER_SET, set);
        pt.set_bool(CKA_TOKEN, true);
        let mut st = Attributes::new();
        st.set_bool(CKA_TOKEN, true);
        t.generate_key_pair(sid, &Mechanism::new(gen), &pt, &st)
            .unwrap()
    };
    let (_, dsa) = pair(CKM_ML_DSA_KEY_PAIR_GEN, CKP_ML_DSA_44);
    f.p.push(&[Step::Refused]);
    let r = t
        .sign_init(sid, &Mechanism::new(CKM_ML_DSA), dsa)
        .and_then(|_| t.sign(sid, b"pay 100", OutLen::Buffer(4096)));
    assert_eq!(r.unwrap_err().ckr(), CKR_FUNCTION_REJECTED);
    assert_eq!(f.p.shown(), 1);

    let (ek, dk) = pair(CKM_ML_KEM_KEY_PAIR_GEN, CKP_ML_KEM_512);
    let mut aes = Attributes::new();
    aes.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    aes.set_ulong(CKA_KEY_TYPE, CKK_AES);
    let m = Mechanism::new(CKM_ML_KEM);
    let (ct, _) = t.encapsulate_key(sid, &m, ek, &aes).unwrap();
    assert_eq!(f.p.shown(), 1, "no picture for a public-key encapsulation");
    let before = t.search(&Attributes::new()).unwrap().len();
    f.p.push(&[Step::Refused]);
    let e = t.decapsulate_key(sid, &m, dk, &aes, &ct).unwrap_err();
    assert_eq!(e.ckr(), CKR_FUNCTION_REJECTED);
    assert_eq!(f.p.shown(), 2);
    assert_eq!(t.search(&Attributes::new()).unwrap().len(), before);
}

#[cfg(feature = "test-hooks")]
mod hook {
    //! Tests reading the answer through the test-only hook. They share one answer
    //! file (the variable is process-wide), so they run one at a time.

    use super::*;
    use std::path::PathBuf;
    use std::sync::{MutexGuard, OnceLock};

    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());

    pub fn file() -> PathBuf {
        FILE.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("answer");
            std::env::set_var(vault_core::gate::TEST_ANSWER_FILE_ENV, &p);
            (d, p)
        })
        .1
        .clone()
    }

    fn serial() -> MutexGuard<'static, ()> {
        file();
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn right_answer_through_the_agent_signs() {
        let _g = serial();
        let f = setup();
        let t = &f.t;
        t.login(UserType::User, USER).unwrap();
        let sid = &t.open_session(true).unwrap();
        let (pk, sk) = ec_pair(t, sid, "k", true);
        // Wrong first, then right: the second picture passes and the chances are back.
        f.p.push(&[Step::Wrong, Step::Right]);
        let sig = sign(t, sid, sk, b"pay 100").unwrap();
        verify(t, sid, pk, b"pay 100", &sig);
        assert_eq!(f.p.shown(), 2);
        assert_eq!(failures(t), 0);
        // Every gated request asks again.
        f.p.push(&[Step::Right]);
        sign(t, sid, sk, b"again").unwrap();
        assert_eq!(f.p.shown(), 3);
        // Case and spaces do not matter.
        let c = t.gate_challenge(OpClass::Sign).unwrap();
        let a = hooked_answer().to_lowercase();
        let spaced: String = a.chars().flat_map(|c| [c, ' ']).collect();
        t.gate_answer(c.id, &spaced).unwrap();
    }

    #[test]
    fn captcha_aware_pass_is_one_time_and_per_class() {
        let _g = serial();
        let f = setup();
        let t = &f.t;
        t.login(UserType::User, USER).unwrap();
        t.gate_configure(GatePolicy {
            classes: vec![OpClass::Sign, OpClass::Decrypt],
            ..GatePolicy::default()
        })
        .unwrap();
        let sid = &t.open_session(true).unwrap();
        let (pk, sk) = ec_pair(t, sid, "k", false);
        let c = t.gate_challenge(OpClass::Sign).unwrap();
        t.gate_answer(c.id, &hooked_answer()).unwrap();
        assert!(t.gate_has_pass(OpClass::Sign));
        assert!(!t.gate_has_pass(OpClass::Decrypt));
        assert_eq!(failures(t), 0);
        // The pass is consumed by the next gated request, without the agent.
        let sig = sign(t, sid, sk, b"m").unwrap();
        verify(t, sid, pk, b"m", &sig);
        assert_eq!(f.p.shown(), 0);
        assert!(!t.gate_has_pass(OpClass::Sign));
        // The next one needs a new picture (the agent refuses here).
        f.p.push(&[Step::Refused]);
        assert!(matches!(
            sign(t, sid, sk, b"m"),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
    }

    #[test]
    fn a_late_answer_uses_a_chance() {
        let _g = serial();
        let f = setup();
        let t = &f.t;
        t.login(UserType::User, USER).unwrap();
        t.gate_configure(GatePolicy {
            classes: vec![OpClass::Sign],
            lifetime_ms: 1000,
            transport_ms: 0,
            ..GatePolicy::default()
        })
        .unwrap();
        let c = t.gate_challenge(OpClass::Sign).unwrap();
        assert_eq!(c.lifetime, Duration::from_secs(1));
        let answer = hooked_answer();
        std::thread::sleep(Duration::from_millis(1200));
        let e = t.gate_answer(c.id, &answer).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Gate(GateError::Rejected {
                    reason: GateFailure::Late,
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(failures(t), 1);
        assert!(!t.gate_has_pass(OpClass::Sign));
        // Through the agent: late, then right in time.
        let sid = &t.open_session(true).unwrap();
        let (_, sk) = ec_pair(t, sid, "k", false);
        f.p.push(&[Step::RightAfter(Duration::from_millis(1200)), Step::Right]);
        sign(t, sid, sk, b"m").unwrap();
        assert_eq!(f.p.shown(), 2);
        let seen = f.p.captchas.lock().unwrap().clone();
        assert!(seen[1].1.contains("too late"), "{:?}", seen[1]);
        assert_eq!(failures(t), 0);
    }

    #[test]
    fn weakening_with_a_passed_picture() {
        let _g = serial();
        let f = setup();
        let t = &f.t;
        t.login(UserType::User, USER).unwrap();
        t.gate_configure(GatePolicy {
            classes: vec![OpClass::Sign],
            ..GatePolicy::default()
        })
        .unwrap();
        let c = t.gate_challenge(OpClass::Configure).unwrap();
        t.gate_answer(c.id, &hooked_answer()).unwrap();
        t.gate_configure(GatePolicy {
            enabled: false,
            ..GatePolicy::default()
        })
        .unwrap();
        assert!(!t.gate_policy().unwrap().enabled);
        assert_eq!(f.p.shown(), 0);
    }

    #[test]
    fn otp_code_and_vault_password_are_gated_classes() {
        let _g = serial();
        let f = setup();
        let t = &f.t;
        t.login(UserType::User, USER).unwrap();
        let uri = otp_core::OtpUri::parse(
            "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        )
        .unwrap();
        t.otp_add(&uri, false).unwrap();
        let name = t.otp_list().unwrap()[0].name.clone();
        t.otp_code(&name, 59).unwrap();
        t.gate_configure(GatePolicy {
            classes: vec![OpClass::OtpCode, OpClass::VaultPassword],
            ..GatePolicy::default()
        })
        .unwrap();
        f.p.push(&[Step::Refused]);
        assert!(matches!(
            t.otp_code(&name, 59),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        f.p.push(&[Step::Right]);
        t.otp_code(&name, 59).unwrap();
        let id = t
            .vault_add(
                &vault_core::vault::Entry::new(vault_core::vault::Kind::Website, "bank")
                    .with("username", "alice", false)
                    .with("password", "s3cret-pw", true),
            )
            .unwrap();
        let plain = vault_core::vault::PasswordOutput::Plain;
        f.p.push(&[Step::Wrong, Step::Refused]);
        assert!(matches!(
            t.vault_password(id, None, &plain),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        f.p.push(&[Step::Right]);
        assert_eq!(
            &t.vault_password(id, None, &plain).unwrap()[..],
            b"s3cret-pw"
        );
        // Listing is not gated.
        t.vault_list().unwrap();
        assert_eq!(f.p.shown(), 5);
    }
}
