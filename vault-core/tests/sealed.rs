//! Sealed transfer (V8, V11): CMS envelopes and signatures, checked against the real
//! `openssl` CLI in both directions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use vault_core::mechanism::HashAlg;
use vault_core::sealed::{self, KeyTransport};
use vault_core::{Error, Result};
use zeroize::Zeroizing;

/// One RSA-2048 identity (key + self-signed certificate), made by the openssl CLI.
struct Ident {
    dir: tempfile::TempDir,
    key: RsaPrivateKey,
    cert_der: Vec<u8>,
}

impl Ident {
    fn new(cn: &str) -> Ident {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            p(d, "key.pem"),
            "-out",
            p(d, "cert.pem"),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "2",
        ]);
        openssl(&[
            "x509",
            "-in",
            p(d, "cert.pem"),
            "-outform",
            "DER",
            "-out",
            p(d, "cert.der"),
        ]);
        let pem = std::fs::read_to_string(d.join("key.pem")).unwrap();
        let key = RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let cert_der = std::fs::read(d.join("cert.der")).unwrap();
        Ident { dir, key, cert_der }
    }

    fn path(&self, name: &str) -> &'static str {
        leak(self.dir.path().join(name))
    }

    fn key_pem(&self) -> &'static str {
        self.path("key.pem")
    }

    fn cert_pem(&self) -> &'static str {
        self.path("cert.pem")
    }

    /// The token side of [`sealed::open`]: OAEP as announced; PKCS#1 v1.5 only if
    /// `allow_v15`.
    fn unwrapper<'a>(
        &'a self,
        allow_v15: bool,
        seen: &'a mut Option<KeyTransport>,
    ) -> impl FnOnce(&KeyTransport, &[u8]) -> Result<Zeroizing<Vec<u8>>> + 'a {
        move |kt, enc| {
            *seen = Some(kt.clone());
            let out = match kt.oaep_padding()? {
                Some(padding) => self.key.decrypt(padding, enc),
                None if allow_v15 => self.key.decrypt(Pkcs1v15Encrypt, enc),
                None => return Err(Error::FunctionRejected),
            };
            out.map(Zeroizing::new)
                .map_err(|_| Error::EncryptedDataInvalid)
        }
    }

    fn signer(&self) -> impl FnOnce(&[u8]) -> Result<Vec<u8>> + '_ {
        move |data| {
            self.key
                .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(data))
                .map_err(|e| Error::General(e.to_string()))
        }
    }
}

fn leak(p: PathBuf) -> &'static str {
    Box::leak(p.to_str().unwrap().to_owned().into_boxed_str())
}

fn p(dir: &Path, name: &str) -> &'static str {
    leak(dir.join(name))
}

fn alice() -> &'static Ident {
    static A: OnceLock<Ident> = OnceLock::new();
    A.get_or_init(|| Ident::new("vtoken test alice"))
}

fn bob() -> &'static Ident {
    static B: OnceLock<Ident> = OnceLock::new();
    B.get_or_init(|| Ident::new("vtoken test bob"))
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn open_as(id: &Ident, cms: &[u8]) -> Result<(Zeroizing<Vec<u8>>, KeyTransport)> {
    let mut seen = None;
    let pt = sealed::open(cms, id.unwrapper(false, &mut seen), Some(&id.cert_der))?;
    Ok((pt, seen.unwrap()))
}

const OAEP_SHA256: KeyTransport = KeyTransport::Oaep {
    hash: HashAlg::Sha256,
    mgf_hash: HashAlg::Sha256,
    label: Vec::new(),
};

#[test]
fn seal_then_open_roundtrips() {
    let a = alice();
    for len in [0usize, 1, 15, 16, 17, 1000] {
        let msg = sample(len);
        let cms = sealed::seal(&a.cert_der, &msg).unwrap();
        let (pt, kt) = open_as(a, &cms).unwrap();
        assert_eq!(pt.as_slice(), msg.as_slice());
        assert_eq!(kt, OAEP_SHA256);
        // Without naming the certificate: the only recipient.
        let mut seen = None;
        let pt = sealed::open(&cms, a.unwrapper(false, &mut seen), None).unwrap();
        assert_eq!(pt.as_slice(), msg.as_slice());
    }
    // Two seals of the same data differ (fresh key and nonce).
    assert_ne!(
        sealed::seal(&a.cert_der, b"x").unwrap(),
        sealed::seal(&a.cert_der, b"x").unwrap()
    );
}

#[test]
fn seal_output_is_auth_enveloped_data_that_openssl_decrypts() {
    let a = alice();
    let t = scratch();
    let msg = sample(5000);
    let cms = sealed::seal(&a.cert_der, &msg).unwrap();
    std::fs::write(t.path().join("in.der"), &cms).unwrap();
    let parsed = openssl(&["asn1parse", "-inform", "DER", "-in", p(t.path(), "in.der")]);
    let parsed = String::from_utf8_lossy(&parsed);
    for want in [
        "id-smime-ct-authEnvelopedData",
        "rsaesOaep",
        "mgf1",
        "sha256",
        "aes-256-gcm",
    ] {
        assert!(parsed.contains(want), "{want} missing from:\n{parsed}");
    }
    let out = openssl(&[
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        p(t.path(), "in.der"),
        "-inkey",
        a.key_pem(),
        "-recip",
        a.cert_pem(),
        "-binary",
    ]);
    assert_eq!(out, msg);
}

fn openssl_encrypt(to: &Ident, msg: &[u8], opts: &[&str]) -> Vec<u8> {
    let t = scratch();
    std::fs::write(t.path().join("msg"), msg).unwrap();
    let mut args = vec![
        "cms",
        "-encrypt",
        "-binary",
        "-in",
        p(t.path(), "msg"),
        "-outform",
        "DER",
        "-out",
        p(t.path(), "out.der"),
        "-recip",
        to.cert_pem(),
    ];
    args.extend_from_slice(opts);
    openssl(&args);
    std::fs::read(t.path().join("out.der")).unwrap()
}

#[test]
fn openssl_oaep_envelopes_open() {
    let a = alice();
    let msg = sample(3000);
    let oaep256 = [
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
    ];
    for cipher in [
        "-aes-256-gcm",
        "-aes-128-gcm",
        "-aes-192-gcm",
        "-aes-256-cbc",
        "-aes-128-cbc",
        "-aes-192-cbc",
    ] {
        let mut opts = oaep256.to_vec();
        opts.push(cipher);
        let cms = openssl_encrypt(a, &msg, &opts);
        let (pt, kt) = open_as(a, &cms).unwrap_or_else(|e| panic!("{cipher}: {e}"));
        assert_eq!(pt.as_slice(), msg.as_slice(), "{cipher}");
        assert_eq!(kt, OAEP_SHA256, "{cipher}");
    }
    // PEM output.
    let cms = openssl_encrypt(
        a,
        &msg,
        &[
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-aes-256-gcm",
            "-outform",
            "PEM",
        ],
    );
    assert!(cms.starts_with(b"-----BEGIN CMS-----"));
    assert_eq!(open_as(a, &cms).unwrap().0.as_slice(), msg.as_slice());
    // The recipient named by subject key identifier instead of issuer and serial.
    let cms = openssl_encrypt(
        a,
        &msg,
        &["-keyid", "-keyopt", "rsa_padding_mode:oaep", "-aes-256-gcm"],
    );
    assert_eq!(open_as(a, &cms).unwrap().0.as_slice(), msg.as_slice());
    let mut seen = None;
    let err = sealed::open(
        &cms,
        bob().unwrapper(false, &mut seen),
        Some(&bob().cert_der),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not sealed to this certificate"),
        "{err}"
    );
    // OAEP with its defaults (SHA-1, MGF1-SHA-1).
    let cms = openssl_encrypt(
        a,
        &msg,
        &["-keyopt", "rsa_padding_mode:oaep", "-aes-256-gcm"],
    );
    let (pt, kt) = open_as(a, &cms).unwrap();
    assert_eq!(pt.as_slice(), msg.as_slice());
    assert_eq!(
        kt,
        KeyTransport::Oaep {
            hash: HashAlg::Sha1,
            mgf_hash: HashAlg::Sha1,
            label: vec![]
        }
    );
    // SHA-512 with MGF1-SHA-256 and a label.
    let cms = openssl_encrypt(
        a,
        &msg,
        &[
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha512",
            "-keyopt",
            "rsa_mgf1_md:sha256",
            "-keyopt",
            "rsa_oaep_label:6c6162656c",
            "-aes-256-cbc",
        ],
    );
    let (pt, kt) = open_as(a, &cms).unwrap();
    assert_eq!(pt.as_slice(), msg.as_slice());
    assert_eq!(
        kt,
        KeyTransport::Oaep {
            hash: HashAlg::Sha512,
            mgf_hash: HashAlg::Sha256,
            label: b"label".to_vec()
        }
    );
}

#[test]
fn openssl_pkcs1v15_envelopes_open_only_when_the_token_allows_it() {
    let a = alice();
    let msg = b"plain openssl cms -encrypt uses PKCS#1 v1.5 key transport".to_vec();
    let cms = openssl_encrypt(a, &msg, &["-aes256"]);
    let mut seen = None;
    let pt = sealed::open(&cms, a.unwrapper(true, &mut seen), Some(&a.cert_der)).unwrap();
    assert_eq!(pt.as_slice(), msg.as_slice());
    assert_eq!(seen, Some(KeyTransport::Pkcs1v15));
    // A token that refuses v1.5: its error comes back as is.
    let mut seen = None;
    let err = sealed::open(&cms, a.unwrapper(false, &mut seen), Some(&a.cert_der)).unwrap_err();
    assert!(
        matches!(err, Error::FunctionRejected | Error::NotConfirmed(_)),
        "{err}"
    );
    assert_eq!(seen, Some(KeyTransport::Pkcs1v15));
}

#[test]
fn envelopes_with_several_recipients() {
    let (a, b) = (alice(), bob());
    let msg = sample(100);
    // `-keyopt` applies to the `-recip` before it.
    let oaep = [
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-aes-256-gcm",
        "-recip",
        b.cert_pem(),
        "-keyopt",
        "rsa_padding_mode:oaep",
    ];
    let cms = openssl_encrypt(a, &msg, &oaep);
    assert_eq!(open_as(a, &cms).unwrap().0.as_slice(), msg.as_slice());
    assert_eq!(open_as(b, &cms).unwrap().0.as_slice(), msg.as_slice());
    let mut seen = None;
    let err = sealed::open(&cms, a.unwrapper(false, &mut seen), None).unwrap_err();
    assert!(err.to_string().contains("several recipients"), "{err}");
    assert!(
        seen.is_none(),
        "no private-key operation for an ambiguous envelope"
    );
}

#[test]
fn wrong_recipient_is_refused() {
    let (a, b) = (alice(), bob());
    let cms = sealed::seal(&a.cert_der, b"for alice only").unwrap();
    // Bob names himself: no matching recipient, the key is never used.
    let mut seen = None;
    let err = sealed::open(&cms, b.unwrapper(false, &mut seen), Some(&b.cert_der)).unwrap_err();
    assert!(matches!(err, Error::Envelope(_)), "{err}");
    assert!(
        err.to_string().contains("not sealed to this certificate"),
        "{err}"
    );
    assert!(seen.is_none());
    assert_eq!(err.ckr(), vault_core::pkcs11::CKR_ENCRYPTED_DATA_INVALID);
    // Bob tries his key on Alice's recipient anyway.
    let mut seen = None;
    assert!(sealed::open(&cms, b.unwrapper(false, &mut seen), None).is_err());
    // A callback that hands back a key of the wrong size.
    let err = sealed::open(&cms, |_, _| Ok(Zeroizing::new(vec![0u8; 16])), None).unwrap_err();
    assert!(err.to_string().contains("decryption failed"), "{err}");
    // ... or a wrong key of the right size.
    let err = sealed::open(&cms, |_, _| Ok(Zeroizing::new(vec![0u8; 32])), None).unwrap_err();
    assert!(err.to_string().contains("decryption failed"), "{err}");
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn tampered_envelopes_fail() {
    let a = alice();
    let msg = sample(64);
    let cms = sealed::seal(&a.cert_der, &msg).unwrap();
    let flip = |i: usize| {
        let mut c = cms.clone();
        c[i] ^= 0x01;
        c
    };
    let n = cms.len();
    // The structure ends with: encrypted content (64 bytes), mac OCTET STRING (16).
    let tag_at = n - 16;
    let content_at = n - 18 - 64;
    assert_eq!(&cms[n - 18..n - 16], &[0x04, 0x10]);
    // The encrypted key: a 256-byte OCTET STRING.
    let key_at = find(&cms, &[0x04, 0x82, 0x01, 0x00]) + 4;
    for (what, at) in [
        ("tag", tag_at),
        ("tag end", n - 1),
        ("content", content_at),
        ("content end", tag_at - 3),
        ("encrypted key", key_at + 100),
    ] {
        let err = open_as(a, &flip(at)).unwrap_err();
        assert!(
            matches!(err, Error::Envelope(_) | Error::EncryptedDataInvalid),
            "{what}: {err}"
        );
    }
    // Every single-bit change anywhere: an error or (only in parts not bound to the
    // data, e.g. the recipient's name when not checked) the same plaintext — never
    // other data, never a panic.
    for i in 0..n {
        let mut seen = None;
        if let Ok(pt) = sealed::open(&flip(i), a.unwrapper(false, &mut seen), None) {
            assert_eq!(pt.as_slice(), msg.as_slice(), "byte {i}");
        }
    }
    // Every truncation, and trailing bytes.
    for len in 0..n {
        assert!(open_as(a, &cms[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = cms.clone();
    longer.push(0);
    assert!(open_as(a, &longer).is_err());
    // BER (streamed) input: refused with a way out.
    let streamed = openssl_encrypt(a, &msg, &["-stream", "-keyopt", "rsa_padding_mode:oaep"]);
    let err = open_as(a, &streamed).unwrap_err();
    assert!(err.to_string().contains("-cmsout"), "{err}");
    // Garbage and other CMS types.
    assert!(open_as(a, b"").is_err());
    assert!(open_as(a, &[0x30, 0x80, 0, 0]).is_err());
    let signed = sealed::sign(b"x", &a.cert_der, a.signer()).unwrap();
    let err = open_as(a, &signed).unwrap_err();
    assert!(err.to_string().contains("neither EnvelopedData"), "{err}");
}

#[test]
fn tampered_openssl_cbc_envelope_fails() {
    let a = alice();
    let msg = sample(200);
    let cms = openssl_encrypt(
        a,
        &msg,
        &["-keyopt", "rsa_padding_mode:oaep", "-aes-256-cbc"],
    );
    for i in 0..cms.len() {
        let mut c = cms.clone();
        c[i] ^= 0x80;
        if let Ok((pt, _)) = open_as(a, &c) {
            // CBC is not authenticated: a flip in the IV or early blocks changes
            // the plaintext without detection — why `seal` uses AES-GCM.
            assert!(pt.len() <= msg.len() + 16);
        }
    }
}

#[test]
fn one_mebibyte() {
    let a = alice();
    let msg = sample(1 << 20);
    let cms = sealed::seal(&a.cert_der, &msg).unwrap();
    assert_eq!(open_as(a, &cms).unwrap().0.as_slice(), msg.as_slice());
    let t = scratch();
    std::fs::write(t.path().join("in.der"), &cms).unwrap();
    let out = openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p(t.path(), "in.der"),
        "-inkey",
        a.key_pem(),
        "-recip",
        a.cert_pem(),
    ]);
    assert_eq!(out, msg);
    let cms = openssl_encrypt(
        a,
        &msg,
        &["-keyopt", "rsa_padding_mode:oaep", "-aes-256-gcm"],
    );
    assert_eq!(open_as(a, &cms).unwrap().0.as_slice(), msg.as_slice());
}

#[test]
fn seal_direct_is_plain_rsa_oaep_sha256() {
    let a = alice();
    let msg = sample(sealed::max_direct_len(256));
    assert_eq!(msg.len(), 190);
    let ct = sealed::seal_direct(&a.cert_der, &msg).unwrap();
    assert_eq!(ct.len(), 256);
    assert_eq!(a.key.decrypt(Oaep::new::<Sha256>(), &ct).unwrap(), msg);
    // The openssl CLI agrees on the parameters.
    let t = scratch();
    std::fs::write(t.path().join("ct"), &ct).unwrap();
    let out = openssl(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        a.key_pem(),
        "-in",
        p(t.path(), "ct"),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ]);
    assert_eq!(out, msg);
    let err = sealed::seal_direct(&a.cert_der, &sample(191)).unwrap_err();
    assert!(err.to_string().contains("at most 190 bytes"), "{err}");
    assert!(sealed::seal_direct(b"not a cert", b"x").is_err());
    assert!(sealed::seal(b"not a cert", b"x").is_err());
}

#[test]
fn small_rsa_and_non_rsa_recipients_are_refused() {
    let t = scratch();
    for (newkey, want) in [
        (&["-newkey", "rsa:1024"][..], "at least 2048"),
        (
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "not an RSA key",
        ),
    ] {
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-keyout",
            p(t.path(), "k.pem"),
            "-out",
            p(t.path(), "c.der"),
            "-outform",
            "DER",
            "-subj",
            "/CN=x",
            "-days",
            "1",
        ];
        args.extend_from_slice(newkey);
        openssl(&args);
        let cert = std::fs::read(t.path().join("c.der")).unwrap();
        let err = sealed::seal(&cert, b"x").unwrap_err();
        assert!(err.to_string().contains(want), "{newkey:?}: {err}");
    }
}

#[test]
fn sign_verifies_with_openssl_and_back() {
    let a = alice();
    let msg = sample(4000);
    let signed = sealed::sign(&msg, &a.cert_der, a.signer()).unwrap();
    let (content, cert) = sealed::verify_signed(&signed).unwrap();
    assert_eq!(content, msg);
    assert_eq!(cert, a.cert_der);

    let t = scratch();
    std::fs::write(t.path().join("s.der"), &signed).unwrap();
    let out = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p(t.path(), "s.der"),
        "-CAfile",
        a.cert_pem(),
    ]);
    assert_eq!(out, msg);

    // openssl-made SignedData: default, without signed attributes, SHA-512 and
    // SHA-384, PEM.
    std::fs::write(t.path().join("msg"), &msg).unwrap();
    for opts in [
        &[][..],
        &["-noattr"][..],
        &["-md", "sha512"][..],
        &["-md", "sha384", "-keyopt", "rsa_padding_mode:pkcs1"][..],
        &["-outform", "PEM"][..],
    ] {
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-in",
            p(t.path(), "msg"),
            "-signer",
            a.cert_pem(),
            "-inkey",
            a.key_pem(),
            "-outform",
            "DER",
            "-out",
            p(t.path(), "o.der"),
        ];
        args.extend_from_slice(opts);
        openssl(&args);
        let der = std::fs::read(t.path().join("o.der")).unwrap();
        let (content, cert) =
            sealed::verify_signed(&der).unwrap_or_else(|e| panic!("{opts:?}: {e}"));
        assert_eq!(content, msg, "{opts:?}");
        assert_eq!(cert, a.cert_der, "{opts:?}");
    }
}

#[test]
fn tampered_signatures_fail() {
    let (a, b) = (alice(), bob());
    let msg = sample(300);
    let signed = sealed::sign(&msg, &a.cert_der, a.signer()).unwrap();
    // The content sits in the clear: change one byte of it.
    let at = find(&signed, &msg[..32]);
    let mut c = signed.clone();
    c[at + 10] ^= 1;
    assert!(matches!(
        sealed::verify_signed(&c),
        Err(Error::SignatureInvalid)
    ));
    // Every single-bit change: an error or the very same content and signer.
    for i in 0..signed.len() {
        let mut c = signed.clone();
        c[i] ^= 0x04;
        if let Ok((content, cert)) = sealed::verify_signed(&c) {
            assert_eq!(content, msg, "byte {i}");
            assert_eq!(cert, a.cert_der, "byte {i}");
        }
    }
    for len in 0..signed.len() {
        assert!(sealed::verify_signed(&signed[..len]).is_err());
    }
    // A signature by the wrong key is caught when signing, before anything leaves.
    let err = sealed::sign(&msg, &a.cert_der, b.signer()).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn backup_bundle_signed_by_source_sealed_to_target() {
    let (src, dst) = (alice(), bob());
    let data = sample(20_000);
    let bundle = sealed::seal_signed(&dst.cert_der, &src.cert_der, &data, src.signer()).unwrap();

    let mut signer_seen = None;
    let mut kt = None;
    let pt = sealed::open_signed(
        &bundle,
        |cert| {
            signer_seen = Some(cert.to_vec());
            Ok(())
        },
        dst.unwrapper(false, &mut kt),
        Some(&dst.cert_der),
    )
    .unwrap();
    assert_eq!(pt.as_slice(), data.as_slice());
    assert_eq!(signer_seen.as_deref(), Some(src.cert_der.as_slice()));

    // A signer the target does not trust: the envelope is never opened.
    let mut kt = None;
    let err = sealed::open_signed(
        &bundle,
        |_| Err(Error::SignatureInvalid),
        dst.unwrapper(false, &mut kt),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SignatureInvalid));
    assert!(kt.is_none());

    // The source cannot open what it sealed to the target.
    let mut kt = None;
    assert!(sealed::open_signed(
        &bundle,
        |_| Ok(()),
        src.unwrapper(false, &mut kt),
        Some(&src.cert_der)
    )
    .is_err());

    // A plain signed message is not a bundle.
    let signed = sealed::sign(&data, &src.cert_der, src.signer()).unwrap();
    let mut kt = None;
    let err =
        sealed::open_signed(&signed, |_| Ok(()), dst.unwrapper(false, &mut kt), None).unwrap_err();
    assert!(
        err.to_string().contains("not an AuthEnvelopedData bundle"),
        "{err}"
    );

    // openssl: verify the source's signature, then the target's key opens the inner
    // AuthEnvelopedData.
    let t = scratch();
    std::fs::write(t.path().join("b.der"), &bundle).unwrap();
    let inner = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p(t.path(), "b.der"),
        "-CAfile",
        src.cert_pem(),
    ]);
    // The signed content is the AuthEnvelopedData; wrap it in a ContentInfo for
    // `cms -decrypt`.
    let mut ci = vec![
        0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
    ];
    let mut explicit = vec![0xa0];
    der_len(&mut explicit, inner.len());
    explicit.extend_from_slice(&inner);
    ci.extend_from_slice(&explicit);
    let mut seq = vec![0x30];
    der_len(&mut seq, ci.len());
    seq.extend_from_slice(&ci);
    std::fs::write(t.path().join("inner.der"), &seq).unwrap();
    let out = openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p(t.path(), "inner.der"),
        "-inkey",
        dst.key_pem(),
        "-recip",
        dst.cert_pem(),
    ]);
    assert_eq!(out, data);

    // A flipped byte anywhere in the bundle: an error or the same data.
    for i in (0..bundle.len()).step_by(7) {
        let mut c = bundle.clone();
        c[i] ^= 0x10;
        let mut kt = None;
        if let Ok(pt) = sealed::open_signed(&c, |_| Ok(()), dst.unwrapper(false, &mut kt), None) {
            assert_eq!(pt.as_slice(), data.as_slice(), "byte {i}");
        }
    }
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// `AuthEnvelopedData` (RFC 5083 §2.1), written out here independently of the
/// module, to make envelopes with authenticated attributes (OpenSSL 3.0's CLI
/// cannot).
#[derive(der::Sequence)]
struct TestAuthEnvelopedData {
    version: cms::content_info::CmsVersion,
    recip_infos: cms::enveloped_data::RecipientInfos,
    auth_encrypted_content: cms::enveloped_data::EncryptedContentInfo,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    auth_attrs: Option<x509_cert::attr::Attributes>,
    mac: der::asn1::OctetString,
}

/// Seals `msg` to `to` with the given authenticated attributes; the GCM associated
/// data is the DER of `aad_attrs` (the attributes as sent unless a test lies).
fn seal_with_auth_attrs(
    to: &Ident,
    msg: &[u8],
    attrs: Option<x509_cert::attr::Attributes>,
    aad_attrs: Option<&x509_cert::attr::Attributes>,
) -> Vec<u8> {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use cms::enveloped_data::{
        EncryptedContentInfo, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
        RecipientInfos,
    };
    use const_oid::db::{rfc5911, rfc5912};
    use der::asn1::{OctetString, SetOfVec};
    use der::{Any, Decode, Encode};
    use rsa::traits::PublicKeyParts;

    let cert = x509_cert::Certificate::from_der(&to.cert_der).unwrap();
    let cek = [7u8; 32];
    let nonce = [9u8; 12];
    let aad = aad_attrs.map(|a| a.to_der().unwrap()).unwrap_or_default();
    let mut buf = msg.to_vec();
    let tag = aes_gcm::Aes256Gcm::new_from_slice(&cek)
        .unwrap()
        .encrypt_in_place_detached((&nonce).into(), &aad, &mut buf)
        .unwrap();
    let public = rsa::RsaPublicKey::new(to.key.n().clone(), to.key.e().clone()).unwrap();
    let enc_key = public
        .encrypt(&mut rand::rngs::OsRng, Oaep::new::<Sha256>(), &cek)
        .unwrap();
    let oaep_params = rsa::pkcs1::RsaOaepParams::new::<Sha256>().to_der().unwrap();
    let mut recips = SetOfVec::new();
    recips
        .insert(RecipientInfo::Ktri(KeyTransRecipientInfo {
            version: cms::content_info::CmsVersion::V0,
            rid: RecipientIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
            key_enc_alg: spki::AlgorithmIdentifierOwned {
                oid: rfc5912::ID_RSAES_OAEP,
                parameters: Some(Any::from_der(&oaep_params).unwrap()),
            },
            enc_key: OctetString::new(enc_key).unwrap(),
        }))
        .unwrap();
    // GCMParameters: nonce, ICV length 16.
    let mut gcm = vec![0x30, 0x11, 0x04, 0x0c];
    gcm.extend_from_slice(&nonce);
    gcm.extend_from_slice(&[0x02, 0x01, 0x10]);
    let aed = TestAuthEnvelopedData {
        version: cms::content_info::CmsVersion::V0,
        recip_infos: RecipientInfos(recips),
        auth_encrypted_content: EncryptedContentInfo {
            content_type: rfc5911::ID_DATA,
            content_enc_alg: spki::AlgorithmIdentifierOwned {
                oid: rfc5911::ID_AES_256_GCM,
                parameters: Some(Any::from_der(&gcm).unwrap()),
            },
            encrypted_content: Some(OctetString::new(buf).unwrap()),
        },
        auth_attrs: attrs,
        mac: OctetString::new(tag.to_vec()).unwrap(),
    };
    cms::content_info::ContentInfo {
        content_type: rfc5911::ID_CT_AUTH_ENVELOPED_DATA,
        content: Any::from_der(&aed.to_der().unwrap()).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn authenticated_attributes_are_authenticated() {
    use const_oid::db::rfc5911;
    use der::asn1::SetOfVec;
    use der::{Any, Decode, Encode};
    use x509_cert::attr::{Attribute, Attributes};

    let a = alice();
    let msg = b"with authenticated attributes";
    let attr = |oid, value: Any| {
        let mut values = SetOfVec::new();
        values.insert(value).unwrap();
        Attribute { oid, values }
    };
    let content_type = attr(
        rfc5911::ID_CONTENT_TYPE,
        Any::from_der(&rfc5911::ID_DATA.to_der().unwrap()).unwrap(),
    );
    let signing_time = attr(
        rfc5911::ID_SIGNING_TIME,
        Any::from_der(&[
            0x17, 0x0d, b'2', b'6', b'1', b'1', b'2', b'3', b'0', b'0', b'0', b'0', b'0', b'0',
            b'Z',
        ])
        .unwrap(),
    );
    let attrs: Attributes = SetOfVec::try_from(vec![content_type.clone()]).unwrap();
    let other: Attributes = SetOfVec::try_from(vec![content_type, signing_time]).unwrap();

    // Sanity: the hand-made envelope without attributes opens.
    let plain = seal_with_auth_attrs(a, msg, None, None);
    assert_eq!(open_as(a, &plain).unwrap().0.as_slice(), msg);
    // With attributes, authenticated as the DER of the SET OF (RFC 5083 §2.1).
    let good = seal_with_auth_attrs(a, msg, Some(attrs.clone()), Some(&attrs));
    assert_eq!(open_as(a, &good).unwrap().0.as_slice(), msg);
    // Attributes changed, added or dropped after sealing: the tag no longer matches.
    for bad in [
        seal_with_auth_attrs(a, msg, Some(other.clone()), Some(&attrs)),
        seal_with_auth_attrs(a, msg, Some(attrs.clone()), Some(&other)),
        seal_with_auth_attrs(a, msg, None, Some(&attrs)),
        seal_with_auth_attrs(a, msg, Some(attrs.clone()), None),
    ] {
        let err = open_as(a, &bad).unwrap_err();
        assert!(err.to_string().contains("decryption failed"), "{err}");
    }
}
