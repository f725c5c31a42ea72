//! AES key wrap: RFC 3394 and RFC 5649 known answers, as ciphers and through
//! `C_WrapKey` / `C_UnwrapKey`.

use crate::mechanism::test_support::*;

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
