//! `CKM_VTOKEN_SEALED_ENVELOPE` through the real module (SPEC V8 over PKCS#11):
//! `C_UnwrapKey` with the device key (`CK_INVALID_HANDLE`) turns an envelope sealed
//! to this token — CMS or encrypted directly to the device key — into a data object
//! or a secret key, as the template says. The tokens are made and certified with the
//! real CLI (`vtoken ca init`, `vtoken device certify`), the envelopes sealed by
//! `vtoken device seal`; an envelope to the other token, a tampered one, a key
//! object as unwrapping key and a caller not logged in are refused and store
//! nothing.

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use pkcs11_common::*;
use vtoken_testsupport::{artifacts, env};

const CKM_VTOKEN_SEALED_ENVELOPE: u64 = 0x8000_0000 | 0x5654_0101;

fn cli(ctx: &Ctx, args: &[&str]) -> String {
    let o = env::command(artifacts::cli(), &ctx.conf)
        .args(args)
        .env("VTOKEN_PIN", USER_PIN)
        .env("VTOKEN_SO_PIN", SO_PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "vtoken {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mech() -> Mechanism<'static> {
    let ty = MechanismType::new_vendor_defined(CKM_VTOKEN_SEALED_ENVELOPE).unwrap();
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(ty, None))
}

/// The device key: no object, so `CK_INVALID_HANDLE`.
fn device_key() -> ObjectHandle {
    // SAFETY: a handle is a number; the module checks it like any other.
    unsafe { ObjectHandle::new_from_raw(0) }
}

fn objects(s: &Session) -> usize {
    s.find_objects(&[]).unwrap().len()
}

#[test]
fn sealed_envelopes_unwrap_into_data_and_secret_objects() {
    let ctx = Ctx::uninitialized();
    let d = ctx.dir.path().to_path_buf();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    for label in ["mine", "other"] {
        cli(&ctx, &["init", "--label", label]);
    }
    cli(&ctx, &["ca", "init", "--dir", &p("ca")]);
    for label in ["mine", "other"] {
        cli(
            &ctx,
            &["--token", label, "device", "certify", "--ca-dir", &p("ca")],
        );
        cli(
            &ctx,
            &[
                "--token",
                label,
                "device",
                "cert",
                "-o",
                &p(&format!("{label}.pem")),
            ],
        );
    }
    let key = [0x5au8; 32];
    std::fs::write(p("key.bin"), key).unwrap();
    let note = b"a sealed note for the data object";
    std::fs::write(p("note.txt"), note).unwrap();
    let seal = |input: &str, to: &str, out: &str, direct: bool| {
        let mut a = vec!["device", "seal", "--to", to, "--in", input, "-o", out];
        if direct {
            a.push("--direct");
        }
        cli(&ctx, &a);
        std::fs::read(out).unwrap()
    };
    let key_cms = seal(&p("key.bin"), &p("mine.pem"), &p("key.cms"), false);
    let key_direct = seal(&p("key.bin"), &p("mine.pem"), &p("key.rsa"), true);
    let note_cms = seal(&p("note.txt"), &p("mine.pem"), &p("note.cms"), false);
    let note_direct = seal(&p("note.txt"), &p("mine.pem"), &p("note.rsa"), true);
    let foreign_cms = seal(&p("key.bin"), &p("other.pem"), &p("other.cms"), false);
    let foreign_direct = seal(&p("key.bin"), &p("other.pem"), &p("other.rsa"), true);

    ctx.p11().initialize(init_args()).expect("C_Initialize");
    let slot = ctx
        .p11()
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.p11().get_token_info(*s).unwrap().label().trim() == "mine")
        .expect("token mine");
    let s = ctx.p11().open_rw_session(slot).unwrap();

    // Advertised: unwrap only.
    let ty = MechanismType::new_vendor_defined(CKM_VTOKEN_SEALED_ENVELOPE).unwrap();
    let info = ctx.p11().get_mechanism_info(slot, ty).unwrap();
    assert!(info.unwrap() && !info.wrap() && !info.encrypt());

    let secret = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
    ];
    let data = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Label(b"sealed note".to_vec()),
    ];

    // Not logged in: refused.
    assert_eq!(
        rv(s.unwrap_key(&mech(), device_key(), &key_cms, &secret)),
        RvError::UserNotLoggedIn
    );
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let before = objects(&s);

    // Both delivery options, into a secret key and into a data object.
    for wrapped in [&key_cms, &key_direct] {
        let k = s
            .unwrap_key(&mech(), device_key(), wrapped, &secret)
            .unwrap();
        assert_eq!(attr_bytes(&s, k, AttributeType::Value), key);
        s.destroy_object(k).unwrap();
    }
    for wrapped in [&note_cms, &note_direct] {
        let o = s.unwrap_key(&mech(), device_key(), wrapped, &data).unwrap();
        assert_eq!(attr_bytes(&s, o, AttributeType::Value), note);
        assert_eq!(attr_bytes(&s, o, AttributeType::Label), b"sealed note");
        s.destroy_object(o).unwrap();
    }
    assert_eq!(objects(&s), before);

    // Sealed to the other token: refused, nothing stored.
    for wrapped in [&foreign_cms, &foreign_direct] {
        assert_eq!(
            rv(s.unwrap_key(&mech(), device_key(), wrapped, &secret)),
            RvError::WrappedKeyInvalid
        );
    }
    // Changed on its way: refused (the AEAD tag or OAEP fails).
    for wrapped in [&key_cms, &key_direct] {
        let mut t = wrapped.clone();
        let n = t.len();
        t[n - 20] ^= 1;
        assert_eq!(
            rv(s.unwrap_key(&mech(), device_key(), &t, &secret)),
            RvError::WrappedKeyInvalid
        );
    }
    // A key object named as unwrapping key: the envelope opens with the device key
    // only.
    let aes = aes_key(&s, &[Attribute::Unwrap(true)]);
    assert_eq!(
        rv(s.unwrap_key(&mech(), aes, &key_cms, &secret)),
        RvError::KeyHandleInvalid
    );
    s.destroy_object(aes).unwrap();
    assert_eq!(objects(&s), before, "nothing stored by a refused unwrap");
}
