//! AES-GCM: GCM spec and NIST CAVS known answers, the portable path against the
//! fast one, parameter errors.

use super::{gcm_open_into, gcm_seal_into, SoftGcm};
use crate::mechanism::test_support::*;

#[test]
fn aes_gcm_known_answers() {
    let k3 = "feffe9928665731c6d6a8f9467308308";
    let iv3 = "cafebabefacedbaddecaf888";
    let p3 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
              1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    let c3 = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
              21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
    let cases: Vec<(String, String, String, String, String, String)> = vec![
        // GCM spec test case 2
        (
            "00000000000000000000000000000000".into(),
            "000000000000000000000000".into(),
            "00000000000000000000000000000000".into(),
            "".into(),
            "0388dace60b6a392f328c2b971b2fe78".into(),
            "ab6e47d42cec13bdf53a67b21257bddf".into(),
        ),
        // test case 3
        (
            k3.into(),
            iv3.into(),
            p3.into(),
            "".into(),
            c3.into(),
            "4d5c2af327cd64a62cf35abd2ba6fab4".into(),
        ),
        // test case 4 (AAD, partial last block)
        (
            k3.into(),
            iv3.into(),
            p3.replace([' ', '\n'], "")[..120].into(),
            "feedfacedeadbeeffeedfacedeadbeefabaddad2".into(),
            c3.replace([' ', '\n'], "")[..120].into(),
            "5bc94fbc3221a5db94fae95ae7121a47".into(),
        ),
        // NIST CAVS gcmEncryptExtIV128: 8-bit IV
        (
            "15b2d414826453f9e1c7dd0b69d8d1eb".into(),
            "b6".into(),
            "8cfa255530c6fbc19d51bd4aeb39c91b".into(),
            "".into(),
            "4822cb98bd5f5d921ee19285c9032375".into(),
            "8a40670ebac98cf4e9cc1bf8f803167d".into(),
        ),
        // NIST CAVS gcmEncryptExtIV128: 1024-bit IV
        (
            "71eebc49c8fb773b2224eaff3ad68714".into(),
            "07e961e67784011f72faafd95b0eb64089c8de15ad685ec57e63d56e679d3e20
             2b18b75fcbbec3185ffc41653bc2ac4ae6ae8be8c85636f353a9d19a86100d0b
             d035cc6bdefcab4318ac7b1a08b819427ad8f6abc782466c6ebd4d6a0dd76e78
             389b0a2a66506bb85f038ffc1da220c24f3817c7b2d02c5e8fc5e7e3be5074bc"
                .into(),
            "705da82292143d2c949dc4ba014f6396".into(),
            "".into(),
            "032363cf0828a03553478bec0f51f372".into(),
            "c681b2c568feaa21900bc44b86aeb946".into(),
        ),
    ];
    for (key, iv, pt, aad, ct, tag) in cases {
        let k = secret(CKK_AES, &h(&key));
        let (iv, pt, aad) = (h(&iv), h(&pt), h(&aad));
        let mut expect = h(&ct);
        expect.extend(h(&tag));
        let m = gcm(&iv, &aad, 128);
        let mut e = encrypt_init(&m, &k).unwrap();
        assert_eq!(e.max_output_len(pt.len()), expect.len());
        assert_eq!(run_parts(&mut *e, &pt, 13).unwrap(), expect);
        let mut d = decrypt_init(&m, &k).unwrap();
        assert_eq!(d.max_output_len(expect.len()), pt.len());
        assert_eq!(run_parts(&mut *d, &expect, 7).unwrap(), pt);
        // Tampering with ciphertext, tag or AAD is detected.
        let mut bad = expect.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decrypt(&m, &k, &bad),
            Err(Error::EncryptedDataInvalid)
        ));
        let mut bad_aad = aad.clone();
        bad_aad.push(0);
        assert!(matches!(
            decrypt(&gcm(&iv, &bad_aad, 128), &k, &expect),
            Err(Error::EncryptedDataInvalid)
        ));
        // Truncated tags are the prefix of the full tag.
        let t96 = encrypt(&gcm(&iv, &aad, 96), &k, &pt).unwrap();
        assert_eq!(t96[..], expect[..expect.len() - 4]);
        assert_eq!(decrypt(&gcm(&iv, &aad, 96), &k, &t96).unwrap(), pt);
        let mut bad96 = t96.clone();
        *bad96.last_mut().unwrap() ^= 0x80;
        assert!(matches!(
            decrypt(&gcm(&iv, &aad, 96), &k, &bad96),
            Err(Error::EncryptedDataInvalid)
        ));
    }
}

#[test]
fn aes_gcm_soft_path_matches_fast_path() {
    for klen in [16, 24, 32] {
        let mut key = vec![0u8; klen];
        random(&mut key).unwrap();
        let mut data = vec![0u8; 77];
        random(&mut data).unwrap();
        let iv = [3u8; 12];
        let mut fast = vec![0u8; 77 + 16];
        assert_eq!(
            gcm_seal_into(&key, &iv, b"aad", &data, 16, &mut fast).unwrap(),
            93
        );
        let mut soft = data.clone();
        let tag = SoftGcm::new(&key).unwrap().seal(&iv, b"aad", &mut soft);
        soft.extend_from_slice(&tag);
        assert_eq!(fast, soft);
    }
}

/// Decryption into the caller's buffer: a bad tag leaves no plaintext behind (the
/// pure-Rust path decrypts before it compares the tag).
#[test]
fn aes_gcm_open_into_wipes_on_bad_tag() {
    let key = [7u8; 32];
    let iv = [1u8; 12];
    let data = [0x5au8; 40];
    let mut sealed = [0u8; 56];
    gcm_seal_into(&key, &iv, b"", &data, 16, &mut sealed).unwrap();
    let mut out = [0xffu8; 40];
    assert_eq!(
        gcm_open_into(&key, &iv, b"", &sealed, 16, &mut out).unwrap(),
        40
    );
    assert_eq!(out, data);
    sealed[50] ^= 1;
    let mut out = [0xffu8; 40];
    assert!(matches!(
        gcm_open_into(&key, &iv, b"", &sealed, 16, &mut out),
        Err(Error::EncryptedDataInvalid)
    ));
    assert_eq!(out, [0u8; 40]);
    // A truncated tag goes through the soft path: same guarantee.
    let mut short = [0u8; 52];
    gcm_seal_into(&key, &iv, b"", &data, 12, &mut short).unwrap();
    short[3] ^= 1;
    let mut out = [0xffu8; 40];
    assert!(gcm_open_into(&key, &iv, b"", &short, 12, &mut out).is_err());
    assert_eq!(out, [0u8; 40]);
}

#[test]
fn aes_gcm_parameter_errors() {
    let k = secret(CKK_AES, &[0; 16]);
    for m in [
        gcm(&[], b"", 128),
        gcm(&[0; 12], b"", 64),
        gcm(&[0; 12], b"", 100),
        gcm(&[0; 12], b"", 136),
        Mechanism::new(CKM_AES_GCM),
    ] {
        assert!(matches!(
            encrypt_init(&m, &k),
            Err(Error::MechanismParamInvalid(_))
        ));
    }
    assert!(matches!(
        decrypt(&gcm(&[0; 12], b"", 128), &k, &[0; 15]),
        Err(Error::EncryptedDataLenRange)
    ));
}
