//! X25519: RFC 7748 §6.1 known answer through `CKM_ECDH1_DERIVE`, generation, both
//! parties agreeing, small-order points refused.

use super::{X25519_NAME, X25519_OID};
use crate::mechanism::test_support::*;

fn private(k: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    a.set(CKA_EC_PARAMS, X25519_OID.to_vec());
    a.set(CKA_VALUE, k.to_vec());
    Key::from_attributes(&a).unwrap()
}

fn ecdh(peer: &[u8]) -> Mechanism {
    mech(
        CKM_ECDH1_DERIVE,
        MechParam::Ecdh1 {
            kdf: CKD_NULL,
            shared_data: vec![],
            public_data: peer.to_vec(),
        },
    )
}

#[test]
fn x25519_rfc7748_known_answer() {
    let alice = private(&h(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob_pub = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(
        &derive(&ecdh(&bob_pub), &alice, &Attributes::new()).unwrap()[..],
        &shared[..]
    );
    // The peer key as a DER OCTET STRING works the same.
    let mut der = vec![0x04, 0x20];
    der.extend_from_slice(&bob_pub);
    assert_eq!(
        &derive(&ecdh(&der), &alice, &Attributes::new()).unwrap()[..],
        &shared[..]
    );
    // A small-order point (u = 0) gives no shared secret.
    assert!(matches!(
        derive(&ecdh(&[0; 32]), &alice, &Attributes::new()),
        Err(Error::MechanismParamInvalid(_))
    ));
}

#[test]
fn x25519_generated_pairs_agree() {
    let gen = Mechanism::new(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let mut keys = Vec::new();
    for params in [X25519_OID, X25519_NAME] {
        let mut pt = Attributes::new();
        pt.set(CKA_EC_PARAMS, params.to_vec());
        let (pa, sa) = generate_key_pair(&gen, &pt, &Attributes::new()).unwrap();
        assert_eq!(pa.get(CKA_EC_PARAMS), Some(params));
        keys.push((
            pa.get(CKA_EC_POINT).unwrap().to_vec(),
            Key::from_attributes(&sa).unwrap(),
        ));
    }
    let none = Attributes::new();
    let ab = derive(&ecdh(&keys[1].0), &keys[0].1, &none).unwrap();
    let ba = derive(&ecdh(&keys[0].0), &keys[1].1, &none).unwrap();
    assert_eq!(ab, ba);
    assert_eq!(ab.len(), 32);
    let mut pt = Attributes::new();
    pt.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    assert!(matches!(
        generate_key_pair(&gen, &pt, &Attributes::new()),
        Err(Error::AttributeValueInvalid(CKA_EC_PARAMS))
    ));
}

/// X25519 with the SP 800-56 single-step KDF (`CKD_SHA256_KDF_SP800`), against the
/// known answer the `cryptoki` crate's suite uses (an OpenPGP ECDH vector).
#[test]
fn x25519_with_the_sp800_kdf() {
    let k = private(&h(
        "F00670C5F139E7E6C2511EA04FF507AFBBE237CE3C71A89CA59A1C5CF8856562",
    ));
    let m = mech(
        CKM_ECDH1_DERIVE,
        MechParam::Ecdh1 {
            kdf: CKD_SHA256_KDF_SP800,
            shared_data: h("0A2B0601040197550105011203010807416E6F6E796D6F75732053656E646572202020205633A4C5AE4305BC0FE2ABB699A8EE54632790A0"),
            public_data: h("533B3F09E53B3DEED661A13F7A7D9694AB71CE156C728E00DEE87A1EE3A14C4A"),
        },
    );
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, 16);
    assert_eq!(
        &derive(&m, &k, &t).unwrap()[..],
        &h("AF8CE51D0139A6D60831A9BABAB20186")[..]
    );
}

fn private448(k: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    a.set(CKA_EC_PARAMS, super::X448_OID.to_vec());
    a.set(CKA_VALUE, k.to_vec());
    Key::from_attributes(&a).unwrap()
}

/// RFC 7748 §6.2: both X448 parties reach the published shared secret through
/// `CKM_ECDH1_DERIVE` (bare and DER peer points); generation in both
/// `CKA_EC_PARAMS` forms agrees too; a small-order peer point and wrong sizes are
/// refused.
#[test]
fn x448_rfc7748_known_answer() {
    let (a_k, a_pub) = (
        h(
            "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391
           006382a6f127ab1d9ac2d8c0a598726b",
        ),
        h(
            "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d4
           0c5b12da88120d53177f80e532c41fa0",
        ),
    );
    let (b_k, b_pub) = (
        h(
            "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21
           374c9c921b09d1b0366f10b65173992d",
        ),
        h(
            "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13c
           a706dcb57aec3dae07bdc1c67bf33609",
        ),
    );
    let k = h(
        "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936
               521c24403085d59a449a5037514a879d",
    );
    let none = Attributes::new();
    assert_eq!(
        &derive(&ecdh(&b_pub), &private448(&a_k), &none).unwrap()[..],
        &k[..]
    );
    let mut der = vec![0x04, 0x38];
    der.extend(&a_pub);
    assert_eq!(
        &derive(&ecdh(&der), &private448(&b_k), &none).unwrap()[..],
        &k[..]
    );
    // Generated pairs agree with each other.
    let g = Mechanism::new(CKM_EC_MONTGOMERY_KEY_PAIR_GEN);
    let pair = |params: &[u8]| {
        let mut t = Attributes::new();
        t.set(CKA_EC_PARAMS, params.to_vec());
        let (pa, sa) = generate_key_pair(&g, &t, &Attributes::new()).unwrap();
        assert_eq!(pa.get(CKA_EC_POINT).unwrap().len(), 58);
        (pa, Key::from_attributes(&sa).unwrap())
    };
    let (p1, k1) = pair(super::X448_OID);
    let (p2, k2) = pair(super::X448_NAME);
    assert_eq!(
        derive(&ecdh(p2.get(CKA_EC_POINT).unwrap()), &k1, &none).unwrap(),
        derive(&ecdh(p1.get(CKA_EC_POINT).unwrap()), &k2, &none).unwrap()
    );
    // The zero point has small order; a 32-byte point is no X448 point.
    assert!(derive(&ecdh(&[0u8; 56]), &k1, &none).is_err());
    assert!(derive(&ecdh(&[9u8; 32]), &k1, &none).is_err());
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_MONTGOMERY);
    a.set(CKA_EC_PARAMS, super::X448_OID.to_vec());
    a.set(CKA_VALUE, vec![1; 32]);
    assert!(Key::from_attributes(&a).is_err());
}
