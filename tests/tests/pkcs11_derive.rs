//! The simple key derivations (concatenation, XOR, bit extraction, encrypt-data)
//! through the real module, and the attacks they invite on a protected base key:
//! malware holding the PIN asks for a readable copy, a cut-down copy it can search
//! piece by piece, or a weaker kind of key. Each is shown refused.

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::ekdf::AesCbcDeriveParams;
use cryptoki::mechanism::misc::{ExtractParams, KeyDerivationStringData};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use pkcs11_common::*;

/// A derived secret key's template: session object, with `extra`.
fn derived(extra: &[Attribute]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Token(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
    ];
    t.extend_from_slice(extra);
    t
}

const READABLE: [Attribute; 2] = [Attribute::Sensitive(false), Attribute::Extractable(true)];

fn open_key(s: &Session, kt: KeyType, value: &[u8]) -> ObjectHandle {
    secret_key(
        s,
        kt,
        value,
        &[
            Attribute::Derive(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ],
    )
}

fn bool_attr(s: &Session, h: ObjectHandle, ty: AttributeType) -> bool {
    match s.get_attributes(h, &[ty]).unwrap().pop() {
        Some(Attribute::Sensitive(b))
        | Some(Attribute::Extractable(b))
        | Some(Attribute::AlwaysSensitive(b))
        | Some(Attribute::NeverExtractable(b))
        | Some(Attribute::Local(b))
        | Some(Attribute::Sign(b))
        | Some(Attribute::Encrypt(b))
        | Some(Attribute::Derive(b)) => b,
        other => panic!("{ty:?}: {other:?}"),
    }
}

#[test]
fn concatenation_xor_and_extraction_of_readable_keys() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let a = open_key(&s, KeyType::GENERIC_SECRET, &[1, 2, 3]);
    let b = open_key(&s, KeyType::GENERIC_SECRET, &[4, 5]);
    let data = [9u8, 8];
    let sd = KeyDerivationStringData::new(&data);
    let value = |m: &Mechanism, extra: &[Attribute]| {
        let mut t = derived(&READABLE);
        t.extend_from_slice(extra);
        let k = s.derive_key(m, a, &t).unwrap();
        attr_bytes(&s, k, AttributeType::Value)
    };
    assert_eq!(
        value(&Mechanism::ConcatenateBaseAndKey(b), &[]),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        value(&Mechanism::ConcatenateBaseAndData(sd), &[]),
        [1, 2, 3, 9, 8]
    );
    assert_eq!(
        value(&Mechanism::ConcatenateDataAndBase(sd), &[]),
        [9, 8, 1, 2, 3]
    );
    assert_eq!(value(&Mechanism::XorBaseAndData(sd), &[]), [1 ^ 9, 2 ^ 8]);
    let ex = Mechanism::ExtractKeyFromKey(ExtractParams::new(4));
    assert_eq!(value(&ex, &[Attribute::ValueLen(2.into())]), [0x10, 0x20]);
    // A second key without CKA_DERIVE may not be folded in.
    let no_derive = secret_key(&s, KeyType::GENERIC_SECRET, &[7], &READABLE);
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ConcatenateBaseAndKey(no_derive),
            a,
            &derived(&READABLE)
        )),
        RvError::KeyFunctionNotPermitted
    );
}

#[test]
fn a_protected_base_key_stays_protected_through_value_copying_derivations() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    // Generated on the token: sensitive, never extractable, always sensitive.
    let aes128 = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(16.into()),
                Attribute::Derive(true),
            ],
        )
        .unwrap();
    let data16 = [0x5au8; 16];
    let sd16 = KeyDerivationStringData::new(&data16);
    let data8 = [0x5au8; 8];
    let sd8 = KeyDerivationStringData::new(&data8);
    let inconsistent = |m: &Mechanism, t: &[Attribute]| {
        assert_eq!(
            rv(s.derive_key(m, aes128, &derived(t))),
            RvError::TemplateInconsistent,
            "{m:?} {t:?}"
        )
    };
    // 1. A readable copy: base ‖ data read back would be the key itself.
    for m in [
        Mechanism::ConcatenateBaseAndData(sd16),
        Mechanism::ConcatenateDataAndBase(sd16),
        Mechanism::XorBaseAndData(sd16),
    ] {
        inconsistent(&m, &[Attribute::Sensitive(false)]);
        inconsistent(&m, &[Attribute::Extractable(true)]);
    }
    // 2. A cut-down copy: 15 known bytes and one byte of the key, searchable in
    //    256 tries with any MAC, then the next byte, and so on.
    let cut = Mechanism::ConcatenateDataAndBase(KeyDerivationStringData::new(&[0u8; 15]));
    inconsistent(&cut, &[Attribute::ValueLen(16.into())]);
    inconsistent(
        &Mechanism::ExtractKeyFromKey(ExtractParams::new(0)),
        &[Attribute::ValueLen(1.into())],
    );
    // XOR with data shorter than the key keeps only part of it.
    inconsistent(&Mechanism::XorBaseAndData(sd8), &[]);
    // 3. A weaker kind of key: the AES-128 key and 8 known bytes as a DES3 key.
    inconsistent(
        &Mechanism::ConcatenateBaseAndData(sd8),
        &[Attribute::KeyType(KeyType::DES3)],
    );
    // What is allowed: the whole key, kept sensitive and non-extractable, as strong
    // (here an AES-256 key with the base as its first half).
    let k = s
        .derive_key(
            &Mechanism::ConcatenateBaseAndData(sd16),
            aes128,
            &derived(&[Attribute::KeyType(KeyType::AES), Attribute::Encrypt(true)]),
        )
        .unwrap();
    assert!(bool_attr(&s, k, AttributeType::Sensitive));
    assert!(!bool_attr(&s, k, AttributeType::Extractable));
    assert!(bool_attr(&s, k, AttributeType::AlwaysSensitive));
    assert!(bool_attr(&s, k, AttributeType::NeverExtractable));
    assert!(!bool_attr(&s, k, AttributeType::Local));
    assert_eq!(
        rv(s.get_attributes(k, &[AttributeType::Value])
            .and_then(|mut v| {
                match v.pop() {
                    Some(Attribute::Value(_)) => Ok(()),
                    _ => Err(cryptoki::error::Error::Pkcs11(
                        RvError::AttributeSensitive,
                        cryptoki::context::Function::GetAttributeValue,
                    )),
                }
            })),
        RvError::AttributeSensitive
    );
    // A sensitive second key makes the concatenation sensitive too.
    let open = open_key(&s, KeyType::GENERIC_SECRET, &[1, 2, 3]);
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::ConcatenateBaseAndKey(aes128),
            open,
            &derived(&READABLE)
        )),
        RvError::TemplateInconsistent
    );
}

#[test]
fn encrypt_data_derivation_from_a_generated_key() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let master = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Derive(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    let data = [1u8; 32];
    let iv = [0u8; 16];
    let child = s
        .derive_key(
            &Mechanism::AesCbcEncryptData(AesCbcDeriveParams::new(iv, &data)),
            master,
            &derived(&[
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
            ]),
        )
        .unwrap();
    // The child is E(master, data) in CBC: encrypting the data with the master key
    // gives the value the child holds; both encrypt the same block alike.
    let expect = s.encrypt(&Mechanism::AesCbc(iv), master, &data).unwrap();
    let probe = [3u8; 16];
    let by_child = s.encrypt(&Mechanism::AesEcb, child, &probe).unwrap();
    let copy = secret_key(&s, KeyType::AES, &expect, &[Attribute::Encrypt(true)]);
    assert_eq!(
        by_child,
        s.encrypt(&Mechanism::AesEcb, copy, &probe).unwrap()
    );
    // Generated master, derived sensitive child: it stays always sensitive.
    assert!(bool_attr(&s, child, AttributeType::AlwaysSensitive));
    // Data that does not fill whole blocks is a bad parameter.
    assert_eq!(
        rv(s.derive_key(
            &Mechanism::AesCbcEncryptData(AesCbcDeriveParams::new(iv, &[1u8; 17])),
            master,
            &derived(&[])
        )),
        RvError::MechanismParamInvalid
    );
}

/// `[policy] key_defaults = "legacy"`: a key whose template is silent is readable
/// (SoftHSMv2's defaults), and so are keys derived from it; the default policy
/// keeps such a key sensitive, and its derivations with it.
#[test]
fn key_defaults_policy() {
    for (policy, readable) in [("", false), ("[policy]\nkey_defaults = \"legacy\"\n", true)] {
        let ctx = Ctx::uninitialized();
        vtoken_testsupport::env::write_config(&ctx.conf, &ctx.dir.path().join("tokens"), policy);
        ctx.p11().initialize(init_args()).unwrap();
        let (_slot, s) = ctx.user_session();
        let base = secret_key(
            &s,
            KeyType::GENERIC_SECRET,
            &[1, 2, 3],
            &[Attribute::Derive(true)],
        );
        assert_eq!(bool_attr(&s, base, AttributeType::Sensitive), !readable);
        assert_eq!(bool_attr(&s, base, AttributeType::Extractable), readable);
        let sd = KeyDerivationStringData::new(&[9u8, 9, 9]);
        let r = s.derive_key(&Mechanism::XorBaseAndData(sd), base, &derived(&READABLE));
        if readable {
            assert_eq!(
                attr_bytes(&s, r.unwrap(), AttributeType::Value),
                [8, 11, 10]
            );
        } else {
            assert_eq!(rv(r), RvError::TemplateInconsistent);
        }
    }
}

/// SP 800-108 in counter mode through the module: the main key and two additional
/// keys from one `C_DeriveKey`, each starting on a fresh PRF block of the same
/// keying material, their handles written back; a bad additional template stores
/// nothing at all.
#[test]
fn sp800_108_with_additional_keys() {
    use cryptoki::mechanism::kbkdf::{
        DerivedKey, Endianness, KbkdfCounterFormat, KbkdfDkmLengthFormat, KbkdfDkmLengthMethod,
        KbkdfParams, PrfDataParam, PrfDataParamType,
    };
    use cryptoki::mechanism::MechanismType;
    use std::num::NonZeroUsize;
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let base = open_key(&s, KeyType::GENERIC_SECRET, &[0x42; 32]);
    let counter = KbkdfCounterFormat::new(Endianness::Big, NonZeroUsize::new(32).unwrap());
    let dkm = KbkdfDkmLengthFormat::new(
        KbkdfDkmLengthMethod::SumOfSegments,
        Endianness::Big,
        NonZeroUsize::new(32).unwrap(),
    );
    let data = [
        PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&counter))),
        PrfDataParam::new(PrfDataParamType::ByteArray(b"label")),
        PrfDataParam::new(PrfDataParamType::DkmLength(&dkm)),
    ];
    let readable = |len: u64| {
        let mut t = derived(&READABLE);
        t.push(Attribute::ValueLen(len.into()));
        t
    };
    let value = |h: ObjectHandle| attr_bytes(&s, h, AttributeType::Value);
    // One long key over the four HMAC-SHA-256 blocks the three keys take.
    let whole = s
        .derive_key(
            &Mechanism::KbkdfCounter(KbkdfParams::new(MechanismType::SHA256_HMAC, &data, None)),
            base,
            &readable(128),
        )
        .unwrap();
    let whole = value(whole);
    let mut extra = [
        DerivedKey::new(&readable(40)),
        DerivedKey::new(&readable(1)),
    ];
    let main = s
        .derive_key(
            &Mechanism::KbkdfCounter(KbkdfParams::new(
                MechanismType::SHA256_HMAC,
                &data,
                Some(&mut extra),
            )),
            base,
            &readable(16),
        )
        .unwrap();
    let (k1, k2) = (extra[0].handle().unwrap(), extra[1].handle().unwrap());
    // A derived key has the uses its template names, no others.
    for k in [main, k1, k2] {
        for ty in [
            AttributeType::Sign,
            AttributeType::Encrypt,
            AttributeType::Derive,
        ] {
            assert!(!bool_attr(&s, k, ty), "{ty:?}");
        }
    }
    assert_eq!(value(main), whole[..16]);
    assert_eq!(value(k1), whole[32..72]);
    assert_eq!(value(k2), whole[96..97]);
    // An additional template that cannot be built: nothing is stored, no handle.
    let before = s.find_objects(&[]).unwrap().len();
    let mut bad = [
        DerivedKey::new(&readable(16)),
        DerivedKey::new(&derived(&[
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(7.into()),
        ])),
    ];
    let r = s.derive_key(
        &Mechanism::KbkdfCounter(KbkdfParams::new(
            MechanismType::SHA256_HMAC,
            &data,
            Some(&mut bad),
        )),
        base,
        &readable(16),
    );
    assert!(r.is_err(), "{r:?}");
    assert!(bad.iter().all(|k| k.handle().is_none()));
    assert_eq!(s.find_objects(&[]).unwrap().len(), before);
}

/// HKDF through the module: a generated `CKK_HKDF` key, extract-and-expand equal
/// to extract then expand, a salt given as another key's value, and a salt key
/// without `CKA_DERIVE` refused.
#[test]
fn hkdf_derive() {
    use cryptoki::mechanism::hkdf::{HkdfParams, HkdfSalt};
    use cryptoki::mechanism::MechanismType;
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let ikm = s
        .generate_key(
            &Mechanism::HkdfKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Derive(true),
            ],
        )
        .unwrap();
    let out = |params: HkdfParams, base: ObjectHandle, len: u64| {
        let mut t = derived(&[Attribute::Sensitive(false), Attribute::Extractable(true)]);
        t.push(Attribute::ValueLen(len.into()));
        let k = s.derive_key(&Mechanism::HkdfDerive(params), base, &t)?;
        Ok::<_, cryptoki::error::Error>(attr_bytes(&s, k, AttributeType::Value))
    };
    let salt = HkdfSalt::Data(b"salt");
    let both = out(
        HkdfParams::new(MechanismType::SHA256, Some(salt), Some(b"info")),
        ikm,
        64,
    )
    .unwrap();
    let prk = out(
        HkdfParams::new(MechanismType::SHA256, Some(salt), None),
        ikm,
        32,
    )
    .unwrap();
    let prk_key = open_key(&s, KeyType::GENERIC_SECRET, &prk);
    let expanded = out(
        HkdfParams::new(MechanismType::SHA256, None, Some(b"info")),
        prk_key,
        64,
    )
    .unwrap();
    assert_eq!(both, expanded);
    // The salt as a key: the same output as the salt as data.
    let salt_key = open_key(&s, KeyType::GENERIC_SECRET, b"salt");
    let by_key = out(
        HkdfParams::new(
            MechanismType::SHA256,
            Some(HkdfSalt::Key(salt_key)),
            Some(b"info"),
        ),
        ikm,
        64,
    )
    .unwrap();
    assert_eq!(by_key, both);
    let no_derive = secret_key(&s, KeyType::GENERIC_SECRET, b"salt", &READABLE);
    assert_eq!(
        rv(out(
            HkdfParams::new(
                MechanismType::SHA256,
                Some(HkdfSalt::Key(no_derive)),
                Some(b"info")
            ),
            ikm,
            64,
        )),
        RvError::KeyFunctionNotPermitted
    );
}

/// `CKM_HKDF_DATA` through the module: RFC 5869 test case 1 from a sensitive,
/// non-extractable key, stored as a private `CKO_DATA` object whose value is the
/// OKM (`CKA_VALUE_LEN` gives the length and is not kept); a key class in the
/// template is refused and nothing is stored.
#[test]
fn hkdf_data_makes_a_data_object() {
    use cryptoki::mechanism::hkdf::{HkdfParams, HkdfSalt};
    use cryptoki::mechanism::MechanismType;
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let ikm = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &[0x0b; 22],
        &[
            Attribute::Derive(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ],
    );
    let salt: Vec<u8> = (0x00..=0x0c).collect();
    let info: Vec<u8> = (0xf0..=0xf9).collect();
    let m = Mechanism::HkdfData(HkdfParams::new(
        MechanismType::SHA256,
        Some(HkdfSalt::Data(&salt)),
        Some(&info),
    ));
    let d = s
        .derive_key(
            &m,
            ikm,
            &[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(false),
                Attribute::Label(b"okm".to_vec()),
                Attribute::ValueLen(42.into()),
            ],
        )
        .unwrap();
    assert_eq!(
        hex::encode(attr_bytes(&s, d, AttributeType::Value)),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    let a = s
        .get_attributes(d, &[AttributeType::Class, AttributeType::Private])
        .unwrap();
    assert_eq!(
        a,
        vec![
            Attribute::Class(ObjectClass::DATA),
            Attribute::Private(true)
        ]
    );
    let before = s.find_objects(&[]).unwrap().len();
    for class in [ObjectClass::SECRET_KEY, ObjectClass::CERTIFICATE] {
        assert_eq!(
            rv(s.derive_key(
                &m,
                ikm,
                &[Attribute::Class(class), Attribute::ValueLen(42.into())]
            )),
            RvError::TemplateInconsistent
        );
    }
    assert_eq!(s.find_objects(&[]).unwrap().len(), before);
}
