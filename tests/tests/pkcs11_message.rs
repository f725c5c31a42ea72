//! The PKCS#11 3.0 message-based API through the real module: AES-GCM messages
//! (the NIST vector, AAD, multi-part, generated IVs), the attacks it must stop (an
//! IV used twice under one key, a forged tag), and message signatures (HMAC) equal
//! to `C_Sign`'s, called through the 3.0 entry points themselves.

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::aead::{GcmMessageParams, GeneratorFunction};
use cryptoki::mechanism::{Mechanism, MessageParam};
use cryptoki::object::{Attribute, KeyType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use pkcs11_common::*;

fn gcm_key(s: &Session, value: &[u8]) -> ObjectHandle {
    secret_key(
        s,
        KeyType::AES,
        value,
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    )
}

/// Encrypts one message; returns (ciphertext, tag, the IV as the token left it).
fn seal(
    s: &Session,
    iv: &mut [u8],
    fixed_bits: u64,
    gen: GeneratorFunction,
    aad: &[u8],
    data: &[u8],
) -> cryptoki::error::Result<(Vec<u8>, Vec<u8>)> {
    let mut tag = [0u8; 16];
    let p = GcmMessageParams::new(iv, fixed_bits.into(), gen, &mut tag)?;
    let ct = s.encrypt_message(&MessageParam::AesGcmMessage(p), aad, data)?;
    Ok((ct, tag.to_vec()))
}

fn open(
    s: &Session,
    iv: &mut [u8],
    tag: &mut [u8],
    aad: &[u8],
    ct: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    let p = GcmMessageParams::new(iv, 0.into(), GeneratorFunction::NoGenerate, tag)?;
    s.decrypt_message(&MessageParam::AesGcmMessage(p), aad, ct)
}

#[test]
fn gcm_messages_match_the_nist_vector_and_single_part_gcm() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    // NIST GCM test case 2: zero key, zero IV, one zero block.
    let key = gcm_key(&s, &[0; 16]);
    s.message_encrypt_init(
        &Mechanism::AesGcm(
            cryptoki::mechanism::aead::GcmParams::new(&mut [0; 12], &[], 128.into()).unwrap(),
        ),
        key,
    )
    .unwrap_or_else(|_| panic!("C_MessageEncryptInit"));
    let mut iv = [0u8; 12];
    let (ct, tag) = seal(&s, &mut iv, 0, GeneratorFunction::NoGenerate, &[], &[0; 16]).unwrap();
    assert_eq!(hex::encode(&ct), "0388dace60b6a392f328c2b971b2fe78");
    assert_eq!(hex::encode(&tag), "ab6e47d42cec13bdf53a67b21257bddf");
    // With AAD, the same bytes as single-part C_Encrypt with CK_GCM_PARAMS.
    let (aad, msg) = (b"header".to_vec(), b"a message of some length".to_vec());
    let mut iv2 = [7u8; 12];
    let (ct2, tag2) = seal(&s, &mut iv2, 0, GeneratorFunction::NoGenerate, &aad, &msg).unwrap();
    let mut iv_single = [7u8; 12];
    let single = s
        .encrypt(
            &Mechanism::AesGcm(
                cryptoki::mechanism::aead::GcmParams::new(&mut iv_single, &aad, 128.into())
                    .unwrap(),
            ),
            key,
            &msg,
        )
        .unwrap();
    assert_eq!([ct2.clone(), tag2.clone()].concat(), single);
    s.message_encrypt_final().unwrap();
    // Decryption in a message context of its own.
    s.message_decrypt_init(
        &Mechanism::AesGcm(
            cryptoki::mechanism::aead::GcmParams::new(&mut [0; 12], &[], 128.into()).unwrap(),
        ),
        key,
    )
    .unwrap();
    let mut t = tag2.clone();
    assert_eq!(open(&s, &mut [7u8; 12], &mut t, &aad, &ct2).unwrap(), msg);
    // A forged tag or changed AAD is refused, and the context goes on.
    let mut forged = tag2.clone();
    forged[0] ^= 1;
    assert_eq!(
        rv(open(&s, &mut [7u8; 12], &mut forged, &aad, &ct2)),
        RvError::EncryptedDataInvalid
    );
    let mut t = tag2.clone();
    assert_eq!(
        rv(open(&s, &mut [7u8; 12], &mut t, b"other", &ct2)),
        RvError::EncryptedDataInvalid
    );
    let mut t = tag2.clone();
    assert_eq!(open(&s, &mut [7u8; 12], &mut t, &aad, &ct2).unwrap(), msg);
    s.message_decrypt_final().unwrap();
    // Ended: no more messages, and a second final is refused too.
    assert_eq!(
        rv(s.message_decrypt_final()),
        RvError::OperationNotInitialized
    );
    let mut t = tag2;
    assert_eq!(
        rv(open(&s, &mut [7u8; 12], &mut t, &aad, &ct2)),
        RvError::OperationNotInitialized
    );
}

/// The init's mechanism: `CKM_AES_GCM` with a `CK_GCM_MESSAGE_PARAMS`, as clients
/// send it (the token takes the parameters of each message instead).
fn gcm_init() -> Mechanism<'static> {
    let iv: &'static mut [u8] = Box::leak(Box::new([0u8; 12]));
    let tag: &'static mut [u8] = Box::leak(Box::new([0u8; 16]));
    Mechanism::AesGcmMessage(
        GcmMessageParams::new(iv, 96.into(), GeneratorFunction::NoGenerate, tag).unwrap(),
    )
}

/// Two messages under one key and one IV give away GCM's authentication key (and
/// the XOR of the plaintexts): within a context the token refuses the second.
#[test]
fn an_iv_is_never_used_twice_in_a_context_and_generated_ivs_differ() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let key = gcm_key(&s, &[3; 32]);
    s.message_encrypt_init(&gcm_init(), key).unwrap();
    seal(
        &s,
        &mut [1u8; 12],
        0,
        GeneratorFunction::NoGenerate,
        &[],
        b"one",
    )
    .unwrap();
    assert_eq!(
        rv(seal(
            &s,
            &mut [1u8; 12],
            0,
            GeneratorFunction::NoGenerate,
            &[],
            b"two"
        )),
        RvError::MechanismParamInvalid
    );
    // Generated IVs: the fixed part kept, the rest the token's, never repeated.
    let mut seen = std::collections::HashSet::new();
    for gen in [
        GeneratorFunction::GenerateCounter,
        GeneratorFunction::GenerateRandom,
        GeneratorFunction::Generate,
    ] {
        for _ in 0..3 {
            let mut iv = [0xAAu8; 12];
            let (ct, tag) = seal(&s, &mut iv, 32, gen, b"a", b"secret").unwrap();
            assert_eq!(&iv[..4], &[0xAA; 4], "the fixed bits stay");
            assert!(seen.insert(iv), "an IV came twice: {iv:?}");
            // The IV the token chose opens the message.
            s.message_decrypt_init(&gcm_init(), key).unwrap();
            let mut t = tag.clone();
            assert_eq!(open(&s, &mut iv, &mut t, b"a", &ct).unwrap(), b"secret");
            s.message_decrypt_final().unwrap();
        }
    }
    s.message_encrypt_final().unwrap();
}

#[test]
fn multi_part_messages() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let key = gcm_key(&s, &[5; 16]);
    let msg: Vec<u8> = (0..100u8).collect();
    s.message_encrypt_init(&gcm_init(), key).unwrap();
    let (whole, whole_tag) = seal(
        &s,
        &mut [9u8; 12],
        0,
        GeneratorFunction::NoGenerate,
        b"ad",
        &msg,
    )
    .unwrap();
    s.message_encrypt_final().unwrap();
    s.message_encrypt_init(&gcm_init(), key).unwrap();
    let (mut iv, mut tag) = ([9u8; 12], [0u8; 16]);
    let p =
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap();
    s.encrypt_message_begin(MessageParam::AesGcmMessage(p), b"ad")
        .unwrap();
    let mut ct = s
        .encrypt_message_next(MessageParam::AesGcmMessage(p), &msg[..40], false)
        .unwrap();
    ct.extend(
        s.encrypt_message_next(MessageParam::AesGcmMessage(p), &msg[40..], true)
            .unwrap(),
    );
    assert_eq!(ct, whole);
    assert_eq!(tag.to_vec(), whole_tag);
    s.message_encrypt_final().unwrap();
    // Decrypt in parts too; a bad tag at the end gives nothing.
    s.message_decrypt_init(&gcm_init(), key).unwrap();
    for (t, ok) in [
        (whole_tag.clone(), true),
        ([&[0u8][..], &whole_tag[1..]].concat(), false),
    ] {
        let (mut iv, mut tag) = ([9u8; 12], [0u8; 16]);
        tag.copy_from_slice(&t);
        let p = GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
            .unwrap();
        s.decrypt_message_begin(MessageParam::AesGcmMessage(p), b"ad")
            .unwrap();
        let mut pt = s
            .decrypt_message_next(MessageParam::AesGcmMessage(p), &whole[..70], false)
            .unwrap();
        let last = s.decrypt_message_next(MessageParam::AesGcmMessage(p), &whole[70..], true);
        if ok {
            pt.extend(last.unwrap());
            assert_eq!(pt, msg);
        } else {
            assert_eq!(rv(last), RvError::EncryptedDataInvalid);
            assert!(pt.is_empty());
        }
    }
    s.message_decrypt_final().unwrap();
}

type SignMessageFn = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut std::ffi::c_void,
    CK_ULONG,
    *mut u8,
    CK_ULONG,
    *mut u8,
    *mut CK_ULONG,
) -> CK_RV;
type VerifyMessageFn = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut std::ffi::c_void,
    CK_ULONG,
    *mut u8,
    CK_ULONG,
    *mut u8,
    CK_ULONG,
) -> CK_RV;
type InitFn = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE) -> CK_RV;
type BeginFn = unsafe extern "C" fn(CK_SESSION_HANDLE, *mut std::ffi::c_void, CK_ULONG) -> CK_RV;
type FinalFn = unsafe extern "C" fn(CK_SESSION_HANDLE) -> CK_RV;

fn sym<T>(name: &str) -> T {
    let p = dlsym(name);
    // SAFETY: the module exports `name` with the PKCS#11 3.0 signature `T`.
    unsafe { std::mem::transmute_copy(&p) }
}

/// Message signatures through `C_MessageSignInit`/`C_SignMessage`/… (cryptoki has no
/// wrapper for them): HMAC-SHA-256 over each message equals `C_Sign`; parts equal
/// the whole; a wrong MAC fails verification.
#[test]
fn message_signatures_equal_single_part_ones() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let key = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &[0x0b; 32],
        &[Attribute::Sign(true), Attribute::Verify(true)],
    );
    let h = s.handle();
    let expect = s.sign(&Mechanism::Sha256Hmac, key, b"hello world").unwrap();
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256_HMAC,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let null = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            sym::<InitFn>("C_MessageSignInit")(h, &mut m, key.handle()),
            CKR_OK
        );
        let mut sig = [0u8; 64];
        let mut len: CK_ULONG = 0;
        let mut data = *b"hello world";
        // Length query, then the signature.
        assert_eq!(
            sym::<SignMessageFn>("C_SignMessage")(
                h,
                null,
                0,
                data.as_mut_ptr(),
                11,
                null as *mut u8,
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 32);
        assert_eq!(
            sym::<SignMessageFn>("C_SignMessage")(
                h,
                null,
                0,
                data.as_mut_ptr(),
                11,
                sig.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(&sig[..32], &expect[..]);
        // In parts: a NULL signature length feeds a part.
        assert_eq!(sym::<BeginFn>("C_SignMessageBegin")(h, null, 0), CKR_OK);
        let next: SignMessageFn = sym("C_SignMessageNext");
        assert_eq!(
            next(
                h,
                null,
                0,
                data.as_mut_ptr(),
                5,
                null as *mut u8,
                std::ptr::null_mut()
            ),
            CKR_OK
        );
        let mut len: CK_ULONG = 64;
        let mut sig2 = [0u8; 64];
        assert_eq!(
            next(
                h,
                null,
                0,
                data.as_mut_ptr().add(5),
                6,
                sig2.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(&sig2[..len as usize], &expect[..]);
        assert_eq!(sym::<FinalFn>("C_MessageSignFinal")(h), CKR_OK);
        assert_eq!(
            sym::<FinalFn>("C_MessageSignFinal")(h),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // Verification, and a wrong MAC refused.
        assert_eq!(
            sym::<InitFn>("C_MessageVerifyInit")(h, &mut m, key.handle()),
            CKR_OK
        );
        let verify: VerifyMessageFn = sym("C_VerifyMessage");
        assert_eq!(
            verify(h, null, 0, data.as_mut_ptr(), 11, sig.as_mut_ptr(), 32),
            CKR_OK
        );
        sig[0] ^= 1;
        assert_eq!(
            verify(h, null, 0, data.as_mut_ptr(), 11, sig.as_mut_ptr(), 32),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(sym::<FinalFn>("C_MessageVerifyFinal")(h), CKR_OK);
        // A key without CKA_SIGN cannot start a message signature.
        let enc_only = secret_key(
            &s,
            KeyType::GENERIC_SECRET,
            &[1; 16],
            &[Attribute::Sign(false), Attribute::Verify(true)],
        );
        assert_eq!(
            sym::<InitFn>("C_MessageSignInit")(h, &mut m, enc_only.handle()),
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
    }
}

type EncryptMessageFn = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    *mut std::ffi::c_void,
    CK_ULONG,
    *mut u8,
    CK_ULONG,
    *mut u8,
    CK_ULONG,
    *mut u8,
    *mut CK_ULONG,
) -> CK_RV;

/// ChaCha20-Poly1305 through the raw entry points (cryptoki has no wrapper): the
/// RFC 8439 §2.8.2 vector single-part, the same as a message with its tag in the
/// parameter, a nonce used twice in one message context refused, a forged tag
/// refused.
#[test]
fn chacha20_poly1305_single_part_and_messages() {
    let ctx = Ctx::new();
    let (_slot, s) = ctx.user_session();
    let h = s.handle();
    // cryptoki has no CKK_CHACHA20: the key object through C_CreateObject itself.
    let (mut class, mut kt, mut yes) = (CKO_SECRET_KEY, CKK_CHACHA20, CK_TRUE);
    let mut value =
        hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f").unwrap();
    let attr = |type_, p: *mut std::ffi::c_void, len: usize| CK_ATTRIBUTE {
        type_,
        pValue: p,
        ulValueLen: len as CK_ULONG,
    };
    let ul = std::mem::size_of::<CK_ULONG>();
    let mut tmpl = [
        attr(CKA_CLASS, &mut class as *mut _ as *mut _, ul),
        attr(CKA_KEY_TYPE, &mut kt as *mut _ as *mut _, ul),
        attr(CKA_VALUE, value.as_mut_ptr() as *mut _, 32),
        attr(CKA_ENCRYPT, &mut yes as *mut _ as *mut _, 1),
        attr(CKA_DECRYPT, &mut yes as *mut _ as *mut _, 1),
    ];
    let mut key: CK_OBJECT_HANDLE = 0;
    assert_eq!(
        rawcall!(
            C_CreateObject,
            h,
            tmpl.as_mut_ptr(),
            tmpl.len() as CK_ULONG,
            &mut key
        ),
        CKR_OK
    );
    let mut nonce = hex::decode("070000004041424344454647").unwrap();
    let mut aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
    let mut pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
    let mut params = CK_SALSA20_CHACHA20_POLY1305_PARAMS {
        pNonce: nonce.as_mut_ptr(),
        ulNonceLen: 12,
        pAAD: aad.as_mut_ptr(),
        ulAADLen: aad.len() as CK_ULONG,
    };
    let mut m = CK_MECHANISM {
        mechanism: CKM_CHACHA20_POLY1305,
        pParameter: &mut params as *mut _ as *mut std::ffi::c_void,
        ulParameterLen: std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_PARAMS>() as CK_ULONG,
    };
    assert_eq!(rawcall!(C_EncryptInit, h, &mut m, key), CKR_OK);
    let mut ct = vec![0u8; pt.len() + 16];
    let mut len = ct.len() as CK_ULONG;
    assert_eq!(
        rawcall!(
            C_Encrypt,
            h,
            pt.as_mut_ptr(),
            pt.len() as CK_ULONG,
            ct.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(
        hex::encode(&ct[ct.len() - 16..]),
        "1ae10b594f09e26a7e902ecbd0600691"
    );
    // The message form: ciphertext out, tag into the parameter.
    let mut tag = [0u8; 16];
    let mut mp = CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS {
        pNonce: nonce.as_mut_ptr(),
        ulNonceLen: 12,
        pTag: tag.as_mut_ptr(),
    };
    let mp_len = std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS>() as CK_ULONG;
    let mut init = CK_MECHANISM {
        mechanism: CKM_CHACHA20_POLY1305,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let enc: EncryptMessageFn = sym("C_EncryptMessage");
    let dec: EncryptMessageFn = sym("C_DecryptMessage");
    let pp = &mut mp as *mut _ as *mut std::ffi::c_void;
    unsafe {
        assert_eq!(
            sym::<InitFn>("C_MessageEncryptInit")(h, &mut init, key),
            CKR_OK
        );
        let mut out = vec![0u8; pt.len()];
        let mut olen = out.len() as CK_ULONG;
        let al = aad.len() as CK_ULONG;
        let pl = pt.len() as CK_ULONG;
        assert_eq!(
            enc(
                h,
                pp,
                mp_len,
                aad.as_mut_ptr(),
                al,
                pt.as_mut_ptr(),
                pl,
                out.as_mut_ptr(),
                &mut olen
            ),
            CKR_OK
        );
        assert_eq!(out, ct[..pt.len()]);
        assert_eq!(tag[..], ct[pt.len()..]);
        // The same nonce again in this context: refused (it would leak the key stream).
        let mut olen = out.len() as CK_ULONG;
        assert_eq!(
            enc(
                h,
                pp,
                mp_len,
                aad.as_mut_ptr(),
                al,
                pt.as_mut_ptr(),
                pl,
                out.as_mut_ptr(),
                &mut olen
            ),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(sym::<FinalFn>("C_MessageEncryptFinal")(h), CKR_OK);
        assert_eq!(
            sym::<InitFn>("C_MessageDecryptInit")(h, &mut init, key),
            CKR_OK
        );
        let mut back = vec![0u8; pt.len()];
        let mut blen = back.len() as CK_ULONG;
        assert_eq!(
            dec(
                h,
                pp,
                mp_len,
                aad.as_mut_ptr(),
                al,
                out.as_mut_ptr(),
                pl,
                back.as_mut_ptr(),
                &mut blen
            ),
            CKR_OK
        );
        assert_eq!(back, pt);
        *mp.pTag ^= 1; // through the parameter the token reads
        let mut blen = back.len() as CK_ULONG;
        assert_eq!(
            dec(
                h,
                pp,
                mp_len,
                aad.as_mut_ptr(),
                al,
                out.as_mut_ptr(),
                pl,
                back.as_mut_ptr(),
                &mut blen
            ),
            CKR_ENCRYPTED_DATA_INVALID
        );
        assert_eq!(sym::<FinalFn>("C_MessageDecryptFinal")(h), CKR_OK);
    }
}
