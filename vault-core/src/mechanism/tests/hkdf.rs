//! HKDF: RFC 5869 test case 1 (SHA-256) and test case 4 (SHA-1), extract and expand
//! apart, against `openssl kdf HKDF` for the other hashes, and the parameter rules.

use crate::mechanism::hkdf::{Params, Salt};
use crate::mechanism::test_support::*;

fn hkdf(extract: bool, expand: bool, prf: CK_MECHANISM_TYPE, salt: Salt, info: &[u8]) -> Mechanism {
    mech(
        CKM_HKDF_DERIVE,
        MechParam::Hkdf(Box::new(Params {
            extract,
            expand,
            prf,
            salt,
            info: info.to_vec(),
        })),
    )
}

fn len(n: u64) -> Attributes {
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, n);
    t
}

#[test]
fn rfc5869_vectors() {
    // Test case 1.
    let ikm = secret(CKK_GENERIC_SECRET, &[0x0b; 22]);
    let salt = Salt::Data(h("000102030405060708090a0b0c"));
    let info = h("f0f1f2f3f4f5f6f7f8f9");
    let okm = derive(
        &hkdf(true, true, CKM_SHA256, salt.clone(), &info),
        &ikm,
        &len(42),
    )
    .unwrap();
    assert_eq!(
        hex::encode(&okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // Extract, then expand from the PRK: the same bytes.
    let prk = derive(
        &hkdf(true, false, CKM_SHA256, salt, &[]),
        &ikm,
        &Attributes::new(),
    )
    .unwrap();
    assert_eq!(
        hex::encode(&prk),
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    );
    let prk_key = secret(CKK_HKDF, &prk);
    let again = derive(
        &hkdf(false, true, CKM_SHA256, Salt::Null, &info),
        &prk_key,
        &len(42),
    )
    .unwrap();
    assert_eq!(again, okm);
    // Test case 4 (SHA-1).
    let ikm = secret(CKK_HKDF, &[0x0b; 11]);
    let okm = derive(
        &hkdf(
            true,
            true,
            CKM_SHA_1,
            Salt::Data(h("000102030405060708090a0b0c")),
            &info,
        ),
        &ikm,
        &len(42),
    )
    .unwrap();
    assert_eq!(
        hex::encode(&okm),
        "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896"
    );
}

#[test]
fn sha384_and_sha512_equal_openssl_and_a_key_salt_works() {
    let ikm = [0x42u8; 32];
    let key = secret(CKK_GENERIC_SECRET, &ikm);
    for (prf, name) in [(CKM_SHA384, "SHA384"), (CKM_SHA512, "SHA512")] {
        let got = derive(
            &hkdf(true, true, prf, Salt::Data(b"salt".to_vec()), b"info"),
            &key,
            &len(100),
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        let args = [
            "kdf",
            "-binary",
            "-out",
            "out",
            "-keylen",
            "100",
            "-kdfopt",
            &format!("digest:{name}"),
            "-kdfopt",
            &format!("hexkey:{}", hex::encode(ikm)),
            "-kdfopt",
            "salt:salt",
            "-kdfopt",
            "info:info",
            "HKDF",
        ];
        assert_ok(openssl(&args, d.path()), "openssl kdf HKDF");
        assert_eq!(
            &got[..],
            &std::fs::read(d.path().join("out")).unwrap()[..],
            "{name}"
        );
        // The salt as a key's value gives the same as the salt as data.
        let salt_key = secret(CKK_GENERIC_SECRET, b"salt");
        let by_key = crate::mechanism::derive(
            &hkdf(true, true, prf, Salt::Key(9), b"info"),
            &key,
            Some(&salt_key),
            &len(100),
        )
        .unwrap();
        assert_eq!(by_key, got);
    }
}

#[test]
fn parameter_rules() {
    let key = secret(CKK_GENERIC_SECRET, &[1; 32]);
    let bad = |m: Mechanism, t: &Attributes| derive(&m, &key, t).unwrap_err();
    assert!(matches!(
        bad(hkdf(false, false, CKM_SHA256, Salt::Null, &[]), &len(32)),
        Error::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        bad(hkdf(true, true, CKM_MD5, Salt::Null, &[]), &len(32)),
        Error::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        bad(
            hkdf(true, true, CKM_SHA256, Salt::Data(vec![]), &[]),
            &len(32)
        ),
        Error::MechanismParamInvalid(_)
    ));
    assert!(matches!(
        bad(hkdf(true, true, CKM_SHA256, Salt::Key(3), &[]), &len(32)),
        Error::MechanismParamInvalid(_)
    ));
    // Expand needs a length; at most 255 hash blocks; extract gives one hash length.
    assert!(matches!(
        bad(
            hkdf(true, true, CKM_SHA256, Salt::Null, &[]),
            &Attributes::new()
        ),
        Error::TemplateIncomplete(_)
    ));
    assert!(matches!(
        bad(
            hkdf(true, true, CKM_SHA256, Salt::Null, &[]),
            &len(255 * 32 + 1)
        ),
        Error::TemplateInconsistent(_)
    ));
    assert!(matches!(
        bad(hkdf(true, false, CKM_SHA256, Salt::Null, &[]), &len(16)),
        Error::TemplateInconsistent(_)
    ));
    // An AES key is not HKDF input keying material.
    let aes = secret(CKK_AES, &[1; 32]);
    assert!(matches!(
        derive(
            &hkdf(true, true, CKM_SHA256, Salt::Null, &[]),
            &aes,
            &len(32)
        ),
        Err(Error::KeyTypeInconsistent)
    ));
}
