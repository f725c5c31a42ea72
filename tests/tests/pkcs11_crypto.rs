//! PKCS#11 through `cryptoki`: key generation, signatures, ciphers, digests, HMAC,
//! key wrapping, ECDH derivation and the random generator, with their error codes.
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use pkcs11_common::*;

const MSG: &[u8] = b"the quick brown fox jumps over the lazy dog";

fn sha256(s: &Session, data: &[u8]) -> Vec<u8> {
    s.digest(&Mechanism::Sha256, data).unwrap()
}

fn pss() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    }
}

/// Sign `data` in three parts, then verify it in other parts.
fn multipart_sign_verify(s: &Session, m: &Mechanism, private: ObjectHandle, public: ObjectHandle) {
    s.sign_init(m, private).unwrap();
    for part in MSG.chunks(7) {
        s.sign_update(part).unwrap();
    }
    let sig = s.sign_final().unwrap();
    s.verify(m, public, MSG, &sig).unwrap();
    s.verify_init(m, public).unwrap();
    for part in MSG.chunks(11) {
        s.verify_update(part).unwrap();
    }
    s.verify_final(&sig).unwrap();
    // And a single-part signature verifies in parts.
    let sig = s.sign(m, private, MSG).unwrap();
    s.verify_init(m, public).unwrap();
    s.verify_update(&MSG[..5]).unwrap();
    s.verify_update(&MSG[5..]).unwrap();
    s.verify_final(&sig).unwrap();
}

#[test]
fn rsa_signatures() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = rsa_pair(&s, "rsa-sign", false);
    assert_eq!(attr_bytes(&s, public, AttributeType::Modulus).len(), 256);
    assert_eq!(
        attr_bytes(&s, public, AttributeType::PublicExponent),
        vec![1, 0, 1]
    );

    let m = Mechanism::Sha256RsaPkcs;
    let sig = s.sign(&m, private, MSG).unwrap();
    assert_eq!(sig.len(), 256);
    s.verify(&m, public, MSG, &sig).unwrap();
    assert_eq!(
        sig,
        s.sign(&m, private, MSG).unwrap(),
        "PKCS#1 v1.5 is deterministic"
    );
    let mut bad = sig.clone();
    bad[100] ^= 1;
    assert_eq!(
        rv(s.verify(&m, public, MSG, &bad)),
        RvError::SignatureInvalid
    );
    assert_eq!(
        rv(s.verify(&m, public, b"other", &sig)),
        RvError::SignatureInvalid
    );
    let short = rv(s.verify(&m, public, MSG, &sig[..255]));
    assert!(
        matches!(
            short,
            RvError::SignatureLenRange | RvError::SignatureInvalid
        ),
        "short RSA signature: {short:?}"
    );
    multipart_sign_verify(&s, &m, private, public);

    // Raw PSS over a SHA-256 hash and SHA256-RSA-PSS over the message agree.
    let raw_pss = Mechanism::RsaPkcsPss(pss());
    let hashed_pss = Mechanism::Sha256RsaPkcsPss(pss());
    let hash = sha256(&s, MSG);
    let sig = s.sign(&raw_pss, private, &hash).unwrap();
    assert_eq!(sig.len(), 256);
    s.verify(&raw_pss, public, &hash, &sig).unwrap();
    s.verify(&hashed_pss, public, MSG, &sig).unwrap();
    let sig2 = s.sign(&hashed_pss, private, MSG).unwrap();
    assert_ne!(sig, sig2, "PSS is randomized");
    s.verify(&raw_pss, public, &hash, &sig2).unwrap();
    let mut bad = sig2.clone();
    bad[0] ^= 0x40;
    assert_eq!(
        rv(s.verify(&hashed_pss, public, MSG, &bad)),
        RvError::SignatureInvalid
    );
    multipart_sign_verify(&s, &hashed_pss, private, public);
}

#[test]
fn ecdsa_signatures_p256_p384_and_p521() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    for (curve, len) in [(P256, 64usize), (P384, 96), (P521, 132)] {
        let (public, private) = ec_pair(&s, curve, "ec", false);
        let point = unwrap_octet_string(&attr_bytes(&s, public, AttributeType::EcPoint));
        assert_eq!(point.len(), 1 + len, "uncompressed point");
        let attrs = s
            .get_attributes(public, &[AttributeType::EcParams])
            .unwrap();
        assert_eq!(attrs, vec![Attribute::EcParams(curve.to_vec())]);

        let m = Mechanism::EcdsaSha256;
        let sig = s.sign(&m, private, MSG).unwrap();
        assert_eq!(sig.len(), len, "r || s");
        s.verify(&m, public, MSG, &sig).unwrap();
        // Raw ECDSA over the SHA-256 hash verifies the same signature.
        let hash = sha256(&s, MSG);
        s.verify(&Mechanism::Ecdsa, public, &hash, &sig).unwrap();
        let raw_sig = s.sign(&Mechanism::Ecdsa, private, &hash).unwrap();
        s.verify(&m, public, MSG, &raw_sig).unwrap();

        let mut bad = sig.clone();
        bad[len / 2 + 3] ^= 1;
        assert_eq!(
            rv(s.verify(&m, public, MSG, &bad)),
            RvError::SignatureInvalid
        );
        let wrong_len = rv(s.verify(&m, public, MSG, &sig[..len - 1]));
        assert!(
            matches!(
                wrong_len,
                RvError::SignatureLenRange | RvError::SignatureInvalid
            ),
            "ECDSA signature of the wrong length: {wrong_len:?}"
        );
        multipart_sign_verify(&s, &m, private, public);
    }
}

#[test]
fn sign_length_protocol_raw() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "len", false);
    let h = s.handle();
    let mut mech = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut hash = sha256(&s, MSG);
    let hlen = hash.len() as CK_ULONG;
    assert_eq!(rawcall!(C_SignInit, h, &mut mech, private.handle()), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        rawcall!(
            C_Sign,
            h,
            hash.as_mut_ptr(),
            hlen,
            std::ptr::null_mut(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(len, 64);
    let mut sig = vec![0u8; 64];
    let mut short: CK_ULONG = 10;
    assert_eq!(
        rawcall!(
            C_Sign,
            h,
            hash.as_mut_ptr(),
            hlen,
            sig.as_mut_ptr(),
            &mut short
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 64, "CKR_BUFFER_TOO_SMALL reports the needed length");
    assert_eq!(
        rawcall!(
            C_Sign,
            h,
            hash.as_mut_ptr(),
            hlen,
            sig.as_mut_ptr(),
            &mut len
        ),
        CKR_OK,
        "the operation stays active after CKR_BUFFER_TOO_SMALL"
    );
    assert_eq!(len, 64);
    s.verify(&Mechanism::Ecdsa, public, &hash, &sig).unwrap();
    assert_eq!(
        rawcall!(
            C_Sign,
            h,
            hash.as_mut_ptr(),
            hlen,
            sig.as_mut_ptr(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED,
        "a successful C_Sign ends the operation"
    );
    // Multi-part: C_SignFinal follows the same protocol.
    assert_eq!(rawcall!(C_SignInit, h, &mut mech, private.handle()), CKR_OK);
    assert_eq!(rawcall!(C_SignUpdate, h, hash.as_mut_ptr(), hlen), CKR_OK);
    let mut len: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_SignFinal, h, std::ptr::null_mut(), &mut len),
        CKR_OK
    );
    assert_eq!(len, 64);
    let mut short: CK_ULONG = 1;
    assert_eq!(
        rawcall!(C_SignFinal, h, sig.as_mut_ptr(), &mut short),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(rawcall!(C_SignFinal, h, sig.as_mut_ptr(), &mut len), CKR_OK);
    s.verify(&Mechanism::Ecdsa, public, &hash, &sig).unwrap();
}

#[test]
fn sign_operation_errors() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "errs", false);
    assert_eq!(rv(s.sign_update(MSG)), RvError::OperationNotInitialized);
    assert_eq!(rv(s.sign_final()), RvError::OperationNotInitialized);
    assert_eq!(rv(s.verify_update(MSG)), RvError::OperationNotInitialized);
    let mut out = [0u8; 64];
    let mut len: CK_ULONG = 64;
    let mut data = MSG.to_vec();
    assert_eq!(
        rawcall!(
            C_Sign,
            s.handle(),
            data.as_mut_ptr(),
            data.len() as CK_ULONG,
            out.as_mut_ptr(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
    s.sign_init(&Mechanism::EcdsaSha256, private).unwrap();
    assert_eq!(
        rv(s.sign_init(&Mechanism::EcdsaSha256, private)),
        RvError::OperationActive
    );
    s.sign_update(MSG).unwrap();
    s.sign_final().unwrap();

    let no_sign = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sign(false),
            ],
        )
        .unwrap()
        .1;
    assert_eq!(
        rv(s.sign(&Mechanism::EcdsaSha256, no_sign, MSG)),
        RvError::KeyFunctionNotPermitted
    );
    let aes = aes_key(&s, &[Attribute::Sign(true)]);
    assert_eq!(
        rv(s.sign_init(&Mechanism::Ecdsa, aes)),
        RvError::KeyTypeInconsistent
    );
    // A public key cannot sign; RSA mechanisms do not take EC keys.
    assert!(s.sign_init(&Mechanism::Ecdsa, public).is_err());
    assert_eq!(
        rv(s.sign_init(&Mechanism::Sha256RsaPkcs, private)),
        RvError::KeyTypeInconsistent
    );
    let bad = unsafe { ObjectHandle::new_from_raw(0x7777_7777) };
    assert_eq!(
        rv(s.sign_init(&Mechanism::Ecdsa, bad)),
        RvError::KeyHandleInvalid
    );
}

#[test]
fn aes_cbc_pad_and_ecb() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = aes_key(&s, &[]);
    let iv = [0x42u8; 16];
    let m = Mechanism::AesCbcPad(iv);
    let plain: Vec<u8> = (0..37u8).collect();
    let ct = s.encrypt(&m, key, &plain).unwrap();
    assert_eq!(ct.len(), 48);
    assert_eq!(s.decrypt(&m, key, &ct).unwrap(), plain);
    // Multi-part encryption gives the same ciphertext.
    s.encrypt_init(&m, key).unwrap();
    let mut parts = Vec::new();
    for chunk in plain.chunks(10) {
        parts.extend(s.encrypt_update(chunk).unwrap());
    }
    parts.extend(s.encrypt_final().unwrap());
    assert_eq!(parts, ct);
    s.decrypt_init(&m, key).unwrap();
    let mut back = Vec::new();
    for chunk in ct.chunks(13) {
        back.extend(s.decrypt_update(chunk).unwrap());
    }
    back.extend(s.decrypt_final().unwrap());
    assert_eq!(back, plain);
    assert_eq!(rv(s.encrypt_update(b"x")), RvError::OperationNotInitialized);
    // Bad padding.
    let mut bad = ct.clone();
    bad[47] ^= 0xff;
    let r = rv(s.decrypt(&m, key, &bad));
    assert!(
        matches!(
            r,
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange
        ),
        "bad CBC padding: {r:?}"
    );
    assert_eq!(
        rv(s.decrypt(&m, key, &ct[..47])),
        RvError::EncryptedDataLenRange
    );

    // FIPS-197 C.3 (AES-256).
    let fips_key: Vec<u8> = (0u8..32).collect();
    let k = secret_key(
        &s,
        KeyType::AES,
        &fips_key,
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    );
    let pt = hex::decode("00112233445566778899aabbccddeeff").unwrap();
    let ct = s.encrypt(&Mechanism::AesEcb, k, &pt).unwrap();
    assert_eq!(hex::encode(&ct), "8ea2b7ca516745bfeafc49904b496089");
    assert_eq!(s.decrypt(&Mechanism::AesEcb, k, &ct).unwrap(), pt);
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesEcb, k, &pt[..15])),
        RvError::DataLenRange
    );
}

#[test]
fn aes_gcm_with_aad() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = aes_key(&s, &[]);
    let aad = b"header";
    let plain = b"attack at dawn, bring snacks".to_vec();
    let mut iv = [7u8; 12];
    let ct = {
        let p = GcmParams::new(&mut iv, aad, 128.into()).unwrap();
        s.encrypt(&Mechanism::AesGcm(p), key, &plain).unwrap()
    };
    assert_eq!(ct.len(), plain.len() + 16);
    let dec = |data: &[u8], aad: &[u8]| {
        let mut iv = [7u8; 12];
        let p = GcmParams::new(&mut iv, aad, 128.into()).unwrap();
        s.decrypt(&Mechanism::AesGcm(p), key, data)
    };
    assert_eq!(dec(&ct, aad).unwrap(), plain);
    let mut tampered = ct.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(rv(dec(&tampered, aad)), RvError::EncryptedDataInvalid);
    assert_eq!(rv(dec(&ct, b"other header")), RvError::EncryptedDataInvalid);
}

#[test]
fn rsa_oaep_and_pkcs_encryption() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = rsa_pair(&s, "rsa-enc", false);
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let secret = b"a 32 byte secret for the oaep ok".to_vec();
    let ct = s.encrypt(&oaep, public, &secret).unwrap();
    assert_eq!(ct.len(), 256);
    assert_ne!(
        ct,
        s.encrypt(&oaep, public, &secret).unwrap(),
        "OAEP is randomized"
    );
    assert_eq!(s.decrypt(&oaep, private, &ct).unwrap(), secret);
    let mut bad = ct.clone();
    bad[5] ^= 1;
    assert_eq!(
        rv(s.decrypt(&oaep, private, &bad)),
        RvError::EncryptedDataInvalid
    );
    let ct = s.encrypt(&Mechanism::RsaPkcs, public, &secret).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(),
        secret
    );
    assert_eq!(
        rv(s.encrypt(&oaep, public, &[0u8; 200])),
        RvError::DataLenRange
    );
}

#[test]
fn sha256_digest() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(hex::encode(sha256(&s, b"abc")), abc);
    s.digest_init(&Mechanism::Sha256).unwrap();
    s.digest_update(b"a").unwrap();
    s.digest_update(b"").unwrap();
    s.digest_update(b"bc").unwrap();
    assert_eq!(hex::encode(s.digest_final().unwrap()), abc);
    assert_eq!(rv(s.digest_update(b"x")), RvError::OperationNotInitialized);
    s.digest_init(&Mechanism::Sha256).unwrap();
    assert_eq!(
        rv(s.digest_init(&Mechanism::Sha256)),
        RvError::OperationActive
    );
    // Raw length protocol.
    let h = s.handle();
    let mut data = b"abc".to_vec();
    let mut len: CK_ULONG = 0;
    assert_eq!(
        rawcall!(
            C_Digest,
            h,
            data.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(len, 32);
    let mut out = [0u8; 32];
    let mut short: CK_ULONG = 31;
    assert_eq!(
        rawcall!(
            C_Digest,
            h,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut short
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, 32);
    assert_eq!(
        rawcall!(
            C_Digest,
            h,
            data.as_mut_ptr(),
            3,
            out.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(hex::encode(out), abc);
    let mut mech = CK_MECHANISM {
        mechanism: CKM_SHA256_HMAC,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(rawcall!(C_DigestInit, h, &mut mech), CKR_MECHANISM_INVALID);
}

#[test]
fn digest_key() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let value = b"0123456789abcdef0123456789abcdef".to_vec();
    let key = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &value,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    s.digest_init(&Mechanism::Sha256).unwrap();
    s.digest_update(b"prefix").unwrap();
    s.digest_key(key).unwrap();
    let got = s.digest_final().unwrap();
    let mut expected_input = b"prefix".to_vec();
    expected_input.extend_from_slice(&value);
    assert_eq!(got, sha256(&s, &expected_input));
    assert_eq!(rv(s.digest_key(key)), RvError::OperationNotInitialized);
}

#[test]
fn hmac_sha256_rfc4231_case_2() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        b"Jefe",
        &[Attribute::Sign(true), Attribute::Verify(true)],
    );
    let data = b"what do ya want for nothing?";
    let mac = s.sign(&Mechanism::Sha256Hmac, key, data).unwrap();
    assert_eq!(
        hex::encode(&mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    s.verify(&Mechanism::Sha256Hmac, key, data, &mac).unwrap();
    let mut bad = mac.clone();
    bad[0] ^= 1;
    assert_eq!(
        rv(s.verify(&Mechanism::Sha256Hmac, key, data, &bad)),
        RvError::SignatureInvalid
    );
    // Multi-part gives the same MAC.
    s.sign_init(&Mechanism::Sha256Hmac, key).unwrap();
    s.sign_update(&data[..10]).unwrap();
    s.sign_update(&data[10..]).unwrap();
    assert_eq!(s.sign_final().unwrap(), mac);
}

#[test]
fn wrap_and_unwrap_with_aes_key_wrap_pad() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    // A wrap-only key: strict wrapping refuses a key that could also decrypt the
    // blob of a sensitive key.
    let kek = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Decrypt(false),
            ],
        )
        .expect("AES key");
    let value: Vec<u8> = (100u8..132).collect();
    let target = secret_key(
        &s,
        KeyType::AES,
        &value,
        &[
            Attribute::Extractable(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
        ],
    );
    let m = Mechanism::AesKeyWrapPad;
    let wrapped = s.wrap_key(&m, kek, target).unwrap();
    assert_eq!(wrapped.len(), 40, "32-byte key + 8-byte KWP header");
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Decrypt(true),
    ];
    let unwrapped = s.unwrap_key(&m, kek, &wrapped, &template).unwrap();
    assert_eq!(attr_bytes(&s, unwrapped, AttributeType::Value), value);
    let ct = s.encrypt(&Mechanism::AesEcb, target, &[5u8; 16]).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::AesEcb, unwrapped, &ct).unwrap(),
        vec![5u8; 16]
    );

    let mut bad = wrapped.clone();
    bad[20] ^= 1;
    assert_eq!(
        rv(s.unwrap_key(&m, kek, &bad, &template)),
        RvError::WrappedKeyInvalid
    );
    let locked = aes_key(&s, &[Attribute::Extractable(false)]);
    assert_eq!(rv(s.wrap_key(&m, kek, locked)), RvError::KeyUnextractable);
    let no_wrap = aes_key(&s, &[Attribute::Wrap(false)]);
    assert_eq!(
        rv(s.wrap_key(&m, no_wrap, target)),
        RvError::KeyFunctionNotPermitted
    );
}

#[test]
fn ecdh_derive_gives_equal_secrets() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (pub_a, priv_a) = ec_pair(&s, P256, "a", false);
    let (pub_b, priv_b) = ec_pair(&s, P256, "b", false);
    let point_a = unwrap_octet_string(&attr_bytes(&s, pub_a, AttributeType::EcPoint));
    let point_b = unwrap_octet_string(&attr_bytes(&s, pub_b, AttributeType::EcPoint));
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let derive = |private: ObjectHandle, peer: &[u8]| {
        let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), peer));
        s.derive_key(&m, private, &template)
    };
    let ab = derive(priv_a, &point_b).unwrap();
    let ba = derive(priv_b, &point_a).unwrap();
    let secret = attr_bytes(&s, ab, AttributeType::Value);
    assert_eq!(secret.len(), 32);
    assert_eq!(secret, attr_bytes(&s, ba, AttributeType::Value));
    // A point that is not on the curve.
    let mut off_curve = point_b.clone();
    off_curve[40] ^= 1;
    assert!(derive(priv_a, &off_curve).is_err());
}

#[test]
fn random_generation() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let a = s.generate_random_vec(32).unwrap();
    let b = s.generate_random_vec(32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    let mut big = vec![0u8; 4096];
    s.generate_random_slice(&mut big).unwrap();
    assert!(big.iter().any(|&x| x != 0));
    match s.seed_random(b"some seed") {
        Ok(()) => {}
        Err(e) => assert_eq!(rv::<()>(Err(e)), RvError::RandomSeedNotSupported),
    }
}

#[test]
fn encrypt_decrypt_length_protocol_raw() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = aes_key(&s, &[]).handle();
    let h = s.handle();
    let mut iv = [9u8; 16];
    let mut mech = CK_MECHANISM {
        mechanism: CKM_AES_CBC_PAD,
        pParameter: iv.as_mut_ptr() as *mut std::ffi::c_void,
        ulParameterLen: 16,
    };
    let mut plain: Vec<u8> = (0..37u8).collect();
    let plen = plain.len() as CK_ULONG;
    assert_eq!(rawcall!(C_EncryptInit, h, &mut mech, key), CKR_OK);
    assert_eq!(
        rawcall!(C_EncryptInit, h, &mut mech, key),
        CKR_OPERATION_ACTIVE
    );
    let mut len: CK_ULONG = 0;
    let null = std::ptr::null_mut::<u8>();
    assert_eq!(
        rawcall!(C_Encrypt, h, plain.as_mut_ptr(), plen, null, &mut len),
        CKR_OK
    );
    assert!(len >= 48, "length query: {len}");
    let mut ct = vec![0u8; len as usize];
    let mut short: CK_ULONG = 16;
    assert_eq!(
        rawcall!(
            C_Encrypt,
            h,
            plain.as_mut_ptr(),
            plen,
            ct.as_mut_ptr(),
            &mut short
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert!(short >= 48);
    assert_eq!(
        rawcall!(
            C_Encrypt,
            h,
            plain.as_mut_ptr(),
            plen,
            ct.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(len, 48);
    ct.truncate(48);

    assert_eq!(rawcall!(C_DecryptInit, h, &mut mech, key), CKR_OK);
    assert_eq!(
        rawcall!(C_DecryptInit, h, &mut mech, key),
        CKR_OPERATION_ACTIVE
    );
    let mut len: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_Decrypt, h, ct.as_mut_ptr(), 48, null, &mut len),
        CKR_OK
    );
    assert!(len >= 37, "length query: {len}");
    let mut out = vec![0u8; len as usize];
    let mut short: CK_ULONG = 8;
    assert_eq!(
        rawcall!(
            C_Decrypt,
            h,
            ct.as_mut_ptr(),
            48,
            out.as_mut_ptr(),
            &mut short
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        rawcall!(
            C_Decrypt,
            h,
            ct.as_mut_ptr(),
            48,
            out.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    assert_eq!(&out[..len as usize], &plain[..]);
    assert_eq!(
        rawcall!(
            C_Decrypt,
            h,
            ct.as_mut_ptr(),
            48,
            out.as_mut_ptr(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

/// One `C_EncryptInit`/`C_DecryptInit` + `C_Encrypt`/`C_Decrypt` through the raw
/// ABI with the caller's pointers as given (they may alias); returns the result
/// code and the length the module reported.
#[allow(clippy::too_many_arguments)]
fn raw_once(
    h: CK_SESSION_HANDLE,
    mech: &mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    enc: bool,
    data: *mut u8,
    data_len: usize,
    out: *mut u8,
    room: usize,
) -> (CK_RV, usize) {
    let mut len = room as CK_ULONG;
    let rv = if enc {
        assert_eq!(rawcall!(C_EncryptInit, h, mech, key), CKR_OK);
        rawcall!(C_Encrypt, h, data, data_len as CK_ULONG, out, &mut len)
    } else {
        assert_eq!(rawcall!(C_DecryptInit, h, mech, key), CKR_OK);
        rawcall!(C_Decrypt, h, data, data_len as CK_ULONG, out, &mut len)
    };
    (rv, len as usize)
}

/// Single-part ciphers write into the caller's buffer whatever its shape: exact
/// size, roomy, in place (PKCS#11 allows input and output at the same address), or
/// shorter than the bound but long enough for the result; all give the same bytes.
/// A failed decryption (bad GCM tag, bad CBC padding) leaves no plaintext in the
/// caller's buffer.
#[test]
fn single_part_ciphers_into_any_buffer() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = aes_key(&s, &[]).handle();
    let h = s.handle();
    let plain: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7)).collect();
    let mut iv16 = [3u8; 16];
    let mut iv12 = [5u8; 12];
    let mut aad = *b"hdr";
    let mut gcm = CK_GCM_PARAMS {
        pIv: iv12.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: aad.as_mut_ptr(),
        ulAADLen: 3,
        ulTagBits: 128,
    };
    let mut cbc = CK_MECHANISM {
        mechanism: CKM_AES_CBC_PAD,
        pParameter: iv16.as_mut_ptr() as *mut std::ffi::c_void,
        ulParameterLen: 16,
    };
    let mut gcm_m = CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: &mut gcm as *mut CK_GCM_PARAMS as *mut std::ffi::c_void,
        ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
    };
    let mut ecb = CK_MECHANISM {
        mechanism: CKM_AES_ECB,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    // (mechanism, plaintext length, ciphertext length)
    for (m, pl, cl) in [
        (&mut cbc, 100, 112),
        (&mut gcm_m, 100, 116),
        (&mut ecb, 96, 96),
    ] {
        let mut p = plain[..pl].to_vec();
        // Reference: separate, exact buffers.
        let mut ct = vec![0u8; cl];
        assert_eq!(
            raw_once(h, m, key, true, p.as_mut_ptr(), pl, ct.as_mut_ptr(), cl),
            (CKR_OK, cl)
        );
        // A roomy buffer gives the same bytes and leaves the rest alone.
        let mut roomy = vec![0xeeu8; cl + 50];
        assert_eq!(
            raw_once(
                h,
                m,
                key,
                true,
                p.as_mut_ptr(),
                pl,
                roomy.as_mut_ptr(),
                cl + 50
            ),
            (CKR_OK, cl)
        );
        assert_eq!(&roomy[..cl], &ct[..]);
        assert!(roomy[cl..].iter().all(|&b| b == 0xee));
        // In place.
        let mut buf = plain[..pl].to_vec();
        buf.resize(cl, 0);
        let ptr = buf.as_mut_ptr();
        assert_eq!(raw_once(h, m, key, true, ptr, pl, ptr, cl), (CKR_OK, cl));
        assert_eq!(buf, ct);
        // Decrypt in place, into an exact buffer, into one shorter than the bound.
        let ptr = buf.as_mut_ptr();
        assert_eq!(raw_once(h, m, key, false, ptr, cl, ptr, cl), (CKR_OK, pl));
        assert_eq!(&buf[..pl], &plain[..pl]);
        let mut out = vec![0u8; pl];
        assert_eq!(
            raw_once(h, m, key, false, ct.as_mut_ptr(), cl, out.as_mut_ptr(), pl),
            (CKR_OK, pl)
        );
        assert_eq!(out, &plain[..pl]);
        // Tampered: the error code, and nothing of the plaintext in the buffer.
        if m.mechanism != CKM_AES_ECB {
            let mut bad = ct.clone();
            let i = if m.mechanism == CKM_AES_GCM {
                cl - 1
            } else {
                cl - 17
            };
            bad[i] ^= 0x80;
            let mut out = vec![0u8; cl];
            let (rv, _) = raw_once(h, m, key, false, bad.as_mut_ptr(), cl, out.as_mut_ptr(), cl);
            assert_eq!(rv, CKR_ENCRYPTED_DATA_INVALID, "{:#x}", m.mechanism);
            assert!(
                out.iter().all(|&b| b == 0),
                "{:#x} left plaintext",
                m.mechanism
            );
        }
    }
}

/// RSA key generation starts at 2048 bits (`C_GetMechanismInfo` says so, 1024 is
/// `CKR_KEY_SIZE_RANGE`); a 1024-bit key made elsewhere still imports and verifies.
#[test]
fn rsa_generation_below_2048_bits_is_refused() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let info = ctx
        .p11()
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert_eq!((info.min_key_size(), info.max_key_size()), (2048, 4096));
    let public = [
        Attribute::Token(false),
        Attribute::ModulusBits(1024.into()),
        Attribute::Verify(true),
    ];
    let private = [Attribute::Token(false), Attribute::Sign(true)];
    assert_eq!(
        rv(s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)),
        RvError::KeySizeRange
    );
    // Legacy: a 1024-bit public key from openssl imports and verifies.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success());
    ok(std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(&key));
    std::fs::write(dir.path().join("m"), MSG).unwrap();
    ok(std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg("-out")
        .arg(dir.path().join("sig"))
        .arg(dir.path().join("m")));
    let der = std::process::Command::new("openssl")
        .args([
            "rsa",
            "-pubout",
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (n, e) = rsa_public_parts(&der);
    let public = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::Modulus(n),
            Attribute::PublicExponent(e),
        ])
        .unwrap();
    let sig = std::fs::read(dir.path().join("sig")).unwrap();
    s.verify(&Mechanism::Sha256RsaPkcs, public, MSG, &sig)
        .unwrap();
}

/// The two INTEGERs of a DER `RSAPublicKey`, without leading zero bytes.
fn rsa_public_parts(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(b: &[u8]) -> (&[u8], &[u8]) {
        let (len, hdr) = match b[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (b[2] as usize, 3),
            0x82 => (((b[2] as usize) << 8) | b[3] as usize, 4),
            _ => panic!("length"),
        };
        (&b[hdr..hdr + len], &b[hdr + len..])
    }
    let (seq, _) = tlv(der);
    let (n, rest) = tlv(seq);
    let (e, _) = tlv(rest);
    let strip = |v: &[u8]| v.iter().skip_while(|&&b| b == 0).copied().collect();
    (strip(n), strip(e))
}

/// PKCS#11 3.1 §5: a call of an active operation that fails ends the operation,
/// unless it is a short buffer or a length query. That holds for a call refused for
/// its arguments before the token sees it (a NULL input with a length, a NULL
/// length pointer), for a bad signature, and for `C_DigestKey` on a bad handle: the
/// next init succeeds, a next step is `CKR_OPERATION_NOT_INITIALIZED`.
#[test]
fn failed_calls_end_the_operation() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let aes = aes_key(&s, &[]).handle();
    let (public, private) = ec_pair(&s, P256, "ec", false);
    let (public, private) = (public.handle(), private.handle());
    let h = s.handle();
    let null = std::ptr::null_mut::<u8>();
    let mut buf = [0u8; 256];
    let mut len: CK_ULONG = 256;
    let mut data = [7u8; 32];
    let mech = |m: CK_MECHANISM_TYPE| CK_MECHANISM {
        mechanism: m,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let (mut ecb, mut sha, mut ecdsa) = (mech(CKM_AES_ECB), mech(CKM_SHA256), mech(CKM_ECDSA));

    // Encrypt / decrypt: NULL data with a length; NULL length pointer.
    for enc in [true, false] {
        let init = |m: &mut CK_MECHANISM| {
            if enc {
                rawcall!(C_EncryptInit, h, m, aes)
            } else {
                rawcall!(C_DecryptInit, h, m, aes)
            }
        };
        let once = |d: *mut u8, o: *mut u8, l: *mut CK_ULONG| {
            if enc {
                rawcall!(C_Encrypt, h, d, 32, o, l)
            } else {
                rawcall!(C_Decrypt, h, d, 32, o, l)
            }
        };
        let update = |d: *mut u8, o: *mut u8, l: *mut CK_ULONG| {
            if enc {
                rawcall!(C_EncryptUpdate, h, d, 32, o, l)
            } else {
                rawcall!(C_DecryptUpdate, h, d, 32, o, l)
            }
        };
        assert_eq!(init(&mut ecb), CKR_OK);
        assert_eq!(once(null, buf.as_mut_ptr(), &mut len), CKR_ARGUMENTS_BAD);
        assert_eq!(
            once(data.as_mut_ptr(), buf.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(init(&mut ecb), CKR_OK);
        assert_eq!(
            once(data.as_mut_ptr(), buf.as_mut_ptr(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(init(&mut ecb), CKR_OK, "ended, so a new init works");
        len = 256;
        assert_eq!(update(null, buf.as_mut_ptr(), &mut len), CKR_ARGUMENTS_BAD);
        assert_eq!(init(&mut ecb), CKR_OK);
        // A short buffer keeps it: the same call with room succeeds.
        len = 4;
        assert_eq!(
            once(data.as_mut_ptr(), buf.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(once(data.as_mut_ptr(), buf.as_mut_ptr(), &mut len), CKR_OK);
        len = 256;
    }

    // Digest: NULL data, NULL length, a bad key handle for C_DigestKey.
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(
        rawcall!(C_Digest, h, null, 32, buf.as_mut_ptr(), &mut len),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(rawcall!(C_DigestUpdate, h, null, 32), CKR_ARGUMENTS_BAD);
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(
        rawcall!(C_DigestKey, h, 0xdead_beef),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(
        rawcall!(C_DigestUpdate, h, data.as_mut_ptr(), 32),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(
        rawcall!(C_DigestFinal, h, buf.as_mut_ptr(), std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(
        rawcall!(C_DigestFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );

    // Sign and verify.
    assert_eq!(rawcall!(C_SignInit, h, &mut ecdsa, private), CKR_OK);
    assert_eq!(
        rawcall!(C_Sign, h, null, 32, buf.as_mut_ptr(), &mut len),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_SignInit, h, &mut ecdsa, private), CKR_OK);
    assert_eq!(rawcall!(C_SignUpdate, h, null, 32), CKR_ARGUMENTS_BAD);
    assert_eq!(rawcall!(C_SignInit, h, &mut ecdsa, private), CKR_OK);
    len = 256;
    assert_eq!(
        rawcall!(C_Sign, h, data.as_mut_ptr(), 32, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    let mut sig = buf[..len as usize].to_vec();
    assert_eq!(rawcall!(C_VerifyInit, h, &mut ecdsa, public), CKR_OK);
    assert_eq!(
        rawcall!(C_Verify, h, data.as_mut_ptr(), 32, null, 64),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_VerifyInit, h, &mut ecdsa, public), CKR_OK);
    sig[5] ^= 1;
    let n = sig.len() as CK_ULONG;
    assert_eq!(
        rawcall!(C_Verify, h, data.as_mut_ptr(), 32, sig.as_mut_ptr(), n),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(rawcall!(C_VerifyInit, h, &mut ecdsa, public), CKR_OK);
    assert_eq!(rawcall!(C_VerifyUpdate, h, null, 32), CKR_ARGUMENTS_BAD);
    assert_eq!(
        rawcall!(C_VerifyFinal, h, sig.as_mut_ptr(), n),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

/// Single DES for legacy clients (`[policy] legacy_mechanisms`, on by default):
/// generated and imported keys, CBC-PAD through the module equal to openssl's
/// `des-cbc` (legacy provider).
#[test]
fn legacy_single_des_matches_openssl() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    // (cryptoki's own list drops types it does not know; ask for the info.)
    let info = ctx
        .p11()
        .get_mechanism_info(slot, MechanismType::DES_CBC_PAD)
        .unwrap();
    assert_eq!((info.min_key_size(), info.max_key_size()), (8, 8));
    let generated = s
        .generate_key(
            &Mechanism::DesKeyGen,
            &[Attribute::Token(false), Attribute::Encrypt(true)],
        )
        .unwrap();
    let ct = s.encrypt(&Mechanism::DesEcb, generated, &[0u8; 8]).unwrap();
    assert_eq!(ct.len(), 8);
    let key_hex = "133457799bbcdff1";
    let key = secret_key(
        &s,
        KeyType::DES,
        &hex::decode(key_hex).unwrap(),
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    );
    let iv = [0x42u8; 8];
    let ct = s.encrypt(&Mechanism::DesCbcPad(iv), key, MSG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m"), MSG).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "enc",
            "-des-cbc",
            "-provider",
            "legacy",
            "-provider",
            "default",
        ])
        .args(["-K", key_hex, "-iv", &hex::encode(iv), "-in"])
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ct, out.stdout);
    assert_eq!(s.decrypt(&Mechanism::DesCbcPad(iv), key, &ct).unwrap(), MSG);
}

/// `[policy] legacy_mechanisms = false`: single DES is neither listed nor usable,
/// from `C_Initialize` on (before any token opens).
#[test]
fn legacy_mechanisms_off_hides_single_des() {
    let ctx = Ctx::uninitialized();
    let tokens = ctx.dir.path().join("tokens");
    vtoken_testsupport::env::write_config(
        &ctx.conf,
        &tokens,
        "[policy]\nlegacy_mechanisms = false\n",
    );
    ctx.p11().initialize(init_args()).unwrap();
    let slot = ctx.free_slot();
    let mut count: CK_ULONG = 0;
    assert_eq!(
        rawcall!(
            C_GetMechanismList,
            slot.id(),
            std::ptr::null_mut(),
            &mut count
        ),
        CKR_OK
    );
    let mut list = vec![0 as CK_MECHANISM_TYPE; count as usize];
    assert_eq!(
        rawcall!(C_GetMechanismList, slot.id(), list.as_mut_ptr(), &mut count),
        CKR_OK
    );
    assert!(list.contains(&CKM_DES3_CBC_PAD));
    assert!(!list.iter().any(|m| matches!(
        *m,
        CKM_DES_KEY_GEN | CKM_DES_ECB | CKM_DES_CBC | CKM_DES_CBC_PAD
    )));
    assert_eq!(
        rv(ctx.p11().get_mechanism_info(slot, MechanismType::DES_ECB)),
        RvError::MechanismInvalid
    );
}

/// Dual-function updates (`CKF_DUAL_CRYPTO_OPERATIONS` is advertised): each feeds
/// both operations, gives what the two separate operations give, and a length query
/// before the real call feeds the second operation only once.
#[test]
fn dual_function_updates() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    let mut info = CK_TOKEN_INFO::default();
    assert_eq!(rawcall!(C_GetTokenInfo, slot.id(), &mut info), CKR_OK);
    assert_ne!(info.flags & CKF_DUAL_CRYPTO_OPERATIONS, 0);
    let aes_obj = aes_key(&s, &[]);
    let mac_obj = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &[0x0b; 32],
        &[Attribute::Sign(true), Attribute::Verify(true)],
    );
    let (aes, mac_key) = (aes_obj.handle(), mac_obj.handle());
    let h = s.handle();
    let mut iv = [4u8; 16];
    let mut cbc = CK_MECHANISM {
        mechanism: CKM_AES_CBC,
        pParameter: iv.as_mut_ptr() as *mut std::ffi::c_void,
        ulParameterLen: 16,
    };
    let mech = |m: CK_MECHANISM_TYPE| CK_MECHANISM {
        mechanism: m,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let (mut sha, mut hmac) = (mech(CKM_SHA256), mech(CKM_SHA256_HMAC));
    let mut parts = [[1u8; 32], [2u8; 32]];
    let whole: Vec<u8> = parts.concat();
    let expected_ct = s
        .encrypt(&Mechanism::AesCbc([4u8; 16]), aes_obj, &whole)
        .unwrap();
    let expected_mac = s.sign(&Mechanism::Sha256Hmac, mac_obj, &whole).unwrap();
    let null = std::ptr::null_mut::<u8>();
    let mut buf = [0u8; 64];
    let mut len: CK_ULONG;

    // Digest + encrypt, with a length query before each real call.
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(rawcall!(C_EncryptInit, h, &mut cbc, aes), CKR_OK);
    let mut ct = Vec::new();
    for p in parts.iter_mut() {
        len = 0;
        assert_eq!(
            rawcall!(C_DigestEncryptUpdate, h, p.as_mut_ptr(), 32, null, &mut len),
            CKR_OK
        );
        assert_eq!(len, 32);
        assert_eq!(
            rawcall!(
                C_DigestEncryptUpdate,
                h,
                p.as_mut_ptr(),
                32,
                buf.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        ct.extend_from_slice(&buf[..len as usize]);
    }
    len = 64;
    assert_eq!(
        rawcall!(C_EncryptFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    assert_eq!(len, 0);
    assert_eq!(ct, expected_ct);
    len = 64;
    assert_eq!(
        rawcall!(C_DigestFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    assert_eq!(
        &buf[..32],
        &sha256(&s, &whole)[..],
        "digested once per part"
    );

    // Decrypt + digest.
    assert_eq!(rawcall!(C_DigestInit, h, &mut sha), CKR_OK);
    assert_eq!(rawcall!(C_DecryptInit, h, &mut cbc, aes), CKR_OK);
    let mut plain = Vec::new();
    for c in ct.chunks(32) {
        let mut c = c.to_vec();
        len = 64;
        assert_eq!(
            rawcall!(
                C_DecryptDigestUpdate,
                h,
                c.as_mut_ptr(),
                32,
                buf.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        plain.extend_from_slice(&buf[..len as usize]);
    }
    len = 64;
    assert_eq!(
        rawcall!(C_DecryptFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    plain.extend_from_slice(&buf[..len as usize]);
    assert_eq!(plain, whole);
    len = 64;
    assert_eq!(
        rawcall!(C_DigestFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    assert_eq!(&buf[..32], &sha256(&s, &whole)[..]);

    // Sign + encrypt, then decrypt + verify.
    assert_eq!(rawcall!(C_SignInit, h, &mut hmac, mac_key), CKR_OK);
    assert_eq!(rawcall!(C_EncryptInit, h, &mut cbc, aes), CKR_OK);
    for p in parts.iter_mut() {
        len = 64;
        assert_eq!(
            rawcall!(
                C_SignEncryptUpdate,
                h,
                p.as_mut_ptr(),
                32,
                buf.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
    }
    len = 64;
    assert_eq!(
        rawcall!(C_EncryptFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    len = 64;
    assert_eq!(rawcall!(C_SignFinal, h, buf.as_mut_ptr(), &mut len), CKR_OK);
    assert_eq!(&buf[..len as usize], &expected_mac[..]);
    assert_eq!(rawcall!(C_VerifyInit, h, &mut hmac, mac_key), CKR_OK);
    assert_eq!(rawcall!(C_DecryptInit, h, &mut cbc, aes), CKR_OK);
    for c in ct.chunks(32) {
        let mut c = c.to_vec();
        len = 64;
        assert_eq!(
            rawcall!(
                C_DecryptVerifyUpdate,
                h,
                c.as_mut_ptr(),
                32,
                buf.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
    }
    len = 64;
    assert_eq!(
        rawcall!(C_DecryptFinal, h, buf.as_mut_ptr(), &mut len),
        CKR_OK
    );
    let mut mac = expected_mac.clone();
    assert_eq!(rawcall!(C_VerifyFinal, h, mac.as_mut_ptr(), 32), CKR_OK);

    // The second operation not active: refused before the first moves.
    assert_eq!(rawcall!(C_EncryptInit, h, &mut cbc, aes), CKR_OK);
    len = 64;
    assert_eq!(
        rawcall!(
            C_DigestEncryptUpdate,
            h,
            parts[0].as_mut_ptr(),
            32,
            buf.as_mut_ptr(),
            &mut len
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

/// AES-CTR and AES-CMAC through the module equal openssl's `aes-256-ctr` and
/// `openssl mac ... CMAC`.
#[test]
fn aes_ctr_and_cmac_match_openssl() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key_hex = "11".repeat(32);
    let key = secret_key(
        &s,
        KeyType::AES,
        &hex::decode(&key_hex).unwrap(),
        &[
            Attribute::Encrypt(true),
            Attribute::Sign(true),
            Attribute::Verify(true),
        ],
    );
    let openssl = |args: &[&str], tail: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, MSG).unwrap();
        let out = std::process::Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&input)
            .args(tail)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let mac = s.sign(&Mechanism::AesCMac, key, MSG).unwrap();
    let want = openssl(
        &[
            "mac",
            "-cipher",
            "AES-256-CBC",
            "-macopt",
            &format!("hexkey:{key_hex}"),
        ],
        &["CMAC"],
    );
    assert_eq!(
        hex::encode_upper(&mac),
        String::from_utf8_lossy(&want).trim()
    );
    s.verify(&Mechanism::AesCMac, key, MSG, &mac).unwrap();

    let cb = [0xf0u8; 16];
    let mut params = CK_AES_CTR_PARAMS {
        ulCounterBits: 128,
        cb,
    };
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_CTR,
        pParameter: &mut params as *mut CK_AES_CTR_PARAMS as *mut std::ffi::c_void,
        ulParameterLen: std::mem::size_of::<CK_AES_CTR_PARAMS>() as CK_ULONG,
    };
    let h = s.handle();
    assert_eq!(rawcall!(C_EncryptInit, h, &mut m, key.handle()), CKR_OK);
    let mut data = MSG.to_vec();
    let mut out = vec![0u8; MSG.len()];
    let mut len = out.len() as CK_ULONG;
    assert_eq!(
        rawcall!(
            C_Encrypt,
            h,
            data.as_mut_ptr(),
            len,
            out.as_mut_ptr(),
            &mut len
        ),
        CKR_OK
    );
    let want = openssl(
        &[
            "enc",
            "-aes-256-ctr",
            "-K",
            &key_hex,
            "-iv",
            &hex::encode(cb),
        ],
        &[],
    );
    assert_eq!(out, want);
}

/// Ed25519 with a real client: `pkcs11-tool --keypairgen --key-type
/// EC:edwards25519` (the spelling this OpenSC accepts; it refuses "ed25519" itself
/// before calling the module), `--sign -m EDDSA`, and `openssl pkeyutl` verifies the
/// signature with the public key pkcs11-tool reads back. Then through `cryptoki`
/// with the OID form of CKA_EC_PARAMS.
#[test]
fn ed25519_with_pkcs11_tool_and_openssl() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let dir = tempfile::tempdir().unwrap();
    let tool = |args: &[&str]| {
        let out = std::process::Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module_path())
            .args(["--token-label", "vtoken test", "--login", "--pin", USER_PIN])
            .args(args)
            .env("VTOKEN_CONF", &ctx.conf)
            .current_dir(dir.path())
            .output()
            .expect("pkcs11-tool (install opensc)");
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    tool(&[
        "--keypairgen",
        "--key-type",
        "EC:edwards25519",
        "--id",
        "0e",
        "--label",
        "ed",
    ]);
    std::fs::write(dir.path().join("m"), MSG).unwrap();
    tool(&[
        "--sign", "--id", "0e", "-m", "EDDSA", "-i", "m", "-o", "sig",
    ]);
    tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "0e",
        "-o",
        "pub.pem",
    ]);
    assert_eq!(std::fs::read(dir.path().join("sig")).unwrap().len(), 64);
    let out = std::process::Command::new("openssl")
        .args([
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin",
        ])
        .args(["-in", "m", "-sigfile", "sig"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let s = ctx.p11().open_rw_session(slot).unwrap();
    s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN)))
        .unwrap();
    let oid = vec![0x06, 0x03, 0x2b, 0x65, 0x70];
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(oid.clone()),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .unwrap();
    let m = Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
        cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
    ));
    let sig = s.sign(&m, private, MSG).unwrap();
    s.verify(&m, public, MSG, &sig).unwrap();
    // Ed25519ph (with a context) signs and verifies; its signature is not a pure one.
    let ph = Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
        cryptoki::mechanism::eddsa::EddsaSignatureScheme::Ed25519ph(b"ctx"),
    ));
    let ph_sig = s.sign(&ph, private, MSG).unwrap();
    s.verify(&ph, public, MSG, &ph_sig).unwrap();
    assert_eq!(
        rv(s.verify(&m, public, MSG, &ph_sig)),
        RvError::SignatureInvalid
    );
    // Ed25519ctx: signs and verifies; the pure signature does not pass as it.
    let ctx_scheme = Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
        cryptoki::mechanism::eddsa::EddsaSignatureScheme::Ed25519ctx(b"ctx"),
    ));
    let ctx_sig = s.sign(&ctx_scheme, private, MSG).unwrap();
    s.verify(&ctx_scheme, public, MSG, &ctx_sig).unwrap();
    assert_eq!(
        rv(s.verify(&m, public, MSG, &ctx_sig)),
        RvError::SignatureInvalid
    );
}

/// X25519 through `CKM_ECDH1_DERIVE` against openssl: the token's secret with an
/// openssl key equals what `openssl pkeyutl -derive` computes from the other side.
#[test]
fn x25519_derive_matches_openssl() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccMontgomeryKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x6e]),
            ],
            &[Attribute::Token(false), Attribute::Derive(true)],
        )
        .unwrap();
    let token_point = unwrap_octet_string(&attr_bytes(&s, public, AttributeType::EcPoint));
    assert_eq!(token_point.len(), 32);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&["genpkey", "-algorithm", "X25519", "-out", "peer.pem"]);
    let peer_spki = run(&["pkey", "-in", "peer.pem", "-pubout", "-outform", "DER"]);
    let peer_point = peer_spki[peer_spki.len() - 32..].to_vec();
    // The token's public key as an RFC 8410 SubjectPublicKeyInfo for openssl.
    let mut spki = hex::decode("302a300506032b656e032100").unwrap();
    spki.extend_from_slice(&token_point);
    std::fs::write(dir.path().join("token.der"), spki).unwrap();
    let expected = run(&[
        "pkeyutl",
        "-derive",
        "-inkey",
        "peer.pem",
        "-peerkey",
        "token.der",
        "-peerform",
        "DER",
    ]);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let m = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &peer_point));
    let k = s.derive_key(&m, private, &template).unwrap();
    assert_eq!(attr_bytes(&s, k, AttributeType::Value), expected);
}
