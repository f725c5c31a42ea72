//! ChaCha20-Poly1305: RFC 8439 §2.8.2, multi-part, tampering, and `openssl enc`
//! cannot check AEAD tags, so the RFC vector is the reference.

use crate::mechanism::test_support::*;

fn cp(nonce: &[u8], aad: &[u8]) -> Mechanism {
    mech(
        CKM_CHACHA20_POLY1305,
        MechParam::ChaChaPoly {
            nonce: nonce.to_vec(),
            aad: aad.to_vec(),
        },
    )
}

#[test]
fn rfc8439_vector_and_tampering() {
    let key = secret(
        CKK_CHACHA20,
        &h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
    );
    let nonce = h("070000004041424344454647");
    let aad = h("50515253c0c1c2c3c4c5c6c7");
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let m = cp(&nonce, &aad);
    let ct = encrypt(&m, &key, pt).unwrap();
    assert_eq!(
        hex::encode(&ct[ct.len() - 16..]),
        "1ae10b594f09e26a7e902ecbd0600691"
    );
    assert_eq!(hex::encode(&ct[..16]), "d31a8d34648e60db7b86afbc53ef7ec2");
    assert_eq!(decrypt(&m, &key, &ct).unwrap(), pt);
    // In parts, the same bytes.
    let mut op = encrypt_init(&m, &key).unwrap();
    assert!(op.update(&pt[..50]).unwrap().is_empty());
    let mut parts = op.update(&pt[50..]).unwrap();
    parts.extend(op.finish().unwrap());
    assert_eq!(parts, ct);
    // A flipped bit, other AAD or a short input: refused.
    let mut bad = ct.clone();
    bad[3] ^= 1;
    assert!(matches!(
        decrypt(&m, &key, &bad),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        decrypt(&cp(&nonce, b"x"), &key, &ct),
        Err(Error::EncryptedDataInvalid)
    ));
    assert!(matches!(
        decrypt(&m, &key, &ct[..15]),
        Err(Error::EncryptedDataLenRange)
    ));
    // The nonce is 96 bits; the key must be a ChaCha20 key.
    assert!(matches!(
        encrypt_init(&cp(&nonce[..8], &aad), &key),
        Err(Error::MechanismParamInvalid(_))
    ));
    assert!(matches!(
        encrypt_init(&m, &secret(CKK_AES, &[0; 32])),
        Err(Error::KeyTypeInconsistent)
    ));
}
