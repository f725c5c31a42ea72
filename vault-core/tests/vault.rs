//! The vault (SPEC V1–V5, V9, V10) through the public API, on real token files.

use std::sync::{Arc, Mutex};

use vault_core::config::Config;
use vault_core::error::VaultError;
use vault_core::mechanism::{MechParam, Mechanism};
use vault_core::pkcs11::*;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::session::{OutLen, Output};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{
    Entry, Field, Kind, PasswordOutput, PublicKeyRef, Query, VaultMode, VaultPhase,
    VAULT_APPLICATION,
};
use vault_core::{Attributes, Error};

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";
const PASSWORD: &str = "Tr0ub4dor&3-unique-marker";

/// A scripted prompt (core tests only): answers with a fixed answer, records requests.
struct Scripted {
    answer: Mutex<Answer>,
    seen: Mutex<Vec<Request>>,
}

impl Scripted {
    fn new(a: Answer) -> Arc<Scripted> {
        Arc::new(Scripted {
            answer: Mutex::new(a),
            seen: Mutex::new(Vec::new()),
        })
    }
    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn last(&self) -> Request {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
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

/// A token with the user PIN set, vault in `mode` (an available vault also
/// enabled, S202); returns the activation code.
fn setup(mode: VaultMode) -> (tempfile::TempDir, Arc<Token>, Arc<Scripted>, Option<String>) {
    let (dir, t, code) = factory(mode);
    if mode == VaultMode::Available {
        t.login(UserType::User, USER).unwrap();
        t.vault_enable().unwrap();
        t.logout().unwrap();
    }
    let p = Scripted::new(Answer::Confirmed);
    t.set_prompt(p.clone());
    (dir, t, p, code)
}

/// A token straight from the factory setting: user PIN set, vault in `mode`.
fn factory(mode: VaultMode) -> (tempfile::TempDir, Arc<Token>, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("test", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    let code = t.vault_setup(mode).unwrap();
    t.logout().unwrap();
    (dir, t, code)
}

fn website(title: &str) -> Entry {
    Entry::new(Kind::Website, title)
        .with_url("https://example.com/login")
        .with("username", "alice", false)
        .with("password", PASSWORD, true)
}

fn vault_template(e: &Entry) -> Attributes {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_DATA);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(CKA_PRIVATE, true);
    a.set(CKA_APPLICATION, VAULT_APPLICATION.to_vec());
    a.set(CKA_LABEL, e.title.as_bytes().to_vec());
    a.set(CKA_VALUE, serde_json::to_vec(e).unwrap());
    a
}

fn vault_find(t: &Token) -> Vec<u64> {
    let mut q = Attributes::new();
    q.set(CKA_APPLICATION, VAULT_APPLICATION.to_vec());
    t.search(&q).unwrap()
}

#[test]
fn confirm_writes_refuse_and_timeout_write_nothing() {
    let (_d, t, p, code) = setup(VaultMode::Available);
    assert!(code.is_none());
    assert!(t.vault_status().unwrap().usable);
    // Writes need the user PIN (V3).
    assert!(matches!(
        t.vault_add(&website("a")),
        Err(Error::UserNotLoggedIn)
    ));
    assert_eq!(p.count(), 0);
    t.login(UserType::User, USER).unwrap();

    let id = t.vault_add(&website("mail login")).unwrap();
    assert_eq!(p.count(), 1);
    let req = p.last();
    assert!(req.description.contains("mail login"), "{req:?}");
    assert!(req.description.contains("alice"));
    // V5, ¶0087–0088: the entry as received, the secret included, so a change on
    // the way from the client shows.
    assert!(
        req.description
            .contains(&format!("password (secret): {PASSWORD}")),
        "{req:?}"
    );
    let e = t.vault_get(id).unwrap();
    assert_eq!(e.field("password").unwrap().value, PASSWORD);
    assert!(e.field("password").unwrap().secret);
    assert!(e.created > 0);

    for a in [Answer::Refused, Answer::TimedOut] {
        p.set(a);
        assert!(matches!(
            t.vault_add(&website("refused")),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        let mut changed = website("changed");
        changed.set("password", "other", true);
        assert!(matches!(
            t.vault_update(id, &changed),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        assert!(matches!(
            t.vault_delete(id),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        // Through PKCS#11 too.
        let sid = &t.open_session(true).unwrap();
        let err = t
            .create_object(sid, &vault_template(&website("raw")))
            .unwrap_err();
        assert!(
            matches!(err, Error::FunctionRejected | Error::NotConfirmed(_)),
            "{err:?}"
        );
        assert_eq!(err.ckr(), CKR_FUNCTION_REJECTED);
        assert!(matches!(
            t.destroy_object(sid, id),
            Err(Error::FunctionRejected | Error::NotConfirmed(_))
        ));
        t.close_session(sid).unwrap();
        t.login(UserType::User, USER).unwrap();
        let list = t.vault_list().unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].1.title, "mail login");
        assert_eq!(
            t.vault_get(id).unwrap().field("password").unwrap().value,
            PASSWORD
        );
    }

    p.set(Answer::Confirmed);
    let mut changed = website("mail login 2");
    changed.set("password", "n3w-password", true);
    t.vault_update(id, &changed).unwrap();
    let e = t.vault_get(id).unwrap();
    assert_eq!(e.title, "mail login 2");
    assert_eq!(e.field("password").unwrap().value, "n3w-password");
    t.vault_delete(id).unwrap();
    assert!(t.vault_list().unwrap().is_empty());
    assert!(t.vault_get(id).is_err());
}

#[test]
fn preset_kinds_search_and_validation() {
    let (_d, t, _p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    let card = Entry::new(Kind::BankCard, "visa")
        .with("bank", "HSBC", false)
        .with("card_number", "4111111111111111", false)
        .with("card_pin", "0000", false);
    let id = t.vault_add(&card).unwrap();
    // Preset secret fields are secret whatever the caller said.
    let got = t.vault_get(id).unwrap();
    assert!(got.field("card_number").unwrap().secret);
    assert!(got.field("card_pin").unwrap().secret);
    // Missing required preset fields are refused.
    let err = t
        .vault_add(&Entry::new(Kind::BankCard, "no number").with("bank", "x", false))
        .unwrap_err();
    assert!(matches!(err, Error::TemplateInconsistent(_)), "{err:?}");
    assert!(t.vault_add(&Entry::new(Kind::Custom, " ")).is_err());
    t.vault_add(
        &Entry::new(Kind::OnlineBanking, "netbank")
            .with_url("https://bank.example/")
            .with("bank", "ING", false)
            .with("username", "bob", false)
            .with("password", "pw", true),
    )
    .unwrap();
    t.vault_add(
        &Entry::new(Kind::Email, "work mail")
            .with("address", "bob@example.org", false)
            .with("password", "pw2", true)
            .with("server", "imap.example.org", false),
    )
    .unwrap();
    let mut custom = Entry::new(Kind::Custom, "wifi");
    custom.fields.push(Field::new("ssid", "home", false));
    custom.fields.push(Field::new("psk", "wpa-secret", true));
    t.vault_add(&custom).unwrap();
    t.vault_add(&website("Example site")).unwrap();

    assert_eq!(t.vault_list().unwrap().len(), 5);
    let q = |text: Option<&str>, url: Option<&str>, kind: Option<Kind>| {
        t.vault_search(&Query {
            text: text.map(Into::into),
            url: url.map(Into::into),
            kind,
        })
        .unwrap()
        .into_iter()
        .map(|(_, s)| s.title)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        q(Some("EXAMPLE"), None, None),
        vec!["netbank", "Example site"]
    );
    assert_eq!(q(None, Some("bank.example"), None), vec!["netbank"]);
    assert_eq!(q(None, None, Some(Kind::Custom)), vec!["wifi"]);
    assert_eq!(q(Some("mail"), None, Some(Kind::Email)), vec!["work mail"]);
    // Summaries carry no secret.
    let json = serde_json::to_string(&t.vault_list().unwrap()).unwrap();
    assert!(
        !json.contains("wpa-secret") && !json.contains(PASSWORD),
        "{json}"
    );
    assert_eq!(t.vault_find_title("wifi").unwrap().len(), 1);
}

#[test]
fn optional_vault_refuses_everything_before_activation() {
    let (_d, t, p, code) = setup(VaultMode::Optional);
    let code = code.expect("an activation code");
    assert_eq!(code.len(), 23);
    assert_eq!(code.split('-').count(), 4);
    let st = t.vault_status().unwrap();
    assert_eq!(st.mode, VaultMode::Optional);
    assert!(!st.activated && !st.enabled && !st.usable);

    // A vault entry created (as if) before: write one with an available vault is not
    // possible here, so check that nothing works and raw objects are refused.
    t.login(UserType::User, USER).unwrap();
    let unavailable = |r: vault_core::Result<()>| match r {
        Err(e @ Error::Vault(VaultError::Unavailable(_))) => {
            assert_eq!(e.ckr(), CKR_ACTION_PROHIBITED);
            assert!(e.to_string().contains("vtoken vault activate"), "{e}");
        }
        other => panic!("expected VaultUnavailable, got {other:?}"),
    };
    unavailable(t.vault_add(&website("x")).map(|_| ()));
    unavailable(t.vault_list().map(|_| ()));
    unavailable(t.vault_search(&Query::default()).map(|_| ()));
    unavailable(t.vault_get(1).map(|_| ()));
    unavailable(t.vault_export_csv(false).map(|_| ()));
    unavailable(t.vault_enable());
    let sid = &t.open_session(true).unwrap();
    unavailable(
        t.create_object(sid, &vault_template(&website("raw")))
            .map(|_| ()),
    );
    assert_eq!(p.count(), 0, "no prompt before activation");

    // Wrong code: counted, tries left reported.
    match t.vault_activate("AAAAA-AAAAA-AAAAA-AAAAA") {
        Err(Error::Vault(VaultError::CodeIncorrect { tries_left: 4 })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(t.vault_status().unwrap().activation_failures, 1);
    // The right code, typed sloppily, activates — and only activates (S201): the
    // vault is still refused until the separate enable step (S202, ¶0083).
    t.vault_activate(&code.to_lowercase().replace('-', " "))
        .unwrap();
    let st = t.vault_status().unwrap();
    assert!(st.activated && !st.enabled && !st.usable);
    assert_eq!(st.state, VaultPhase::Activated);
    assert_eq!(st.activation_failures, 0);
    let err = t.vault_add(&website("too early")).unwrap_err();
    assert!(err.to_string().contains("vtoken vault enable"), "{err}");
    assert_eq!(p.count(), 0, "nothing shown before enable");
    t.vault_enable().unwrap();
    assert_eq!(t.vault_status().unwrap().state, VaultPhase::Enabled);
    let id = t.vault_add(&website("now")).unwrap();
    assert_eq!(vault_find(&t), vec![id]);

    // Disabled: invisible through PKCS#11, every vault call refused.
    t.vault_disable().unwrap();
    assert!(vault_find(&t).is_empty());
    assert!(matches!(
        t.get_attributes(sid, id, &[CKA_VALUE]),
        Err(Error::ObjectHandleInvalid)
    ));
    assert!(matches!(
        t.destroy_object(sid, id),
        Err(Error::ObjectHandleInvalid)
    ));
    let err = t.vault_list().unwrap_err();
    assert!(err.to_string().contains("vtoken vault enable"), "{err}");
    assert_eq!(t.vault_status().unwrap().state, VaultPhase::Disabled);
    t.vault_enable().unwrap();
    assert_eq!(t.vault_list().unwrap().len(), 1);
    t.close_session(sid).unwrap();
}

/// V4, ¶0083: an available vault skips the activation but not the enable step.
/// From the factory it is "activated" and refuses every vault operation; enable
/// needs the user PIN; after it the vault works; re-initializing the token puts it
/// back to the factory state.
#[test]
fn available_vault_needs_an_explicit_enable() {
    let (_d, t, code) = factory(VaultMode::Available);
    assert!(code.is_none());
    let st = t.vault_status().unwrap();
    assert_eq!(st.state, VaultPhase::Activated);
    assert!(st.activated && !st.enabled && !st.usable);
    // Enable needs the user logged in.
    assert!(matches!(t.vault_enable(), Err(Error::UserNotLoggedIn)));
    t.login(UserType::User, USER).unwrap();
    let err = t.vault_add(&website("x")).unwrap_err();
    assert_eq!(err.ckr(), CKR_ACTION_PROHIBITED);
    assert!(err.to_string().contains("vtoken vault enable"), "{err}");
    // Not even visible through PKCS#11 before enable.
    let sid = &t.open_session(true).unwrap();
    assert!(t
        .create_object(sid, &vault_template(&website("raw")))
        .is_err());
    // Activation is for optional vaults only.
    assert!(t.vault_activate("AAAAA-AAAAA-AAAAA-AAAAA").is_err());
    t.vault_enable().unwrap();
    assert_eq!(t.vault_status().unwrap().state, VaultPhase::Enabled);
    t.set_prompt(Scripted::new(Answer::Confirmed));
    t.vault_add(&website("x")).unwrap();
    t.close_session(sid).unwrap();
    // The state survives reopening the token file.
    let path = t.info().unwrap().path;
    drop(t);
    let reg = Registry::new(Config::for_dir(path.parent().unwrap()));
    let e = reg.tokens().unwrap().into_iter().next().unwrap();
    let t = reg.open(&e).unwrap();
    assert_eq!(t.vault_status().unwrap().state, VaultPhase::Enabled);
}

#[test]
fn wrong_activation_codes_lock_for_good() {
    let (_d, t, _p, code) = setup(VaultMode::Optional);
    // Activation needs the user PIN.
    assert!(matches!(
        t.vault_activate(code.as_deref().unwrap()),
        Err(Error::UserNotLoggedIn)
    ));
    t.login(UserType::User, USER).unwrap();
    for left in (1..5).rev() {
        match t.vault_activate("wrong-code-1") {
            Err(Error::Vault(VaultError::CodeIncorrect { tries_left })) => {
                assert_eq!(tries_left, left)
            }
            other => panic!("{other:?}"),
        }
    }
    let err = t.vault_activate("wrong-code-1").unwrap_err();
    assert!(
        matches!(err, Error::Vault(VaultError::Unavailable(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("re-initializing"), "{err}");
    // Even the right code is refused now.
    let err = t.vault_activate(code.as_deref().unwrap()).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    let st = t.vault_status().unwrap();
    assert!(st.activation_locked && !st.activated);
    assert!(t.vault_list().unwrap_err().to_string().contains("locked"));
}

#[test]
fn issuer_supplied_code_and_setup_needs_so() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path()));
    let e = reg.create("t", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    assert!(matches!(
        t.vault_setup(VaultMode::Optional),
        Err(Error::UserNotLoggedIn)
    ));
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    assert!(t
        .vault_setup_with_code(VaultMode::Optional, Some("short"))
        .is_err());
    t.vault_setup_with_code(VaultMode::Optional, Some("ISSUER-1234-5678"))
        .unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    t.vault_activate("issuer12345678").unwrap();
    t.vault_enable().unwrap();
    assert!(t.vault_status().unwrap().usable);
}

#[test]
fn pkcs11_view_of_vault_entries() {
    let (_d, t, p, _) = setup(VaultMode::Available);
    let sid = &t.open_session(true).unwrap();
    // Before login: nothing visible, raw create refused.
    assert!(vault_find(&t).is_empty());
    t.login(UserType::User, USER).unwrap();
    let id = t.vault_add(&website("site")).unwrap();
    assert_eq!(vault_find(&t), vec![id]);
    // Readable JSON in CKA_VALUE, CKA_LABEL = title.
    let attrs = t.attributes(id).unwrap();
    assert_eq!(attrs.get(CKA_LABEL).unwrap(), b"site");
    let e: Entry = serde_json::from_slice(attrs.get(CKA_VALUE).unwrap()).unwrap();
    assert_eq!(e.field("password").unwrap().value, PASSWORD);
    assert!(attrs.bool_or(CKA_PRIVATE, false));

    // C_CreateObject goes through the same checks and confirmation.
    let n = p.count();
    let id2 = t
        .create_object(sid, &vault_template(&website("via pkcs11")))
        .unwrap();
    assert_eq!(p.count(), n + 1);
    assert_eq!(t.vault_get(id2).unwrap().title, "via pkcs11");
    // Invalid JSON and public vault objects are refused.
    let mut bad = vault_template(&website("bad"));
    bad.set(CKA_VALUE, b"not json".to_vec());
    assert!(matches!(
        t.create_object(sid, &bad),
        Err(Error::TemplateInconsistent(_))
    ));
    let mut public = vault_template(&website("public"));
    public.set_bool(CKA_PRIVATE, false);
    assert!(t.create_object(sid, &public).is_err());
    // C_SetAttributeValue: a new label renames the entry (confirmed).
    let mut tmpl = Attributes::new();
    tmpl.set(CKA_LABEL, b"renamed".to_vec());
    t.set_attributes(sid, id2, &tmpl).unwrap();
    assert_eq!(t.vault_get(id2).unwrap().title, "renamed");
    p.set(Answer::Refused);
    tmpl.set(CKA_LABEL, b"refused".to_vec());
    assert!(matches!(
        t.set_attributes(sid, id2, &tmpl),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(t.vault_get(id2).unwrap().title, "renamed");
    p.set(Answer::Confirmed);
    t.destroy_object(sid, id2).unwrap();
    assert_eq!(vault_find(&t), vec![id]);
    // Logged out: invisible.
    t.logout().unwrap();
    assert!(vault_find(&t).is_empty());
    t.close_session(sid).unwrap();
}

#[test]
fn vault_data_never_in_plaintext_on_disk() {
    let (_d, t, _p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    t.vault_add(&website("secret site")).unwrap();
    t.logout().unwrap();
    let path = t.path().to_path_buf();
    drop(t);
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("vtoken-wal")) {
        bytes.extend(wal);
    }
    for name in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let p = name.unwrap().path();
        if p != path {
            bytes.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    for needle in [
        PASSWORD.as_bytes(),
        b"secret site",
        b"alice",
        b"example.com",
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} found in the token file",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn password_outputs() {
    let (_d, t, _p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    let id = t.vault_add(&website("site")).unwrap();
    // Plain.
    let v = t.vault_password(id, None, &PasswordOutput::Plain).unwrap();
    assert_eq!(&v[..], PASSWORD.as_bytes());
    let v = t
        .vault_password(id, Some("username"), &PasswordOutput::Plain)
        .unwrap();
    assert_eq!(&v[..], b"alice");
    assert!(t
        .vault_password(id, Some("nope"), &PasswordOutput::Plain)
        .is_err());
    // Dynamic (V9): the token's clock and the entry's own event counter, which
    // advances with each event password and never comes from the caller.
    let dynamic = |time_period: Option<u64>, event: bool| {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let v = t
            .vault_password(
                id,
                None,
                &PasswordOutput::Dynamic {
                    time_period,
                    event,
                    digits: 8,
                },
            )
            .map(|v| String::from_utf8(v.to_vec()).unwrap());
        (before, v)
    };
    let (now, v) = dynamic(Some(30), false);
    let v = v.unwrap();
    assert!([now, now + 1].iter().any(|t| otp_core::dynamic_password(
        PASSWORD,
        Some((*t, 30)),
        None,
        8
    )
    .unwrap()
        == v));
    assert_eq!(t.vault_event_counter(id).unwrap(), 0, "time only: no event");
    for k in 0..3u64 {
        let (_, v) = dynamic(None, true);
        assert_eq!(
            v.unwrap(),
            otp_core::dynamic_password(PASSWORD, None, Some(k), 8).unwrap()
        );
    }
    assert_eq!(t.vault_event_counter(id).unwrap(), 3);
    let (now, v) = dynamic(Some(60), true);
    let v = v.unwrap();
    assert!([now, now + 1].iter().any(|t| otp_core::dynamic_password(
        PASSWORD,
        Some((*t, 60)),
        Some(3),
        8
    )
    .unwrap()
        == v));
    // No factor, or bad digits: refused, and the counter does not move.
    assert!(dynamic(None, false).1.is_err());
    assert!(t
        .vault_password(
            id,
            None,
            &PasswordOutput::Dynamic {
                time_period: None,
                event: true,
                digits: 3,
            },
        )
        .is_err());
    assert_eq!(t.vault_event_counter(id).unwrap(), 4);
    // RSA-OAEP to a key on the token; decrypted with the token's private key.
    let sid = &t.open_session(true).unwrap();
    let mut pub_t = Attributes::new();
    pub_t.set_ulong(CKA_MODULUS_BITS, 2048);
    pub_t.set(CKA_PUBLIC_EXPONENT, vec![1, 0, 1]);
    pub_t.set_bool(CKA_ENCRYPT, true);
    pub_t.set_bool(CKA_TOKEN, false);
    let mut priv_t = Attributes::new();
    priv_t.set_bool(CKA_DECRYPT, true);
    priv_t.set_bool(CKA_TOKEN, false);
    let (pk, sk) = t
        .generate_key_pair(
            sid,
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &pub_t,
            &priv_t,
        )
        .unwrap();
    let ct = t
        .vault_password(id, None, &PasswordOutput::RsaOaep(PublicKeyRef::Object(pk)))
        .unwrap();
    assert_eq!(ct.len(), 256);
    let oaep = Mechanism {
        ty: CKM_RSA_PKCS_OAEP,
        param: MechParam::Oaep {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: Vec::new(),
        },
    };
    t.decrypt_init(sid, &oaep, sk).unwrap();
    match t.decrypt(sid, &ct, OutLen::Buffer(4096)).unwrap() {
        Output::Bytes(b) => assert_eq!(b, PASSWORD.as_bytes()),
        o => panic!("{o:?}"),
    }
    // And to an SPKI given by the client.
    let spki = match &t.get_attributes(sid, pk, &[CKA_PUBLIC_KEY_INFO]).unwrap()[0] {
        vault_core::session::AttrResult::Value(v) => v.clone(),
        o => panic!("{o:?}"),
    };
    let ct2 = t
        .vault_password(id, None, &PasswordOutput::RsaOaep(PublicKeyRef::Spki(spki)))
        .unwrap();
    t.decrypt_init(sid, &oaep, sk).unwrap();
    match t.decrypt(sid, &ct2, OutLen::Buffer(4096)).unwrap() {
        Output::Bytes(b) => assert_eq!(b, PASSWORD.as_bytes()),
        o => panic!("{o:?}"),
    }
    t.close_session(sid).unwrap();
}

#[test]
fn csv_round_trip() {
    let (_d, t, p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    let csv = "\"Group\",\"Title\",\"Username\",\"Password\",\"URL\",\"Notes\",\"TOTP\",\"Icon\",\"Last Modified\",\"Created\"\n\
\"Root\",\"Example\",\"alice\",\"pa\"\"ss,word\",\"https://example.com\",\"line 1\nline 2\",\"\",\"0\",\"2024-01-31T12:00:00Z\",\"2023-11-14T22:13:20Z\"\n\
\"Root/Work\",\"Intranet\",\"bob\",\"hunter2\",\"https://intra.example\",\"\",\"otpauth://totp/Intranet:bob?secret=JBSWY3DPEHPK3PXP&issuer=Intranet\",\"0\",\"2024-01-31T12:00:00Z\",\"2024-01-31T12:00:00Z\"\n";
    let n = p.count();
    let r = t.vault_import_csv(csv).unwrap();
    assert_eq!(p.count(), n + 1, "one confirmation for the import");
    assert!(!p.last().description.contains("hunter2"));
    assert!(
        p.last().description.contains("Intranet:bob"),
        "the new OTP credential is shown"
    );
    let ids = r.added.clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(r.otp_added, ["Intranet:bob"]);
    let e = t.vault_get(ids[0]).unwrap();
    assert_eq!(e.kind, Kind::Website);
    assert_eq!(e.title, "Example");
    assert_eq!(e.field("password").unwrap().value, "pa\"ss,word");
    assert_eq!(e.field("notes").unwrap().value, "line 1\nline 2");
    assert_eq!(e.created, 1_700_000_000);
    let e2 = t.vault_get(ids[1]).unwrap();
    // Below the root group (KeePassXC names it; vtoken writes `Root`).
    assert_eq!(e2.field("group").unwrap().value, "Work");
    assert!(e.field("group").is_none());
    // The TOTP column is an OTP credential on the token, linked from the entry.
    assert_eq!(e2.field("otp_credential").unwrap().value, "Intranet:bob");
    assert!(e2.field("totp").is_none());
    assert_eq!(
        t.otp_code("Intranet:bob", 1_700_000_000).unwrap(),
        otp_core::totp(
            b"Hello!\xde\xad\xbe\xef",
            1_700_000_000,
            30,
            0,
            6,
            otp_core::Algorithm::Sha1
        )
        .unwrap()
    );

    // Importing the same file again adds nothing and asks nothing.
    let again = t.vault_import_csv(csv).unwrap();
    assert!(again.added.is_empty() && again.updated.is_empty() && again.otp_added.is_empty());
    assert_eq!(again.unchanged, ids);
    assert_eq!(p.count(), n + 1);
    assert_eq!(t.vault_list().unwrap().len(), 2);
    assert_eq!(t.otp_list().unwrap().len(), 1);

    // Export without secrets: no password, no OTP secret.
    let out = t.vault_export_csv(false).unwrap();
    assert!(
        !out.contains("hunter2") && !out.contains("JBSWY3DP"),
        "{}",
        *out
    );
    // ... and re-importing it erases nothing.
    let r = t.vault_import_csv(&out).unwrap();
    assert!(r.added.is_empty() && r.updated.is_empty(), "{r:?}");
    assert_eq!(
        t.vault_get(ids[1])
            .unwrap()
            .field("password")
            .unwrap()
            .value,
        "hunter2"
    );
    // With secrets: confirmed, and reading it back gives the same entries.
    p.set(Answer::Refused);
    assert!(matches!(
        t.vault_export_csv(true),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    p.set(Answer::Confirmed);
    let out = t.vault_export_csv(true).unwrap();
    assert!(out.starts_with("\"Group\",\"Title\",\"Username\",\"Password\",\"URL\""));
    assert!(
        out.contains("otpauth://totp/Intranet:bob?secret=JBSWY3DPEHPK3PXP"),
        "{}",
        *out
    );
    let back = vault_core::vault::csv::parse_records(&out).unwrap();
    assert_eq!(back.len(), 2);
    for (a, id) in back.iter().zip(&ids) {
        let b = t.vault_get(*id).unwrap();
        assert_eq!(a.entry.title, b.title);
        assert_eq!(a.entry.url, b.url);
        assert_eq!(a.entry.created, b.created);
        let mut theirs = b.fields.clone();
        theirs.retain(|f| f.name != "otp_credential");
        assert_eq!(a.entry.fields, theirs);
    }
    assert_eq!(back[1].otp.as_ref().unwrap().name(), "Intranet:bob");
    // A file that is not a KeePassXC export.
    assert!(t.vault_import_csv("a,b\n1,2\n").is_err());
    // A changed file: the change is confirmed; refused, nothing is written.
    let changed = csv.replace("hunter2", "hunter3");
    p.set(Answer::Refused);
    assert!(t.vault_import_csv(&changed).is_err());
    assert_eq!(
        t.vault_get(ids[1])
            .unwrap()
            .field("password")
            .unwrap()
            .value,
        "hunter2"
    );
    p.set(Answer::Confirmed);
    let r = t.vault_import_csv(&changed).unwrap();
    assert_eq!((r.added.len(), r.updated.clone()), (0, vec![ids[1]]));
    assert_eq!(
        t.vault_get(ids[1])
            .unwrap()
            .field("password")
            .unwrap()
            .value,
        "hunter3"
    );
    assert_eq!(t.vault_list().unwrap().len(), 2);
}

/// Bank cards keep their kind and named fields through CSV; an OTP credential of
/// the same name with another secret is stored beside, never overwritten.
#[test]
fn csv_keeps_kinds_and_never_overwrites_an_otp() {
    let (_d, t, p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    p.set(Answer::Confirmed);
    t.vault_add(
        &Entry::new(Kind::BankCard, "visa")
            .with("bank", "HSBC", false)
            .with("card_number", "4111111111111111", true)
            .with("card_pin", "1234", true),
    )
    .unwrap();
    let out = t.vault_export_csv(true).unwrap();
    let header = out.lines().next().unwrap();
    assert!(
        header.ends_with("\"Kind\",\"bank\",\"card_number (secret)\",\"card_pin (secret)\""),
        "{header}"
    );
    let row = out.lines().nth(1).unwrap();
    assert!(
        row.starts_with("\"Root\",\"visa\",\"\",\"\","),
        "no card data in Username/Password: {row}"
    );
    let back = vault_core::vault::csv::parse_records(&out).unwrap();
    let e = &back[0].entry;
    assert_eq!(e.kind, Kind::BankCard);
    assert!(e.field("card_number").unwrap().secret);
    assert_eq!(e.field("card_pin").unwrap().value, "1234");
    assert!(t.vault_import_csv(&out).unwrap().added.is_empty());

    let row = |secret: &str| {
        format!("\"Title\",\"Username\",\"TOTP\"\n\"Site\",\"me\",\"otpauth://totp/Site:me?secret={secret}&issuer=Site\"\n")
    };
    assert_eq!(
        t.vault_import_csv(&row("JBSWY3DPEHPK3PXP"))
            .unwrap()
            .otp_added,
        ["Site:me"]
    );
    // Another file, same login and credential name, another secret.
    let r = t.vault_import_csv(&row("GEZDGNBVGY3TQOJQ")).unwrap();
    assert_eq!(r.otp_added, ["Site:me (2)"]);
    assert_eq!(r.updated.len(), 1, "the entry now links the new credential");
    assert_eq!(t.otp_list().unwrap().len(), 2);
}

#[test]
fn legacy_token_without_state_is_available() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path()));
    let e = reg.create("t", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    let st = t.vault_status().unwrap();
    assert_eq!(st.mode, VaultMode::Available);
    assert!(st.usable);
}

#[test]
fn reinitialize_resets_an_optional_vault() {
    let (_d, t, _p, code) = setup(VaultMode::Optional);
    t.login(UserType::User, USER).unwrap();
    for _ in 0..5 {
        let _ = t.vault_activate("wrong-code-1");
    }
    assert!(t.vault_status().unwrap().activation_locked);
    t.logout().unwrap();
    t.reinitialize(SO, "again").unwrap();
    let st = t.vault_status().unwrap();
    assert!(!st.activated && !st.activation_locked && st.activation_failures == 0);
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    t.vault_activate(code.as_deref().unwrap()).unwrap();
    assert!(
        !t.vault_status().unwrap().usable,
        "activation does not enable"
    );
    t.vault_enable().unwrap();
    assert!(t.vault_status().unwrap().usable);
}

/// `[prompt] confirm` decides which operations ask: without `vault-write` a write
/// goes through without the agent being asked; with it (the default) the agent's
/// refusal stops the write.
#[test]
fn confirmation_follows_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_dir(dir.path().join("tokens"));
    assert!(
        cfg.prompt.confirm.iter().any(|o| o == "vault-write"),
        "default asks for writes"
    );
    cfg.prompt.confirm.clear();
    let reg = Registry::new(cfg);
    let e = reg.create("noconfirm", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.vault_setup(VaultMode::Available).unwrap();
    t.logout().unwrap();
    let p = Scripted::new(Answer::Refused);
    t.set_prompt(p.clone());
    t.login(UserType::User, USER).unwrap();
    t.vault_enable().unwrap();
    assert!(!t.needs_confirmation("vault-write"));
    t.vault_add(&website("unasked")).unwrap();
    assert_eq!(
        p.count(),
        0,
        "the agent was asked although the configuration says not to"
    );

    let (_d, t2, p2, _) = setup(VaultMode::Available);
    p2.set(Answer::Refused);
    t2.login(UserType::User, USER).unwrap();
    assert!(matches!(
        t2.vault_add(&website("refused")),
        Err(vault_core::Error::FunctionRejected | vault_core::Error::NotConfirmed(_))
    ));
    assert_eq!(p2.count(), 1);
}

/// With `vault-read` in `[prompt] confirm`, a secret leaves the token in the clear
/// (the API's plain output, or CKA_VALUE through PKCS#11) only after confirmation.
#[test]
fn vault_read_confirmation_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_dir(dir.path().join("tokens"));
    cfg.prompt.confirm = vec!["vault-write".into(), "vault-read".into()];
    let reg = Registry::new(cfg);
    let e = reg.create("reads", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.vault_setup(VaultMode::Available).unwrap();
    t.logout().unwrap();
    let p = Scripted::new(Answer::Confirmed);
    t.set_prompt(p.clone());
    t.login(UserType::User, USER).unwrap();
    t.vault_enable().unwrap();
    let id = t.vault_add(&website("guarded")).unwrap();
    p.set(Answer::Refused);
    assert!(matches!(
        t.vault_password(id, None, &PasswordOutput::Plain),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    let s = &t.open_session(false).unwrap();
    assert!(matches!(
        t.get_attributes(s, id, &[CKA_VALUE]),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    // The label alone needs no confirmation.
    assert!(t.get_attributes(s, id, &[CKA_LABEL]).is_ok());
    p.set(Answer::Confirmed);
    let v = t.vault_password(id, None, &PasswordOutput::Plain).unwrap();
    assert_eq!(&v[..], PASSWORD.as_bytes());
}

/// A prompt agent for picks: confirms a pick request ("Use \"TITLE\"? …") only for
/// the wanted title, refuses the other picks, confirms everything else; or lets
/// every request time out.
struct Picker {
    want: Option<String>,
    time_out: bool,
    seen: Mutex<Vec<Request>>,
}

impl Prompt for Picker {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.seen.lock().unwrap().push(req.clone());
        if self.time_out {
            return Ok(Answer::TimedOut);
        }
        if !req.title.starts_with("Use \"") {
            return Ok(Answer::Confirmed);
        }
        match &self.want {
            Some(w) if req.title.starts_with(&format!("Use \"{w}\"?")) => Ok(Answer::Confirmed),
            _ => Ok(Answer::Refused),
        }
    }
    fn name(&self) -> &str {
        "picker"
    }
}

fn picker(want: Option<&str>, time_out: bool) -> Arc<Picker> {
    Arc::new(Picker {
        want: want.map(str::to_string),
        time_out,
        seen: Mutex::new(Vec::new()),
    })
}

/// V10, ¶0098: on a password request without an entry the token shows its list
/// through the prompt agent and the user picks there; the output forms then apply
/// to the picked entry. Refusing every entry, a timeout, an empty vault or no login
/// pick nothing.
#[test]
fn the_token_lists_and_the_user_picks() {
    let (_d, t, _p, _) = setup(VaultMode::Available);
    assert!(matches!(t.vault_pick("test"), Err(Error::UserNotLoggedIn)));
    t.login(UserType::User, USER).unwrap();
    assert!(matches!(t.vault_pick("test"), Err(Error::ArgumentsBad(_))));
    let mut ids = Vec::new();
    for (title, pw) in [
        ("alpha", "pw-alpha"),
        ("bravo", "pw-bravo"),
        ("charlie", "pw-c"),
    ] {
        let e = Entry::new(Kind::Website, title)
            .with("username", "me", false)
            .with("password", pw, true);
        ids.push(t.vault_add(&e).unwrap());
    }
    let p = picker(Some("bravo"), false);
    t.set_prompt(p.clone());
    let id = t.vault_pick("Password request").unwrap();
    assert_eq!(id, ids[1]);
    let seen = p.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "alpha refused, bravo confirmed");
    for (i, r) in seen.iter().enumerate() {
        for title in ["alpha", "bravo", "charlie"] {
            assert!(r.description.contains(title), "{}", r.description);
        }
        let marked = ["1. alpha", "2. bravo"][i];
        assert!(
            r.description.contains(&format!("→ {marked}")),
            "{}",
            r.description
        );
        assert!(!r.description.contains("pw-"), "a password in the list");
    }
    let v = t.vault_password(id, None, &PasswordOutput::Plain).unwrap();
    assert_eq!(&v[..], b"pw-bravo");

    // Refusing every entry picks nothing.
    let p = picker(None, false);
    t.set_prompt(p.clone());
    assert!(matches!(
        t.vault_pick("x"),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(p.seen.lock().unwrap().len(), 3);
    // A timeout ends the walk at once.
    let p = picker(Some("charlie"), true);
    t.set_prompt(p.clone());
    assert!(matches!(
        t.vault_pick("x"),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(p.seen.lock().unwrap().len(), 1);
}

/// A user at the token's prompt who confirms only the password they typed on the
/// client.
struct Checker {
    typed: String,
}

impl Prompt for Checker {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        Ok(if req.description.contains(&format!(": {}", self.typed)) {
            Answer::Confirmed
        } else {
            Answer::Refused
        })
    }
    fn name(&self) -> &str {
        "checker"
    }
}

/// V5, ¶0087–0088: the token shows the entry as it received it, secrets included,
/// so a password changed between the client and the token (here: a PKCS#11
/// template altered on its way) is seen by the user, who refuses; nothing is
/// stored. The unaltered write goes through.
#[test]
fn data_changed_in_transit_is_seen_and_refused() {
    let (_d, t, _p, _) = setup(VaultMode::Available);
    t.login(UserType::User, USER).unwrap();
    t.set_prompt(Arc::new(Checker {
        typed: PASSWORD.into(),
    }));
    let sid = &t.open_session(true).unwrap();
    let sent = website("bank login");
    let mut altered = sent.clone();
    altered.set("password", "attacker-chosen-pw", true);
    assert!(matches!(
        t.create_object(sid, &vault_template(&altered)),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert!(matches!(
        t.vault_add(&altered),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert!(t.vault_list().unwrap().is_empty());
    t.create_object(sid, &vault_template(&sent)).unwrap();
    t.vault_add(&sent).unwrap();
    assert_eq!(t.vault_list().unwrap().len(), 2);
    t.close_session(sid).unwrap();
}
