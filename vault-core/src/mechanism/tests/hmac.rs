//! HMAC: RFC 4231 / RFC 2202 known answers and key type checks.

use crate::mechanism::test_support::*;

#[test]
fn hmac_rfc4231_and_rfc2202() {
    let k1 = secret(CKK_GENERIC_SECRET, &[0x0b; 20]);
    let k2 = secret(CKK_GENERIC_SECRET, b"Jefe");
    let d1 = b"Hi There";
    let d2 = b"what do ya want for nothing?";
    let cases: &[(CK_MECHANISM_TYPE, &str, &str)] = &[
        (
            CKM_SHA_1_HMAC,
            "b617318655057264e28bc0b6fb378c8ef146be00",
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        (
            CKM_SHA224_HMAC,
            "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            CKM_SHA256_HMAC,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            CKM_SHA384_HMAC,
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
             faea9ea9076ede7f4af152e8b2fa9cb6",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            CKM_SHA512_HMAC,
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
             daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ];
    for (ty, t1, t2) in cases {
        let m = Mechanism::new(*ty);
        assert_eq!(sign(&m, &k1, d1).unwrap(), h(t1), "case 1 of {ty:#x}");
        assert_eq!(
            sign_parts(&m, &k2, &[&d2[..5], &d2[5..]]).unwrap(),
            h(t2),
            "case 2 of {ty:#x}"
        );
        verify(&m, &k2, d2, &h(t2)).unwrap();
        let mut bad = h(t2);
        bad[0] ^= 1;
        assert!(matches!(
            verify(&m, &k2, d2, &bad),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify(&m, &k2, d2, &bad[1..]),
            Err(Error::SignatureLenRange)
        ));
    }
    // HMAC key types and AES keys are accepted; DES3 and asymmetric keys are not.
    let m = Mechanism::new(CKM_SHA256_HMAC);
    sign(&m, &secret(CKK_SHA256_HMAC, b"k"), b"x").unwrap();
    sign(&m, &secret(CKK_AES, &[1; 16]), b"x").unwrap();
    assert!(matches!(
        sign_init(&m, &secret(CKK_DES3, &[1; 24])),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&m, &ec_key(Curve::P256).0),
        Err(Error::KeyTypeInconsistent)
    ));
}
