//! PKCS#11 through `cryptoki`: objects and attributes (create, copy, destroy,
//! size, get/set attribute values), search, visibility and lifetime of objects.
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use pkcs11_common::*;

fn data(label: &str, token: bool, private: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(token),
        Attribute::Private(private),
        Attribute::Label(label.into()),
        Attribute::Application(b"vtoken tests".to_vec()),
        Attribute::Value(format!("value of {label}").into_bytes()),
    ]
}

fn find_label(s: &Session, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[Attribute::Label(label.into())]).unwrap()
}

#[test]
fn create_data_object_and_read_it_back() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let h = s.create_object(&data("d1", false, false)).unwrap();
    assert_eq!(attr_bytes(&s, h, AttributeType::Value), b"value of d1");
    assert_eq!(attr_bytes(&s, h, AttributeType::Label), b"d1");
    assert_eq!(
        attr_bytes(&s, h, AttributeType::Application),
        b"vtoken tests"
    );
    let attrs = s
        .get_attributes(
            h,
            &[
                AttributeType::Class,
                AttributeType::Token,
                AttributeType::Private,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Class(ObjectClass::DATA)));
    assert!(attrs.contains(&Attribute::Token(false)));
    assert!(attrs.contains(&Attribute::Private(false)));
    let mut size: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetObjectSize, s.handle(), h.handle(), &mut size),
        CKR_OK
    );
    assert!(
        size > 0,
        "size is a number of bytes or CK_UNAVAILABLE_INFORMATION"
    );
    assert_eq!(
        rawcall!(
            C_GetObjectSize,
            s.handle(),
            h.handle(),
            std::ptr::null_mut()
        ),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn create_certificate_object() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (der, subject) = make_cert(ctx.dir.path());
    let h = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"cert".to_vec()),
            Attribute::Id(vec![0xc0, 0xde]),
            Attribute::Subject(subject.clone()),
            Attribute::Value(der.clone()),
        ])
        .unwrap();
    assert_eq!(attr_bytes(&s, h, AttributeType::Value), der);
    assert_eq!(attr_bytes(&s, h, AttributeType::Subject), subject);
    let attrs = s
        .get_attributes(h, &[AttributeType::CertificateType])
        .unwrap();
    assert_eq!(
        attrs,
        vec![Attribute::CertificateType(CertificateType::X_509)]
    );
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(vec![0xc0, 0xde]),
        ])
        .unwrap();
    assert_eq!(found, vec![h]);
}

#[test]
fn create_aes_key_object() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let value: Vec<u8> = (0u8..32).collect();
    let h = secret_key(&s, KeyType::AES, &value, &[Attribute::Encrypt(true)]);
    let attrs = s
        .get_attributes(
            h,
            &[
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Class,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::KeyType(KeyType::AES)));
    assert!(attrs.contains(&Attribute::ValueLen(32.into())));
    assert!(attrs.contains(&Attribute::Class(ObjectClass::SECRET_KEY)));
    // A 7-byte AES key is not a valid value.
    let bad = s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Value(vec![1; 7]),
    ]);
    assert_eq!(rv(bad), RvError::AttributeValueInvalid);
}

#[test]
fn create_object_template_errors() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let no_class = [Attribute::Token(false), Attribute::Label(b"x".to_vec())];
    assert_eq!(rv(s.create_object(&no_class)), RvError::TemplateIncomplete);
    let mut t = data("m", false, false);
    t.push(Attribute::Modulus(vec![1, 2, 3]));
    assert_eq!(rv(s.create_object(&t)), RvError::AttributeTypeInvalid);
    let no_key_type = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(false),
        Attribute::Value(vec![0; 32]),
    ];
    assert_eq!(
        rv(s.create_object(&no_key_type)),
        RvError::TemplateIncomplete
    );
}

#[test]
fn copy_and_destroy_objects() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let h = s.create_object(&data("orig", false, false)).unwrap();
    let c = s
        .copy_object(h, &[Attribute::Label(b"copy".to_vec())])
        .unwrap();
    assert_ne!(c, h);
    assert_eq!(attr_bytes(&s, c, AttributeType::Label), b"copy");
    assert_eq!(attr_bytes(&s, c, AttributeType::Value), b"value of orig");
    assert_eq!(attr_bytes(&s, h, AttributeType::Label), b"orig");
    let t = s.copy_object(h, &[Attribute::Token(true)]).unwrap();
    assert_eq!(
        s.get_attributes(t, &[AttributeType::Token]).unwrap(),
        vec![Attribute::Token(true)]
    );
    assert_eq!(find_label(&s, "orig").len(), 2);

    s.destroy_object(h).unwrap();
    assert_eq!(
        rv(s.get_attributes(h, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(rv(s.destroy_object(h)), RvError::ObjectHandleInvalid);
    s.destroy_object(t).unwrap();
    assert!(find_label(&s, "orig").is_empty());
    assert_eq!(find_label(&s, "copy"), vec![c]);
}

#[test]
fn invalid_object_handles() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let bad = unsafe { ObjectHandle::new_from_raw(0xdead_beef) };
    assert_eq!(
        rv(s.get_attributes(bad, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(rv(s.destroy_object(bad)), RvError::ObjectHandleInvalid);
    assert_eq!(rv(s.copy_object(bad, &[])), RvError::ObjectHandleInvalid);
    assert_eq!(
        rv(s.update_attributes(bad, &[Attribute::Label(b"x".to_vec())])),
        RvError::ObjectHandleInvalid
    );
    let mut size: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_GetObjectSize, s.handle(), 0xdead_beef, &mut size),
        CKR_OBJECT_HANDLE_INVALID
    );
}

#[test]
fn get_attribute_value_sensitive_and_invalid_types() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let key = aes_key(
        &s,
        &[Attribute::Sensitive(true), Attribute::Label(b"k".to_vec())],
    );
    let mut label = [0u8; 16];
    let mut value = [0u8; 32];
    let mut key_type = [0u8; std::mem::size_of::<CK_ULONG>()];
    let mut t = [
        raw_attr(CKA_LABEL, Some(&mut label)),
        raw_attr(CKA_VALUE, Some(&mut value)),
        raw_attr(CKA_KEY_TYPE, Some(&mut key_type)),
    ];
    let r = rawcall!(
        C_GetAttributeValue,
        s.handle(),
        key.handle(),
        t.as_mut_ptr(),
        3
    );
    assert_eq!(r, CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(t[0].ulValueLen, 1);
    assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(t[2].ulValueLen as usize, key_type.len());
    assert_eq!(label[0], b'k');
    assert_eq!(CK_ULONG::from_ne_bytes(key_type), CKK_AES);

    // An attribute the object does not have.
    let obj = s.create_object(&data("d", false, false)).unwrap();
    let mut label = [0u8; 16];
    let mut modulus = [0u8; 16];
    let mut t = [
        raw_attr(CKA_MODULUS, Some(&mut modulus)),
        raw_attr(CKA_LABEL, Some(&mut label)),
        raw_attr(0x7fff_0001, None),
    ];
    let r = rawcall!(
        C_GetAttributeValue,
        s.handle(),
        obj.handle(),
        t.as_mut_ptr(),
        3
    );
    assert_eq!(r, CKR_ATTRIBUTE_TYPE_INVALID);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(t[1].ulValueLen, 1);
    assert_eq!(label[0], b'd');
    assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
}

#[test]
fn get_attribute_value_length_protocol() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let obj = s.create_object(&data("length", false, false)).unwrap();
    let mut t = [raw_attr(CKA_VALUE, None)];
    assert_eq!(
        rawcall!(
            C_GetAttributeValue,
            s.handle(),
            obj.handle(),
            t.as_mut_ptr(),
            1
        ),
        CKR_OK
    );
    assert_eq!(t[0].ulValueLen as usize, b"value of length".len());
    let mut short = [0u8; 4];
    let mut label = [0u8; 6];
    let mut t = [
        raw_attr(CKA_VALUE, Some(&mut short)),
        raw_attr(CKA_LABEL, Some(&mut label)),
    ];
    assert_eq!(
        rawcall!(
            C_GetAttributeValue,
            s.handle(),
            obj.handle(),
            t.as_mut_ptr(),
            2
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(t[1].ulValueLen, 6);
    assert_eq!(&label, b"length");
    let mut full = [0u8; 15];
    let mut t = [raw_attr(CKA_VALUE, Some(&mut full))];
    assert_eq!(
        rawcall!(
            C_GetAttributeValue,
            s.handle(),
            obj.handle(),
            t.as_mut_ptr(),
            1
        ),
        CKR_OK
    );
    assert_eq!(&full, b"value of length");
}

#[test]
fn set_attribute_value() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let obj = s.create_object(&data("before", true, false)).unwrap();
    s.update_attributes(obj, &[Attribute::Label(b"after".to_vec())])
        .unwrap();
    assert_eq!(attr_bytes(&s, obj, AttributeType::Label), b"after");
    // NSS sets CKA_ID on a generated key afterwards.
    let (public, private) = ec_pair(&s, P256, "ec", true);
    s.update_attributes(private, &[Attribute::Id(vec![1, 2, 3])])
        .unwrap();
    s.update_attributes(
        public,
        &[
            Attribute::Id(vec![1, 2, 3]),
            Attribute::Label(b"pub".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(attr_bytes(&s, private, AttributeType::Id), vec![1, 2, 3]);
    assert_eq!(attr_bytes(&s, public, AttributeType::Label), b"pub");
    let found = s.find_objects(&[Attribute::Id(vec![1, 2, 3])]).unwrap();
    assert_eq!(found.len(), 2);

    let key = secret_key(&s, KeyType::AES, &[7; 16], &[]);
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Value(vec![8; 16])])),
        RvError::AttributeReadOnly
    );
    assert_eq!(
        rv(s.update_attributes(obj, &[Attribute::Class(ObjectClass::SECRET_KEY)])),
        RvError::AttributeReadOnly
    );
    // CKA_SENSITIVE may only go from false to true.
    s.update_attributes(
        key,
        &[Attribute::Sensitive(true), Attribute::Label(b"x".to_vec())],
    )
    .unwrap();
    assert_eq!(
        rv(s.update_attributes(key, &[Attribute::Sensitive(false)])),
        RvError::AttributeReadOnly
    );
}

#[test]
fn find_by_label_id_and_class() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let d1 = s.create_object(&data("alpha", false, false)).unwrap();
    let d2 = s.create_object(&data("beta", true, true)).unwrap();
    let k1 = secret_key(
        &s,
        KeyType::AES,
        &[1; 16],
        &[Attribute::Id(vec![9]), Attribute::Label(b"alpha".to_vec())],
    );
    let k2 = secret_key(
        &s,
        KeyType::GENERIC_SECRET,
        &[2; 20],
        &[Attribute::Id(vec![9])],
    );
    let mut by_label = find_label(&s, "alpha");
    by_label.sort_by_key(|h| h.handle());
    let mut want = vec![d1, k1];
    want.sort_by_key(|h| h.handle());
    assert_eq!(by_label, want);
    assert_eq!(find_label(&s, "beta"), vec![d2]);
    assert!(find_label(&s, "gamma").is_empty());
    assert_eq!(s.find_objects(&[Attribute::Id(vec![9])]).unwrap().len(), 2);
    let keys = s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&k1) && keys.contains(&k2));
    let data_objs = s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert_eq!(data_objs.len(), 2);
    let aes = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ])
        .unwrap();
    assert_eq!(aes, vec![k1]);
    assert_eq!(s.find_objects(&[]).unwrap().len(), 4);
    assert_eq!(s.find_objects(&[Attribute::Token(true)]).unwrap(), vec![d2]);
}

#[test]
fn find_objects_operation_state() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    for i in 0..3 {
        s.create_object(&data(&format!("f{i}"), false, false))
            .unwrap();
    }
    let h = s.handle();
    let mut out = [0 as CK_OBJECT_HANDLE; 8];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        rawcall!(C_FindObjects, h, out.as_mut_ptr(), 8, &mut n),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        rawcall!(C_FindObjectsFinal, h),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        rawcall!(C_FindObjectsInit, h, std::ptr::null_mut(), 0),
        CKR_OK
    );
    assert_eq!(
        rawcall!(C_FindObjectsInit, h, std::ptr::null_mut(), 0),
        CKR_OPERATION_ACTIVE
    );
    // One at a time: 3 objects, then 0.
    let mut seen = Vec::new();
    loop {
        assert_eq!(
            rawcall!(C_FindObjects, h, out.as_mut_ptr(), 1, &mut n),
            CKR_OK
        );
        if n == 0 {
            break;
        }
        assert_eq!(n, 1);
        seen.push(out[0]);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        rawcall!(C_FindObjects, h, out.as_mut_ptr(), 8, std::ptr::null_mut()),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(rawcall!(C_FindObjectsFinal, h), CKR_OK);
    assert_eq!(
        rawcall!(C_FindObjectsFinal, h),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // NULL template with a count is bad.
    assert_eq!(
        rawcall!(C_FindObjectsInit, h, std::ptr::null_mut(), 2),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn private_objects_invisible_before_login() {
    let ctx = Ctx::new();
    let (slot, s) = ctx.user_session();
    s.create_object(&data("secret", true, true)).unwrap();
    s.create_object(&data("public", true, false)).unwrap();
    s.logout().unwrap();
    assert!(
        find_label(&s, "secret").is_empty(),
        "private object seen before login"
    );
    assert_eq!(find_label(&s, "public").len(), 1);
    assert_eq!(s.find_objects(&[]).unwrap().len(), 1);
    assert_eq!(
        rv(s.create_object(&data("p2", false, true))),
        RvError::UserNotLoggedIn
    );
    let ro = ctx.p11().open_ro_session(slot).unwrap();
    ro.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(find_label(&ro, "secret").len(), 1);
    assert_eq!(
        find_label(&s, "secret").len(),
        1,
        "login applies to every session"
    );
}

#[test]
fn token_object_in_read_only_session() {
    let ctx = Ctx::new();
    let slot = ctx.init_token();
    let ro = ctx.p11().open_ro_session(slot).unwrap();
    ro.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        rv(ro.create_object(&data("t", true, false))),
        RvError::SessionReadOnly
    );
    // Session objects are fine in an R/O session.
    let h = ro.create_object(&data("s", false, false)).unwrap();
    assert_eq!(
        rv(ro.copy_object(h, &[Attribute::Token(true)])),
        RvError::SessionReadOnly
    );
    let rw = ctx.p11().open_rw_session(slot).unwrap();
    let t = rw.create_object(&data("t", true, false)).unwrap();
    assert_eq!(rv(ro.destroy_object(t)), RvError::SessionReadOnly);
    assert_eq!(
        rv(ro.update_attributes(t, &[Attribute::Label(b"u".to_vec())])),
        RvError::SessionReadOnly
    );
    let (_, private) = ec_pair(&rw, P256, "ro", false);
    assert_eq!(attr_bytes(&ro, private, AttributeType::Label), b"ro");
}

#[test]
fn session_objects_vanish_with_their_session() {
    let ctx = Ctx::new();
    let (slot, a) = ctx.user_session();
    let b = ctx.p11().open_rw_session(slot).unwrap();
    let h = a.create_object(&data("ephemeral", false, false)).unwrap();
    let t = a.create_object(&data("durable", true, false)).unwrap();
    assert_eq!(
        find_label(&b, "ephemeral"),
        vec![h],
        "visible from other sessions"
    );
    a.close().unwrap();
    assert!(find_label(&b, "ephemeral").is_empty());
    assert_eq!(
        rv(b.get_attributes(h, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(find_label(&b, "durable"), vec![t]);
}

#[test]
fn token_objects_persist_across_finalize() {
    let mut ctx = Ctx::new();
    let slot = {
        let (slot, s) = ctx.user_session();
        s.create_object(&data("kept", true, true)).unwrap();
        s.create_object(&data("kept-public", true, false)).unwrap();
        s.create_object(&data("dropped", false, false)).unwrap();
        ec_pair(&s, P256, "kept-key", true);
        slot
    };
    ctx.reinit();
    let s = ctx.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RwPublic
    );
    assert_eq!(find_label(&s, "kept-public").len(), 1);
    assert!(find_label(&s, "kept").is_empty());
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let kept = find_label(&s, "kept");
    assert_eq!(kept.len(), 1);
    assert_eq!(
        attr_bytes(&s, kept[0], AttributeType::Value),
        b"value of kept"
    );
    assert!(find_label(&s, "dropped").is_empty());
    assert_eq!(find_label(&s, "kept-key").len(), 2);
}

#[test]
fn generated_key_pairs_get_a_shared_id() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "no-id", false);
    let id = attr_bytes(&s, public, AttributeType::Id);
    assert!(!id.is_empty(), "a CKA_ID is generated when none is given");
    assert_eq!(attr_bytes(&s, private, AttributeType::Id), id);
    let point = attr_bytes(&s, public, AttributeType::EcPoint);
    let raw_point = unwrap_octet_string(&point);
    assert_eq!((raw_point.len(), raw_point[0]), (65, 0x04));
    // NSS-style: SHA-1 of the uncompressed point.
    let sha1 = s
        .digest(&cryptoki::mechanism::Mechanism::Sha1, &raw_point)
        .unwrap();
    assert_eq!(id, sha1, "CKA_ID = SHA-1(EC point)");

    // A CKA_ID given on one half only is shared by the other.
    let (public, private) = s
        .generate_key_pair(
            &cryptoki::mechanism::Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Id(b"given".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(attr_bytes(&s, public, AttributeType::Id), b"given");
    assert_eq!(attr_bytes(&s, private, AttributeType::Id), b"given");
}

#[test]
fn private_key_values_are_sensitive() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, private) = ec_pair(&s, P256, "sens", false);
    let mut value = [0u8; 64];
    let mut params = [0u8; 16];
    let mut t = [
        raw_attr(CKA_VALUE, Some(&mut value)),
        raw_attr(CKA_EC_PARAMS, Some(&mut params)),
    ];
    let r = rawcall!(
        C_GetAttributeValue,
        s.handle(),
        private.handle(),
        t.as_mut_ptr(),
        2
    );
    assert_eq!(r, CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(&params[..t[1].ulValueLen as usize], P256);
    let attrs = s
        .get_attributes(
            private,
            &[
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Local,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    assert!(attrs.contains(&Attribute::AlwaysSensitive(true)));
    assert!(attrs.contains(&Attribute::Local(true)));
    // The public key stays readable after logout.
    s.logout().unwrap();
    assert_eq!(attr_bytes(&s, public, AttributeType::EcPoint).len(), 67);
}
