//! Tests of the operations: published known-answer vectors, error behaviour, and
//! cross-checks against the `openssl` command line tool.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::*;
use crate::mechanism::backend::Curve;
use crate::mechanism::encoding::{pkcs8_to_attributes, public_key_spki};
use crate::mechanism::{digest_init, generate_key_pair, random};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// Runs `f` with `CKM_RSA_PKCS` decryption switched on (`[policy]
/// rsa_pkcs1_decrypt`; a no-op with aws-lc), then back to the default. The switch is
/// process-wide: the tests that touch it take this lock.
fn with_pkcs1_decrypt<T>(on: bool, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    super::super::backend::set_rsa_pkcs1_decrypt(on);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    super::super::backend::set_rsa_pkcs1_decrypt(false);
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn secret(kt: CK_KEY_TYPE, value: &[u8]) -> Key {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    a.set_ulong(CKA_KEY_TYPE, kt);
    a.set(CKA_VALUE, value.to_vec());
    Key::from_attributes(&a).unwrap()
}

fn mech(ty: CK_MECHANISM_TYPE, param: MechParam) -> Mechanism {
    Mechanism { ty, param }
}

fn sign(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let mut op = sign_init(m, k)?;
    op.update(data)?;
    let sig = op.finish()?;
    assert_eq!(sig.len(), op.sig_len());
    Ok(sig)
}

fn sign_parts(m: &Mechanism, k: &Key, parts: &[&[u8]]) -> Result<Vec<u8>> {
    let mut op = sign_init(m, k)?;
    for p in parts {
        op.update(p)?;
    }
    op.finish()
}

fn verify(m: &Mechanism, k: &Key, data: &[u8], sig: &[u8]) -> Result<()> {
    let mut op = verify_init(m, k)?;
    op.update(data)?;
    op.finish(sig)
}

fn encrypt(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    encrypt_init(m, k)?.once(data)
}

fn decrypt(m: &Mechanism, k: &Key, data: &[u8]) -> Result<Vec<u8>> {
    decrypt_init(m, k)?.once(data)
}

/// Multi-part: feeds `data` in `step`-byte pieces.
fn run_parts(op: &mut dyn CipherOp, data: &[u8], step: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for c in data.chunks(step.max(1)) {
        out.extend(op.update(c)?);
    }
    out.extend(op.finish()?);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Mechanism table
// ---------------------------------------------------------------------------

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
    assert_eq!((rsa.min_key_size, rsa.max_key_size), (1024, 4096));
    let ec = mechanism_info(CKM_ECDSA).unwrap();
    assert_eq!((ec.min_key_size, ec.max_key_size), (256, 384));
    assert_ne!(ec.flags & CKF_EC_NAMEDCURVE, 0);
    let gcm = mechanism_info(CKM_AES_GCM).unwrap();
    assert_eq!(gcm.flags, CKF_ENCRYPT | CKF_DECRYPT);
    assert!(matches!(
        mechanism_info(CKM_MD5),
        Err(Error::MechanismInvalid(CKM_MD5))
    ));
}

#[test]
fn random_fills() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    random(&mut a).unwrap();
    random(&mut b).unwrap();
    assert_ne!(a, b);
}

// ---------------------------------------------------------------------------
// HMAC
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// AES ECB / CBC / CBC-PAD, DES3
// ---------------------------------------------------------------------------

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

#[test]
fn des3_known_answer_and_modes() {
    // NIST SP 800-67 Rev. 1, example of TDEA ECB mode (keying option 1).
    let k = secret(
        CKK_DES3,
        &h("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123"),
    );
    let pt = b"The qufck brown fox jump";
    let ct = h("A826FD8CE53B855FCCE21C8112256FE668D5C05DD9B6B900");
    let ecb = Mechanism::new(CKM_DES3_ECB);
    assert_eq!(encrypt(&ecb, &k, pt).unwrap(), ct);
    assert_eq!(decrypt(&ecb, &k, &ct).unwrap(), pt);
    let iv = MechParam::Bytes(vec![9; 8]);
    for ty in [CKM_DES3_CBC, CKM_DES3_CBC_PAD] {
        let m = mech(ty, iv.clone());
        let c = encrypt(&m, &k, pt).unwrap();
        assert_eq!(c.len(), if ty == CKM_DES3_CBC { 24 } else { 32 });
        assert_eq!(decrypt(&m, &k, &c).unwrap(), pt);
    }
    assert!(matches!(
        encrypt_init(&mech(CKM_DES3_CBC, MechParam::Bytes(vec![0; 16])), &k),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        encrypt_init(&ecb, &secret(CKK_AES, &[0; 16])),
        Err(Error::KeyTypeInconsistent)
    ));
}

// ---------------------------------------------------------------------------
// AES-GCM
// ---------------------------------------------------------------------------

fn gcm(iv: &[u8], aad: &[u8], tag_bits: u64) -> Mechanism {
    mech(
        CKM_AES_GCM,
        MechParam::Gcm {
            iv: iv.to_vec(),
            aad: aad.to_vec(),
            tag_bits,
        },
    )
}

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
        let fast = gcm_seal(&key, &iv, b"aad", &data, 16).unwrap();
        let mut soft = data.clone();
        let tag = SoftGcm::new(&key).unwrap().seal(&iv, b"aad", &mut soft);
        soft.extend_from_slice(&tag);
        assert_eq!(fast, soft);
    }
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

// ---------------------------------------------------------------------------
// AES key wrap
// ---------------------------------------------------------------------------

#[test]
fn aes_key_wrap_rfc3394_rfc5649() {
    let kw = Mechanism::new(CKM_AES_KEY_WRAP);
    let kwp = Mechanism::new(CKM_AES_KEY_WRAP_PAD);
    let cases = [
        // RFC 3394 §4.1: 128-bit data, 128-bit KEK
        (
            &kw,
            "000102030405060708090A0B0C0D0E0F",
            "00112233445566778899AABBCCDDEEFF",
            "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
        ),
        // RFC 3394 §4.6: 256-bit data, 256-bit KEK
        (
            &kw,
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43B
             FB988B9B7A02DD21",
        ),
        // RFC 5649 §6: 20 octets and 7 octets with a 192-bit KEK
        (
            &kwp,
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
            "c37b7e6492584340bed12207808941155068f738",
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        ),
        (
            &kwp,
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
            "466f7250617369",
            "afbeb0f07dfbf5419200f2ccb50bb24f",
        ),
    ];
    for (m, kek, data, wrapped) in cases {
        let kek = secret(CKK_AES, &h(kek));
        let (data, wrapped) = (h(data), h(wrapped));
        let mut e = encrypt_init(m, &kek).unwrap();
        assert!(e.max_output_len(data.len()) >= wrapped.len());
        assert_eq!(run_parts(&mut *e, &data, 5).unwrap(), wrapped);
        assert_eq!(decrypt(m, &kek, &wrapped).unwrap(), data);
        // Through C_WrapKey / C_UnwrapKey.
        let mut obj = Attributes::new();
        obj.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        obj.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        obj.set(CKA_VALUE, data.clone());
        assert_eq!(wrap(m, &kek, &obj).unwrap(), wrapped);
        assert_eq!(&unwrap(m, &kek, &wrapped).unwrap()[..], &data[..]);
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert!(matches!(
            unwrap(m, &kek, &bad),
            Err(Error::WrappedKeyInvalid)
        ));
        assert!(matches!(
            unwrap(m, &kek, &wrapped[..wrapped.len() - 1]),
            Err(Error::WrappedKeyLenRange)
        ));
    }
    let kek = secret(CKK_AES, &[1; 16]);
    assert!(matches!(
        encrypt(&kw, &kek, &[0; 12]),
        Err(Error::DataLenRange)
    ));
    let mut obj = Attributes::new();
    obj.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    obj.set(CKA_VALUE, vec![0; 12]);
    assert!(matches!(wrap(&kw, &kek, &obj), Err(Error::KeySizeRange)));
    assert_eq!(wrap(&kwp, &kek, &obj).unwrap().len(), 24);
}

// ---------------------------------------------------------------------------
// ECDSA and ECDH
// ---------------------------------------------------------------------------

fn ec_key(curve: Curve) -> (Key, Key, Attributes) {
    let mut pt = Attributes::new();
    pt.set(CKA_EC_PARAMS, curve.ec_params().to_vec());
    let (pa, sa) = generate_key_pair(
        &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
        &pt,
        &Attributes::new(),
    )
    .unwrap();
    (
        Key::from_attributes(&sa).unwrap(),
        Key::from_attributes(&pa).unwrap(),
        pa,
    )
}

fn sha256(d: &[u8]) -> Vec<u8> {
    let mut op = digest_init(&Mechanism::new(CKM_SHA256)).unwrap();
    op.update(d);
    op.finish()
}

#[test]
fn ecdsa_rfc6979_a25_p256_sha256() {
    let mut sa = Attributes::new();
    sa.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    sa.set_ulong(CKA_KEY_TYPE, CKK_EC);
    sa.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    sa.set(
        CKA_VALUE,
        h("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"),
    );
    let mut pa = Attributes::new();
    pa.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    pa.set_ulong(CKA_KEY_TYPE, CKK_EC);
    pa.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    // Raw (not DER-wrapped) point form is accepted too.
    pa.set(
        CKA_EC_POINT,
        h(
            "04 60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
              7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
        ),
    );
    let sk = Key::from_attributes(&sa).unwrap();
    let pk = Key::from_attributes(&pa).unwrap();
    let sig = h(
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
                 F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8",
    );
    let hashed = Mechanism::new(CKM_ECDSA_SHA256);
    let raw = Mechanism::new(CKM_ECDSA);
    verify(&hashed, &pk, b"sample", &sig).unwrap();
    verify(&raw, &pk, &sha256(b"sample"), &sig).unwrap();
    if cfg!(feature = "aws-lc") {
        // AWS-LC's ECDSA nonces are random (hedged), not RFC 6979: check that
        // fresh signatures verify instead of comparing bytes.
        let s1 = sign(&hashed, &sk, b"sample").unwrap();
        let s2 = sign_parts(&hashed, &sk, &[b"sam", b"ple"]).unwrap();
        verify(&hashed, &pk, b"sample", &s1).unwrap();
        verify(&raw, &pk, &sha256(b"sample"), &s2).unwrap();
    } else {
        // Deterministic signing reproduces the published signature.
        assert_eq!(sign(&hashed, &sk, b"sample").unwrap(), sig);
        assert_eq!(sign_parts(&hashed, &sk, &[b"sam", b"ple"]).unwrap(), sig);
    }
    assert!(matches!(
        verify(&hashed, &pk, b"samplf", &sig),
        Err(Error::SignatureInvalid)
    ));
    let mut bad = sig.clone();
    bad[40] ^= 1;
    assert!(matches!(
        verify(&hashed, &pk, b"sample", &bad),
        Err(Error::SignatureInvalid)
    ));
    assert!(matches!(
        verify(&hashed, &pk, b"sample", &sig[..63]),
        Err(Error::SignatureLenRange)
    ));
    // A public key cannot sign; an AES key is the wrong type.
    assert!(matches!(
        sign_init(&hashed, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&raw, &secret(CKK_AES, &[0; 16])),
        Err(Error::KeyTypeInconsistent)
    ));
    // Verification with the private key object works too.
    verify(&hashed, &sk, b"sample", &sig).unwrap();
}

#[test]
fn ecdsa_all_hashes_both_curves_and_short_or_long_raw_input() {
    for curve in [Curve::P256, Curve::P384] {
        let (sk, pk, _) = ec_key(curve);
        for ty in [
            CKM_ECDSA_SHA1,
            CKM_ECDSA_SHA224,
            CKM_ECDSA_SHA256,
            CKM_ECDSA_SHA384,
            CKM_ECDSA_SHA512,
        ] {
            let m = Mechanism::new(ty);
            let sig = sign(&m, &sk, b"message").unwrap();
            assert_eq!(sig.len(), 2 * curve.field_len());
            verify(&m, &pk, b"message", &sig).unwrap();
            assert!(verify(&m, &pk, b"messagf", &sig).is_err());
        }
        let raw = Mechanism::new(CKM_ECDSA);
        // Shorter than the order (SHA-1 on P-384) and longer (SHA-512 on P-256).
        for len in [20usize, 64] {
            let input = vec![0xa5u8; len];
            let sig = sign(&raw, &sk, &input).unwrap();
            verify(&raw, &pk, &input, &sig).unwrap();
        }
        // FIPS 186-4 truncation: only the leftmost field-length bytes count.
        let mut long = vec![0x11u8; 64];
        let sig = sign(&raw, &sk, &long).unwrap();
        long[63] ^= 0xff;
        verify(&raw, &pk, &long, &sig).unwrap();
        long[0] ^= 0xff;
        assert!(verify(&raw, &pk, &long, &sig).is_err());
        // Keys of another curve do not verify.
        let other = ec_key(if curve == Curve::P256 {
            Curve::P384
        } else {
            Curve::P256
        })
        .1;
        assert!(verify(&raw, &other, &[1; 32], &sig).is_err());
    }
}

#[test]
fn ecdh_derive_agrees_and_accepts_both_point_forms() {
    for curve in [Curve::P256, Curve::P384] {
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

// ---------------------------------------------------------------------------
// RSA
// ---------------------------------------------------------------------------

/// One 2048-bit key pair for all RSA tests.
fn rsa() -> &'static (Attributes, Attributes) {
    static KEY: OnceLock<(Attributes, Attributes)> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut pt = Attributes::new();
        pt.set_ulong(CKA_MODULUS_BITS, 2048);
        let (pa, sa) = generate_key_pair(
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &pt,
            &Attributes::new(),
        )
        .unwrap();
        assert_eq!(pa.get_ulong(CKA_MODULUS_BITS).unwrap(), Some(2048));
        assert_eq!(pa.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
        for t in [
            CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1,
            CKA_PRIME_2,
            CKA_EXPONENT_1,
            CKA_EXPONENT_2,
            CKA_COEFFICIENT,
        ] {
            assert!(sa.get(t).is_some_and(|v| !v.is_empty()), "{t:#x}");
        }
        (pa, sa)
    })
}

fn rsa_keys() -> (Key, Key) {
    let (pa, sa) = rsa();
    (
        Key::from_attributes(sa).unwrap(),
        Key::from_attributes(pa).unwrap(),
    )
}

fn pss(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt_len: u64) -> MechParam {
    MechParam::Pss {
        hash,
        mgf,
        salt_len,
    }
}

const HASHES: [(CK_MECHANISM_TYPE, CK_RSA_PKCS_MGF_TYPE, HashAlg); 5] = [
    (CKM_SHA_1, CKG_MGF1_SHA1, HashAlg::Sha1),
    (CKM_SHA224, CKG_MGF1_SHA224, HashAlg::Sha224),
    (CKM_SHA256, CKG_MGF1_SHA256, HashAlg::Sha256),
    (CKM_SHA384, CKG_MGF1_SHA384, HashAlg::Sha384),
    (CKM_SHA512, CKG_MGF1_SHA512, HashAlg::Sha512),
];

#[test]
fn rsa_pkcs1_sign_verify_all_hashes() {
    let (sk, pk) = rsa_keys();
    let data = b"PKCS#1 v1.5 data";
    for (ty, (_, _, alg)) in [
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
    ]
    .into_iter()
    .zip(HASHES)
    {
        let m = Mechanism::new(ty);
        let sig = sign_parts(&m, &sk, &[&data[..3], &data[3..]]).unwrap();
        assert_eq!(sig.len(), 256);
        verify(&m, &pk, data, &sig).unwrap();
        // Same as raw CKM_RSA_PKCS over the DigestInfo (deterministic padding).
        let di = [alg.digest_info_prefix(), &alg.digest(&[data])].concat();
        assert_eq!(sign(&Mechanism::new(CKM_RSA_PKCS), &sk, &di).unwrap(), sig);
        verify(&Mechanism::new(CKM_RSA_PKCS), &pk, &di, &sig).unwrap();
        assert!(matches!(
            verify(&m, &pk, b"other data", &sig),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify(&m, &pk, data, &sig[1..]),
            Err(Error::SignatureLenRange)
        ));
    }
    let raw = Mechanism::new(CKM_RSA_PKCS);
    // Raw data up to k - 11 bytes.
    sign(&raw, &sk, &[7; 245]).unwrap();
    assert!(matches!(
        sign(&raw, &sk, &[7; 246]),
        Err(Error::DataLenRange)
    ));
    // Public keys cannot sign; EC keys are the wrong type.
    assert!(matches!(
        sign_init(&raw, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&raw, &ec_key(Curve::P256).0),
        Err(Error::KeyTypeInconsistent)
    ));
}

#[test]
fn rsa_x509_raw() {
    let (sk, pk) = rsa_keys();
    let m = Mechanism::new(CKM_RSA_X_509);
    let data = [0x42u8; 100];
    let sig = sign(&m, &sk, &data).unwrap();
    assert_eq!(sig.len(), 256);
    verify(&m, &pk, &data, &sig).unwrap();
    assert!(verify(&m, &pk, &[0x43; 100], &sig).is_err());
    // Encrypt / decrypt round trip returns the input left-padded to k bytes.
    let ct = encrypt(&m, &pk, &data).unwrap();
    let pt = decrypt(&m, &sk, &ct).unwrap();
    assert_eq!(pt.len(), 256);
    assert_eq!(&pt[156..], &data[..]);
    assert!(pt[..156].iter().all(|&b| b == 0));
    // Input not below the modulus.
    assert!(matches!(
        sign(&m, &sk, &[0xff; 256]),
        Err(Error::DataLenRange)
    ));
}

#[test]
fn rsa_pss_raw_and_hashed_all_hashes_and_mgfs() {
    let (sk, pk) = rsa_keys();
    let data = b"PSS data";
    for (hash, mgf, alg) in HASHES {
        let mhash = alg.digest(&[data]);
        let salt = alg.output_len() as u64;
        let raw = mech(CKM_RSA_PKCS_PSS, pss(hash, mgf, salt));
        let sig = sign(&raw, &sk, &mhash).unwrap();
        verify(&raw, &pk, &mhash, &sig).unwrap();
        // Randomised: two signatures differ but both verify.
        assert_ne!(sign(&raw, &sk, &mhash).unwrap(), sig);
        // The input must be exactly one hash long.
        assert!(matches!(
            sign(&raw, &sk, &mhash[1..]),
            Err(Error::DataLenRange)
        ));
        let hashed_ty = match alg {
            HashAlg::Sha1 => CKM_SHA1_RSA_PKCS_PSS,
            HashAlg::Sha224 => CKM_SHA224_RSA_PKCS_PSS,
            HashAlg::Sha256 => CKM_SHA256_RSA_PKCS_PSS,
            HashAlg::Sha384 => CKM_SHA384_RSA_PKCS_PSS,
            HashAlg::Sha512 => CKM_SHA512_RSA_PKCS_PSS,
        };
        let hashed = mech(hashed_ty, pss(hash, mgf, salt));
        verify(&hashed, &pk, data, &sig).unwrap();
        let sig2 = sign_parts(&hashed, &sk, &[b"PSS ", b"data"]).unwrap();
        verify(&raw, &pk, &mhash, &sig2).unwrap();
        assert!(matches!(
            verify(&hashed, &pk, b"PSS date", &sig2),
            Err(Error::SignatureInvalid)
        ));
        // A different MGF1 hash and a zero salt.
        let m2 = mech(CKM_RSA_PKCS_PSS, pss(hash, CKG_MGF1_SHA1, 0));
        let sig3 = sign(&m2, &sk, &mhash).unwrap();
        verify(&m2, &pk, &mhash, &sig3).unwrap();
        assert_eq!(
            sign(&m2, &sk, &mhash).unwrap(),
            sig3,
            "no salt: deterministic"
        );
        // Verifying with other parameters fails.
        assert!(matches!(
            verify(&raw, &pk, &mhash, &sig3),
            Err(Error::SignatureInvalid)
        ));
    }
    // Parameter errors.
    for m in [
        Mechanism::new(CKM_RSA_PKCS_PSS),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_MD5, CKG_MGF1_SHA1, 0)),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA256, 99, 0)),
        mech(CKM_SHA256_RSA_PKCS_PSS, pss(CKM_SHA_1, CKG_MGF1_SHA1, 20)),
        mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA512, CKG_MGF1_SHA512, 200)),
    ] {
        assert!(
            matches!(sign_init(&m, &sk), Err(Error::MechanismParamInvalid(_))),
            "{m:?}"
        );
    }
}

/// Without aws-lc, CKM_RSA_PKCS decryption and unwrap are refused and not
/// advertised unless configured (Marvin attack, RUSTSEC-2023-0071); with aws-lc
/// they are always on.
#[test]
fn rsa_pkcs1_decrypt_needs_the_policy_without_aws_lc() {
    let (sk, pk) = rsa_keys();
    let m = Mechanism::new(CKM_RSA_PKCS);
    with_pkcs1_decrypt(false, || {
        let ct = encrypt(&m, &pk, b"key").unwrap();
        let flags = mechanism_info(CKM_RSA_PKCS).unwrap().flags;
        assert_ne!(flags & CKF_ENCRYPT, 0);
        if cfg!(feature = "aws-lc") {
            assert_eq!(&decrypt(&m, &sk, &ct).unwrap()[..], b"key");
            assert_ne!(flags & CKF_DECRYPT, 0);
        } else {
            assert!(matches!(
                decrypt_init(&m, &sk),
                Err(Error::MechanismInvalid(CKM_RSA_PKCS))
            ));
            assert!(matches!(
                unwrap(&m, &sk, &ct),
                Err(Error::MechanismInvalid(CKM_RSA_PKCS))
            ));
            assert_eq!(flags & (CKF_DECRYPT | CKF_UNWRAP), 0);
        }
    });
    with_pkcs1_decrypt(true, || {
        let flags = mechanism_info(CKM_RSA_PKCS).unwrap().flags;
        assert_ne!(flags & CKF_DECRYPT, 0);
        assert_ne!(flags & CKF_UNWRAP, 0);
    });
}

#[test]
fn rsa_encryption_pkcs1_and_oaep() {
    with_pkcs1_decrypt(true, rsa_encryption_pkcs1_and_oaep_on)
}

fn rsa_encryption_pkcs1_and_oaep_on() {
    let (sk, pk) = rsa_keys();
    let msg = b"a 32 byte session key..........";
    let m = Mechanism::new(CKM_RSA_PKCS);
    let ct = encrypt(&m, &pk, msg).unwrap();
    assert_eq!(ct.len(), 256);
    assert_eq!(decrypt_init(&m, &sk).unwrap().max_output_len(256), 256);
    assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
    let mut bad = ct.clone();
    bad[100] ^= 1;
    assert!(matches!(
        decrypt(&m, &sk, &bad),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        decrypt(&m, &sk, &ct[1..]),
        Err(Error::EncryptedDataLenRange)
    ));
    assert!(matches!(
        encrypt(&m, &pk, &[0; 246]),
        Err(Error::DataLenRange)
    ));
    assert!(matches!(
        decrypt_init(&m, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    for (hash, mgf, alg) in HASHES {
        for (mgf2, label) in [(mgf, &b""[..]), (CKG_MGF1_SHA1, &b"label"[..])] {
            let m = mech(
                CKM_RSA_PKCS_OAEP,
                MechParam::Oaep {
                    hash,
                    mgf: mgf2,
                    source: label.to_vec(),
                },
            );
            let ct = encrypt(&m, &pk, msg).unwrap();
            assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
            let mut bad = ct.clone();
            bad[5] ^= 1;
            assert!(matches!(
                decrypt(&m, &sk, &bad),
                Err(Error::EncryptedDataInvalid)
            ));
            let max = 256 - 2 * alg.output_len() - 2;
            encrypt(&m, &pk, &vec![1; max]).unwrap();
            assert!(matches!(
                encrypt(&m, &pk, &vec![1; max + 1]),
                Err(Error::DataLenRange)
            ));
        }
    }
    // Wrong label does not decrypt.
    let with = |label: &[u8]| {
        mech(
            CKM_RSA_PKCS_OAEP,
            MechParam::Oaep {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: label.to_vec(),
            },
        )
    };
    let ct = encrypt(&with(b"a"), &pk, msg).unwrap();
    assert!(matches!(
        decrypt(&with(b"b"), &sk, &ct),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        encrypt_init(&Mechanism::new(CKM_RSA_PKCS_OAEP), &pk),
        Err(Error::MechanismParamInvalid(_))
    ));
}

#[test]
fn rsa_key_from_attributes_without_primes() {
    let (pa, sa) = rsa();
    let mut bare = Attributes::new();
    for t in [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
    ] {
        bare.set(t, sa.get(t).unwrap().to_vec());
    }
    let sk = Key::from_attributes(&bare).unwrap();
    let pk = Key::from_attributes(pa).unwrap();
    let m = Mechanism::new(CKM_SHA256_RSA_PKCS);
    verify(&m, &pk, b"x", &sign(&m, &sk, b"x").unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// Wrap / unwrap of private and secret keys
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Cross-checks with the openssl command line tool
// ---------------------------------------------------------------------------

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed")
}

fn write_pub_pem(dir: &Path, attrs: &Attributes) {
    let der = public_key_spki(attrs).unwrap();
    let pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &der).unwrap();
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
}

fn assert_ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_verifies_rsa_pkcs1_and_pss_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, _) = rsa();
    let (sk, _) = rsa_keys();
    write_pub_pem(d, pa);
    let data = b"signed by vtoken";
    std::fs::write(d.join("data"), data).unwrap();

    let sig = sign(&Mechanism::new(CKM_SHA256_RSA_PKCS), &sk, data).unwrap();
    std::fs::write(d.join("sig"), &sig).unwrap();
    let args = [
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig",
        "data",
    ];
    assert_ok(openssl(&args, d), "PKCS#1 v1.5");
    // A tampered signature is rejected by openssl too (the check is real).
    let mut bad = sig.clone();
    bad[0] ^= 1;
    std::fs::write(d.join("sig"), &bad).unwrap();
    assert!(!openssl(&args, d).status.success());

    let pss_m = mech(
        CKM_SHA256_RSA_PKCS_PSS,
        pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
    );
    std::fs::write(d.join("sig"), sign(&pss_m, &sk, data).unwrap()).unwrap();
    assert_ok(
        openssl(
            &[
                "dgst",
                "-sha256",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
                "data",
            ],
            d,
        ),
        "hashed PSS",
    );

    // Raw PSS over a SHA-384 hash with MGF1-SHA1 and a 20-byte salt.
    let mhash = HashAlg::Sha384.digest(&[data]);
    std::fs::write(d.join("hash"), &mhash).unwrap();
    let raw = mech(CKM_RSA_PKCS_PSS, pss(CKM_SHA384, CKG_MGF1_SHA1, 20));
    std::fs::write(d.join("sig"), sign(&raw, &sk, &mhash).unwrap()).unwrap();
    assert_ok(
        openssl(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "hash",
                "-sigfile",
                "sig",
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "digest:sha384",
                "-pkeyopt",
                "rsa_mgf1_md:sha1",
                "-pkeyopt",
                "rsa_pss_saltlen:20",
            ],
            d,
        ),
        "raw PSS",
    );
}

#[test]
fn openssl_oaep_sha256_ciphertext_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pa, _) = rsa();
    let (sk, _) = rsa_keys();
    write_pub_pem(d, pa);
    let msg = b"secret from openssl";
    std::fs::write(d.join("msg"), msg).unwrap();
    assert_ok(
        openssl(
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "msg",
                "-out",
                "ct",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ],
            d,
        ),
        "openssl OAEP encrypt",
    );
    let ct = std::fs::read(d.join("ct")).unwrap();
    let m = mech(
        CKM_RSA_PKCS_OAEP,
        MechParam::Oaep {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: vec![],
        },
    );
    assert_eq!(decrypt(&m, &sk, &ct).unwrap(), msg);
    // With the wrong hash the same ciphertext is rejected.
    let m1 = mech(
        CKM_RSA_PKCS_OAEP,
        MechParam::Oaep {
            hash: CKM_SHA_1,
            mgf: CKG_MGF1_SHA1,
            source: vec![],
        },
    );
    assert!(matches!(
        decrypt(&m1, &sk, &ct),
        Err(Error::EncryptedDataInvalid)
    ));
}

/// `r || s` to the DER `ECDSA-Sig-Value` openssl expects.
fn ecdsa_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |v: &[u8]| {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut body = if v[0] & 0x80 != 0 { vec![0] } else { vec![] };
        body.extend_from_slice(v);
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

#[test]
fn openssl_verifies_ecdsa_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (curve, ty, md) in [
        (Curve::P256, CKM_ECDSA_SHA256, "-sha256"),
        (Curve::P384, CKM_ECDSA_SHA384, "-sha384"),
    ] {
        let (sk, _, pa) = ec_key(curve);
        write_pub_pem(d, &pa);
        let data = b"ecdsa data";
        std::fs::write(d.join("data"), data).unwrap();
        let sig = sign(&Mechanism::new(ty), &sk, data).unwrap();
        std::fs::write(d.join("sig"), ecdsa_der(&sig)).unwrap();
        let args = [
            "dgst",
            md,
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "data",
        ];
        assert_ok(openssl(&args, d), "hashed ECDSA");
        let mut bad = sig.clone();
        bad[5] ^= 1;
        std::fs::write(d.join("sig"), ecdsa_der(&bad)).unwrap();
        assert!(!openssl(&args, d).status.success());

        // Raw ECDSA over a SHA-256 hash.
        let hash = sha256(data);
        std::fs::write(d.join("hash"), &hash).unwrap();
        let sig = sign(&Mechanism::new(CKM_ECDSA), &sk, &hash).unwrap();
        std::fs::write(d.join("sig"), ecdsa_der(&sig)).unwrap();
        assert_ok(
            openssl(
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "hash", "-sigfile",
                    "sig",
                ],
                d,
            ),
            "raw ECDSA",
        );
    }
}
