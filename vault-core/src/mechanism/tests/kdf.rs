//! Simple derivations: concatenation, XOR, bit extraction (the specification's
//! worked example) and the encrypt-data derivations against `openssl enc`.

use crate::mechanism::test_support::*;

fn with_len(len: u64) -> Attributes {
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, len);
    t
}

#[test]
fn concatenation_and_xor() {
    let base = secret(CKK_GENERIC_SECRET, &[1, 2, 3]);
    let other = secret(CKK_GENERIC_SECRET, &[4, 5]);
    let none = Attributes::new();
    let data = MechParam::Bytes(vec![9, 8]);
    let m = |ty, p: &MechParam| mech(ty, p.clone());
    let both = crate::mechanism::derive(
        &mech(CKM_CONCATENATE_BASE_AND_KEY, MechParam::KeyHandle(7)),
        &base,
        Some(&other),
        &none,
    )
    .unwrap();
    assert_eq!(&both[..], &[1, 2, 3, 4, 5]);
    let bd = derive(&m(CKM_CONCATENATE_BASE_AND_DATA, &data), &base, &none).unwrap();
    assert_eq!(&bd[..], &[1, 2, 3, 9, 8]);
    let db = derive(&m(CKM_CONCATENATE_DATA_AND_BASE, &data), &base, &none).unwrap();
    assert_eq!(&db[..], &[9, 8, 1, 2, 3]);
    // Cut to CKA_VALUE_LEN; longer than the result is refused.
    let cut = derive(
        &m(CKM_CONCATENATE_DATA_AND_BASE, &data),
        &base,
        &with_len(4),
    )
    .unwrap();
    assert_eq!(&cut[..], &[9, 8, 1, 2]);
    assert!(matches!(
        derive(
            &m(CKM_CONCATENATE_BASE_AND_DATA, &data),
            &base,
            &with_len(6)
        ),
        Err(Error::TemplateInconsistent(_))
    ));
    // XOR is as long as the shorter input.
    let x = derive(&m(CKM_XOR_BASE_AND_DATA, &data), &base, &none).unwrap();
    assert_eq!(&x[..], &[1 ^ 9, 2 ^ 8]);
    // Missing or empty data, and a missing second key, are bad parameters.
    for ty in [CKM_CONCATENATE_BASE_AND_DATA, CKM_XOR_BASE_AND_DATA] {
        assert!(matches!(
            derive(&mech(ty, MechParam::Bytes(vec![])), &base, &none),
            Err(Error::MechanismParamInvalid(_))
        ));
    }
    assert!(matches!(
        derive(
            &mech(CKM_CONCATENATE_BASE_AND_KEY, MechParam::KeyHandle(7)),
            &base,
            &none
        ),
        Err(Error::MechanismParamInvalid(_))
    ));
    // Only secret keys derive this way.
    let (ec, _, _) = ec_key(Curve::P256);
    assert!(matches!(
        derive(&m(CKM_XOR_BASE_AND_DATA, &data), &ec, &none),
        Err(Error::KeyTypeInconsistent)
    ));
}

#[test]
fn extraction_follows_the_specification_example() {
    // PKCS#11 3.1 §2.43.6: base 0x329F84A9, bit 21, two bytes: 0x9526.
    let base = secret(CKK_GENERIC_SECRET, &[0x32, 0x9f, 0x84, 0xa9]);
    let m = mech(CKM_EXTRACT_KEY_FROM_KEY, MechParam::Extract(21));
    assert_eq!(&derive(&m, &base, &with_len(2)).unwrap()[..], &[0x95, 0x26]);
    // From bit 0 with the whole length: the base itself.
    let all = mech(CKM_EXTRACT_KEY_FROM_KEY, MechParam::Extract(0));
    assert_eq!(
        &derive(&all, &base, &with_len(4)).unwrap()[..],
        &[0x32, 0x9f, 0x84, 0xa9]
    );
    // The length is required and bounded; the first bit must lie in the key.
    assert!(matches!(
        derive(&m, &base, &Attributes::new()),
        Err(Error::TemplateIncomplete(_))
    ));
    assert!(matches!(
        derive(&m, &base, &with_len(5)),
        Err(Error::TemplateInconsistent(_))
    ));
    let far = mech(CKM_EXTRACT_KEY_FROM_KEY, MechParam::Extract(32));
    assert!(matches!(
        derive(&far, &base, &with_len(1)),
        Err(Error::MechanismParamInvalid(_))
    ));
}

/// `openssl enc` of `data` (no padding) with `cipher`, key and optional IV.
fn openssl_enc(cipher: &str, key: &[u8], iv: Option<&[u8]>, data: &[u8]) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in"), data).unwrap();
    let (c, k) = (format!("-{cipher}"), hex::encode(key));
    let mut args = vec!["enc", &c, "-nopad", "-K", &k, "-in", "in", "-out", "out"];
    let ivh = iv.map(hex::encode);
    if let Some(ivh) = &ivh {
        args.extend(["-iv", ivh]);
    }
    assert_ok(openssl(&args, d.path()), cipher);
    std::fs::read(d.path().join("out")).unwrap()
}

#[test]
fn encrypt_data_derivations_equal_openssl() {
    let aes = [0x11u8; 32];
    let des3 = h("0123456789abcdeffedcba987654321089abcdef01234567");
    let data: Vec<u8> = (0..32).collect();
    let aes_key = secret(CKK_AES, &aes);
    let des3_key = secret(CKK_DES3, &des3);
    let none = Attributes::new();
    let iv16 = [7u8; 16];
    let iv8 = [7u8; 8];
    // (base key, derivation, openssl cipher, key bytes, IV)
    type Case<'a> = (&'a Key, Mechanism, &'a str, &'a [u8], Option<&'a [u8]>);
    let cases: [Case; 4] = [
        (
            &aes_key,
            mech(CKM_AES_ECB_ENCRYPT_DATA, MechParam::Bytes(data.clone())),
            "aes-256-ecb",
            &aes,
            None,
        ),
        (
            &aes_key,
            mech(
                CKM_AES_CBC_ENCRYPT_DATA,
                MechParam::CbcEncryptData {
                    iv: iv16.to_vec(),
                    data: data.clone(),
                },
            ),
            "aes-256-cbc",
            &aes,
            Some(&iv16),
        ),
        (
            &des3_key,
            mech(CKM_DES3_ECB_ENCRYPT_DATA, MechParam::Bytes(data.clone())),
            "des-ede3",
            &des3,
            None,
        ),
        (
            &des3_key,
            mech(
                CKM_DES3_CBC_ENCRYPT_DATA,
                MechParam::CbcEncryptData {
                    iv: iv8.to_vec(),
                    data: data.clone(),
                },
            ),
            "des-ede3-cbc",
            &des3,
            Some(&iv8),
        ),
    ];
    for (key, m, cipher, raw, iv) in cases {
        let got = derive(&m, key, &none).unwrap();
        assert_eq!(
            &got[..],
            &openssl_enc(cipher, raw, iv, &data)[..],
            "{cipher}"
        );
    }
    // The data must fill whole blocks; the key must fit the cipher.
    let odd = mech(CKM_AES_ECB_ENCRYPT_DATA, MechParam::Bytes(vec![0; 15]));
    assert!(matches!(
        derive(&odd, &aes_key, &none),
        Err(Error::MechanismParamInvalid(_))
    ));
    let wrong = mech(CKM_AES_ECB_ENCRYPT_DATA, MechParam::Bytes(data.clone()));
    assert!(derive(&wrong, &des3_key, &none).is_err());
}
