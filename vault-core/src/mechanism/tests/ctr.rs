//! AES-CTR: NIST SP 800-38A F.5.1 / F.5.5 known answers, multi-part equals one part,
//! and the counter-wrap limit.

use crate::mechanism::test_support::*;

const PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51
                  30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

fn ctr(bits: u64, cb: [u8; 16]) -> Mechanism {
    mech(
        CKM_AES_CTR,
        MechParam::Ctr {
            counter_bits: bits,
            cb,
        },
    )
}

fn cb(hex: &str) -> [u8; 16] {
    h(hex).try_into().unwrap()
}

#[test]
fn aes_ctr_known_answers() {
    let counter = cb("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    for (key, ct) in [
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff
             5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
        ),
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5
             2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
        ),
    ] {
        let k = secret(CKK_AES, &h(key));
        let m = ctr(128, counter);
        assert_eq!(encrypt(&m, &k, &h(PT)).unwrap(), h(ct));
        assert_eq!(decrypt(&m, &k, &h(ct)).unwrap(), h(PT));
        // Parts of odd sizes give the same stream.
        let mut op = encrypt_init(&m, &k).unwrap();
        let pt = h(PT);
        let mut out = op.update(&pt[..5]).unwrap();
        out.extend(op.update(&pt[5..37]).unwrap());
        out.extend(op.update(&pt[37..]).unwrap());
        out.extend(op.finish().unwrap());
        assert_eq!(out, h(ct));
    }
}

#[test]
fn aes_ctr_refuses_to_wrap_its_counter_and_bad_parameters() {
    let k = secret(CKK_AES, &[1; 16]);
    // 8 counter bits at 0xfe: two blocks left.
    let m = ctr(8, cb("000000000000000000000000000000fe"));
    assert_eq!(encrypt(&m, &k, &[0; 32]).unwrap().len(), 32);
    assert!(matches!(
        encrypt(&m, &k, &[0; 33]),
        Err(Error::DataLenRange)
    ));
    assert!(matches!(
        decrypt(&m, &k, &[0; 33]),
        Err(Error::EncryptedDataLenRange)
    ));
    for bad in [
        ctr(0, [0; 16]),
        ctr(129, [0; 16]),
        Mechanism::new(CKM_AES_CTR),
    ] {
        assert!(matches!(
            encrypt_init(&bad, &k),
            Err(Error::MechanismParamInvalid(_))
        ));
    }
    assert!(matches!(
        encrypt_init(&ctr(128, [0; 16]), &secret(CKK_DES3, &[1; 24])),
        Err(Error::KeyTypeInconsistent)
    ));
}
