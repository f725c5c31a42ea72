//! ML-KEM (FIPS 203) through the real module and the PKCS#11 3.2 functions
//! `C_EncapsulateKey`/`C_DecapsulateKey`, with the `cryptoki` crate: both sides get
//! the same AES key, the decapsulation key's seed and expanded key never come out,
//! the length protocol makes no key, a tampered ciphertext gives another key, and
//! the IETF example key imported by its seed matches its published encapsulation
//! key.

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, MlKemParameterSetType, ObjectClass};
use cryptoki_sys::*;
use pkcs11_common::*;

const IETF_768_PUB: &str =
    include_str!("../../vault-core/src/mechanism/tests/vectors/ml-kem-768.pub");

fn aes_template() -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ]
}

#[test]
fn ml_kem_both_sides_agree_through_the_module() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    for (set, ct_len) in [
        (MlKemParameterSetType::ML_KEM_512, 768usize),
        (MlKemParameterSetType::ML_KEM_768, 1088),
        (MlKemParameterSetType::ML_KEM_1024, 1568),
    ] {
        let (public, private) = s
            .generate_key_pair(
                &Mechanism::MlKemKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ParameterSet(set.into()),
                    Attribute::Encapsulate(true),
                ],
                &[Attribute::Token(true), Attribute::Decapsulate(true)],
            )
            .unwrap();
        for t in [CKA_SEED, CKA_VALUE] {
            let mut buf = vec![0u8; 8192];
            let mut a = [raw_attr(t, Some(&mut buf))];
            let r = rawcall!(
                C_GetAttributeValue,
                s.handle(),
                private.handle(),
                a.as_mut_ptr(),
                1
            );
            assert_eq!(r, CKR_ATTRIBUTE_SENSITIVE, "0x{t:x}");
        }
        let (ct, k1) = s
            .encapsulate_key(&Mechanism::MlKem, public, &aes_template())
            .unwrap();
        assert_eq!(ct.len(), ct_len);
        let k2 = s
            .decapsulate_key(&Mechanism::MlKem, private, &aes_template(), &ct)
            .unwrap();
        let v1 = attr_bytes(&s, k1, AttributeType::Value);
        assert_eq!(v1.len(), 32, "AES-256 from the 32-byte secret");
        assert_eq!(v1, attr_bytes(&s, k2, AttributeType::Value));
        let data = [7u8; 16];
        let c = s.encrypt(&Mechanism::AesEcb, k1, &data).unwrap();
        assert_eq!(s.decrypt(&Mechanism::AesEcb, k2, &c).unwrap(), data);
        // A tampered ciphertext: implicit rejection, another key.
        let mut bad = ct.clone();
        bad[0] ^= 1;
        let k3 = s
            .decapsulate_key(&Mechanism::MlKem, private, &aes_template(), &bad)
            .unwrap();
        assert_ne!(attr_bytes(&s, k3, AttributeType::Value), v1);
        // The wrong length is refused.
        assert_eq!(
            rv(s.decapsulate_key(&Mechanism::MlKem, private, &aes_template(), &ct[1..])),
            RvError::EncryptedDataLenRange
        );
        // Keys the wrong way round.
        assert_eq!(
            rv(s.encapsulate_key(&Mechanism::MlKem, private, &aes_template())),
            RvError::KeyFunctionNotPermitted
        );
    }
}

/// The length protocol of `C_EncapsulateKey`: a NULL ciphertext buffer gets the
/// length and makes no key; a short one is `CKR_BUFFER_TOO_SMALL` and makes none.
#[test]
fn encapsulate_length_protocol_makes_no_key() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let (public, _) = s
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[Attribute::ParameterSet(
                MlKemParameterSetType::ML_KEM_512.into(),
            )],
            &[],
        )
        .unwrap();
    let before = s.find_objects(&[]).unwrap().len();
    let mut mech = CK_MECHANISM {
        mechanism: CKM_ML_KEM,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut class = CKO_SECRET_KEY.to_ne_bytes();
    let mut t = [raw_attr(CKA_CLASS, Some(&mut class))];
    let mut len: CK_ULONG = 0;
    let mut key: CK_OBJECT_HANDLE = 0;
    // SAFETY: the exported symbol has the 3.2 signature of `C_EncapsulateKey`.
    let encaps: CK_C_EncapsulateKey = unsafe { std::mem::transmute(dlsym("C_EncapsulateKey")) };
    let encaps = encaps.unwrap();
    let r = unsafe {
        encaps(
            s.handle(),
            &mut mech,
            public.handle(),
            t.as_mut_ptr(),
            1,
            std::ptr::null_mut(),
            &mut len,
            &mut key,
        )
    };
    assert_eq!((r, len), (CKR_OK, 768));
    let mut short = vec![0u8; 100];
    len = 100;
    let r = unsafe {
        encaps(
            s.handle(),
            &mut mech,
            public.handle(),
            t.as_mut_ptr(),
            1,
            short.as_mut_ptr(),
            &mut len,
            &mut key,
        )
    };
    assert_eq!((r, len), (CKR_BUFFER_TOO_SMALL, 768));
    assert_eq!(s.find_objects(&[]).unwrap().len(), before);
}

/// The IETF example ML-KEM-768 key (seed 00 01 … 3f) imported by its seed, and
/// its published encapsulation key imported as a public key: a secret sent to
/// the published key arrives at the token's key.
#[test]
fn ietf_example_key_by_its_seed() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let private = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::ML_KEM),
            Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
            Attribute::Seed((0u8..64).collect()),
        ])
        .unwrap();
    let public = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::ML_KEM),
            Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
            Attribute::Value(spki_key(IETF_768_PUB, 1184)),
        ])
        .unwrap();
    let (ct, k1) = s
        .encapsulate_key(&Mechanism::MlKem, public, &aes_template())
        .unwrap();
    let k2 = s
        .decapsulate_key(&Mechanism::MlKem, private, &aes_template(), &ct)
        .unwrap();
    assert_eq!(
        attr_bytes(&s, k1, AttributeType::Value),
        attr_bytes(&s, k2, AttributeType::Value)
    );
}
