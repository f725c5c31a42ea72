//! The Fig. 6 store flow (SPEC V4–V8) end to end on real token files:
//! `vtoken_device::vault_put::put_sealed` with the device verification, a tampered
//! envelope, a wrong root, a vault not yet enabled and a refusal.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use vault_core::config::{Config, KdfParams};
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{Entry, Kind, VaultMode};
use vtoken_device::certify_local;
use vtoken_device::vault_put::put_sealed;
use vtoken_pki::LocalCa;

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";

struct Scripted {
    answer: Mutex<Answer>,
    seen: Mutex<Vec<Request>>,
}

impl Prompt for Scripted {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.seen.lock().unwrap().push(req.clone());
        Ok(*self.answer.lock().unwrap())
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

/// A certified token with an available vault (not yet enabled), logged out.
fn token(dir: &std::path::Path, ca: &LocalCa) -> (Arc<Token>, Arc<Scripted>) {
    let mut cfg = Config::for_dir(dir.join("tokens"));
    cfg.kdf = KdfParams::TEST;
    let reg = Registry::new(cfg);
    let e = reg.create("t", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.vault_setup(VaultMode::Available).unwrap();
    t.logout().unwrap();
    // A session that stays open: closing a token's last session logs out.
    t.open_session(false).unwrap();
    t.login(UserType::User, USER).unwrap();
    certify_local(&t, ca).unwrap();
    t.logout().unwrap();
    let p = Arc::new(Scripted {
        answer: Mutex::new(Answer::Confirmed),
        seen: Mutex::new(Vec::new()),
    });
    t.set_prompt(p.clone());
    (t, p)
}

fn card() -> Entry {
    Entry::new(Kind::BankCard, "visa")
        .with_url("https://bank.example")
        .with("bank", "HSBC", false)
        .with("card_number", "4111111111111111", true)
        .with("card_pin", "4321", true)
        .with("holder", "A. Smith", false)
}

#[test]
fn fig6_flow_verifies_the_device_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (t, p) = token(dir.path(), &ca);
    let now = SystemTime::now();
    let same = |e: Vec<u8>| e;

    // Storage-enable request: the vault is only activated (S202 not done).
    let err = put_sealed(&t, USER, ca.cert_der(), &card(), now, same).unwrap_err();
    assert!(err.to_string().contains("activated"), "{err}");
    t.login(UserType::User, USER).unwrap();
    t.vault_enable().unwrap();
    t.logout().unwrap();

    // Wrong PIN on the token: nothing sealed, nothing stored.
    assert!(put_sealed(&t, b"wrong-pin", ca.cert_der(), &card(), now, same).is_err());
    // The client trusts another root: the device does not verify.
    let other = LocalCa::generate("vtoken test root", 30).unwrap();
    let err = put_sealed(&t, USER, other.cert_der(), &card(), now, |_| {
        panic!("sealed to an unverified device")
    })
    .unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    assert_eq!(p.seen.lock().unwrap().len(), 0, "nothing shown so far");

    // Tampered on the way: the token refuses, nothing shown, nothing stored.
    let err = put_sealed(&t, USER, ca.cert_der(), &card(), now, |mut e| {
        let n = e.len();
        e[n - 20] ^= 1;
        e
    })
    .unwrap_err();
    assert!(matches!(err, vtoken_device::Error::Token(_)), "{err:?}");
    assert_eq!(p.seen.lock().unwrap().len(), 0);
    assert!(t.vault_list().unwrap().is_empty());

    // The user refuses what the token shows: nothing stored.
    *p.answer.lock().unwrap() = Answer::Refused;
    assert!(put_sealed(&t, USER, ca.cert_der(), &card(), now, same).is_err());
    assert!(t.vault_list().unwrap().is_empty());

    // The happy path: shown as received (secrets included), confirmed, stored
    // with every field.
    *p.answer.lock().unwrap() = Answer::Confirmed;
    let id = put_sealed(&t, USER, ca.cert_der(), &card(), now, same).unwrap();
    let shown = p.seen.lock().unwrap().last().unwrap().description.clone();
    assert!(
        shown.contains("card_number (secret): 4111111111111111"),
        "{shown}"
    );
    let stored = t.vault_get(id).unwrap();
    assert_eq!(stored.kind, Kind::BankCard);
    assert_eq!(stored.url, "https://bank.example");
    assert_eq!(stored.fields, card().fields);
}
