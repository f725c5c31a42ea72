//! ML-DSA: known answers from the IETF examples (draft-ietf-lamps-dilithium-certificates:
//! seed 00 01 … 1f and its public key, per parameter set), sign/verify with and
//! without context, hedged and deterministic, the pre-hash variants, imports.

use super::{expand, ParamSet};
use crate::mechanism::test_support::*;

const SETS: [(CK_ULONG, &str, usize); 3] = [
    (CKP_ML_DSA_44, include_str!("vectors/ml-dsa-44.pub"), 1312),
    (CKP_ML_DSA_65, include_str!("vectors/ml-dsa-65.pub"), 1952),
    (CKP_ML_DSA_87, include_str!("vectors/ml-dsa-87.pub"), 2592),
];

fn pair(set: CK_ULONG) -> (Key, Key, Attributes, Attributes) {
    let mut pt = Attributes::new();
    pt.set_ulong(CKA_PARAMETER_SET, set);
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_ML_DSA_KEY_PAIR_GEN),
        &pt,
        &Attributes::new(),
    )
    .unwrap();
    (
        Key::from_attributes(&sa).unwrap(),
        Key::from_attributes(&pa).unwrap(),
        pa,
        sa,
    )
}

fn ctx_mech(ty: CK_MECHANISM_TYPE, hedge: CK_ULONG, context: &[u8]) -> Mechanism {
    mech(
        ty,
        MechParam::SignContext {
            hedge,
            context: context.to_vec(),
            hash: None,
        },
    )
}

#[test]
fn key_generation_from_the_ietf_seed_gives_the_ietf_public_key() {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    for (ckp, pem, len) in SETS {
        let set = ParamSet::from_ckp(ckp).unwrap();
        let (pk, enc, _) = expand(set, &seed);
        assert_eq!(pk, spki_key(pem, len), "ML-DSA parameter set {ckp}");
        // The private key object: seed and expanded key; the expanded key is
        // checked against the seed.
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_ML_DSA);
        a.set_ulong(CKA_PARAMETER_SET, ckp);
        a.set(CKA_SEED, seed.to_vec());
        a.set(CKA_VALUE, enc.to_vec());
        let sk = Key::from_attributes(&a).unwrap();
        let mut p = Attributes::new();
        p.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        p.set_ulong(CKA_KEY_TYPE, CKK_ML_DSA);
        p.set_ulong(CKA_PARAMETER_SET, ckp);
        p.set(CKA_VALUE, pk.clone());
        let pkey = Key::from_attributes(&p).unwrap();
        let m = Mechanism::new(CKM_ML_DSA);
        let sig = sign(&m, &sk, b"known key").unwrap();
        assert_eq!(sig.len(), set.sig_len());
        verify(&m, &pkey, b"known key", &sig).unwrap();
        let mut bad = enc.to_vec();
        bad[100] ^= 1;
        a.set(CKA_VALUE, bad);
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::AttributeValueInvalid(CKA_VALUE))
        ));
        a.remove(CKA_SEED);
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::TemplateIncomplete(_))
        ));
        p.set(CKA_VALUE, pk[1..].to_vec());
        assert!(Key::from_attributes(&p).is_err());
    }
}

#[test]
fn sign_verify_every_set_with_context_hedged_and_deterministic() {
    for (ckp, _, pk_len) in SETS {
        let (sk, pk, pa, sa) = pair(ckp);
        assert_eq!(pa.get(CKA_VALUE).unwrap().len(), pk_len);
        assert_eq!(sa.get(CKA_SEED).unwrap().len(), 32);
        assert_eq!(sa.get_ulong(CKA_PARAMETER_SET).unwrap(), Some(ckp));
        // Default (no parameter): hedged, so two signatures differ; both verify.
        let pure = Mechanism::new(CKM_ML_DSA);
        let s1 = sign(&pure, &sk, b"message").unwrap();
        let s2 = sign(&pure, &sk, b"message").unwrap();
        assert_ne!(s1, s2, "hedged signatures use fresh randomness");
        verify(&pure, &pk, b"message", &s1).unwrap();
        verify(&pure, &pk, b"message", &s2).unwrap();
        assert!(matches!(
            verify(&pure, &pk, b"messagf", &s1),
            Err(Error::SignatureInvalid)
        ));
        let mut bad = s1.clone();
        bad[7] ^= 0x10;
        assert!(verify(&pure, &pk, b"message", &bad).is_err());
        assert!(matches!(
            verify(&pure, &pk, b"message", &s1[1..]),
            Err(Error::SignatureLenRange)
        ));
        // Deterministic with a context: equal signatures; the context counts.
        let d = ctx_mech(CKM_ML_DSA, CKH_DETERMINISTIC_REQUIRED, b"ctx");
        let d1 = sign(&d, &sk, b"message").unwrap();
        assert_eq!(d1, sign(&d, &sk, b"message").unwrap());
        verify(&d, &pk, b"message", &d1).unwrap();
        // Verification ignores the hedge variant.
        verify(
            &ctx_mech(CKM_ML_DSA, CKH_HEDGE_REQUIRED, b"ctx"),
            &pk,
            b"message",
            &d1,
        )
        .unwrap();
        assert!(verify(&ctx_mech(CKM_ML_DSA, 0, b"ctY"), &pk, b"message", &d1).is_err());
        assert!(verify(&pure, &pk, b"message", &d1).is_err());
        // Multi-part equals single-part.
        let mut op = sign_init(&d, &sk).unwrap();
        op.update(b"mes").unwrap();
        op.update(b"sage").unwrap();
        assert_eq!(op.finish().unwrap(), d1);
        // A context over 255 bytes, an unknown hedge: parameter errors.
        assert!(matches!(
            sign_init(&ctx_mech(CKM_ML_DSA, 0, &[0; 256]), &sk),
            Err(Error::MechanismParamInvalid(_))
        ));
        assert!(matches!(
            sign_init(&ctx_mech(CKM_ML_DSA, 7, b""), &sk),
            Err(Error::MechanismParamInvalid(_))
        ));
        // Keys of the wrong kind.
        assert!(matches!(
            sign_init(&pure, &pk),
            Err(Error::KeyTypeInconsistent)
        ));
        assert!(matches!(
            verify_init(&pure, &sk),
            Err(Error::KeyTypeInconsistent)
        ));
    }
}

#[test]
fn hash_ml_dsa_on_token_equals_caller_hashed_and_differs_from_pure() {
    let (sk, pk, _, _) = pair(CKP_ML_DSA_44);
    for (ty, h) in [
        (CKM_HASH_ML_DSA_SHA224, CKM_SHA224),
        (CKM_HASH_ML_DSA_SHA256, CKM_SHA256),
        (CKM_HASH_ML_DSA_SHA384, CKM_SHA384),
        (CKM_HASH_ML_DSA_SHA512, CKM_SHA512),
    ] {
        let on_token = ctx_mech(ty, CKH_DETERMINISTIC_REQUIRED, b"c");
        let s = sign(&on_token, &sk, b"the message").unwrap();
        verify(&on_token, &pk, b"the message", &s).unwrap();
        let alg = HashAlg::from_digest_mechanism(h).unwrap();
        let ph = alg.digest(&[b"the message"]);
        let hashed = mech(
            CKM_HASH_ML_DSA,
            MechParam::SignContext {
                hedge: CKH_DETERMINISTIC_REQUIRED,
                context: b"c".to_vec(),
                hash: Some(h),
            },
        );
        assert_eq!(sign(&hashed, &sk, &ph).unwrap(), s);
        verify(&hashed, &pk, &ph, &s).unwrap();
        // A hash of the wrong length is refused.
        assert!(matches!(
            sign(&hashed, &sk, &ph[1..]),
            Err(Error::DataLenRange)
        ));
        // The pre-hash domain separates: the pure signature of the same message
        // does not verify as HashML-DSA.
        let pure = ctx_mech(CKM_ML_DSA, CKH_DETERMINISTIC_REQUIRED, b"c");
        let p = sign(&pure, &sk, b"the message").unwrap();
        assert!(verify(&on_token, &pk, b"the message", &p).is_err());
    }
    // SHA-3 the same way, against the `sha3` crate's hash.
    {
        use sha3::Digest;
        for (ty, h, ph) in [
            (
                CKM_HASH_ML_DSA_SHA3_224,
                CKM_SHA3_224,
                sha3::Sha3_224::digest(b"the message").to_vec(),
            ),
            (
                CKM_HASH_ML_DSA_SHA3_256,
                CKM_SHA3_256,
                sha3::Sha3_256::digest(b"the message").to_vec(),
            ),
            (
                CKM_HASH_ML_DSA_SHA3_384,
                CKM_SHA3_384,
                sha3::Sha3_384::digest(b"the message").to_vec(),
            ),
            (
                CKM_HASH_ML_DSA_SHA3_512,
                CKM_SHA3_512,
                sha3::Sha3_512::digest(b"the message").to_vec(),
            ),
        ] {
            let on_token = ctx_mech(ty, CKH_DETERMINISTIC_REQUIRED, b"");
            let s = sign(&on_token, &sk, b"the message").unwrap();
            let hashed = mech(
                CKM_HASH_ML_DSA,
                MechParam::SignContext {
                    hedge: CKH_DETERMINISTIC_REQUIRED,
                    context: vec![],
                    hash: Some(h),
                },
            );
            assert_eq!(sign(&hashed, &sk, &ph).unwrap(), s, "{ty:#x}");
            verify(&on_token, &pk, b"the message", &s).unwrap();
        }
    }
    // SHAKE128/256 (no CKM_HASH_ML_DSA form): they sign and verify, and differ
    // from each other.
    let a = sign(
        &ctx_mech(CKM_HASH_ML_DSA_SHAKE128, CKH_DETERMINISTIC_REQUIRED, b""),
        &sk,
        b"m",
    )
    .unwrap();
    let b = sign(
        &ctx_mech(CKM_HASH_ML_DSA_SHAKE256, CKH_DETERMINISTIC_REQUIRED, b""),
        &sk,
        b"m",
    )
    .unwrap();
    assert_ne!(a, b);
    verify(&Mechanism::new(CKM_HASH_ML_DSA_SHAKE128), &pk, b"m", &a).unwrap();
    verify(&Mechanism::new(CKM_HASH_ML_DSA_SHAKE256), &pk, b"m", &b).unwrap();
    assert!(verify(&Mechanism::new(CKM_HASH_ML_DSA_SHAKE256), &pk, b"m", &a).is_err());
    // CKM_HASH_ML_DSA needs its hash.
    assert!(matches!(
        sign_init(&ctx_mech(CKM_HASH_ML_DSA, 0, b""), &sk),
        Err(Error::MechanismParamInvalid(_))
    ));
}

#[test]
fn key_pair_generation_needs_a_known_parameter_set() {
    let m = Mechanism::new(CKM_ML_DSA_KEY_PAIR_GEN);
    assert!(matches!(
        generate_key_pair(&m, &Attributes::new(), &Attributes::new()),
        Err(Error::TemplateIncomplete(_))
    ));
    let mut pt = Attributes::new();
    pt.set_ulong(CKA_PARAMETER_SET, 9);
    assert!(matches!(
        generate_key_pair(&m, &pt, &Attributes::new()),
        Err(Error::AttributeValueInvalid(CKA_PARAMETER_SET))
    ));
    pt.set_ulong(CKA_PARAMETER_SET, CKP_ML_DSA_44);
    let mut st = Attributes::new();
    st.set_ulong(CKA_PARAMETER_SET, CKP_ML_DSA_87);
    assert!(matches!(
        generate_key_pair(&m, &pt, &st),
        Err(Error::TemplateInconsistent(_))
    ));
}
