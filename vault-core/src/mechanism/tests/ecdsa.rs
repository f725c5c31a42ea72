//! ECDSA: RFC 6979 known answer, every hash on both curves, and `openssl`
//! cross-checks.

use crate::mechanism::test_support::*;

#[test]
fn ecdsa_rfc6979_a25_p256_sha256() {
    let mut sa = Attributes::new();
    sa.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    sa.set_ulong(CKA_KEY_TYPE, CKK_EC);
    sa.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    sa.set(
        CKA_VALUE,
        h("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"),
    );
    let mut pa = Attributes::new();
    pa.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    pa.set_ulong(CKA_KEY_TYPE, CKK_EC);
    pa.set(CKA_EC_PARAMS, Curve::P256.ec_params().to_vec());
    // Raw (not DER-wrapped) point form is accepted too.
    pa.set(
        CKA_EC_POINT,
        h(
            "04 60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
              7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
        ),
    );
    let sk = Key::from_attributes(&sa).unwrap();
    let pk = Key::from_attributes(&pa).unwrap();
    let sig = h(
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
                 F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8",
    );
    let hashed = Mechanism::new(CKM_ECDSA_SHA256);
    let raw = Mechanism::new(CKM_ECDSA);
    verify(&hashed, &pk, b"sample", &sig).unwrap();
    verify(&raw, &pk, &sha256(b"sample"), &sig).unwrap();
    if cfg!(feature = "aws-lc") {
        // AWS-LC's ECDSA nonces are random (hedged), not RFC 6979: check that
        // fresh signatures verify instead of comparing bytes.
        let s1 = sign(&hashed, &sk, b"sample").unwrap();
        let s2 = sign_parts(&hashed, &sk, &[b"sam", b"ple"]).unwrap();
        verify(&hashed, &pk, b"sample", &s1).unwrap();
        verify(&raw, &pk, &sha256(b"sample"), &s2).unwrap();
    } else {
        // Deterministic signing reproduces the published signature.
        assert_eq!(sign(&hashed, &sk, b"sample").unwrap(), sig);
        assert_eq!(sign_parts(&hashed, &sk, &[b"sam", b"ple"]).unwrap(), sig);
    }
    assert!(matches!(
        verify(&hashed, &pk, b"samplf", &sig),
        Err(Error::SignatureInvalid)
    ));
    let mut bad = sig.clone();
    bad[40] ^= 1;
    assert!(matches!(
        verify(&hashed, &pk, b"sample", &bad),
        Err(Error::SignatureInvalid)
    ));
    assert!(matches!(
        verify(&hashed, &pk, b"sample", &sig[..63]),
        Err(Error::SignatureLenRange)
    ));
    // A public key cannot sign; an AES key is the wrong type.
    assert!(matches!(
        sign_init(&hashed, &pk),
        Err(Error::KeyTypeInconsistent)
    ));
    assert!(matches!(
        sign_init(&raw, &secret(CKK_AES, &[0; 16])),
        Err(Error::KeyTypeInconsistent)
    ));
    // Verification with the private key object works too.
    verify(&hashed, &sk, b"sample", &sig).unwrap();
}

#[test]
fn ecdsa_all_hashes_every_curve_and_short_or_long_raw_input() {
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let (sk, pk, _) = ec_key(curve);
        for ty in [
            CKM_ECDSA_SHA1,
            CKM_ECDSA_SHA224,
            CKM_ECDSA_SHA256,
            CKM_ECDSA_SHA384,
            CKM_ECDSA_SHA512,
        ] {
            let m = Mechanism::new(ty);
            let sig = sign(&m, &sk, b"message").unwrap();
            assert_eq!(sig.len(), 2 * curve.field_len());
            verify(&m, &pk, b"message", &sig).unwrap();
            assert!(verify(&m, &pk, b"messagf", &sig).is_err());
        }
        let raw = Mechanism::new(CKM_ECDSA);
        // Shorter than the order (SHA-1 on P-384) and longer (SHA-512 on P-256);
        // on P-521 65 and 70 bytes take the fallback path of the aws-lc build.
        for len in [20usize, 64, 65, 70] {
            let input = vec![0xa5u8; len];
            let sig = sign(&raw, &sk, &input).unwrap();
            verify(&raw, &pk, &input, &sig).unwrap();
        }
        // FIPS 186-5 truncation: only the leftmost order-length bits count (on
        // P-521 the last 7 bits of the 66th byte fall off too).
        let fl = curve.field_len();
        let mut long = vec![0x11u8; fl + 4];
        let sig = sign(&raw, &sk, &long).unwrap();
        long[fl + 3] ^= 0xff;
        if curve == Curve::P521 {
            long[fl - 1] ^= 0x7f;
        }
        verify(&raw, &pk, &long, &sig).unwrap();
        if curve == Curve::P521 {
            long[fl - 1] ^= 0x80;
            assert!(verify(&raw, &pk, &long, &sig).is_err());
            long[fl - 1] ^= 0x80;
        }
        long[0] ^= 0xff;
        assert!(verify(&raw, &pk, &long, &sig).is_err());
        // Keys of another curve do not verify.
        let other = ec_key(if curve == Curve::P256 {
            Curve::P384
        } else {
            Curve::P256
        })
        .1;
        assert!(verify(&raw, &other, &[1; 32], &sig).is_err());
    }
}

/// `r || s` to the DER `ECDSA-Sig-Value` openssl expects.
fn ecdsa_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let int = |v: &[u8]| {
        let v = &v[v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1)..];
        let mut body = if v[0] & 0x80 != 0 { vec![0] } else { vec![] };
        body.extend_from_slice(v);
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

#[test]
fn openssl_verifies_ecdsa_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (curve, ty, md) in [
        (Curve::P256, CKM_ECDSA_SHA256, "-sha256"),
        (Curve::P384, CKM_ECDSA_SHA384, "-sha384"),
        (Curve::P521, CKM_ECDSA_SHA512, "-sha512"),
        (Curve::P521, CKM_ECDSA_SHA256, "-sha256"),
    ] {
        let (sk, _, pa) = ec_key(curve);
        write_pub_pem(d, &pa);
        let data = b"ecdsa data";
        std::fs::write(d.join("data"), data).unwrap();
        let sig = sign(&Mechanism::new(ty), &sk, data).unwrap();
        std::fs::write(d.join("sig"), ecdsa_der(&sig)).unwrap();
        let args = [
            "dgst",
            md,
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "data",
        ];
        assert_ok(openssl(&args, d), "hashed ECDSA");
        let mut bad = sig.clone();
        bad[5] ^= 1;
        std::fs::write(d.join("sig"), ecdsa_der(&bad)).unwrap();
        assert!(!openssl(&args, d).status.success());

        // Raw ECDSA over a SHA-256 hash.
        let hash = sha256(data);
        std::fs::write(d.join("hash"), &hash).unwrap();
        let sig = sign(&Mechanism::new(CKM_ECDSA), &sk, &hash).unwrap();
        std::fs::write(d.join("sig"), ecdsa_der(&sig)).unwrap();
        assert_ok(
            openssl(
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "hash", "-sigfile",
                    "sig",
                ],
                d,
            ),
            "raw ECDSA",
        );
    }
}
