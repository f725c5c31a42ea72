//! AES-CMAC: NIST SP 800-38B D.1 and D.3 known answers, the general (truncated)
//! form, verification.

use crate::mechanism::test_support::*;

const MSG: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51
                   30c81c46a35ce411";

fn general(len: u64) -> Mechanism {
    mech(
        CKM_AES_CMAC_GENERAL,
        MechParam::Bytes(len.to_ne_bytes().to_vec()),
    )
}

#[test]
fn aes_cmac_known_answers() {
    let m = Mechanism::new(CKM_AES_CMAC);
    let k128 = secret(CKK_AES, &h("2b7e151628aed2a6abf7158809cf4f3c"));
    assert_eq!(
        sign(&m, &k128, &[]).unwrap(),
        h("bb1d6929e95937287fa37d129b756746")
    );
    assert_eq!(
        sign(&m, &k128, &h(MSG)).unwrap(),
        h("dfa66747de9ae63030ca32611497c827")
    );
    let k256 = secret(
        CKK_AES,
        &h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
    );
    assert_eq!(
        sign(&m, &k256, &h(MSG)).unwrap(),
        h("aaf3d8f1de5640c232f5b169b9c911e6")
    );
    let mut v = verify_init(&m, &k128).unwrap();
    v.update(&h(MSG)).unwrap();
    v.finish(&h("dfa66747de9ae63030ca32611497c827")).unwrap();
    let mut v = verify_init(&m, &k128).unwrap();
    v.update(&h(MSG)).unwrap();
    assert!(matches!(
        v.finish(&h("dfa66747de9ae63030ca32611497c828")),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn aes_cmac_general_truncates() {
    let k = secret(CKK_AES, &h("2b7e151628aed2a6abf7158809cf4f3c"));
    assert_eq!(
        sign(&general(8), &k, &h(MSG)).unwrap(),
        h("dfa66747de9ae630")
    );
    let mut v = verify_init(&general(8), &k).unwrap();
    v.update(&h(MSG)).unwrap();
    assert!(matches!(
        v.finish(&h("dfa66747de9ae63030")),
        Err(Error::SignatureLenRange)
    ));
    for bad in [
        general(0),
        general(17),
        Mechanism::new(CKM_AES_CMAC_GENERAL),
    ] {
        assert!(matches!(
            sign_init(&bad, &k),
            Err(Error::MechanismParamInvalid(_))
        ));
    }
}
