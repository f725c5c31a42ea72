//! ECDH: both parties agree, both point forms, the X9.63 KDF, errors.

use crate::mechanism::encoding::ec_point_raw;
use crate::mechanism::test_support::*;

#[test]
fn ecdh_derive_agrees_and_accepts_both_point_forms() {
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let (a_sk, _, a_pub) = ec_key(curve);
        let (b_sk, _, b_pub) = ec_key(curve);
        let a_point_der = a_pub.get(CKA_EC_POINT).unwrap().to_vec();
        let b_point_raw = ec_point_raw(curve, b_pub.get(CKA_EC_POINT).unwrap()).unwrap();
        let m = |kdf, public_data: Vec<u8>| {
            mech(
                CKM_ECDH1_DERIVE,
                MechParam::Ecdh1 {
                    kdf,
                    shared_data: vec![],
                    public_data,
                },
            )
        };
        let none = Attributes::new();
        let ab = derive(&m(CKD_NULL, b_point_raw.clone()), &a_sk, &none).unwrap();
        let ba = derive(&m(CKD_NULL, a_point_der.clone()), &b_sk, &none).unwrap();
        assert_eq!(ab.len(), curve.field_len());
        assert_eq!(ab, ba);
        let mut t = Attributes::new();
        t.set_ulong(CKA_VALUE_LEN, 16);
        let short = derive(&m(CKD_NULL, b_point_raw.clone()), &a_sk, &t).unwrap();
        assert_eq!(&short[..], &ab[ab.len() - 16..]);
        let k1 = derive(&m(CKD_SHA256_KDF, b_point_raw.clone()), &a_sk, &t).unwrap();
        let k2 = derive(&m(CKD_SHA256_KDF, a_point_der.clone()), &b_sk, &t).unwrap();
        assert_eq!(k1.len(), 16);
        assert_eq!(k1, k2);
        // X9.63: SHA-256(Z || 00000001), truncated.
        assert_eq!(
            &k1[..],
            &HashAlg::Sha256.digest(&[&ab, &[0, 0, 0, 1]])[..16]
        );
        assert!(matches!(
            derive(&m(CKD_NULL, vec![4; 10]), &a_sk, &none),
            Err(Error::MechanismParamInvalid(_))
        ));
        assert!(matches!(
            derive(
                &m(CKD_NULL, b_point_raw.clone()),
                &secret(CKK_AES, &[0; 16]),
                &none
            ),
            Err(Error::KeyTypeInconsistent)
        ));
    }
}
