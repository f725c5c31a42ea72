//! Cross-checks against the RustCrypto backend: whatever one signs, the other
//! verifies, on the aws-lc-rs paths and on the fallback paths.

use super::*;

fn rsa_pair(bits: usize) -> (RsaPrivateKey, rc::RsaPrivateKey) {
    let c = RsaPrivateKey::generate(bits, &[1, 0, 1]).unwrap();
    let primes = Some((&c.p[..], &c.q[..]));
    (
        RsaPrivateKey::from_components(&c.n, &c.e, &c.d, primes).unwrap(),
        rc::RsaPrivateKey::from_components(&c.n, &c.e, &c.d, primes).unwrap(),
    )
}

#[test]
fn rsa_cross_backend() {
    let (lc, rck) = rsa_pair(2048);
    assert!(lc.lc.is_some());
    let (lpub, rpub) = (lc.public(), rck.public());
    for h in [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        let hash = h.digest(&[b"message"]);
        let di = [h.digest_info_prefix(), &hash[..]].concat();
        let s1 = lc.sign_pkcs1(&di).unwrap();
        // PKCS#1 v1.5 is deterministic: both backends give the same bytes.
        assert_eq!(s1, rck.sign_pkcs1(&di).unwrap(), "{h:?}");
        rpub.verify_pkcs1(&di, &s1).unwrap();
        lpub.verify_pkcs1(&di, &s1).unwrap();
        let mut bad = s1.clone();
        bad[10] ^= 1;
        assert!(matches!(
            lpub.verify_pkcs1(&di, &bad),
            Err(Error::SignatureInvalid)
        ));
        for (mgf, salt) in [(h, h.output_len()), (HashAlg::Sha1, 20), (h, 0)] {
            let s = lc.sign_pss(&hash, h, mgf, salt).unwrap();
            rpub.verify_pss(&hash, &s, h, mgf, salt).unwrap();
            lpub.verify_pss(&hash, &s, h, mgf, salt).unwrap();
            let s = rck.sign_pss(&hash, h, mgf, salt).unwrap();
            lpub.verify_pss(&hash, &s, h, mgf, salt).unwrap();
            assert!(lpub.verify_pss(&hash, &bad, h, mgf, salt).is_err());
        }
    }
    // Raw data (no DigestInfo) goes to the fallback.
    let s = lc.sign_pkcs1(b"raw tls data").unwrap();
    rpub.verify_pkcs1(b"raw tls data", &s).unwrap();
    // OAEP with and without label, aws-lc and fallback combos.
    for (h, mgf, label) in [
        (HashAlg::Sha256, HashAlg::Sha256, &b""[..]),
        (HashAlg::Sha1, HashAlg::Sha1, &b"label"[..]),
        (HashAlg::Sha256, HashAlg::Sha1, &b""[..]),
    ] {
        let ct = rpub.encrypt_oaep(b"secret", h, mgf, label).unwrap();
        assert_eq!(&lc.decrypt_oaep(&ct, h, mgf, label).unwrap()[..], b"secret");
        assert!(matches!(
            lc.decrypt_oaep(&ct, h, mgf, b"other"),
            Err(Error::EncryptedDataInvalid)
        ));
    }
    let ct = rpub.encrypt_pkcs1(b"secret").unwrap();
    assert_eq!(&lc.decrypt_pkcs1(&ct).unwrap()[..], b"secret");
    assert!(matches!(
        lc.decrypt_pkcs1(&ct[1..]),
        Err(Error::EncryptedDataLenRange)
    ));
}

#[test]
fn rsa_1024_falls_back() {
    let (lc, rck) = rsa_pair(1024);
    assert!(lc.lc.is_none());
    let h = HashAlg::Sha256.digest(&[b"m"]);
    let s = lc
        .sign_pss(&h, HashAlg::Sha256, HashAlg::Sha256, 32)
        .unwrap();
    rck.public()
        .verify_pss(&h, &s, HashAlg::Sha256, HashAlg::Sha256, 32)
        .unwrap();
    lc.public()
        .verify_pss(&h, &s, HashAlg::Sha256, HashAlg::Sha256, 32)
        .unwrap();
}

#[test]
fn ecdsa_and_ecdh_cross_backend() {
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let k = EcPrivateKey::generate(curve).unwrap();
        let r = rc::EcPrivateKey::from_scalar(curve, &k.scalar()).unwrap();
        assert_eq!(k.public().point(), r.public().point());
        // 65 and 70 bytes: P-521's fallback path in this backend.
        for hash in [
            &[7u8; 20][..],
            &[8u8; 32],
            &[9u8; 48],
            &[10u8; 64],
            &[0xf1u8; 65],
            &[0xf2u8; 70],
        ] {
            let s = k.sign_prehash(hash).unwrap();
            r.public().verify_prehash(hash, &s).unwrap();
            k.public().verify_prehash(hash, &s).unwrap();
            let s2 = r.sign_prehash(hash).unwrap();
            k.public().verify_prehash(hash, &s2).unwrap();
            let mut bad = s.clone();
            bad[3] ^= 1;
            assert!(matches!(
                k.public().verify_prehash(hash, &bad),
                Err(Error::SignatureInvalid)
            ));
        }
        let peer = rc::EcPrivateKey::generate(curve).unwrap();
        let ppoint = peer.public().point();
        let z1 = k.ecdh(&ppoint).unwrap();
        let z2 = peer.ecdh(&k.public().point()).unwrap();
        assert_eq!(&z1[..], &z2[..]);
        assert!(k.ecdh(&ppoint[1..]).is_err());
    }
    assert!(EcPrivateKey::from_scalar(Curve::P256, &[0u8; 32]).is_err());
    assert!(EcPrivateKey::from_scalar(Curve::P256, &[0xffu8; 32]).is_err());
}
