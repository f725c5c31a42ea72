//! AES ECB / CBC / CBC-PAD: SP 800-38A known answers, streaming, padding errors.

use crate::mechanism::test_support::*;

const SP800_38A_PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                            30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";

#[test]
fn aes_ecb_cbc_sp800_38a() {
    let pt = h(SP800_38A_PT);
    let k128 = secret(CKK_AES, &h("2b7e151628aed2a6abf7158809cf4f3c"));
    let k256 = secret(
        CKK_AES,
        &h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"),
    );
    let iv = h("000102030405060708090a0b0c0d0e0f");
    let cases = [
        // F.1.1 ECB-AES128
        (
            &k128,
            Mechanism::new(CKM_AES_ECB),
            "3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf
             43b1cd7f598ece23881b00e3ed030688 7b0c785e27e8ad3f8223207104725dd4",
        ),
        // F.2.1 CBC-AES128
        (
            &k128,
            mech(CKM_AES_CBC, MechParam::Bytes(iv.clone())),
            "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
             73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
        ),
        // F.2.5 CBC-AES256
        (
            &k256,
            mech(CKM_AES_CBC, MechParam::Bytes(iv.clone())),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
             39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
        ),
    ];
    for (k, m, ct) in cases {
        let ct = h(ct);
        assert_eq!(encrypt(&m, k, &pt).unwrap(), ct);
        assert_eq!(decrypt(&m, k, &ct).unwrap(), pt);
        // Streaming in odd-sized pieces gives the same result.
        for step in [1, 7, 16, 17, 33] {
            let mut e = encrypt_init(&m, k).unwrap();
            assert_eq!(e.max_output_len(pt.len()), pt.len());
            assert_eq!(run_parts(&mut *e, &pt, step).unwrap(), ct);
            let mut d = decrypt_init(&m, k).unwrap();
            assert_eq!(run_parts(&mut *d, &ct, step).unwrap(), pt);
        }
    }
    // Length errors without padding.
    let m = mech(CKM_AES_CBC, MechParam::Bytes(iv.clone()));
    assert!(matches!(
        encrypt(&m, &k128, &pt[..17]),
        Err(Error::DataLenRange)
    ));
    assert!(matches!(
        decrypt(&m, &k128, &pt[..17]),
        Err(Error::EncryptedDataLenRange)
    ));
    // Bad IV, wrong key type.
    assert!(matches!(
        encrypt_init(&mech(CKM_AES_CBC, MechParam::Bytes(vec![0; 8])), &k128),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        encrypt_init(&mech(CKM_AES_CBC, MechParam::None), &k128),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        encrypt_init(&m, &secret(CKK_DES3, &[1; 24])),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        encrypt_init(&m, &secret(CKK_AES, &[1; 20])),
        Err(Error::KeySizeRange)
    ));
}

#[test]
fn aes_cbc_pad_streaming_and_padding_errors() {
    let k = secret(CKK_AES, &h("2b7e151628aed2a6abf7158809cf4f3c"));
    let iv = h("000102030405060708090a0b0c0d0e0f");
    let m = mech(CKM_AES_CBC_PAD, MechParam::Bytes(iv.clone()));
    let plain_cbc = mech(CKM_AES_CBC, MechParam::Bytes(iv.clone()));
    for len in [0usize, 1, 15, 16, 17, 31, 32, 100] {
        let pt: Vec<u8> = (0..len as u8).collect();
        let ct = encrypt(&m, &k, &pt).unwrap();
        assert_eq!(ct.len(), (len / 16 + 1) * 16);
        assert_eq!(encrypt_init(&m, &k).unwrap().max_output_len(len), ct.len());
        // PKCS#7 padding as seen by plain CBC.
        let raw = decrypt(&plain_cbc, &k, &ct).unwrap();
        let p = 16 - len % 16;
        assert!(raw[len..].iter().all(|&b| b as usize == p));
        for step in [1, 5, 16, 40] {
            let mut d = decrypt_init(&m, &k).unwrap();
            assert!(d.max_output_len(ct.len()) >= len);
            assert_eq!(
                run_parts(&mut *d, &ct, step).unwrap(),
                pt,
                "len {len} step {step}"
            );
            let mut e = encrypt_init(&m, &k).unwrap();
            assert_eq!(run_parts(&mut *e, &pt, step).unwrap(), ct);
        }
    }
    // A block-aligned update keeps the last block back when decrypting.
    let ct = encrypt(&m, &k, &[7u8; 32]).unwrap();
    let mut d = decrypt_init(&m, &k).unwrap();
    assert_eq!(d.update(&ct[..32]).unwrap().len(), 16);
    assert_eq!(d.update(&ct[32..]).unwrap().len(), 16);
    assert_eq!(d.finish().unwrap(), Vec::<u8>::new());
    // Bad padding is detected: encrypt a block with a wrong pad byte using plain CBC.
    for bad_block in [[0u8; 16], [17u8; 16], {
        let mut b = [4u8; 16];
        b[13] = 3;
        b
    }] {
        let ct = encrypt(&plain_cbc, &k, &bad_block).unwrap();
        assert!(matches!(
            decrypt(&m, &k, &ct),
            Err(Error::EncryptedDataInvalid)
        ));
    }
    assert!(matches!(
        decrypt(&m, &k, &ct[..20]),
        Err(Error::EncryptedDataLenRange)
    ));
    assert!(matches!(
        decrypt(&m, &k, &[]),
        Err(Error::EncryptedDataLenRange)
    ));
}
