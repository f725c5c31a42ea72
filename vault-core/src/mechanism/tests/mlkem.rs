//! ML-KEM: known answers from the IETF examples (draft-ietf-lamps-kyber-certificates:
//! seed 00 01 … 3f and its encapsulation key, per parameter set), both sides
//! agreeing, implicit rejection of a tampered ciphertext, imports.

use super::{expand, ParamSet};
use crate::mechanism::test_support::*;
use crate::mechanism::{decapsulate, encapsulate};

const SETS: [(CK_ULONG, &str, usize, usize); 3] = [
    (
        CKP_ML_KEM_512,
        include_str!("vectors/ml-kem-512.pub"),
        800,
        768,
    ),
    (
        CKP_ML_KEM_768,
        include_str!("vectors/ml-kem-768.pub"),
        1184,
        1088,
    ),
    (
        CKP_ML_KEM_1024,
        include_str!("vectors/ml-kem-1024.pub"),
        1568,
        1568,
    ),
];

#[test]
fn ietf_seed_gives_the_ietf_key_and_both_sides_agree() {
    let seed: [u8; 64] = std::array::from_fn(|i| i as u8);
    let m = Mechanism::new(CKM_ML_KEM);
    for (ckp, pem, ek_len, ct_len) in SETS {
        let set = ParamSet::from_ckp(ckp).unwrap();
        let (ek, enc, _) = expand(set, &seed);
        assert_eq!(ek, spki_key(pem, ek_len), "ML-KEM parameter set {ckp}");
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_ML_KEM);
        a.set_ulong(CKA_PARAMETER_SET, ckp);
        a.set(CKA_SEED, seed.to_vec());
        a.set(CKA_VALUE, enc.to_vec());
        let sk = Key::from_attributes(&a).unwrap();
        let mut p = Attributes::new();
        p.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        p.set_ulong(CKA_KEY_TYPE, CKK_ML_KEM);
        p.set_ulong(CKA_PARAMETER_SET, ckp);
        p.set(CKA_VALUE, ek.clone());
        let pk = Key::from_attributes(&p).unwrap();
        let (ct, ss) = encapsulate(&m, &pk).unwrap();
        assert_eq!((ct.len(), ss.len()), (ct_len, 32));
        assert_eq!(decapsulate(&m, &sk, &ct).unwrap(), ss);
        // Two encapsulations differ (fresh m).
        assert_ne!(encapsulate(&m, &pk).unwrap().0, ct);
        // A tampered ciphertext decapsulates (implicit rejection) to another secret.
        let mut bad = ct.clone();
        bad[5] ^= 1;
        assert_ne!(decapsulate(&m, &sk, &bad).unwrap(), ss);
        assert!(matches!(
            decapsulate(&m, &sk, &ct[1..]),
            Err(Error::EncryptedDataLenRange)
        ));
        // Keys the wrong way round, a parameter.
        assert!(matches!(
            encapsulate(&m, &sk),
            Err(Error::KeyTypeInconsistent)
        ));
        assert!(matches!(
            decapsulate(&m, &pk, &ct),
            Err(Error::KeyTypeInconsistent)
        ));
        assert!(matches!(
            encapsulate(&mech(CKM_ML_KEM, MechParam::Bytes(vec![1])), &pk),
            Err(Error::MechanismParamInvalid(_))
        ));
        // An expanded key that is not the seed's, no seed, a short public key.
        let mut wrong = enc.to_vec();
        wrong[10] ^= 1;
        a.set(CKA_VALUE, wrong);
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::AttributeValueInvalid(CKA_VALUE))
        ));
        a.remove(CKA_SEED);
        assert!(matches!(
            Key::from_attributes(&a),
            Err(Error::TemplateIncomplete(_))
        ));
        p.set(CKA_VALUE, ek[1..].to_vec());
        assert!(Key::from_attributes(&p).is_err());
    }
}

#[test]
fn key_pair_generation_per_parameter_set() {
    let g = Mechanism::new(CKM_ML_KEM_KEY_PAIR_GEN);
    let m = Mechanism::new(CKM_ML_KEM);
    for (ckp, _, ek_len, _) in SETS {
        let mut pt = Attributes::new();
        pt.set_ulong(CKA_PARAMETER_SET, ckp);
        let (pa, sa) = generate_key_pair(&g, &pt, &Attributes::new()).unwrap();
        assert_eq!(pa.get(CKA_VALUE).unwrap().len(), ek_len);
        assert_eq!(sa.get(CKA_SEED).unwrap().len(), 64);
        let (pk, sk) = (
            Key::from_attributes(&pa).unwrap(),
            Key::from_attributes(&sa).unwrap(),
        );
        let (ct, ss) = encapsulate(&m, &pk).unwrap();
        assert_eq!(decapsulate(&m, &sk, &ct).unwrap(), ss);
    }
    let mut pt = Attributes::new();
    pt.set_ulong(CKA_PARAMETER_SET, 4);
    assert!(matches!(
        generate_key_pair(&g, &pt, &Attributes::new()),
        Err(Error::AttributeValueInvalid(CKA_PARAMETER_SET))
    ));
}
