//! Ed25519: RFC 8032 §7.1 known answers, generation in both CKA_EC_PARAMS forms,
//! openssl verifying the token's signature, refused variants and bad keys.

use super::{ED25519_NAME, ED25519_OID};
use crate::mechanism::test_support::*;

fn private(seed: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, ED25519_OID.to_vec());
    a.set(CKA_VALUE, seed.to_vec());
    Key::from_attributes(&a).unwrap()
}

fn public(point: &[u8]) -> Result<Key> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, ED25519_NAME.to_vec());
    a.set(CKA_EC_POINT, point.to_vec());
    Key::from_attributes(&a)
}

#[test]
fn ed25519_rfc8032_known_answers() {
    let m = Mechanism::new(CKM_EDDSA);
    for (seed, pk, msg, sig) in [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ] {
        let sk = private(&h(seed));
        assert_eq!(sign(&m, &sk, &h(msg)).unwrap(), h(sig));
        // CKA_EC_POINT as a DER OCTET STRING and bare.
        let mut der = vec![0x04, 0x20];
        der.extend(h(pk));
        for point in [der, h(pk)] {
            let vk = public(&point).unwrap();
            verify(&m, &vk, &h(msg), &h(sig)).unwrap();
            let mut bad = h(sig);
            bad[0] ^= 1;
            assert!(matches!(
                verify(&m, &vk, &h(msg), &bad),
                Err(Error::SignatureInvalid)
            ));
            assert!(matches!(
                verify(&m, &vk, &h(msg), &h(sig)[..63]),
                Err(Error::SignatureLenRange)
            ));
        }
    }
}

#[test]
fn ed25519_generation_and_openssl_verification() {
    let dir = tempfile::tempdir().unwrap();
    let gen = Mechanism::new(CKM_EC_EDWARDS_KEY_PAIR_GEN);
    for params in [ED25519_OID, ED25519_NAME] {
        let mut pt = Attributes::new();
        pt.set(CKA_EC_PARAMS, params.to_vec());
        let (mut pa, mut sa) = generate_key_pair(&gen, &pt, &Attributes::new()).unwrap();
        assert_eq!(pa.get(CKA_EC_PARAMS), Some(params));
        let point = pa.get(CKA_EC_POINT).unwrap().to_vec();
        assert_eq!((point.len(), point[0], point[1]), (34, 0x04, 0x20));
        for (a, class) in [(&mut pa, CKO_PUBLIC_KEY), (&mut sa, CKO_PRIVATE_KEY)] {
            a.set_ulong(CKA_CLASS, class);
        }
        let sk = Key::from_attributes(&sa).unwrap();
        let vk = Key::from_attributes(&pa).unwrap();
        let msg = b"signed inside the token";
        let m = Mechanism::new(CKM_EDDSA);
        let sig = sign_parts(&m, &sk, &[&msg[..6], &msg[6..]]).unwrap();
        verify(&m, &vk, msg, &sig).unwrap();
        // openssl: SubjectPublicKeyInfo of Ed25519 (RFC 8410) around the point.
        let mut spki = h("302a300506032b6570032100");
        spki.extend_from_slice(&point[2..]);
        std::fs::write(dir.path().join("pub.der"), spki).unwrap();
        std::fs::write(dir.path().join("msg"), msg).unwrap();
        std::fs::write(dir.path().join("sig"), &sig).unwrap();
        assert_ok(
            openssl(
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER",
                    "-rawin", "-in", "msg", "-sigfile", "sig",
                ],
                dir.path(),
            ),
            "openssl verifies the Ed25519 signature",
        );
    }
    // Other curves' parameters are not Ed25519.
    let mut pt = Attributes::new();
    pt.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    assert!(matches!(
        generate_key_pair(&gen, &pt, &Attributes::new()),
        Err(Error::AttributeValueInvalid(CKA_EC_PARAMS))
    ));
}

/// RFC 8032 §7.3 (Ed25519ph, "abc", no context), fed in parts; with a context the
/// signature differs and only that context verifies it.
#[test]
fn ed25519ph_rfc8032_known_answer() {
    let sk = private(&h(
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    ));
    let pk = public(&h(
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    ))
    .unwrap();
    let ph = |context: &[u8]| {
        mech(
            CKM_EDDSA,
            MechParam::Eddsa {
                prehash: true,
                context: context.to_vec(),
            },
        )
    };
    let sig = sign_parts(&ph(b""), &sk, &[b"a", b"bc"]).unwrap();
    assert_eq!(
        hex::encode(&sig),
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
         31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    );
    verify(&ph(b""), &pk, b"abc", &sig).unwrap();
    assert!(verify(&Mechanism::new(CKM_EDDSA), &pk, b"abc", &sig).is_err());
    let with_ctx = sign(&ph(b"vtoken"), &sk, b"abc").unwrap();
    assert_ne!(with_ctx, sig);
    verify(&ph(b"vtoken"), &pk, b"abc", &with_ctx).unwrap();
    assert!(matches!(
        verify(&ph(b"other"), &pk, b"abc", &with_ctx),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn ed25519_refuses_variants_and_bad_keys() {
    let sk = private(&[7; 32]);
    // Over-long Ed25519ph and Ed25519ctx contexts.
    for prehash in [true, false] {
        let p = MechParam::Eddsa {
            prehash,
            context: vec![0; 256],
        };
        assert!(matches!(
            sign_init(&mech(CKM_EDDSA, p), &sk),
            Err(Error::MechanismParamInvalid(_))
        ));
    }
    let pure = mech(
        CKM_EDDSA,
        MechParam::Eddsa {
            prehash: false,
            context: vec![],
        },
    );
    assert!(sign_init(&pure, &sk).is_ok());
    // A P-256 key does not sign EdDSA; an ECDSA mechanism does not take an Ed25519 key.
    let (p256, _, _) = ec_key(Curve::P256);
    assert!(matches!(
        sign_init(&pure, &p256),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&Mechanism::new(CKM_ECDSA), &sk),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(public(&[1; 31]).is_err());
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, ED25519_OID.to_vec());
    a.set(CKA_VALUE, vec![1; 31]);
    assert!(Key::from_attributes(&a).is_err());
}

fn ed448_private(secret: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, crate::mechanism::ed448::ED448_OID.to_vec());
    a.set(CKA_VALUE, secret.to_vec());
    Key::from_attributes(&a).unwrap()
}

fn ed448_public(point: &[u8]) -> Result<Key> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, crate::mechanism::ed448::ED448_NAME.to_vec());
    a.set(CKA_EC_POINT, point.to_vec());
    Key::from_attributes(&a)
}

/// RFC 8032 §7.4: Ed448 without and with a context; Ed448ph round trip, context
/// separation, bad lengths.
#[test]
fn ed448_rfc8032_known_answers_and_variants() {
    let pure = Mechanism::new(CKM_EDDSA);
    let with_ctx = |ctx: &[u8], prehash| {
        mech(
            CKM_EDDSA,
            MechParam::Eddsa {
                prehash,
                context: ctx.to_vec(),
            },
        )
    };
    for (secret, pk, msg, ctx, sig) in [
        (
            "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e
             39a3fc5b94492f8f032e7549a20098f95b",
            "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c706
             1bd6783df1e50f6cd1fa1abeafe8256180",
            "",
            "",
            "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f2b233f034f628281
             f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a9df63e006c5d1c2d345b925d8dc00b41
             04852db99ac5c7cdda8530a113a0f4dbb61149f05a7363268c71d95808ff2e652600",
        ),
        (
            "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c
             5e3bc397a659949ef8021e954e0a12274e",
            "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802
             b8438ea4cb82169c235160627b4c3a9480",
            "03",
            "666f6f",
            "d4f8f6131770dd46f40867d6fd5d5055de43541f8c5e35abbcd001b32a89f7d2151f7647f11d8ca2
             ae279fb842d607217fce6e042f6815ea000c85741de5c8da1144a6a1aba7f96de42505d7a7298524
             fda538fccbbb754f578c1cad10d54d0d5428407e85dcbc98a49155c13764e66c3c00",
        ),
    ] {
        let sk = ed448_private(&h(secret));
        let m = if ctx.is_empty() {
            pure.clone()
        } else {
            with_ctx(&h(ctx), false)
        };
        assert_eq!(sign(&m, &sk, &h(msg)).unwrap(), h(sig));
        let mut der = vec![0x04, 0x39];
        der.extend(h(pk));
        for point in [der, h(pk)] {
            let vk = ed448_public(&point).unwrap();
            verify(&m, &vk, &h(msg), &h(sig)).unwrap();
            let mut bad = h(sig);
            bad[3] ^= 1;
            assert!(matches!(
                verify(&m, &vk, &h(msg), &bad),
                Err(Error::SignatureInvalid)
            ));
            assert!(matches!(
                verify(&m, &vk, &h(msg), &h(sig)[..113]),
                Err(Error::SignatureLenRange)
            ));
        }
    }
    // Ed448ph: signs and verifies; the context and the ph flag both count.
    let mut t = Attributes::new();
    t.set(CKA_EC_PARAMS, crate::mechanism::ed448::ED448_OID.to_vec());
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
        &t,
        &Attributes::new(),
    )
    .unwrap();
    assert_eq!(pa.get(CKA_EC_POINT).unwrap().len(), 59);
    assert_eq!(sa.get(CKA_VALUE).unwrap().len(), 57);
    let (sk, pk) = (
        Key::from_attributes(&sa).unwrap(),
        Key::from_attributes(&pa).unwrap(),
    );
    let ph = with_ctx(b"c", true);
    let s = sign(&ph, &sk, b"long message").unwrap();
    assert_eq!(s.len(), 114);
    verify(&ph, &pk, b"long message", &s).unwrap();
    assert!(verify(&with_ctx(b"d", true), &pk, b"long message", &s).is_err());
    assert!(verify(&with_ctx(b"c", false), &pk, b"long message", &s).is_err());
    assert!(matches!(
        sign_init(&with_ctx(&[0; 256], false), &sk),
        Err(Error::MechanismParamInvalid(_))
    ));
    // Wrong sizes are refused at import.
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, crate::mechanism::ed448::ED448_OID.to_vec());
    a.set(CKA_VALUE, vec![1; 32]);
    assert!(Key::from_attributes(&a).is_err());
    assert!(ed448_public(&[2; 32]).is_err());
}

/// openssl verifies an Ed448 signature of the token (openssl 3.0 knows pure Ed448).
#[test]
fn openssl_verifies_ed448() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut t = Attributes::new();
    t.set(CKA_EC_PARAMS, crate::mechanism::ed448::ED448_OID.to_vec());
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_EC_EDWARDS_KEY_PAIR_GEN),
        &t,
        &Attributes::new(),
    )
    .unwrap();
    let sk = Key::from_attributes(&sa).unwrap();
    let sig = sign(&Mechanism::new(CKM_EDDSA), &sk, b"ed448 data").unwrap();
    // SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.113 } BIT STRING }.
    let point = &pa.get(CKA_EC_POINT).unwrap()[2..];
    let mut spki = vec![
        0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
    ];
    spki.extend_from_slice(point);
    std::fs::write(d.join("pub.der"), &spki).unwrap();
    std::fs::write(d.join("data"), b"ed448 data").unwrap();
    std::fs::write(d.join("sig"), &sig).unwrap();
    let o = std::process::Command::new("openssl")
        .args([
            "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-rawin",
            "-in", "data", "-sigfile", "sig",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::write(d.join("data"), b"ed448 datA").unwrap();
    let o = std::process::Command::new("openssl")
        .args([
            "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-rawin",
            "-in", "data", "-sigfile", "sig",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

/// RFC 8032 §7.2: Ed25519ctx (context "foo"); the context and the scheme both
/// count, a signature with a non-canonical `s` or a flipped bit is refused, and
/// multi-part input gives the same signature.
#[test]
fn ed25519ctx_rfc8032_known_answer() {
    let ctx = |c: &[u8]| {
        mech(
            CKM_EDDSA,
            MechParam::Eddsa {
                prehash: false,
                context: c.to_vec(),
            },
        )
    };
    let sk = private(&h(
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
    ));
    let pk = public(&h(
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
    ))
    .unwrap();
    let msg = h("f726936d19c800494e3fdaff20b276a8");
    let want = h(
        "55a4cc2f70a54e04288c5f4cd1e45a7bb520b36292911876cada7323198dd87a
                  8b36950b95130022907a7fb7c4e9b2d5f6cca685a587b4b21f4b888e4e7edb0d",
    );
    let foo = ctx(b"foo");
    assert_eq!(sign(&foo, &sk, &msg).unwrap(), want);
    verify(&foo, &pk, &msg, &want).unwrap();
    let mut op = sign_init(&foo, &sk).unwrap();
    op.update(&msg[..5]).unwrap();
    op.update(&msg[5..]).unwrap();
    assert_eq!(op.finish().unwrap(), want);
    for other in [ctx(b"bar"), Mechanism::new(CKM_EDDSA)] {
        assert!(matches!(
            verify(&other, &pk, &msg, &want),
            Err(Error::SignatureInvalid)
        ));
    }
    let mut bad = want.clone();
    bad[10] ^= 1;
    assert!(verify(&foo, &pk, &msg, &bad).is_err());
    // s + L (the group order) is the same scalar, but not canonical: refused.
    let mut s_plus_l = want.clone();
    let l = h("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s_plus_l[32 + i] as u16 + l[i] as u16 + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert!(verify(&foo, &pk, &msg, &s_plus_l).is_err());
}
