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
