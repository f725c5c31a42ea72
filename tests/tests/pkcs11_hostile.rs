//! Hostile inputs through the C ABI (issue 8, item 5): attribute values whose length
//! does not match their type, NULL values with a length, NULL templates with a large
//! count, and mechanism parameters of the wrong size or NULL with a length, sent
//! through the module's raw `CK_FUNCTION_LIST`. Every call must return a specific
//! CKR error (never `CKR_OK`, never a panic turned into `CKR_GENERAL_ERROR`), and the
//! module must keep working afterwards.
//!
//! The NULL-argument and length-protocol cases already covered elsewhere
//! (`pkcs11_objects.rs`, `pkcs11_crypto.rs`, `pkcs11_slots.rs`) are not repeated.

mod pkcs11_common;

use std::ffi::c_void;
use std::mem::size_of;
use std::ptr::null_mut;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType};
use cryptoki::session::Session;
use cryptoki_sys::*;
use pkcs11_common::*;

/// A huge count with a NULL array: must be refused before anything is read.
const HUGE: CK_ULONG = 1 << 40;

/// One attribute pointing into `v` (`len` may differ from `v.len()` only downwards).
fn at(ty: CK_ATTRIBUTE_TYPE, v: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: ty,
        pValue: v.as_mut_ptr() as *mut c_void,
        ulValueLen: v.len() as CK_ULONG,
    }
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn mech(ty: CK_MECHANISM_TYPE, p: *mut c_void, len: usize) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: ty,
        pParameter: p,
        ulParameterLen: len as CK_ULONG,
    }
}

/// Asserts `rv` is one of `want` (names the case on failure).
#[track_caller]
fn expect(case: &str, rv: CK_RV, want: &[CK_RV]) {
    assert!(
        want.contains(&rv),
        "{case}: got CKR 0x{rv:x}, want one of {:x?}",
        want
    );
}

/// `C_CreateObject` of a raw template; the new handle on success.
fn create(s: &Session, t: &mut [CK_ATTRIBUTE]) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut h: CK_OBJECT_HANDLE = 0;
    let rv = rawcall!(
        C_CreateObject,
        s.handle(),
        t.as_mut_ptr(),
        t.len() as CK_ULONG,
        &mut h
    );
    (rv, h)
}

/// The module still answers and still does cryptography.
fn still_works(s: &Session) {
    let mut info = CK_INFO::default();
    assert_eq!(rawcall!(C_GetInfo, &mut info), CKR_OK);
    let key = aes_key(s, &[]);
    let iv = [3u8; 16];
    let ct = s
        .encrypt(&Mechanism::AesCbcPad(iv), key, b"still working")
        .expect("encrypt after hostile calls");
    let pt = s
        .decrypt(&Mechanism::AesCbcPad(iv), key, &ct)
        .expect("decrypt after hostile calls");
    assert_eq!(pt, b"still working");
    let (public, private) = ec_pair(s, P256, "after", false);
    let sig = s.sign(&Mechanism::EcdsaSha256, private, b"m").unwrap();
    s.verify(&Mechanism::EcdsaSha256, public, b"m", &sig)
        .unwrap();
}

#[test]
fn attribute_values_of_the_wrong_length_in_create_object() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let bad = [CKR_ATTRIBUTE_VALUE_INVALID];

    // CKA_CLASS of 3 bytes (a CK_ULONG is 8).
    let mut class3 = vec![0u8; 3];
    let mut label = b"hostile".to_vec();
    let mut t = [at(CKA_CLASS, &mut class3), at(CKA_LABEL, &mut label)];
    expect("CKA_CLASS 3 bytes", create(&s, &mut t).0, &bad);

    // CKA_TOKEN of 2 bytes (a CK_BBOOL is 1), and of 0 bytes.
    let mut class = ulong(CKO_DATA);
    let mut tok2 = vec![0u8; 2];
    let mut t = [at(CKA_CLASS, &mut class), at(CKA_TOKEN, &mut tok2)];
    expect("CKA_TOKEN 2 bytes", create(&s, &mut t).0, &bad);
    let mut t = [
        at(CKA_CLASS, &mut class),
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE,
            pValue: null_mut(),
            ulValueLen: 0,
        },
    ];
    expect("CKA_PRIVATE 0 bytes", create(&s, &mut t).0, &bad);

    // A secret key whose CKA_KEY_TYPE is 4 bytes.
    let mut sk = ulong(CKO_SECRET_KEY);
    let mut kt4 = vec![0u8; 4];
    let mut value = vec![7u8; 32];
    let mut t = [
        at(CKA_CLASS, &mut sk),
        at(CKA_KEY_TYPE, &mut kt4),
        at(CKA_VALUE, &mut value),
    ];
    expect("CKA_KEY_TYPE 4 bytes", create(&s, &mut t).0, &bad);

    // A known class number that is not a class.
    let mut weird = ulong(0x7fff_0000);
    let mut t = [at(CKA_CLASS, &mut weird)];
    expect(
        "CKA_CLASS unknown value",
        create(&s, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );

    // An AES key value of 15 bytes.
    let mut aes = ulong(CKK_AES);
    let mut v15 = vec![1u8; 15];
    let mut t = [
        at(CKA_CLASS, &mut sk),
        at(CKA_KEY_TYPE, &mut aes),
        at(CKA_VALUE, &mut v15),
    ];
    expect(
        "AES CKA_VALUE 15 bytes",
        create(&s, &mut t).0,
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_KEY_SIZE_RANGE],
    );

    // An EC public key whose CKA_EC_PARAMS and CKA_EC_POINT are garbage.
    let mut pk = ulong(CKO_PUBLIC_KEY);
    let mut ec = ulong(CKK_EC);
    let mut params = vec![0x06, 0x03, 0xff, 0xff];
    let mut point = vec![0x04, 0x41, 0x04, 0x00];
    let mut t = [
        at(CKA_CLASS, &mut pk),
        at(CKA_KEY_TYPE, &mut ec),
        at(CKA_EC_PARAMS, &mut params),
        at(CKA_EC_POINT, &mut point),
    ];
    expect(
        "EC public key with garbage params",
        create(&s, &mut t).0,
        &[
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_CURVE_NOT_SUPPORTED,
            CKR_DOMAIN_PARAMS_INVALID,
        ],
    );
    // A real curve, a point of the wrong length.
    let mut p256 = P256.to_vec();
    let mut t = [
        at(CKA_CLASS, &mut pk),
        at(CKA_KEY_TYPE, &mut ec),
        at(CKA_EC_PARAMS, &mut p256),
        at(CKA_EC_POINT, &mut point),
    ];
    expect(
        "EC public key with a short point",
        create(&s, &mut t).0,
        &bad,
    );

    // A value pointer that is NULL with a length.
    let mut t = [
        at(CKA_CLASS, &mut class),
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: null_mut(),
            ulValueLen: 5,
        },
    ];
    expect(
        "CKA_LABEL NULL with length 5",
        create(&s, &mut t).0,
        &[CKR_ARGUMENTS_BAD],
    );

    // Nothing was created by any of these.
    let mut n: CK_ULONG = 0;
    let mut found = [0 as CK_OBJECT_HANDLE; 4];
    assert_eq!(
        rawcall!(C_FindObjectsInit, s.handle(), null_mut(), 0),
        CKR_OK
    );
    assert_eq!(
        rawcall!(C_FindObjects, s.handle(), found.as_mut_ptr(), 4, &mut n),
        CKR_OK
    );
    assert_eq!(rawcall!(C_FindObjectsFinal, s.handle()), CKR_OK);
    assert_eq!(n, 0, "a refused template created an object");
    still_works(&s);
}

#[test]
fn attribute_values_of_the_wrong_length_in_key_generation() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let bad = [CKR_ATTRIBUTE_VALUE_INVALID];
    let mut h: CK_OBJECT_HANDLE = 0;

    // CKA_VALUE_LEN of 0 bytes in C_GenerateKey(AES).
    let mut m = mech(CKM_AES_KEY_GEN, null_mut(), 0);
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_VALUE_LEN,
        pValue: null_mut(),
        ulValueLen: 0,
    }];
    expect(
        "CKA_VALUE_LEN 0 bytes",
        rawcall!(C_GenerateKey, s.handle(), &mut m, t.as_mut_ptr(), 1, &mut h),
        &bad,
    );
    // CKA_VALUE_LEN of 9 bytes.
    let mut vl9 = vec![0u8; 9];
    vl9[0] = 32;
    let mut t = [at(CKA_VALUE_LEN, &mut vl9)];
    expect(
        "CKA_VALUE_LEN 9 bytes",
        rawcall!(C_GenerateKey, s.handle(), &mut m, t.as_mut_ptr(), 1, &mut h),
        &bad,
    );
    // CKA_VALUE_LEN 17: not an AES key size.
    let mut vl17 = ulong(17);
    let mut t = [at(CKA_VALUE_LEN, &mut vl17)];
    expect(
        "AES CKA_VALUE_LEN 17",
        rawcall!(C_GenerateKey, s.handle(), &mut m, t.as_mut_ptr(), 1, &mut h),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_KEY_SIZE_RANGE],
    );
    // CKA_ENCRYPT of 2 bytes beside a valid length.
    let mut vl = ulong(32);
    let mut enc2 = vec![1u8, 1];
    let mut t = [at(CKA_VALUE_LEN, &mut vl), at(CKA_ENCRYPT, &mut enc2)];
    expect(
        "CKA_ENCRYPT 2 bytes",
        rawcall!(C_GenerateKey, s.handle(), &mut m, t.as_mut_ptr(), 2, &mut h),
        &bad,
    );

    // CKA_MODULUS_BITS of 9 bytes in C_GenerateKeyPair(RSA).
    let mut rm = mech(CKM_RSA_PKCS_KEY_PAIR_GEN, null_mut(), 0);
    let mut bits9 = vec![0u8; 9];
    bits9[1] = 8; // 2048 in the first two bytes (little endian)
    let mut e = vec![1u8, 0, 1];
    let mut public = [
        at(CKA_MODULUS_BITS, &mut bits9),
        at(CKA_PUBLIC_EXPONENT, &mut e),
    ];
    let mut sign = vec![1u8];
    let mut private = [at(CKA_SIGN, &mut sign)];
    let (mut hp, mut hk) = (0, 0);
    expect(
        "CKA_MODULUS_BITS 9 bytes",
        rawcall!(
            C_GenerateKeyPair,
            s.handle(),
            &mut rm,
            public.as_mut_ptr(),
            2,
            private.as_mut_ptr(),
            1,
            &mut hp,
            &mut hk
        ),
        &bad,
    );
    // CKA_MODULUS_BITS of 0 bytes (4 bytes are accepted on purpose: vault-core reads
    // a 4-byte CK_ULONG as a 32-bit client's value).
    let mut public = [
        CK_ATTRIBUTE {
            type_: CKA_MODULUS_BITS,
            pValue: null_mut(),
            ulValueLen: 0,
        },
        at(CKA_PUBLIC_EXPONENT, &mut e),
    ];
    expect(
        "CKA_MODULUS_BITS 0 bytes",
        rawcall!(
            C_GenerateKeyPair,
            s.handle(),
            &mut rm,
            public.as_mut_ptr(),
            2,
            private.as_mut_ptr(),
            1,
            &mut hp,
            &mut hk
        ),
        &bad,
    );
    // A public exponent of zero length and one that is even.
    let mut bits = ulong(2048);
    let mut even = vec![1u8, 0, 0];
    let mut public = [
        at(CKA_MODULUS_BITS, &mut bits),
        at(CKA_PUBLIC_EXPONENT, &mut even),
    ];
    expect(
        "CKA_PUBLIC_EXPONENT even",
        rawcall!(
            C_GenerateKeyPair,
            s.handle(),
            &mut rm,
            public.as_mut_ptr(),
            2,
            private.as_mut_ptr(),
            1,
            &mut hp,
            &mut hk
        ),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );
    // CKA_EC_PARAMS that are not a DER OID, in C_GenerateKeyPair(EC).
    let mut em = mech(CKM_EC_KEY_PAIR_GEN, null_mut(), 0);
    let mut junk = vec![0x30, 0x80, 0x00];
    let mut public = [at(CKA_EC_PARAMS, &mut junk)];
    expect(
        "CKA_EC_PARAMS junk",
        rawcall!(
            C_GenerateKeyPair,
            s.handle(),
            &mut em,
            public.as_mut_ptr(),
            1,
            private.as_mut_ptr(),
            1,
            &mut hp,
            &mut hk
        ),
        &[
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_CURVE_NOT_SUPPORTED,
            CKR_DOMAIN_PARAMS_INVALID,
        ],
    );
    // A private template with a CKA_SENSITIVE of 8 bytes.
    let mut p256 = P256.to_vec();
    let mut public = [at(CKA_EC_PARAMS, &mut p256)];
    let mut sens8 = vec![1u8; 8];
    let mut private8 = [at(CKA_SENSITIVE, &mut sens8)];
    expect(
        "CKA_SENSITIVE 8 bytes",
        rawcall!(
            C_GenerateKeyPair,
            s.handle(),
            &mut em,
            public.as_mut_ptr(),
            1,
            private8.as_mut_ptr(),
            1,
            &mut hp,
            &mut hk
        ),
        &bad,
    );
    still_works(&s);
}

#[test]
fn attribute_values_of_the_wrong_length_in_find_and_set() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let bad = [CKR_ATTRIBUTE_VALUE_INVALID];
    let key = secret_key(
        &s,
        KeyType::AES,
        &[9; 16],
        &[Attribute::Label(b"k".to_vec())],
    );

    // C_FindObjectsInit: CKA_CLASS of 3 bytes, CKA_TOKEN of 2 bytes.
    let mut class3 = vec![4u8, 0, 0];
    let mut t = [at(CKA_CLASS, &mut class3)];
    expect(
        "find: CKA_CLASS 3 bytes",
        rawcall!(C_FindObjectsInit, s.handle(), t.as_mut_ptr(), 1),
        &bad,
    );
    let mut tok2 = vec![0u8, 0];
    let mut t = [at(CKA_TOKEN, &mut tok2)];
    expect(
        "find: CKA_TOKEN 2 bytes",
        rawcall!(C_FindObjectsInit, s.handle(), t.as_mut_ptr(), 1),
        &bad,
    );
    // A refused C_FindObjectsInit leaves no operation behind.
    let mut n: CK_ULONG = 0;
    let mut out = [0 as CK_OBJECT_HANDLE; 2];
    expect(
        "find after a refused init",
        rawcall!(C_FindObjects, s.handle(), out.as_mut_ptr(), 2, &mut n),
        &[CKR_OPERATION_NOT_INITIALIZED],
    );
    // A label value NULL with a length.
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: null_mut(),
        ulValueLen: 4,
    }];
    expect(
        "find: CKA_LABEL NULL with length",
        rawcall!(C_FindObjectsInit, s.handle(), t.as_mut_ptr(), 1),
        &[CKR_ARGUMENTS_BAD],
    );

    let decrypt_before = s
        .get_attributes(key, &[cryptoki::object::AttributeType::Decrypt])
        .unwrap();
    // C_SetAttributeValue: booleans and numbers of the wrong length.
    let mut enc0: Vec<u8> = Vec::new();
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_ENCRYPT,
        pValue: enc0.as_mut_ptr() as *mut c_void,
        ulValueLen: 0,
    }];
    expect(
        "set: CKA_ENCRYPT 0 bytes",
        rawcall!(
            C_SetAttributeValue,
            s.handle(),
            key.handle(),
            t.as_mut_ptr(),
            1
        ),
        &bad,
    );
    let mut dec3 = vec![1u8, 0, 0];
    let mut t = [at(CKA_DECRYPT, &mut dec3)];
    expect(
        "set: CKA_DECRYPT 3 bytes",
        rawcall!(
            C_SetAttributeValue,
            s.handle(),
            key.handle(),
            t.as_mut_ptr(),
            1
        ),
        &bad,
    );
    let mut class3 = vec![4u8, 0, 0];
    let mut t = [at(CKA_CLASS, &mut class3)];
    expect(
        "set: CKA_CLASS 3 bytes",
        rawcall!(
            C_SetAttributeValue,
            s.handle(),
            key.handle(),
            t.as_mut_ptr(),
            1
        ),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_ATTRIBUTE_READ_ONLY],
    );
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: null_mut(),
        ulValueLen: 3,
    }];
    expect(
        "set: CKA_LABEL NULL with length",
        rawcall!(
            C_SetAttributeValue,
            s.handle(),
            key.handle(),
            t.as_mut_ptr(),
            1
        ),
        &[CKR_ARGUMENTS_BAD],
    );
    // The refused writes changed nothing: the label and the usage flags are intact.
    assert_eq!(
        attr_bytes(&s, key, cryptoki::object::AttributeType::Label),
        b"k"
    );
    let flags = s
        .get_attributes(key, &[cryptoki::object::AttributeType::Decrypt])
        .unwrap();
    assert_eq!(flags, decrypt_before);
    still_works(&s);
}

#[test]
fn huge_counts_with_null_templates() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let args = [CKR_ARGUMENTS_BAD];
    let key = aes_key(&s, &[Attribute::Extractable(true)]);
    let h = s.handle();
    let mut out: CK_OBJECT_HANDLE = 0;
    let mut out2: CK_OBJECT_HANDLE = 0;
    expect(
        "C_CreateObject",
        rawcall!(C_CreateObject, h, null_mut(), HUGE, &mut out),
        &args,
    );
    expect(
        "C_CopyObject",
        rawcall!(C_CopyObject, h, key.handle(), null_mut(), HUGE, &mut out),
        &args,
    );
    expect(
        "C_GetAttributeValue",
        rawcall!(C_GetAttributeValue, h, key.handle(), null_mut(), HUGE),
        &args,
    );
    expect(
        "C_SetAttributeValue",
        rawcall!(C_SetAttributeValue, h, key.handle(), null_mut(), HUGE),
        &args,
    );
    expect(
        "C_FindObjectsInit",
        rawcall!(C_FindObjectsInit, h, null_mut(), HUGE),
        &args,
    );
    let mut m = mech(CKM_AES_KEY_GEN, null_mut(), 0);
    expect(
        "C_GenerateKey",
        rawcall!(C_GenerateKey, h, &mut m, null_mut(), HUGE, &mut out),
        &args,
    );
    let mut em = mech(CKM_EC_KEY_PAIR_GEN, null_mut(), 0);
    let mut p256 = P256.to_vec();
    let mut public = [at(CKA_EC_PARAMS, &mut p256)];
    expect(
        "C_GenerateKeyPair (private template)",
        rawcall!(
            C_GenerateKeyPair,
            h,
            &mut em,
            public.as_mut_ptr(),
            1,
            null_mut(),
            HUGE,
            &mut out,
            &mut out2
        ),
        &args,
    );
    expect(
        "C_GenerateKeyPair (public template)",
        rawcall!(
            C_GenerateKeyPair,
            h,
            &mut em,
            null_mut(),
            HUGE,
            null_mut(),
            0,
            &mut out,
            &mut out2
        ),
        &args,
    );
    let mut wm = mech(CKM_AES_KEY_WRAP_PAD, null_mut(), 0);
    let mut wrapped = [0u8; 40];
    expect(
        "C_UnwrapKey",
        rawcall!(
            C_UnwrapKey,
            h,
            &mut wm,
            key.handle(),
            wrapped.as_mut_ptr(),
            40,
            null_mut(),
            HUGE,
            &mut out
        ),
        &args,
    );
    // Data pointers NULL with a huge length.
    let mut iv = [0u8; 16];
    let mut cm = mech(CKM_AES_CBC_PAD, iv.as_mut_ptr() as *mut c_void, 16);
    assert_eq!(rawcall!(C_EncryptInit, h, &mut cm, key.handle()), CKR_OK);
    let mut len: CK_ULONG = 64;
    let mut buf = [0u8; 64];
    expect(
        "C_Encrypt NULL data",
        rawcall!(C_Encrypt, h, null_mut(), HUGE, buf.as_mut_ptr(), &mut len),
        &args,
    );
    // Whether the refused call ended the operation or not, the session recovers.
    let mut data = [0u8; 16];
    len = 64;
    expect(
        "C_Encrypt after the refused call",
        rawcall!(
            C_Encrypt,
            h,
            data.as_mut_ptr(),
            16,
            buf.as_mut_ptr(),
            &mut len
        ),
        &[CKR_OK, CKR_OPERATION_NOT_INITIALIZED],
    );
    expect(
        "C_GenerateRandom NULL",
        rawcall!(C_GenerateRandom, h, null_mut(), HUGE),
        &args,
    );
    expect(
        "C_SeedRandom NULL",
        rawcall!(C_SeedRandom, h, null_mut(), HUGE),
        &args,
    );
    still_works(&s);
}

/// `C_*Init` with `m` on `key`, for each of encrypt/decrypt (and `C_*Final`-free
/// clean-up: a refused init leaves no operation active).
fn refuse_cipher_init(
    s: &Session,
    case: &str,
    m: &mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    want: &[CK_RV],
) {
    expect(
        &format!("{case} (encrypt)"),
        rawcall!(C_EncryptInit, s.handle(), m, key),
        want,
    );
    expect(
        &format!("{case} (decrypt)"),
        rawcall!(C_DecryptInit, s.handle(), m, key),
        want,
    );
}

#[test]
fn mechanism_parameters_of_the_wrong_size() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let param = [CKR_MECHANISM_PARAM_INVALID];
    let param_or_args = [CKR_MECHANISM_PARAM_INVALID, CKR_ARGUMENTS_BAD];
    let aes = aes_key(&s, &[Attribute::Extractable(true), Attribute::Wrap(true)]).handle();

    // AES-CBC: IVs of 15 and 17 bytes, and a NULL IV with a length of 16.
    let mut iv = [0u8; 17];
    for (ty, name) in [(CKM_AES_CBC, "AES-CBC"), (CKM_AES_CBC_PAD, "AES-CBC-PAD")] {
        let mut m = mech(ty, iv.as_mut_ptr() as *mut c_void, 15);
        refuse_cipher_init(&s, &format!("{name} IV 15 bytes"), &mut m, aes, &param);
        let mut m = mech(ty, iv.as_mut_ptr() as *mut c_void, 17);
        refuse_cipher_init(&s, &format!("{name} IV 17 bytes"), &mut m, aes, &param);
        let mut m = mech(ty, null_mut(), 16);
        refuse_cipher_init(
            &s,
            &format!("{name} IV NULL, length 16"),
            &mut m,
            aes,
            &param_or_args,
        );
        let mut m = mech(ty, null_mut(), 0);
        refuse_cipher_init(&s, &format!("{name} no IV"), &mut m, aes, &param);
    }

    // AES-GCM: a short structure, NULL with a length, a NULL IV inside, a tag of 129
    // bits, an IV of 0 bytes.
    let mut raw = [0u8; 64];
    let mut m = mech(CKM_AES_GCM, raw.as_mut_ptr() as *mut c_void, 8);
    refuse_cipher_init(&s, "GCM params 8 bytes", &mut m, aes, &param);
    let mut m = mech(
        CKM_AES_GCM,
        raw.as_mut_ptr() as *mut c_void,
        size_of::<CK_GCM_PARAMS>() + 8,
    );
    refuse_cipher_init(&s, "GCM params 8 bytes too long", &mut m, aes, &param);
    let mut m = mech(CKM_AES_GCM, null_mut(), size_of::<CK_GCM_PARAMS>());
    refuse_cipher_init(&s, "GCM params NULL", &mut m, aes, &param_or_args);
    let mut giv = [1u8; 12];
    let mut g = CK_GCM_PARAMS {
        pIv: null_mut(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: null_mut(),
        ulAADLen: 0,
        ulTagBits: 128,
    };
    let gl = size_of::<CK_GCM_PARAMS>();
    let mut m = mech(CKM_AES_GCM, &mut g as *mut _ as *mut c_void, gl);
    refuse_cipher_init(&s, "GCM NULL IV with a length", &mut m, aes, &param_or_args);
    g.pIv = giv.as_mut_ptr();
    g.pAAD = null_mut();
    g.ulAADLen = 1 << 40;
    let mut m = mech(CKM_AES_GCM, &mut g as *mut _ as *mut c_void, gl);
    refuse_cipher_init(
        &s,
        "GCM NULL AAD with a huge length",
        &mut m,
        aes,
        &param_or_args,
    );
    g.ulAADLen = 0;
    g.ulTagBits = 129;
    let mut m = mech(CKM_AES_GCM, &mut g as *mut _ as *mut c_void, gl);
    refuse_cipher_init(&s, "GCM tag 129 bits", &mut m, aes, &param);
    g.ulTagBits = 128;
    g.ulIvLen = 0;
    let mut m = mech(CKM_AES_GCM, &mut g as *mut _ as *mut c_void, gl);
    refuse_cipher_init(&s, "GCM IV 0 bytes", &mut m, aes, &param);

    // RSA-OAEP: NULL with a length, short, an unknown hash, a NULL label with a length.
    let (public, private) = rsa_pair(&s, "oaep", false);
    let (public, private) = (public.handle(), private.handle());
    let ol = size_of::<CK_RSA_PKCS_OAEP_PARAMS>();
    let oaep_both = |case: &str, m: &mut CK_MECHANISM, want: &[CK_RV]| {
        expect(
            &format!("{case} (encrypt)"),
            rawcall!(C_EncryptInit, s.handle(), m, public),
            want,
        );
        expect(
            &format!("{case} (decrypt)"),
            rawcall!(C_DecryptInit, s.handle(), m, private),
            want,
        );
    };
    oaep_both(
        "OAEP params NULL",
        &mut mech(CKM_RSA_PKCS_OAEP, null_mut(), ol),
        &param_or_args,
    );
    oaep_both(
        "OAEP params 8 bytes",
        &mut mech(CKM_RSA_PKCS_OAEP, raw.as_mut_ptr() as *mut c_void, 8),
        &param,
    );
    let mut o = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: 0x7777,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: null_mut(),
        ulSourceDataLen: 0,
    };
    oaep_both(
        "OAEP unknown hash",
        &mut mech(CKM_RSA_PKCS_OAEP, &mut o as *mut _ as *mut c_void, ol),
        &param,
    );
    o.hashAlg = CKM_SHA256;
    o.mgf = 0x99;
    oaep_both(
        "OAEP unknown MGF",
        &mut mech(CKM_RSA_PKCS_OAEP, &mut o as *mut _ as *mut c_void, ol),
        &param,
    );
    o.mgf = CKG_MGF1_SHA256;
    o.ulSourceDataLen = 16;
    oaep_both(
        "OAEP NULL label with a length",
        &mut mech(CKM_RSA_PKCS_OAEP, &mut o as *mut _ as *mut c_void, ol),
        &param_or_args,
    );
    o.ulSourceDataLen = 0;
    o.source = 7;
    oaep_both(
        "OAEP unknown source",
        &mut mech(CKM_RSA_PKCS_OAEP, &mut o as *mut _ as *mut c_void, ol),
        &param,
    );

    // RSA-PSS: short, NULL with a length, a salt longer than the key.
    let pl = size_of::<CK_RSA_PKCS_PSS_PARAMS>();
    let sign_init = |case: &str, m: &mut CK_MECHANISM, want: &[CK_RV]| {
        expect(case, rawcall!(C_SignInit, s.handle(), m, private), want);
    };
    sign_init(
        "PSS params 8 bytes",
        &mut mech(CKM_SHA256_RSA_PKCS_PSS, raw.as_mut_ptr() as *mut c_void, 8),
        &param,
    );
    sign_init(
        "PSS params NULL",
        &mut mech(CKM_SHA256_RSA_PKCS_PSS, null_mut(), pl),
        &param_or_args,
    );
    let mut p = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 1 << 40,
    };
    let mut m = mech(CKM_SHA256_RSA_PKCS_PSS, &mut p as *mut _ as *mut c_void, pl);
    // A salt that cannot fit is refused at init or at the signature, never signed.
    let rv = rawcall!(C_SignInit, s.handle(), &mut m, private);
    if rv == CKR_OK {
        let mut data = *b"message";
        let mut sig = [0u8; 256];
        let mut len: CK_ULONG = 256;
        let rv = rawcall!(
            C_Sign,
            s.handle(),
            data.as_mut_ptr(),
            7,
            sig.as_mut_ptr(),
            &mut len
        );
        expect(
            "PSS salt 2^40 (sign)",
            rv,
            &[
                CKR_MECHANISM_PARAM_INVALID,
                CKR_KEY_SIZE_RANGE,
                CKR_DATA_LEN_RANGE,
            ],
        );
    } else {
        expect("PSS salt 2^40", rv, &param);
    }
    p.sLen = 32;
    p.hashAlg = CKM_SHA384; // does not match the mechanism's SHA-256
    let mut m = mech(CKM_SHA256_RSA_PKCS_PSS, &mut p as *mut _ as *mut c_void, pl);
    sign_init("PSS hash mismatch", &mut m, &param);

    // ECDH1-DERIVE: short, NULL with a length, NULL public data with a length,
    // a point that is not on the curve, an unknown KDF.
    let (_, ec_private) = ec_pair(&s, P256, "ecdh", false);
    let el = size_of::<CK_ECDH1_DERIVE_PARAMS>();
    let mut class = ulong(CKO_SECRET_KEY);
    let mut kt = ulong(CKK_GENERIC_SECRET);
    let mut vl = ulong(32);
    let mut tmpl = [
        at(CKA_CLASS, &mut class),
        at(CKA_KEY_TYPE, &mut kt),
        at(CKA_VALUE_LEN, &mut vl),
    ];
    let mut derive = |case: &str, m: &mut CK_MECHANISM, want: &[CK_RV]| {
        let mut out: CK_OBJECT_HANDLE = 0;
        let rv = rawcall!(
            C_DeriveKey,
            s.handle(),
            m,
            ec_private.handle(),
            tmpl.as_mut_ptr(),
            3,
            &mut out
        );
        expect(case, rv, want);
    };
    derive(
        "ECDH params 8 bytes",
        &mut mech(CKM_ECDH1_DERIVE, raw.as_mut_ptr() as *mut c_void, 8),
        &param,
    );
    derive(
        "ECDH params NULL",
        &mut mech(CKM_ECDH1_DERIVE, null_mut(), el),
        &param_or_args,
    );
    derive(
        "ECDH no params",
        &mut mech(CKM_ECDH1_DERIVE, null_mut(), 0),
        &param,
    );
    let mut e = CK_ECDH1_DERIVE_PARAMS {
        kdf: CKD_NULL,
        ulSharedDataLen: 0,
        pSharedData: null_mut(),
        ulPublicDataLen: 65,
        pPublicData: null_mut(),
    };
    derive(
        "ECDH NULL public data with a length",
        &mut mech(CKM_ECDH1_DERIVE, &mut e as *mut _ as *mut c_void, el),
        &param_or_args,
    );
    let mut off_curve = [0u8; 65];
    off_curve[0] = 4;
    off_curve[64] = 1;
    e.pPublicData = off_curve.as_mut_ptr();
    derive(
        "ECDH point not on the curve",
        &mut mech(CKM_ECDH1_DERIVE, &mut e as *mut _ as *mut c_void, el),
        &[CKR_MECHANISM_PARAM_INVALID, CKR_DOMAIN_PARAMS_INVALID],
    );
    e.ulPublicDataLen = 7;
    derive(
        "ECDH public data 7 bytes",
        &mut mech(CKM_ECDH1_DERIVE, &mut e as *mut _ as *mut c_void, el),
        &param,
    );
    let (peer_public, _) = ec_pair(&s, P256, "peer", false);
    let mut point = unwrap_octet_string(&attr_bytes(
        &s,
        peer_public,
        cryptoki::object::AttributeType::EcPoint,
    ));
    e.pPublicData = point.as_mut_ptr();
    e.ulPublicDataLen = point.len() as CK_ULONG;
    e.kdf = 0x1234;
    derive(
        "ECDH unknown KDF",
        &mut mech(CKM_ECDH1_DERIVE, &mut e as *mut _ as *mut c_void, el),
        &param,
    );
    e.kdf = CKD_NULL;
    e.ulSharedDataLen = 5;
    derive(
        "ECDH NULL shared data with a length",
        &mut mech(CKM_ECDH1_DERIVE, &mut e as *mut _ as *mut c_void, el),
        &param_or_args,
    );

    // AES key wrap with pad: an IV of 3 bytes. The wrapped key is not sensitive:
    // a sensitive one would be refused by strict wrapping (`aes` can decrypt)
    // before the parameter is looked at.
    let plain = aes_key(
        &s,
        &[Attribute::Extractable(true), Attribute::Sensitive(false)],
    )
    .handle();
    let mut m = mech(CKM_AES_KEY_WRAP_PAD, iv.as_mut_ptr() as *mut c_void, 3);
    let mut len: CK_ULONG = 64;
    let mut wrapped = [0u8; 64];
    expect(
        "KEY_WRAP_PAD IV 3 bytes",
        rawcall!(
            C_WrapKey,
            s.handle(),
            &mut m,
            aes,
            plain,
            wrapped.as_mut_ptr(),
            &mut len
        ),
        &param,
    );
    // HMAC general (not in SPEC T4, so possibly refused as a mechanism): a length
    // parameter of 3 bytes.
    let hk = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &[5; 32],
        &[Attribute::Sign(true)],
    );
    let mut m = mech(CKM_SHA256_HMAC_GENERAL, iv.as_mut_ptr() as *mut c_void, 3);
    expect(
        "HMAC_GENERAL length 3 bytes",
        rawcall!(C_SignInit, s.handle(), &mut m, hk.handle()),
        &[CKR_MECHANISM_PARAM_INVALID, CKR_MECHANISM_INVALID],
    );
    // A NULL mechanism pointer.
    expect(
        "NULL mechanism",
        rawcall!(C_SignInit, s.handle(), null_mut(), hk.handle()),
        &[CKR_ARGUMENTS_BAD],
    );
    // Nothing is left active: a digest can start.
    let mut dm = mech(CKM_SHA256, null_mut(), 0);
    assert_eq!(rawcall!(C_DigestInit, s.handle(), &mut dm), CKR_OK);
    let mut d = [0u8; 32];
    let mut dl: CK_ULONG = 32;
    assert_eq!(
        rawcall!(
            C_Digest,
            s.handle(),
            b"x".as_ptr() as *mut u8,
            1,
            d.as_mut_ptr(),
            &mut dl
        ),
        CKR_OK
    );
    still_works(&s);
}
