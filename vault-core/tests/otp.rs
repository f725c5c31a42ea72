//! OTP credentials on the token: add/list/code/delete, RFC 4226/6238 vectors,
//! agreement with `oathtool`, counter persistence and the PKCS#11 view (no codes).

use std::process::Command;
use std::sync::Arc;

use otp_core::{hotp, totp, Algorithm, OtpKind, OtpUri};
use vault_core::config::Config;
use vault_core::mechanism::Mechanism;
use vault_core::otp::{OtpParams, CKA_VTOKEN_OTP};
use vault_core::pkcs11::*;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::session::{AttrResult, OutLen};
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::{Token, UserType};
use vault_core::{Attributes, Error};

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";
const RFC_SECRET: &[u8] = b"12345678901234567890";
const RFC_HOTP: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

fn setup() -> (tempfile::TempDir, Registry, TokenEntry, Arc<Token>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("otp", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    (dir, reg, e, t)
}

fn oathtool(args: &[&str]) -> String {
    let o = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool is installed");
    assert!(o.status.success(), "oathtool {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn add_list_code_delete() {
    let (_d, _r, _e, t) = setup();
    let uri = OtpUri::parse(
        "otpauth://totp/Example:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    )
    .unwrap();
    let id = t.otp_add(&uri, false).unwrap();
    let hotp_uri = OtpUri::new_hotp(None, "bob", RFC_SECRET.to_vec(), 0);
    t.otp_add(&hotp_uri, true).unwrap();

    // Same name again: a clear error, nothing added.
    let e = t.otp_add(&uri, false).unwrap_err();
    assert!(e.to_string().contains("exists already"), "{e}");

    let list = t.otp_list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, "Example:alice@example.com");
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].kind, OtpKind::Totp);
    assert_eq!(
        (list[0].digits, list[0].period, list[0].algorithm),
        (6, 30, Algorithm::Sha1)
    );
    assert!(!list[0].confirm);
    assert_eq!(list[1].name, "bob");
    assert_eq!(list[1].kind, OtpKind::Hotp);
    assert!(list[1].confirm);

    assert_eq!(
        t.otp_code("Example:alice@example.com", 1_700_000_000)
            .unwrap(),
        uri.code(1_700_000_000).unwrap()
    );
    // The confirm flag: the default agent refuses, and the counter stays put.
    assert!(matches!(
        t.otp_code("bob", 0),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(t.otp_list().unwrap()[1].counter, 0);
    struct Yes;
    impl Prompt for Yes {
        fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
            assert!(req.description.contains("bob"));
            Ok(Answer::Confirmed)
        }
        fn name(&self) -> &str {
            "yes"
        }
    }
    t.set_prompt(Arc::new(Yes));
    assert_eq!(t.otp_code("bob", 0).unwrap(), RFC_HOTP[0]);
    assert_eq!(t.otp_list().unwrap()[1].counter, 1);

    // The URI round-trips (with the next counter for HOTP).
    let back = t.otp_uri("bob").unwrap();
    assert_eq!(back.secret, RFC_SECRET);
    assert_eq!(back.counter, 1);
    assert_eq!(t.otp_uri("Example:alice@example.com").unwrap(), uri);

    assert!(t.otp_code("nobody", 0).is_err());
    t.otp_delete("bob").unwrap();
    assert!(t.otp_delete("bob").is_err());
    assert_eq!(t.otp_list().unwrap().len(), 1);

    // Everything needs the user PIN.
    t.logout().unwrap();
    assert!(matches!(t.otp_list(), Err(Error::UserNotLoggedIn)));
    assert!(matches!(
        t.otp_code("Example:alice@example.com", 0),
        Err(Error::UserNotLoggedIn)
    ));
    assert!(matches!(
        t.otp_add(&hotp_uri, false),
        Err(Error::UserNotLoggedIn)
    ));
}

#[test]
fn rfc4226_vectors_through_the_token_and_counter_persists() {
    let (_d, reg, e, t) = setup();
    t.otp_add(
        &OtpUri::new_hotp(Some("RFC"), "4226", RFC_SECRET.to_vec(), 0),
        false,
    )
    .unwrap();
    for (i, want) in RFC_HOTP.iter().enumerate().take(5) {
        assert_eq!(&t.otp_code("RFC:4226", 0).unwrap(), want, "counter {i}");
    }
    // A new handle on the file (a new process, say) continues at counter 5.
    drop(t);
    let t = reg.open(&e).unwrap();
    t.login(UserType::User, USER).unwrap();
    assert_eq!(t.otp_list().unwrap()[0].counter, 5);
    for (i, want) in RFC_HOTP.iter().enumerate().skip(5) {
        assert_eq!(&t.otp_code("RFC:4226", 0).unwrap(), want, "counter {i}");
    }
    assert_eq!(t.otp_list().unwrap()[0].counter, 10);
    // Two handles in one process share the counter through the file.
    let t2 = reg.open(&e).unwrap();
    t2.login(UserType::User, USER).unwrap();
    let a = t.otp_code("RFC:4226", 0).unwrap();
    let b = t2.otp_code("RFC:4226", 0).unwrap();
    let c = t.otp_code("RFC:4226", 0).unwrap();
    assert_eq!(a, hotp(RFC_SECRET, 10, 6, Algorithm::Sha1).unwrap());
    assert_eq!(b, hotp(RFC_SECRET, 11, 6, Algorithm::Sha1).unwrap());
    assert_eq!(c, hotp(RFC_SECRET, 12, 6, Algorithm::Sha1).unwrap());
}

#[test]
fn concurrent_hotp_never_repeats_a_counter() {
    let (_d, reg, e, t) = setup();
    t.otp_add(
        &OtpUri::new_hotp(None, "race", RFC_SECRET.to_vec(), 0),
        false,
    )
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let tk = reg.open(&e).unwrap();
            tk.login(UserType::User, USER).unwrap();
            std::thread::spawn(move || {
                (0..15)
                    .map(|_| tk.otp_code("race", 0).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut codes: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    codes.sort();
    let mut want: Vec<String> = (0..60)
        .map(|c| hotp(RFC_SECRET, c, 6, Algorithm::Sha1).unwrap())
        .collect();
    want.sort();
    assert_eq!(codes, want, "each counter 0..60 used exactly once");
    assert_eq!(t.otp_list().unwrap()[0].counter, 60);
}

#[test]
fn totp_matches_otp_core_and_rfc6238() {
    let (_d, _r, _e, t) = setup();
    let mut u = OtpUri::new_totp(Some("RFC"), "6238", RFC_SECRET.to_vec());
    u.digits = 8;
    t.otp_add(&u, false).unwrap();
    for (time, want) in [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ] {
        assert_eq!(t.otp_code("RFC:6238", time).unwrap(), want, "T={time}");
        assert_eq!(
            t.otp_code("RFC:6238", time).unwrap(),
            totp(RFC_SECRET, time, 30, 0, 8, Algorithm::Sha1).unwrap()
        );
    }
    // TOTP has no counter to move.
    assert_eq!(t.otp_list().unwrap()[0].counter, 0);
}

#[test]
fn codes_agree_with_oathtool() {
    let (_d, _r, _e, t) = setup();
    let secrets: [&[u8]; 3] = [
        RFC_SECRET,
        b"12345678901234567890123456789012",
        b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\xff\xfe\xfd\xfc\xfb",
    ];
    let mut checked = 0;
    for (si, secret) in secrets.iter().enumerate() {
        let hex_key = hex::encode(secret);
        // HOTP from a non-zero starting counter, 6 and 8 digits (oathtool's HOTP is SHA-1).
        for digits in [6u32, 8] {
            let name = format!("h{si}-{digits}");
            let mut u = OtpUri::new_hotp(None, &name, secret.to_vec(), 1000);
            u.digits = digits;
            t.otp_add(&u, false).unwrap();
            for c in 1000..1005u64 {
                let ours = t.otp_code(&name, 0).unwrap();
                let theirs = oathtool(&[
                    "--hotp",
                    "-c",
                    &c.to_string(),
                    "-d",
                    &digits.to_string(),
                    &hex_key,
                ]);
                assert_eq!(ours, theirs, "HOTP {name} counter {c}");
                checked += 1;
            }
        }
        // TOTP with SHA-1, SHA-256 and SHA-512, two periods, several times.
        for (alg, mode) in [
            (Algorithm::Sha1, "SHA1"),
            (Algorithm::Sha256, "SHA256"),
            (Algorithm::Sha512, "SHA512"),
        ] {
            for period in [30u64, 60] {
                let name = format!("t{si}-{mode}-{period}");
                let mut u = OtpUri::new_totp(Some("Oath"), &name, secret.to_vec());
                u.algorithm = alg;
                u.period = period;
                u.digits = 8;
                t.otp_add(&u, false).unwrap();
                for time in [59u64, 1_111_111_109, 1_700_000_000, 2_000_000_000] {
                    let ours = t.otp_code(&format!("Oath:{name}"), time).unwrap();
                    let theirs = oathtool(&[
                        &format!("--totp={mode}"),
                        "-N",
                        &format!("@{time}"),
                        "-s",
                        &format!("{period}s"),
                        "-d",
                        "8",
                        &hex_key,
                    ]);
                    assert_eq!(ours, theirs, "TOTP {name} at {time}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * (2 * 5 + 3 * 2 * 4));
}

#[test]
fn credential_is_visible_to_pkcs11_but_computes_codes_only_through_otp_code() {
    let (_d, _r, _e, t) = setup();
    t.otp_add(
        &OtpUri::new_hotp(Some("Mod"), "hmac", RFC_SECRET.to_vec(), 3),
        false,
    )
    .unwrap();
    let sid = &t.open_session(true).unwrap();
    let mut tmpl = Attributes::new();
    tmpl.set(CKA_LABEL, b"Mod:hmac".to_vec());
    let found = t.search(&tmpl).unwrap();
    assert_eq!(found.len(), 1);
    let key = found[0];
    let attrs = t
        .get_attributes(
            sid,
            key,
            &[
                CKA_CLASS,
                CKA_KEY_TYPE,
                CKA_ID,
                CKA_VALUE,
                CKA_SIGN,
                CKA_SENSITIVE,
                CKA_EXTRACTABLE,
                CKA_VTOKEN_OTP,
            ],
        )
        .unwrap();
    assert_eq!(
        attrs[0],
        AttrResult::Value(CKO_SECRET_KEY.to_le_bytes().to_vec())
    );
    assert_eq!(
        attrs[1],
        AttrResult::Value(CKK_GENERIC_SECRET.to_le_bytes().to_vec())
    );
    assert_eq!(attrs[2], AttrResult::Value(b"otp:Mod:hmac".to_vec()));
    assert_eq!(attrs[3], AttrResult::Sensitive);
    assert_eq!(attrs[5], AttrResult::Value(vec![1]));
    assert_eq!(attrs[6], AttrResult::Value(vec![0]));
    assert_eq!(attrs[4], AttrResult::Value(vec![0]), "no CKA_SIGN");
    let AttrResult::Value(params) = &attrs[7] else {
        panic!("no OTP parameters")
    };
    let mut pa = Attributes::new();
    pa.set(CKA_VTOKEN_OTP, params.clone());
    let p = OtpParams::from_attributes(&pa).unwrap().unwrap();
    assert_eq!((p.kind.as_str(), p.counter, p.digits), ("hotp", 3, 6));

    // An HMAC over a chosen counter through C_Sign would skip the committed
    // counter and the `otp-code` gate: every PKCS#11 init refuses the credential.
    for m in [CKM_SHA_1_HMAC, CKM_SHA256_HMAC] {
        assert!(matches!(
            t.sign_init(sid, &Mechanism::new(m), key),
            Err(Error::KeyFunctionNotPermitted)
        ));
        assert!(matches!(
            t.verify_init(sid, &Mechanism::new(m), key),
            Err(Error::KeyFunctionNotPermitted)
        ));
    }
    assert!(t
        .sign(sid, &3u64.to_be_bytes(), OutLen::Buffer(64))
        .is_err());
    assert_eq!(t.otp_code("Mod:hmac", 0).unwrap(), RFC_HOTP[3]);

    // Clients cannot move the counter, copy the credential or read the secret.
    let mut upd = Attributes::new();
    let mut forged = p.clone();
    forged.counter = 0;
    upd.set(CKA_VTOKEN_OTP, serde_json::to_vec(&forged).unwrap());
    assert!(t.set_attributes(sid, key, &upd).is_err());
    assert!(t.copy_object(sid, key, &Attributes::new()).is_err());
    assert_eq!(t.otp_list().unwrap()[0].counter, 4);
    t.close_session(sid).unwrap();
}
