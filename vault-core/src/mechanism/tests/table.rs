//! The mechanism table: list and info, every advertised operation dispatches and
//! nothing else does, wrap / unwrap across families.

use crate::mechanism::encoding::pkcs8_to_attributes;
use crate::mechanism::test_support::*;

#[test]
fn mechanism_table_is_consistent() {
    let list = mechanism_list();
    assert!(list.len() >= 40);
    for ty in &list {
        let info = mechanism_info(*ty).unwrap();
        assert_eq!(info.flags & CKF_HW, 0);
        assert!(info.min_key_size <= info.max_key_size);
    }
    let mut dedup = list.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), list.len(), "no duplicates");
    let rsa = mechanism_info(CKM_RSA_PKCS_KEY_PAIR_GEN).unwrap();
    assert_eq!((rsa.min_key_size, rsa.max_key_size), (2048, 4096));
    let ec = mechanism_info(CKM_ECDSA).unwrap();
    assert_eq!((ec.min_key_size, ec.max_key_size), (256, 521));
    assert_ne!(ec.flags & CKF_EC_NAMEDCURVE, 0);
    let gcm = mechanism_info(CKM_AES_GCM).unwrap();
    // Single-part and message-based (PKCS#11 3.0) encryption.
    assert_eq!(
        gcm.flags,
        CKF_ENCRYPT | CKF_DECRYPT | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT | CKF_MULTI_MESSAGE
    );
    let hmac = mechanism_info(CKM_SHA256_HMAC).unwrap();
    assert_eq!(
        hmac.flags,
        CKF_SIGN | CKF_VERIFY | CKF_MESSAGE_SIGN | CKF_MESSAGE_VERIFY | CKF_MULTI_MESSAGE
    );
    assert!(matches!(
        mechanism_info(CKM_MD5),
        Err(Error::MechanismInvalid(CKM_MD5))
    ));
}

#[test]
fn every_mechanism_has_its_name() {
    for ty in mechanism_list() {
        let name = crate::mechanism::mechanism_name(ty).unwrap_or_else(|| panic!("{ty:#x}"));
        assert!(name.starts_with("CKM_"));
    }
    assert_eq!(
        crate::mechanism::mechanism_name(CKM_AES_GCM),
        Some("CKM_AES_GCM")
    );
    assert_eq!(crate::mechanism::mechanism_name(CKM_MD5), None);
}

#[test]
fn random_fills() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    random(&mut a).unwrap();
    random(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn wrap_unwrap_private_and_secret_keys() {
    with_pkcs1_decrypt(true, wrap_unwrap_private_and_secret_keys_on)
}

fn wrap_unwrap_private_and_secret_keys_on() {
    let kek = secret(CKK_AES, &[9; 32]);
    // EC private key under AES-CBC-PAD and AES-KWP, back through PKCS#8.
    let mut pt = Attributes::new();
    pt.set(CKA_EC_PARAMS, Curve::P384.ec_params().to_vec());
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
        &pt,
        &Attributes::new(),
    )
    .unwrap();
    for m in [
        mech(CKM_AES_CBC_PAD, MechParam::Bytes(vec![1; 16])),
        Mechanism::new(CKM_AES_KEY_WRAP_PAD),
    ] {
        let w = wrap(&m, &kek, &sa).unwrap();
        let blob = unwrap(&m, &kek, &w).unwrap();
        let (pa2, sa2) = pkcs8_to_attributes(&blob).unwrap();
        assert_eq!(sa2.get(CKA_VALUE), sa.get(CKA_VALUE));
        assert_eq!(pa2.get(CKA_EC_POINT), pa.get(CKA_EC_POINT));
    }
    // AES key under RSA OAEP and PKCS#1 v1.5.
    let (sk, pk) = rsa_keys();
    let mut aes_obj = Attributes::new();
    aes_obj.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    aes_obj.set_ulong(CKA_KEY_TYPE, CKK_AES);
    aes_obj.set(CKA_VALUE, vec![5; 32]);
    let oaep = mech(
        CKM_RSA_PKCS_OAEP,
        MechParam::Oaep {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: vec![],
        },
    );
    for m in [oaep, Mechanism::new(CKM_RSA_PKCS)] {
        let w = wrap(&m, &pk, &aes_obj).unwrap();
        assert_eq!(w.len(), 256);
        assert_eq!(&unwrap(&m, &sk, &w).unwrap()[..], &[5; 32]);
        let mut bad = w.clone();
        bad[9] ^= 1;
        assert!(matches!(
            unwrap(&m, &sk, &bad),
            Err(Error::WrappedKeyInvalid)
        ));
        // Private keys do not fit RSA wrapping.
        assert!(matches!(wrap(&m, &pk, &sa), Err(Error::KeyNotWrappable)));
    }
    // AES-ECB needs block multiples; GCM is not a wrapping mechanism here.
    let ecb = Mechanism::new(CKM_AES_ECB);
    let w = wrap(&ecb, &kek, &aes_obj).unwrap();
    assert_eq!(&unwrap(&ecb, &kek, &w).unwrap()[..], &[5; 32]);
    assert!(matches!(
        unwrap(&ecb, &kek, &w[..31]),
        Err(Error::WrappedKeyLenRange)
    ));
    assert!(matches!(
        wrap(&gcm(&[0; 12], b"", 128), &kek, &aes_obj),
        Err(Error::MechanismInvalid(_))
    ));
    // Bad padding in an unwrapped CBC-PAD blob.
    let cbc = mech(CKM_AES_CBC, MechParam::Bytes(vec![1; 16]));
    let bogus = encrypt(&cbc, &kek, &[0u8; 32]).unwrap();
    assert!(matches!(
        unwrap(
            &mech(CKM_AES_CBC_PAD, MechParam::Bytes(vec![1; 16])),
            &kek,
            &bogus
        ),
        Err(Error::WrappedKeyInvalid)
    ));
}

/// The operations a mechanism can advertise, by flag.
const OPERATIONS: [CK_FLAGS; 10] = [
    CKF_SIGN,
    CKF_VERIFY,
    CKF_ENCRYPT,
    CKF_DECRYPT,
    CKF_DIGEST,
    CKF_WRAP,
    CKF_UNWRAP,
    CKF_DERIVE,
    CKF_GENERATE,
    CKF_GENERATE_KEY_PAIR,
];

/// SP 800-108 parameters with HMAC-SHA-256: counter mode (`counter` given) or
/// feedback mode.
fn kbkdf_param(counter: Option<crate::mechanism::kbkdf::CounterFormat>) -> MechParam {
    use crate::mechanism::kbkdf::{DataParam, Params};
    MechParam::Kbkdf(Box::new(Params {
        prf: CKM_SHA256_HMAC,
        data: vec![DataParam::Iteration(counter), DataParam::Bytes(vec![1])],
        iv: vec![],
        additional: vec![],
    }))
}

/// Keys and parameters of every kind the token's mechanisms take, and templates
/// that every key-generation mechanism accepts.
struct Candidates {
    keys: Vec<Key>,
    params: Vec<MechParam>,
    /// A secret key object to wrap.
    to_wrap: Attributes,
    secret_templates: Vec<Attributes>,
    pair_templates: Vec<Attributes>,
}

impl Candidates {
    fn new() -> Self {
        let (rsa_sk, rsa_pk) = rsa_keys();
        let (ec_sk, ec_pk, _) = ec_key(Curve::P256);
        let (_, _, peer) = ec_key(Curve::P256);
        let mut params = vec![
            MechParam::None,
            MechParam::Bytes(vec![1; 16]),
            MechParam::Bytes(vec![1; 8]),
            // CK_MAC_GENERAL_PARAMS: a MAC length.
            MechParam::Bytes(8u64.to_ne_bytes().to_vec()),
            MechParam::Ctr {
                counter_bits: 128,
                cb: [0; 16],
            },
            MechParam::Gcm {
                iv: vec![1; 12],
                aad: vec![],
                tag_bits: 128,
            },
            MechParam::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: vec![],
            },
            MechParam::Ecdh1 {
                kdf: CKD_NULL,
                shared_data: vec![],
                public_data: peer.get(CKA_EC_POINT).unwrap().to_vec(),
            },
            MechParam::ChaChaPoly {
                nonce: vec![1; 12],
                aad: vec![],
            },
            MechParam::KeyHandle(1),
            kbkdf_param(Some(crate::mechanism::kbkdf::CounterFormat {
                little_endian: false,
                bits: 32,
            })),
            kbkdf_param(None),
            MechParam::Hkdf(Box::new(crate::mechanism::hkdf::Params {
                extract: true,
                expand: true,
                prf: CKM_SHA256,
                salt: crate::mechanism::hkdf::Salt::Null,
                info: vec![1],
            })),
            MechParam::Extract(0),
            MechParam::CbcEncryptData {
                iv: vec![1; 16],
                data: vec![1; 32],
            },
            MechParam::CbcEncryptData {
                iv: vec![1; 8],
                data: vec![1; 32],
            },
            MechParam::SignContext {
                hedge: CKH_HEDGE_PREFERRED,
                context: vec![],
                hash: Some(CKM_SHA256),
            },
        ];
        params.extend(HASHES.iter().map(|&(hash, mgf, _)| pss(hash, mgf, 0)));
        let mut to_wrap = Attributes::new();
        to_wrap.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        to_wrap.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        to_wrap.set(CKA_VALUE, vec![5; 32]);
        // 24 bytes fit AES, DES3, HMAC and generic secrets; 8 bytes single DES; 32
        // bytes ChaCha20.
        let secret_templates = [24, 8, 32]
            .map(|n| {
                let mut t = Attributes::new();
                t.set_ulong(CKA_VALUE_LEN, n);
                t
            })
            .to_vec();
        let mut pair_template = Attributes::new();
        pair_template.set_ulong(CKA_MODULUS_BITS, 2048);
        pair_template.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
        pair_template.set_ulong(CKA_PARAMETER_SET, CKP_ML_DSA_44);
        let mut ed_template = Attributes::new();
        ed_template.set(CKA_EC_PARAMS, crate::mechanism::eddsa::ED25519_OID.to_vec());
        let mut x_template = Attributes::new();
        x_template.set(CKA_EC_PARAMS, crate::mechanism::x25519::X25519_OID.to_vec());
        let gen = Mechanism::new(CKM_EC_EDWARDS_KEY_PAIR_GEN);
        let (mut ed_pub, mut ed_priv) =
            generate_key_pair(&gen, &ed_template, &Attributes::new()).unwrap();
        ed_pub.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        ed_priv.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        let (ml_pub, ml_priv) = generate_key_pair(
            &Mechanism::new(CKM_ML_DSA_KEY_PAIR_GEN),
            &pair_template,
            &Attributes::new(),
        )
        .unwrap();
        Candidates {
            keys: vec![
                rsa_sk,
                rsa_pk,
                ec_sk,
                ec_pk,
                Key::from_attributes(&ed_priv).unwrap(),
                Key::from_attributes(&ed_pub).unwrap(),
                Key::from_attributes(&ml_priv).unwrap(),
                Key::from_attributes(&ml_pub).unwrap(),
                secret(CKK_AES, &[7; 16]),
                secret(CKK_DES3, &[7; 24]),
                secret(CKK_DES, &[7; 8]),
                secret(CKK_GENERIC_SECRET, &[7; 32]),
                secret(CKK_CHACHA20, &[7; 32]),
            ],
            params,
            to_wrap,
            secret_templates,
            pair_templates: vec![pair_template, ed_template, x_template],
        }
    }

    /// Every way to call operation `flag` of `ty` with these candidates; calls them
    /// in turn until `stop` says so.
    fn each_attempt(
        &self,
        ty: CK_MECHANISM_TYPE,
        flag: CK_FLAGS,
        mut stop: impl FnMut(Result<()>) -> bool,
    ) {
        let none = Attributes::new();
        for param in &self.params {
            let m = mech(ty, param.clone());
            // Blobs to unwrap: what every key wraps under this mechanism, and junk.
            let mut blobs = vec![vec![0u8; 256], vec![0u8; 40]];
            if flag == CKF_UNWRAP {
                blobs.extend(
                    self.keys
                        .iter()
                        .filter_map(|k| wrap(&m, k, &self.to_wrap).ok()),
                );
            }
            for key in &self.keys {
                let results: Vec<Result<()>> = match flag {
                    CKF_SIGN => vec![sign_init(&m, key).map(drop)],
                    CKF_VERIFY => vec![verify_init(&m, key).map(drop)],
                    CKF_ENCRYPT => vec![encrypt_init(&m, key).map(drop)],
                    CKF_DECRYPT => vec![decrypt_init(&m, key).map(drop)],
                    CKF_DIGEST => vec![digest_init(&m).map(drop)],
                    CKF_WRAP => vec![wrap(&m, key, &self.to_wrap).map(drop)],
                    CKF_UNWRAP => blobs.iter().map(|b| unwrap(&m, key, b).map(drop)).collect(),
                    // With and without a second key, and with a length.
                    CKF_DERIVE => [None, Some(key)]
                        .into_iter()
                        .flat_map(|other| {
                            [&none, &self.secret_templates[1]]
                                .map(|t| crate::mechanism::derive(&m, key, other, t).map(drop))
                        })
                        .collect(),
                    CKF_GENERATE => self
                        .secret_templates
                        .iter()
                        .map(|t| generate_key(&m, t).map(drop))
                        .collect(),
                    CKF_GENERATE_KEY_PAIR => self
                        .pair_templates
                        .iter()
                        .map(|t| generate_key_pair(&m, t, &none).map(drop))
                        .collect(),
                    _ => unreachable!(),
                };
                for r in results {
                    if stop(r) {
                        return;
                    }
                }
            }
        }
    }
}

/// Whether operation `flag` of `ty` runs with some candidate.
fn runs(c: &Candidates, ty: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> bool {
    let mut ok = false;
    c.each_attempt(ty, flag, |r| {
        ok = r.is_ok();
        ok
    });
    ok
}

/// Whether every call of operation `flag` of `ty` is refused as `MechanismInvalid`.
fn refused(c: &Candidates, ty: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> bool {
    let mut all = true;
    c.each_attempt(ty, flag, |r| {
        all = matches!(r, Err(Error::MechanismInvalid(t)) if t == ty);
        !all
    });
    all
}

/// The table walk: every listed mechanism runs each operation it advertises (with a
/// fitting key and parameter) and refuses every other one as `MechanismInvalid`,
/// under both settings of the `rsa_pkcs1_decrypt` policy.
#[test]
fn every_advertised_operation_dispatches_and_nothing_else() {
    let c = Candidates::new();
    for policy in [false, true] {
        with_pkcs1_decrypt(policy, || {
            for ty in mechanism_list() {
                let flags = mechanism_info(ty).unwrap().flags;
                for flag in OPERATIONS {
                    if ty == crate::vendor::CKM_VTOKEN_SEALED_ENVELOPE && flag == CKF_UNWRAP {
                        // Runs with the device key, which no candidate is (the
                        // extension's unwrap hook): tests/tests/pkcs11_sealed_unwrap.rs.
                        continue;
                    }
                    if flags & flag != 0 {
                        assert!(runs(&c, ty, flag), "{ty:#x} advertises {flag:#x}");
                    } else {
                        assert!(refused(&c, ty, flag), "{ty:#x} runs {flag:#x} unadvertised");
                    }
                }
            }
        });
    }
}

/// Mechanism types outside the list (the standard range and vendor values) have no
/// info and no operation.
#[test]
fn unlisted_mechanisms_do_not_dispatch() {
    let listed = mechanism_list();
    let key = secret(CKK_AES, &[7; 16]);
    let mut to_wrap = Attributes::new();
    to_wrap.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    to_wrap.set(CKA_VALUE, vec![5; 32]);
    let none = Attributes::new();
    let vendor = (0..0x100).map(|i| CKM_VENDOR_DEFINED + i);
    for ty in (0..0x4400).chain(vendor).filter(|t| !listed.contains(t)) {
        let m = Mechanism::new(ty);
        let invalid = |r: Result<()>| matches!(r, Err(Error::MechanismInvalid(t)) if t == ty);
        assert!(invalid(mechanism_info(ty).map(drop)), "{ty:#x}");
        assert!(invalid(sign_init(&m, &key).map(drop)), "{ty:#x}");
        assert!(invalid(verify_init(&m, &key).map(drop)), "{ty:#x}");
        assert!(invalid(encrypt_init(&m, &key).map(drop)), "{ty:#x}");
        assert!(invalid(decrypt_init(&m, &key).map(drop)), "{ty:#x}");
        assert!(invalid(digest_init(&m).map(drop)), "{ty:#x}");
        assert!(invalid(wrap(&m, &key, &to_wrap).map(drop)), "{ty:#x}");
        assert!(invalid(unwrap(&m, &key, &[0; 40]).map(drop)), "{ty:#x}");
        assert!(invalid(derive(&m, &key, &none).map(drop)), "{ty:#x}");
        assert!(invalid(generate_key(&m, &none).map(drop)), "{ty:#x}");
        assert!(
            invalid(generate_key_pair(&m, &none, &none).map(drop)),
            "{ty:#x}"
        );
    }
}
