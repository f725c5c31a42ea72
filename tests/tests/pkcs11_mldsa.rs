//! ML-DSA (FIPS 204, PKCS#11 3.2 §6.67) through the real module with the `cryptoki`
//! crate: key generation for the three parameter sets, the private key's seed and
//! expanded key never readable, signatures with and without context, hedged and
//! deterministic, the pre-hash variants (HashML-DSA single-part only), and the IETF
//! example key imported by its seed, checked against its published public key.

#[allow(unused_imports)]
mod pkcs11_common;

use cryptoki::error::RvError;
use cryptoki::mechanism::dsa::{HashSignAdditionalContext, HedgeType, SignAdditionalContext};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, MlDsaParameterSetType, ObjectClass};
use cryptoki_sys::*;
use pkcs11_common::*;

const IETF_44_PUB: &str =
    include_str!("../../vault-core/src/mechanism/tests/vectors/ml-dsa-44.pub");

#[test]
fn ml_dsa_keys_sign_and_verify_through_the_module() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    for (set, pk_len, sig_len) in [
        (MlDsaParameterSetType::ML_DSA_44, 1312usize, 2420usize),
        (MlDsaParameterSetType::ML_DSA_65, 1952, 3309),
        (MlDsaParameterSetType::ML_DSA_87, 2592, 4627),
    ] {
        let (public, private) = s
            .generate_key_pair(
                &Mechanism::MlDsaKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ParameterSet(set.into()),
                    Attribute::Verify(true),
                ],
                &[Attribute::Token(true), Attribute::Sign(true)],
            )
            .unwrap();
        assert_eq!(attr_bytes(&s, public, AttributeType::Value).len(), pk_len);
        let a = s
            .get_attributes(
                private,
                &[
                    AttributeType::KeyType,
                    AttributeType::ParameterSet,
                    AttributeType::Sensitive,
                ],
            )
            .unwrap();
        assert_eq!(
            a,
            vec![
                Attribute::KeyType(KeyType::ML_DSA),
                Attribute::ParameterSet(set.into()),
                Attribute::Sensitive(true)
            ]
        );
        // Malware with the PIN asks for the private key: neither the seed nor the
        // expanded key comes out.
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
            assert_eq!(a[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        }

        let data = b"post-quantum data";
        let hedged = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
        let sig = s.sign(&hedged, private, data).unwrap();
        assert_eq!(sig.len(), sig_len);
        s.verify(&hedged, public, data, &sig).unwrap();
        assert_eq!(
            rv(s.verify(&hedged, public, b"other data", &sig)),
            RvError::SignatureInvalid
        );
        let ctx_bytes = [0xEEu8, 0x0B, 0x3F];
        let det = Mechanism::MlDsa(SignAdditionalContext::new(
            HedgeType::DeterministicRequired,
            Some(&ctx_bytes),
        ));
        let d1 = s.sign(&det, private, data).unwrap();
        assert_eq!(d1, s.sign(&det, private, data).unwrap());
        s.verify(&det, public, data, &d1).unwrap();
        // The same signature under another context (or none) fails.
        assert_eq!(
            rv(s.verify(&hedged, public, data, &d1)),
            RvError::SignatureInvalid
        );
        // Multi-part signing gives the same deterministic signature.
        s.sign_init(&det, private).unwrap();
        s.sign_update(&data[..5]).unwrap();
        s.sign_update(&data[5..]).unwrap();
        assert_eq!(s.sign_final().unwrap(), d1);

        // HashML-DSA with SHA-256 on the token = HashML-DSA over the caller's hash.
        let on_token = Mechanism::HashMlDsaSha256(SignAdditionalContext::new(
            HedgeType::DeterministicRequired,
            None,
        ));
        let h1 = s.sign(&on_token, private, data).unwrap();
        let ph = s.digest(&Mechanism::Sha256, data).unwrap();
        let given = Mechanism::HashMlDsa(HashSignAdditionalContext::new(
            HedgeType::DeterministicRequired,
            None,
            MechanismType::SHA256,
        ));
        assert_eq!(s.sign(&given, private, &ph).unwrap(), h1);
        s.verify(&given, public, &ph, &h1).unwrap();
        s.verify(&on_token, public, data, &h1).unwrap();
        // CKM_HASH_ML_DSA is single-part: an update ends the operation.
        s.sign_init(&given, private).unwrap();
        assert_eq!(
            rv(s.sign_update(&ph[..10])),
            RvError::OperationNotInitialized
        );
        assert_eq!(rv(s.sign_final()), RvError::OperationNotInitialized);
        s.destroy_object(public).unwrap();
        s.destroy_object(private).unwrap();
    }
}

/// The IETF example ML-DSA-44 key (seed 00 01 … 1f) imported by its seed signs,
/// and its published public key, imported too, verifies: the token computes the
/// same key as other implementations. An expanded key that does not belong to
/// the seed is refused.
#[test]
fn ietf_example_key_by_its_seed() {
    let ctx = Ctx::new();
    let (_, s) = ctx.user_session();
    let seed: Vec<u8> = (0u8..32).collect();
    let private = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::ML_DSA),
            Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_44.into()),
            Attribute::Seed(seed.clone()),
            Attribute::Sign(true),
        ])
        .unwrap();
    let public = s
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::ML_DSA),
            Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_44.into()),
            Attribute::Value(spki_key(IETF_44_PUB, 1312)),
            Attribute::Verify(true),
        ])
        .unwrap();
    let m = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Required, None));
    let sig = s.sign(&m, private, b"interop").unwrap();
    s.verify(&m, public, b"interop", &sig).unwrap();
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::ML_DSA),
        Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_44.into()),
        Attribute::Seed(seed),
        Attribute::Value(vec![7; 2560]),
    ]);
    assert_eq!(rv(r), RvError::AttributeValueInvalid);
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::ML_DSA),
        Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_44.into()),
        Attribute::Value(vec![7; 2560]),
    ]);
    assert_eq!(rv(r), RvError::TemplateIncomplete);
}

/// The PKCS#11 3.2 interface is the default one (`cryptoki` takes it) and its
/// `C_VerifySignature*` functions verify with the signature given first, for any
/// signature mechanism; the two kinds of verification do not mix.
#[test]
fn verify_signature_functions_of_the_3_2_interface() {
    let ctx = Ctx::new();
    assert_eq!(
        ctx.p11()
            .get_library_info()
            .unwrap()
            .cryptoki_version()
            .minor(),
        2
    );
    let (_, s) = ctx.user_session();
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[Attribute::ParameterSet(
                MlDsaParameterSetType::ML_DSA_44.into(),
            )],
            &[],
        )
        .unwrap();
    let m = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let data = b"verify me";
    let sig = s.sign(&m, private, data).unwrap();
    s.verify_signature_init(&m, public, &sig).unwrap();
    s.verify_signature(data).unwrap();
    s.verify_signature_init(&m, public, &sig).unwrap();
    s.verify_signature_update(&data[..3]).unwrap();
    s.verify_signature_update(&data[3..]).unwrap();
    s.verify_signature_final().unwrap();
    s.verify_signature_init(&m, public, &sig).unwrap();
    assert_eq!(
        rv(s.verify_signature(b"verify mE")),
        RvError::SignatureInvalid
    );
    // Begun as VerifySignature, a C_Verify is not this operation (and the other
    // way round); the operation in progress stays.
    s.verify_signature_init(&m, public, &sig).unwrap();
    assert_eq!(
        rv(s.verify(&m, public, data, &sig)),
        RvError::OperationActive
    );
    s.verify_signature(data).unwrap();
    // An ECDSA key through the same functions.
    let (ec_pub, ec_priv) = ec_pair(&s, P256, "ec", false);
    let es = s.sign(&Mechanism::EcdsaSha256, ec_priv, data).unwrap();
    s.verify_signature_init(&Mechanism::EcdsaSha256, ec_pub, &es)
        .unwrap();
    s.verify_signature(data).unwrap();
}
