//! RSA: PKCS#1 v1.5, raw and PSS signatures, PKCS#1 v1.5 and OAEP encryption, the
//! `rsa_pkcs1_decrypt` policy, and `openssl` cross-checks.

use crate::mechanism::test_support::*;

#[test]
fn rsa_pkcs1_sign_verify_all_hashes() {
    let (sk, pk) = rsa_keys();
    let data = b"PKCS#1 v1.5 data";
    for (ty, (_, _, alg)) in [
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
    ]
    .into_iter()
    .zip(HASHES)
    {
        let m = Mechanism::new(ty);
        let sig = sign_parts(&m, &sk, &[&data[..3], &data[3..]]).unwrap();
        assert_eq!(sig.len(), 256);
        verify(&m, &pk, data, &sig).unwrap();
        // Same as raw CKM_RSA_PKCS over the DigestInfo (deterministic padding).
        let di = [alg.digest_info_prefix(), &alg.digest(&[data])].concat();
        assert_eq!(sign(&Mechanism::new(CKM_RSA_PKCS), &sk, &di).unwrap(), sig);
        verify(&Mechanism::new(CKM_RSA_PKCS), &pk, &di, &sig).unwrap();
        assert!(matches!(
            verify(&m, &pk, b"other data", &sig),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify(&m, &pk, data, &sig[1..]),
            Err(Error::SignatureLenRange)
        ));
    }
    let raw = Mechanism::new(CKM_RSA_PKCS);
    // Raw data up to k - 11 bytes.
    sign(&raw, &sk, &[7; 245]).unwrap();
    assert!(matches!(
        sign(&raw, &sk, &[7; 246]),
        Err(Error::DataLenRange)
    ));
    // Public keys cannot sign; EC keys are the wrong type.
    assert!(matches!(
        sign_init(&raw, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&raw, &ec_key(Curve::P256).0),
        Err(Error::KeyTypeInconsistent)
    ));
}

#[test]
fn rsa_x509_raw() {
    let (sk, pk) = rsa_keys();
    let m = Mechanism::new(CKM_RSA_X_509);
    let data = [0x42u8; 100];
    let sig = sign(&m, &sk, &data).unwrap();
    assert_eq!(sig.len(), 256);
    verify(&m, &pk, &data, &sig).unwrap();
    assert!(verify(&m, &pk, &[0x43; 100], &sig).is_err());
    // Encrypt / decrypt round trip returns the input left-padded to k bytes.
    let ct = encrypt(&m, &pk, &data).unwrap();
    let pt = decrypt(&m, &sk, &ct).unwrap();
    assert_eq!(pt.len(), 256);
    assert_eq!(&pt[156..], &data[..]);
    assert!(pt[..156].iter().all(|&b| b == 0));
    // Input not below the modulus.
    assert!(matches!(
        sign(&m, &sk, &[0xff; 256]),
        Err(Error::DataLenRange)
    ));
}

#[test]
fn rsa_pss_raw_and_hashed_all_hashes_and_mgfs() {
    let (sk, pk) = rsa_keys();
    let data = b"PSS data";
    for (hash, mgf, alg) in HASHES {
        let mhash = alg.digest(&[data]);
        let salt = alg.output_len() as u64;
        let raw = mech(CKM_RSA_PKCS_PSS, pss(hash, mgf, salt));
        let sig = sign(&raw, &sk, &mhash).unwrap();
        verify(&raw, &pk, &mhash, &sig).unwrap();
        // Randomised: two signatures differ but both verify.
        assert_ne!(sign(&raw, &sk, &mhash).unwrap(), sig);
        // The input must be exactly one hash long.
        assert!(matches!(
            sign(&raw, &sk, &mhash[1..]),
            Err(Error::DataLenRange)
        ));
        let hashed_ty = match alg {
            HashAlg::Sha1 => CKM_SHA1_RSA_PKCS_PSS,
            HashAlg::Sha224 => CKM_SHA224_RSA_PKCS_PSS,
            HashAlg::Sha256 => CKM_SHA256_RSA_PKCS_PSS,
            HashAlg::Sha384 => CKM_SHA384_RSA_PKCS_PSS,
            HashAlg::Sha512 => CKM_SHA512_RSA_PKCS_PSS,
        };
        let hashed = mech(hashed_ty, pss(hash, mgf, salt));
        verify(&hashed, &pk, data, &sig).unwrap();
        let sig2 = sign_parts(&hashed, &sk, &[b"PSS ", b"data"]).unwrap();
        verify(&raw, &pk, &mhash, &sig2).unwrap();
        assert!(matches!(
            verify(&hashed, &pk, b"PSS date", &sig2),
            Err(Error::SignatureInvalid)
        ));
        // A different MGF1 hash and a zero salt.
        let m2 = mech(CKM_RSA_PKCS_PSS, pss(hash, CKG_MGF1_SHA1, 0));
        let sig3 = sign(&m2, &sk, &mhash).unwrap();
        verify(&m2, &pk, &mhash, &sig3).unwrap();
        assert_eq!(
            sign(&m2, &sk, &mhash).unwrap(),
            sig3,
            "no salt: deterministic"
        );
        // Verifying with other parameters fails.
        assert!(matches!(
            verify(&raw, &pk, &mhash, &sig3),
            Err(Error::SignatureInvalid)
        ));
    }
    // Parameter errors.
    for m in [
        Mechanism::new(CKM_RSA_PKCS_PSS),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_MD5, CKG_MGF1_SHA1, 0)),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA256, 99, 0)),
        mech(CKM_SHA256_RSA_PKCS_PSS, pss(CKM_SHA_1, CKG_MGF1_SHA1, 20)),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA512, CKG_MGF1_SHA512, 200)),
    ] {
        assert!(
            matches!(sign_init(&m, &sk), Err(Error::MechanismParamInvalid(_))),
            "{m:?}"
        );
    }
}

/// Without aws-lc, CKM_RSA_PKCS decryption and unwrap are refused and not
/// advertised unless configured (Marvin attack, RUSTSEC-2023-0071); with aws-lc
/// they are always on.
#[test]
fn rsa_pkcs1_decrypt_needs_the_policy_without_aws_lc() {
    let (sk, pk) = rsa_keys();
    let m = Mechanism::new(CKM_RSA_PKCS);
    with_pkcs1_decrypt(false, || {
        let ct = encrypt(&m, &pk, b"key").unwrap();
        let flags = mechanism_info(CKM_RSA_PKCS).unwrap().flags;
        assert_ne!(flags & CKF_ENCRYPT, 0);
        if cfg!(feature = "aws-lc") {
            assert_eq!(&decrypt(&m, &sk, &ct).unwrap()[..], b"key");
            assert_ne!(flags & CKF_DECRYPT, 0);
        } else {
            assert!(matches!(
                decrypt_init(&m, &sk),
                Err(Error::MechanismInvalid(CKM_RSA_PKCS))
            ));
            assert!(matches!(
                unwrap(&m, &sk, &ct),
                Err(Error::MechanismInvalid(CKM_RSA_PKCS))
            ));
            assert_eq!(flags & (CKF_DECRYPT | CKF_UNWRAP), 0);
        }
    });
    with_pkcs1_decrypt(true, || {
        let flags = mechanism_info(CKM_RSA_PKCS).unwrap().flags;
        assert_ne!(flags & CKF_DECRYPT, 0);
        assert_ne!(flags & CKF_UNWRAP, 0);
    });
}

#[test]
fn rsa_encryption_pkcs1_and_oaep() {
    with_pkcs1_decrypt(true, rsa_encryption_pkcs1_and_oaep_on)
}

fn rsa_encryption_pkcs1_and_oaep_on() {
    let (sk, pk) = rsa_keys();
    let msg = b"a 32 byte session key..........";
    let m = Mechanism::new(CKM_RSA_PKCS);
    let ct = encrypt(&m, &pk, msg).unwrap();
    assert_eq!(ct.len(), 256);
    assert_eq!(decrypt_init(&m, &sk).unwrap().max_output_len(256), 256);
    assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
    let mut bad = ct.clone();
    bad[100] ^= 1;
    assert!(matches!(
        decrypt(&m, &sk, &bad),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        decrypt(&m, &sk, &ct[1..]),
        Err(Error::EncryptedDataLenRange)
    ));
    assert!(matches!(
        encrypt(&m, &pk, &[0; 246]),
        Err(Error::DataLenRange)
    ));
    assert!(matches!(
        decrypt_init(&m, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    for (hash, mgf, alg) in HASHES {
        for (mgf2, label) in [(mgf, &b""[..]), (CKG_MGF1_SHA1, &b"label"[..])] {
            let m = mech(
                CKM_RSA_PKCS_OAEP,
                MechParam::Oaep {
                    hash,
                    mgf: mgf2,
                    source: label.to_vec(),
                },
            );
            let ct = encrypt(&m, &pk, msg).unwrap();
            assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
            let mut bad = ct.clone();
            bad[5] ^= 1;
            assert!(matches!(
                decrypt(&m, &sk, &bad),
                Err(Error::EncryptedDataInvalid)
            ));
            let max = 256 - 2 * alg.output_len() - 2;
            encrypt(&m, &pk, &vec![1; max]).unwrap();
            assert!(matches!(
                encrypt(&m, &pk, &vec![1; max + 1]),
                Err(Error::DataLenRange)
            ));
        }
    }
    // Wrong label does not decrypt.
    let with = |label: &[u8]| {
        mech(
            CKM_RSA_PKCS_OAEP,
            MechParam::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: label.to_vec(),
            },
        )
    };
    let ct = encrypt(&with(b"a"), &pk, msg).unwrap();
    assert!(matches!(
        decrypt(&with(b"b"), &sk, &ct),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        encrypt_init(&Mechanism::new(CKM_RSA_PKCS_OAEP), &pk),
        Err(Error::MechanismParamInvalid(_))
    ));
}

#[test]
fn rsa_key_from_attributes_without_primes() {
    let (pa, sa) = rsa();
    let mut bare = Attributes::new();
    for t in [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
    ] {
        bare.set(t, sa.get(t).unwrap().to_vec());
    }
    let sk = Key::from_attributes(&bare).unwrap();
    let pk = Key::from_attributes(pa).unwrap();
    let m = Mechanism::new(CKM_SHA256_RSA_PKCS);
    verify(&m, &pk, b"x", &sign(&m, &sk, b"x").unwrap()).unwrap();
}

#[test]
fn openssl_verifies_rsa_pkcs1_and_pss_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, _) = rsa();
    let (sk, _) = rsa_keys();
    write_pub_pem(d, pa);
    let data = b"signed by vtoken";
    std::fs::write(d.join("data"), data).unwrap();

    let sig = sign(&Mechanism::new(CKM_SHA256_RSA_PKCS), &sk, data).unwrap();
    std::fs::write(d.join("sig"), &sig).unwrap();
    let args = [
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig",
        "data",
    ];
    assert_ok(openssl(&args, d), "PKCS#1 v1.5");
    // A tampered signature is rejected by openssl too (the check is real).
    let mut bad = sig.clone();
    bad[0] ^= 1;
    std::fs::write(d.join("sig"), &bad).unwrap();
    assert!(!openssl(&args, d).status.success());

    let pss_m = mech(
        CKM_SHA256_RSA_PKCS_PSS,
        pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
    );
    std::fs::write(d.join("sig"), sign(&pss_m, &sk, data).unwrap()).unwrap();
    assert_ok(
        openssl(
            &[
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
                "data",
            ],
            d,
        ),
        "hashed PSS",
    );

    // Raw PSS over a SHA-384 hash with MGF1-SHA1 and a 20-byte salt.
    let mhash = HashAlg::Sha384.digest(&[data]);
    std::fs::write(d.join("hash"), &mhash).unwrap();
    let raw = mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA384, CKG_MGF1_SHA1, 20));
    std::fs::write(d.join("sig"), sign(&raw, &sk, &mhash).unwrap()).unwrap();
    assert_ok(
        openssl(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "hash",
                "-sigfile",
                "sig",
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "digest:sha384",
                "-pkeyopt",
                "rsa_mgf1_md:sha1",
                "-pkeyopt",
                "rsa_pss_saltlen:20",
            ],
            d,
        ),
        "raw PSS",
    );
}

#[test]
fn openssl_oaep_sha256_ciphertext_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, _) = rsa();
    let (sk, _) = rsa_keys();
    write_pub_pem(d, pa);
    let msg = b"secret from openssl";
    std::fs::write(d.join("msg"), msg).unwrap();
    assert_ok(
        openssl(
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "msg",
                "-out",
                "ct",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ],
            d,
        ),
        "openssl OAEP encrypt",
    );
    let ct = std::fs::read(d.join("ct")).unwrap();
    let m = mech(
        CKM_RSA_PKCS_OAEP,
        MechParam::Oaep {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: vec![],
        },
    );
    assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
    // With the wrong hash the same ciphertext is rejected.
    let m1 = mech(
        CKM_RSA_PKCS_OAEP,
        MechParam::Oaep {
            hash: CKM_SHA_1,
            mgf: CKG_MGF1_SHA1,
            source: vec![],
        },
    );
    assert!(matches!(
        decrypt(&m1, &sk, &ct),
        Err(Error::EncryptedDataInvalid)
    ));
}
