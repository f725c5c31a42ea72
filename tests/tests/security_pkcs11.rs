//! Attacks on PKCS#11 object and key-use semantics (issue 15, items 1, 2, 3 and 9),
//! each performed through the real module (`cryptoki`, real `dlopen`) and shown to
//! fail. Token files are read "as a thief would" in child processes through the
//! vault-core store API with no PIN (one process never opens a token file through
//! two SQLite copies, see README "Security notes").

#[allow(unused_imports)]
mod pkcs11_common;

use std::path::{Path, PathBuf};

use cryptoki::error::RvError;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use pkcs11_common::*;
use vault_core::attr::Attributes;

/// The user PIN of these tests (at least 6 characters).
const PIN6: &str = "123456";
/// The value of the key an old version stored as a public record.
const LEGACY_VALUE: [u8; 32] = [
    0x3c, 0xa1, 0x5e, 0x77, 0x09, 0xd2, 0x4b, 0x88, 0xf0, 0x13, 0x6a, 0xce, 0x21, 0x9d, 0x54, 0xb7,
    0x0e, 0x62, 0xfa, 0x35, 0xc9, 0x18, 0x7d, 0xe4, 0x4f, 0xa6, 0x93, 0x2b, 0xd8, 0x71, 0x06, 0xbe,
];

/// A new token with user PIN [`PIN6`]; an R/W session logged in as the user.
fn user_session(ctx: &Ctx) -> (cryptoki::slot::Slot, Session) {
    let slot = ctx.init_token_no_user("sec");
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin(PIN6)).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(PIN6))).unwrap();
    (slot, s)
}

fn token_file(ctx: &Ctx) -> PathBuf {
    let dir = ctx.dir.path().join("tokens");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vtoken"))
        .expect("a token file")
}

/// Copies a token file (and its WAL, if any) as a thief copying the directory would.
fn steal(file: &Path, to: &Path) -> PathBuf {
    let dst = to.join("stolen.vtoken");
    std::fs::copy(file, &dst).unwrap();
    let wal = PathBuf::from(format!("{}-wal", file.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", dst.display())).unwrap();
    }
    dst
}

/// Every byte the thief holds: the file and its WAL.
fn all_bytes(file: &Path) -> Vec<u8> {
    let mut b = std::fs::read(file).unwrap();
    if let Ok(w) = std::fs::read(format!("{}-wal", file.display())) {
        b.extend(w);
    }
    b
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn find(s: &Session, t: &[Attribute]) -> Vec<ObjectHandle> {
    s.find_objects(t).unwrap()
}

fn child_out(test: &str, role: &str, env: &[(&str, String)]) -> String {
    let out = run_child(test, role, env);
    assert_child_ok(&out);
    String::from_utf8_lossy(&out.stdout).to_string()
}

// ---------------------------------------------------------------------- item 1

const MIGRATION_TEST: &str =
    "keys_are_private_on_every_path_and_old_public_key_records_are_migrated";

/// Child roles of [`MIGRATION_TEST`]: `plant` writes a sensitive, non-extractable
/// AES key with `CKA_PRIVATE=false`, as a file written by a vtoken that honoured it holds it (a record sealed under the
/// public-record key); `thief` opens a copied file with no PIN and prints what it
/// can read of every object.
fn migration_child() -> bool {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let path = PathBuf::from(std::env::var("SEC_FILE").unwrap());
    let mut st = vault_core::store::Store::open(&path).unwrap();
    match role.as_str() {
        "plant" => {
            let mut a = Attributes::new();
            a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
            a.set_ulong(CKA_KEY_TYPE, CKK_AES);
            a.set_bool(CKA_TOKEN, true);
            a.set_bool(CKA_PRIVATE, false);
            a.set_bool(CKA_SENSITIVE, true);
            a.set_bool(CKA_EXTRACTABLE, false);
            a.set_bool(CKA_ENCRYPT, true);
            a.set_bool(CKA_DECRYPT, true);
            a.set(CKA_LABEL, b"legacy".to_vec());
            a.set(CKA_ID, Vec::new());
            a.set(CKA_VALUE, LEGACY_VALUE.to_vec());
            a.set_ulong(CKA_VALUE_LEN, 32);
            let row = st.insert_legacy_public_record(&a).unwrap();
            println!("planted-id={}", row.id);
        }
        "thief" => {
            let (public, private) = st.counts().unwrap();
            println!("public={public} private={private}");
            for id in 1..=64u64 {
                match st.load_object(id, None) {
                    Ok(Some((_, attrs))) => {
                        if matches!(attrs.class(), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)) {
                            println!("public-key-material-record={id}");
                        }
                        if let Some(v) = attrs.get(CKA_VALUE) {
                            println!("revealed={}", hex::encode(v));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => println!("object {id}: {e}"),
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
    true
}

/// Asks for a public private/secret key on every creating path (C_GenerateKey,
/// C_CreateObject, C_GenerateKeyPair, C_UnwrapKey, C_DeriveKey: `each` gets each
/// result), and shows that copying or updating a key to public is always refused.
fn public_key_requests(s: &Session, mut each: impl FnMut(cryptoki::error::Result<ObjectHandle>)) {
    let public_aes = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::ValueLen(32.into()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    each(s.generate_key(&Mechanism::AesKeyGen, &public_aes));
    each(s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Value(vec![1; 32]),
    ]));
    let r = s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::EcParams(P256.to_vec()), Attribute::Token(true)],
        &[Attribute::Token(true), Attribute::Private(false)],
    );
    each(r.map(|p| p.1));
    let key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let e = rv(s.copy_object(key, &[Attribute::Private(false)]));
    assert!(
        matches!(
            e,
            RvError::AttributeValueInvalid | RvError::TemplateInconsistent
        ),
        "a copy of a key is never public, got {e:?}"
    );
    assert!(s
        .update_attributes(key, &[Attribute::Private(false)])
        .is_err());
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Decrypt(false),
            ],
        )
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, kek, key).unwrap();
    each(s.unwrap_key(
        &Mechanism::AesKeyWrapPad,
        kek,
        &wrapped,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(false),
        ],
    ));
    let (pub_a, priv_a) = ec_pair(s, P256, "a", false);
    let point = unwrap_octet_string(&attr_bytes(s, pub_a, AttributeType::EcPoint));
    each(s.derive_key(
        &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point)),
        priv_a,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Private(false),
        ],
    ));
}

#[test]
fn keys_are_private_on_every_path_and_old_public_key_records_are_migrated() {
    if migration_child() {
        return;
    }
    let mut ctx = Ctx::new();
    // `[policy] key_privacy = "refuse"`: every creating path refuses a public
    // private/secret key. The default (`force`) makes the same requests private keys:
    // pkcs11-tool and the cryptoki crate send CKA_PRIVATE=false on every secret key.
    let conf = std::fs::read_to_string(&ctx.conf).unwrap();
    std::fs::write(
        &ctx.conf,
        format!("{conf}[policy]\nkey_privacy = \"refuse\"\n"),
    )
    .unwrap();
    ctx.reinit();
    let (slot, s) = user_session(&ctx);
    public_key_requests(&s, |r| {
        let e = rv(r);
        assert!(
            matches!(
                e,
                RvError::AttributeValueInvalid | RvError::TemplateInconsistent
            ),
            "CKA_PRIVATE=false on a key must be refused, got {e:?}"
        );
    });
    s.logout().unwrap();
    drop(s);
    std::fs::write(&ctx.conf, &conf).unwrap();
    ctx.reinit();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(PIN6))).unwrap();
    let made = std::cell::RefCell::new(Vec::new());
    public_key_requests(&s, |r| made.borrow_mut().push(r.expect("made private")));
    let made = made.into_inner();
    assert_eq!(made.len(), 5, "five creating paths");
    for h in made {
        match &s.get_attributes(h, &[AttributeType::Private]).unwrap()[..] {
            [Attribute::Private(p)] => assert!(*p, "a key asked public is made private"),
            other => panic!("{other:?}"),
        }
    }
    s.logout().unwrap();
    let s2 = ctx.p11().open_ro_session(slot).unwrap();
    assert!(
        find(&s2, &[Attribute::Class(ObjectClass::SECRET_KEY)]).is_empty()
            && find(&s2, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty(),
        "no key is visible without login"
    );
    drop(s2);
    drop(s);
    ctx.finalize().unwrap();

    // A file holding a key written with CKA_PRIVATE=false under the public-record key.
    let file = token_file(&ctx);
    let env = [("SEC_FILE", file.display().to_string())];
    let planted = child_out(MIGRATION_TEST, "plant", &env);
    let id: u64 = planted
        .lines()
        .find_map(|l| l.split("planted-id=").nth(1))
        .expect("planted id")
        .trim()
        .parse()
        .unwrap();
    // Before migration, a copy of that file gives the key's value without a PIN.
    let before = tempfile::tempdir().unwrap();
    let stolen = steal(&file, before.path());
    let out = child_out(
        MIGRATION_TEST,
        "thief",
        &[("SEC_FILE", stolen.display().to_string())],
    );
    assert!(
        out.contains(&format!("revealed={}", hex::encode(LEGACY_VALUE))),
        "the planted record must be the old, readable kind: {out}"
    );

    // Without login the module neither lists nor uses it.
    ctx.reinit();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    assert!(
        find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]).is_empty()
            && find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty(),
        "no private or secret key is visible before login"
    );
    assert!(find(&s, &[Attribute::Label(b"legacy".to_vec())]).is_empty());
    let mut mech = CK_MECHANISM {
        mechanism: CKM_AES_ECB,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(
        rawcall!(C_EncryptInit, s.handle(), &mut mech, id as CK_OBJECT_HANDLE),
        CKR_KEY_HANDLE_INVALID,
        "the old public key record is not usable without login"
    );

    // (b) The first login re-seals it under the master key, CKA_PRIVATE true.
    s.login(UserType::User, Some(&pin(PIN6))).unwrap();
    let k = find(&s, &[Attribute::Label(b"legacy".to_vec())]);
    assert_eq!(k.len(), 1);
    match &s.get_attributes(k[0], &[AttributeType::Private]).unwrap()[..] {
        [Attribute::Private(p)] => assert!(*p, "migrated key is private"),
        other => panic!("{other:?}"),
    }
    // Still the same key, usable after login.
    let ct = s.encrypt(&Mechanism::AesEcb, k[0], &[0u8; 16]).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::AesEcb, k[0], &ct).unwrap(),
        vec![0u8; 16]
    );
    s.logout().unwrap();
    drop(s);
    ctx.finalize().unwrap();

    // (c) A copy of the migrated file reveals no key value, and holds no record the
    // public-record key opens.
    let after = tempfile::tempdir().unwrap();
    let stolen = steal(&file, after.path());
    assert!(!contains(&all_bytes(&stolen), &LEGACY_VALUE));
    let out = child_out(
        MIGRATION_TEST,
        "thief",
        &[("SEC_FILE", stolen.display().to_string())],
    );
    assert!(!out.contains("revealed="), "nothing revealed: {out}");
    assert!(
        !out.contains("public-key-material-record="),
        "no private or secret key record opens without the PIN: {out}"
    );
}

// ---------------------------------------------------------------------- item 2

#[test]
fn search_with_the_right_guess_of_a_sensitive_value_finds_nothing() {
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    let value = [0x42u8; 32];
    for token in [true, false] {
        let key = s
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(token),
                Attribute::Sensitive(true),
                Attribute::Label(b"secret".to_vec()),
                Attribute::Value(value.to_vec()),
            ])
            .unwrap();
        let guess = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(token),
            Attribute::Value(value.to_vec()),
        ];
        assert!(
            find(&s, &guess).is_empty(),
            "a right guess of CKA_VALUE must not match (token={token})"
        );
        // The object is there: found by its label.
        let by_label = [
            Attribute::Token(token),
            Attribute::Label(b"secret".to_vec()),
        ];
        assert_eq!(find(&s, &by_label), vec![key]);
        s.destroy_object(key).unwrap();
    }
    // A non-sensitive, extractable key's value is not secret: it still matches.
    let open = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(value.to_vec()),
        ])
        .unwrap();
    assert_eq!(find(&s, &[Attribute::Value(value.to_vec())]), vec![open]);
}

// ---------------------------------------------------------------------- item 3

const GATE_TEST_ENV: &str = "SEC_GATE_CLASSES";

/// Child role `gate`: the user switches the gate on for the classes in
/// [`GATE_TEST_ENV`]. Role `otp`: adds an HOTP credential named `bank`.
fn gate_child() -> bool {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let reg = vault_core::slots::Registry::new(vault_core::config::Config::load().unwrap());
    let entry = reg.tokens().unwrap().into_iter().next().unwrap();
    let t = reg.open(&entry).unwrap();
    t.login(vault_core::token::UserType::User, PIN6.as_bytes())
        .unwrap();
    match role.as_str() {
        "gate" => {
            let classes = std::env::var(GATE_TEST_ENV)
                .unwrap()
                .split(',')
                .map(|c| vault_core::gate::OpClass::parse(c).unwrap())
                .collect();
            t.gate_configure(vault_core::gate::GatePolicy {
                enabled: true,
                classes,
                ..Default::default()
            })
            .unwrap();
        }
        "otp" => {
            let uri = otp_core::OtpUri::new_hotp(None, "bank", b"12345678901234567890".to_vec(), 0);
            t.otp_add(&uri, false).unwrap();
        }
        "vault" => {
            // The user confirms the write (the test's stand-in for the prompt).
            t.set_prompt(std::sync::Arc::new(Confirm));
            let mut e = vault_core::vault::Entry::new(vault_core::vault::Kind::Website, "bank");
            e.fields.push(vault_core::vault::Field {
                name: "password".into(),
                value: VAULT_SECRET.into(),
                secret: true,
            });
            t.vault_add(&e).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    true
}

/// A prompt that confirms every request (vault writes in the `vault` child).
struct Confirm;

impl vault_core::prompt::Prompt for Confirm {
    fn confirm(
        &self,
        _: &vault_core::prompt::Request,
    ) -> vault_core::error::Result<vault_core::prompt::Answer> {
        Ok(vault_core::prompt::Answer::Confirmed)
    }
    fn name(&self) -> &str {
        "test-confirm"
    }
}

const VAULT_SECRET: &str = "correct-horse-battery";

fn gate_on(test: &str, classes: &str) {
    child_out(test, "gate", &[(GATE_TEST_ENV, classes.to_string())]);
}

fn gate_refused(e: RvError) {
    // The normal module has no answer hook: a gated request needs a picture the
    // default (deny) agent cannot show, so it is rejected.
    assert!(
        matches!(e, RvError::FunctionRejected | RvError::DeviceRemoved),
        "expected the gate's refusal, got {e:?}"
    );
}

fn rsa_token_pair(s: &Session, label: &str) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Label(label.into()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Decrypt(true),
            Attribute::Unwrap(true),
            Attribute::Sign(true),
            Attribute::Label(label.into()),
        ],
    )
    .unwrap()
}

/// An EMSA-PKCS1-v1_5 block (SHA-256) for a 2048-bit modulus.
fn emsa_block(digest: &[u8; 32]) -> Vec<u8> {
    let prefix: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let mut b = vec![0x00, 0x01];
    b.resize(256 - 19 - 32 - 1, 0xff);
    b.push(0x00);
    b.extend_from_slice(&prefix);
    b.extend_from_slice(digest);
    assert_eq!(b.len(), 256);
    b
}

const RSA_GATE_TEST: &str = "raw_rsa_decryption_is_gated_as_a_signature";

#[test]
fn raw_rsa_decryption_is_gated_as_a_signature() {
    if gate_child() {
        return;
    }
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    let (_, private) = rsa_token_pair(&s, "rsa");
    let block = emsa_block(&[9u8; 32]);
    // Gate off: "decrypting" the block is a valid signature (the hole).
    let sig = s.decrypt(&Mechanism::RsaX509, private, &block).unwrap();
    assert_eq!(sig.len(), 256);
    gate_on(RSA_GATE_TEST, "sign");
    gate_refused(rv(s.sign(&Mechanism::RsaPkcs, private, &[1u8; 51])));
    gate_refused(rv(s.decrypt(&Mechanism::RsaX509, private, &block)));
}

const UNWRAP_GATE_TEST: &str = "unwrap_into_an_extractable_key_is_gated_as_decrypt";

#[test]
fn unwrap_into_an_extractable_key_is_gated_as_decrypt() {
    if gate_child() {
        return;
    }
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    let (public, private) = rsa_token_pair(&s, "rsa");
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let secret = [0x5au8; 32];
    let blob = s.encrypt(&oaep, public, &secret).unwrap();
    gate_on(UNWRAP_GATE_TEST, "decrypt");
    let template = |extractable: bool| {
        [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(!extractable),
            Attribute::Extractable(extractable),
            Attribute::Sign(true),
        ]
    };
    gate_refused(rv(s.unwrap_key(&oaep, private, &blob, &template(true))));
    // Into a sensitive, non-extractable key it is an unwrap (class not gated).
    s.unwrap_key(&oaep, private, &blob, &template(false))
        .unwrap();
}

const OTP_TEST: &str = "otp_credentials_compute_no_codes_through_pkcs11";

#[test]
fn otp_credentials_compute_no_codes_through_pkcs11() {
    if gate_child() {
        return;
    }
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    child_out(OTP_TEST, "otp", &[]);
    let cred = find(&s, &[Attribute::Id(b"otp:bank".to_vec())]);
    assert_eq!(cred.len(), 1);
    match &s.get_attributes(cred[0], &[AttributeType::Sign]).unwrap()[..] {
        [Attribute::Sign(v)] => assert!(!*v, "a new credential has no CKA_SIGN"),
        other => panic!("{other:?}"),
    }
    let e = rv(s.sign(&Mechanism::Sha1Hmac, cred[0], &0u64.to_be_bytes()));
    assert!(
        matches!(
            e,
            RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent
        ),
        "{e:?}"
    );
    // A credential as older versions made it (CKA_SIGN true) is refused too.
    let params = br#"{"kind":"hotp","algorithm":"SHA1","digits":6,"period":30,"counter":0,"issuer":null,"account":"old"}"#;
    let old = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::Value(b"12345678901234567890".to_vec()),
            Attribute::VendorDefined((
                AttributeType::VendorDefined(vault_core::otp::CKA_VTOKEN_OTP),
                params.to_vec(),
            )),
        ])
        .unwrap();
    let e = rv(s.sign(&Mechanism::Sha1Hmac, old, &0u64.to_be_bytes()));
    assert_eq!(e, RvError::KeyFunctionNotPermitted);
}

const VAULT_GATE_TEST: &str = "pkcs11_value_reads_of_vault_entries_are_gated_as_vault_password";

#[test]
fn pkcs11_value_reads_of_vault_entries_are_gated_as_vault_password() {
    if gate_child() {
        return;
    }
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    child_out(VAULT_GATE_TEST, "vault", &[]);
    let vault = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(vault_core::vault::VAULT_APPLICATION.to_vec()),
    ];
    let entry = find(&s, &vault);
    assert_eq!(entry.len(), 1);
    // Gate off: the value read gives the password (what the gate must stop).
    let value = attr_bytes(&s, entry[0], AttributeType::Value);
    assert!(contains(&value, VAULT_SECRET.as_bytes()));
    gate_on(VAULT_GATE_TEST, "vault-password");
    gate_refused(rv(s.get_attributes(entry[0], &[AttributeType::Value])));
    // What is not secret still reads.
    assert_eq!(attr_bytes(&s, entry[0], AttributeType::Label), b"bank");
}

// ---------------------------------------------------------------------- item 9

#[test]
fn wrap_with_trusted_needs_a_wrapping_key_the_so_trusted() {
    let ctx = Ctx::new();
    let (slot, s) = user_session(&ctx);
    let (user_pub, user_priv) = rsa_token_pair(&s, "user-rsa");
    let modulus = attr_bytes(&s, user_pub, AttributeType::Modulus);
    // The user cannot make a key trusted.
    assert_eq!(
        rv(s.update_attributes(user_pub, &[Attribute::Trusted(true)])),
        RvError::AttributeReadOnly
    );
    let trusted_pub = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Modulus(modulus.clone()),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Wrap(true),
        Attribute::Trusted(true),
        Attribute::Label(b"trusted".to_vec()),
    ];
    assert_eq!(
        rv(s.create_object(&trusted_pub)),
        RvError::AttributeReadOnly
    );
    s.logout().unwrap();
    // The SO can.
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    let trusted = s.create_object(&trusted_pub).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(PIN6))).unwrap();
    let _ = slot;
    // A copy the user makes of it is not trusted.
    let copy = s.copy_object(trusted, &[]).unwrap();

    let value = [0x77u8; 16];
    let target = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
            Attribute::Value(value.to_vec()),
        ])
        .unwrap();
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    assert_eq!(
        rv(s.wrap_key(&oaep, user_pub, target)),
        RvError::KeyNotWrappable
    );
    assert_eq!(
        rv(s.wrap_key(&oaep, copy, target)),
        RvError::KeyNotWrappable
    );
    let wrapped = s.wrap_key(&oaep, trusted, target).unwrap();
    let back = s
        .unwrap_key(
            &oaep,
            user_priv,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    assert_eq!(attr_bytes(&s, back, AttributeType::Value), value);
}

#[test]
fn always_authenticate_keys_need_a_context_login_before_each_use() {
    let ctx = Ctx::new();
    let (_, s) = user_session(&ctx);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::EcParams(P256.to_vec()),
                Attribute::Token(false),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    let data = [3u8; 32];
    for round in 0..2 {
        s.sign_init(&Mechanism::Ecdsa, private).unwrap();
        assert_eq!(
            rv(s.sign_update(&data)),
            RvError::UserNotLoggedIn,
            "round {round}: no signature before the context login"
        );
        assert_eq!(
            rv(s.login(UserType::ContextSpecific, Some(&pin("654321")))),
            RvError::PinIncorrect
        );
        assert_eq!(rv(s.sign_update(&data)), RvError::UserNotLoggedIn);
        s.login(UserType::ContextSpecific, Some(&pin(PIN6)))
            .unwrap();
        s.sign_update(&data).unwrap();
        let sig = s.sign_final().unwrap();
        s.verify(&Mechanism::Ecdsa, public, &data, &sig).unwrap();
    }
    // Decryption likewise (C_Decrypt through the raw function list: the operation
    // stays initialized across the refusal and the context login).
    let (rsa_pub, rsa_priv) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Decrypt(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let ct = s.encrypt(&oaep, rsa_pub, b"attack at dawn").unwrap();
    let mut oaep_raw = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    let mut mech = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_OAEP,
        pParameter: &mut oaep_raw as *mut _ as *mut std::ffi::c_void,
        ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() as CK_ULONG,
    };
    let h = s.handle();
    assert_eq!(
        rawcall!(C_DecryptInit, h, &mut mech, rsa_priv.handle()),
        CKR_OK
    );
    let mut ct = ct;
    let mut out = [0u8; 256];
    let mut len: CK_ULONG = out.len() as CK_ULONG;
    let decrypt = |out: &mut [u8; 256], len: &mut CK_ULONG, ct: &mut Vec<u8>| {
        rawcall!(
            C_Decrypt,
            h,
            ct.as_mut_ptr(),
            ct.len() as CK_ULONG,
            out.as_mut_ptr(),
            len
        )
    };
    assert_eq!(decrypt(&mut out, &mut len, &mut ct), CKR_USER_NOT_LOGGED_IN);
    s.login(UserType::ContextSpecific, Some(&pin(PIN6)))
        .unwrap();
    assert_eq!(decrypt(&mut out, &mut len, &mut ct), CKR_OK);
    assert_eq!(&out[..len as usize], b"attack at dawn");
}

#[test]
fn strict_wrap_refuses_weaker_or_decrypt_capable_wrapping_keys() {
    let mut ctx = Ctx::new();
    let (slot, s) = user_session(&ctx);
    let aes = |label: &str, len: u64, extra: &[Attribute]| {
        let mut t = vec![
            Attribute::Token(true),
            Attribute::ValueLen(len.into()),
            Attribute::Label(label.into()),
        ];
        t.extend_from_slice(extra);
        s.generate_key(&Mechanism::AesKeyGen, &t).unwrap()
    };
    // A user-made AES-128 key with default attributes (CKA_DECRYPT and CKA_WRAP).
    let weak = aes("weak", 16, &[]);
    let target = aes("target", 32, &[Attribute::Extractable(true)]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesEcb, weak, target)),
        RvError::KeyNotWrappable
    );
    // As strong, but able to decrypt: the blob would decrypt to the value.
    let decrypting = aes("decrypting", 32, &[]);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesEcb, decrypting, target)),
        RvError::KeyNotWrappable
    );
    // A wrap-only key of equal strength wraps, and cannot decrypt its blob.
    let kek = aes(
        "kek",
        32,
        &[Attribute::Decrypt(false), Attribute::Wrap(true)],
    );
    let blob = s.wrap_key(&Mechanism::AesEcb, kek, target).unwrap();
    assert_eq!(
        rv(s.decrypt(&Mechanism::AesEcb, kek, &blob)),
        RvError::KeyFunctionNotPermitted
    );
    s.logout().unwrap();
    drop(s);

    // `[policy] strict_wrap = false` (legacy clients): the weak wrap happens, and
    // C_Decrypt with the same key gives the value (what strict mode prevents).
    let conf = std::fs::read_to_string(&ctx.conf).unwrap();
    std::fs::write(&ctx.conf, format!("{conf}[policy]\nstrict_wrap = false\n")).unwrap();
    ctx.reinit();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(PIN6))).unwrap();
    let one = |l: &str| find(&s, &[Attribute::Label(l.into())])[0];
    let (weak, target) = (one("weak"), one("target"));
    let blob = s.wrap_key(&Mechanism::AesEcb, weak, target).unwrap();
    let plain = s.decrypt(&Mechanism::AesEcb, weak, &blob).unwrap();
    assert_eq!(plain.len(), 32);
    let ct = s.encrypt(&Mechanism::AesEcb, target, &[0u8; 16]).unwrap();
    let leaked = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(plain),
        ])
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::AesEcb, leaked, &ct).unwrap(),
        vec![0u8; 16],
        "without strict_wrap the decrypted blob is the key"
    );
}
