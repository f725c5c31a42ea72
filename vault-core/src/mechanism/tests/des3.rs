//! Triple DES: SP 800-67 known answer and the three modes.

use crate::mechanism::test_support::*;

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

/// Single DES (legacy): the textbook known answer (key 133457799BBCDFF1), the three
/// modes, key generation with odd parity, and the policy switch that removes it.
#[test]
fn des_known_answer_modes_and_policy() {
    use crate::mechanism::backend::TEST_LEGACY;
    TEST_LEGACY.set(Some(true));
    let k = secret(CKK_DES, &h("133457799BBCDFF1"));
    let ecb = Mechanism::new(CKM_DES_ECB);
    let pt = h("0123456789ABCDEF");
    assert_eq!(encrypt(&ecb, &k, &pt).unwrap(), h("85E813540F0AB405"));
    assert_eq!(decrypt(&ecb, &k, &h("85E813540F0AB405")).unwrap(), pt);
    let msg = b"legacy clients still talk DES";
    let pad = mech(CKM_DES_CBC_PAD, MechParam::Bytes(vec![3; 8]));
    let c = encrypt(&pad, &k, msg).unwrap();
    assert_eq!(c.len(), 32);
    assert_eq!(decrypt(&pad, &k, &c).unwrap(), msg);
    let cbc = mech(CKM_DES_CBC, MechParam::Bytes(vec![3; 8]));
    let c = encrypt(&cbc, &k, &msg[..24]).unwrap();
    assert_eq!(decrypt(&cbc, &k, &c).unwrap(), &msg[..24]);
    // A DES key is not a DES3 key, nor the other way round.
    assert!(matches!(
        encrypt_init(&ecb, &secret(CKK_DES3, &[1; 24])),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        encrypt_init(&Mechanism::new(CKM_DES3_ECB), &k),
        Err(Error::KeyTypeInconsistent)
    ));
    let mut t = Attributes::new();
    t.set_ulong(CKA_KEY_TYPE, CKK_DES);
    let g = generate_key(&Mechanism::new(CKM_DES_KEY_GEN), &t).unwrap();
    let v = g.get(CKA_VALUE).unwrap();
    assert_eq!(v.len(), 8);
    assert!(v.iter().all(|b| b.count_ones() % 2 == 1), "odd parity");
    assert!(mechanism_list().contains(&CKM_DES_CBC_PAD));

    // Policy off: not listed, no info, not usable.
    TEST_LEGACY.set(Some(false));
    let list = mechanism_list();
    assert!(!list.iter().any(|m| matches!(
        *m,
        CKM_DES_KEY_GEN | CKM_DES_ECB | CKM_DES_CBC | CKM_DES_CBC_PAD
    )));
    assert!(list.contains(&CKM_DES3_ECB));
    assert!(matches!(
        mechanism_info(CKM_DES_ECB),
        Err(Error::MechanismInvalid(CKM_DES_ECB))
    ));
    assert!(matches!(
        encrypt_init(&ecb, &k),
        Err(Error::MechanismInvalid(CKM_DES_ECB))
    ));
    TEST_LEGACY.set(None);
}
