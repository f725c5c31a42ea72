//! Interop with the `openssl` command: it accepts our requests and certificates, and we
//! accept its requests and chains (P-256, P-384, RSA; with an intermediate).

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::pkcs1v15;
use sha2::Sha256;
use vtoken_pki::{build_csr, verify_chain, verify_csr, Error, LocalCa, SigAlg, Usage};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

fn p256_csr(serial: &str, usage: Usage) -> Vec<u8> {
    let key = SigningKey::random(&mut rand_core::OsRng);
    let spki = key.verifying_key().to_public_key_der().unwrap();
    build_csr(
        spki.as_bytes(),
        serial,
        usage,
        |m| Ok::<_, Error>(Signer::<Signature>::sign(&key, m).to_bytes().to_vec()),
        SigAlg::EcdsaSha256,
    )
    .unwrap()
}

fn rsa_csr(serial: &str, usage: Usage) -> Vec<u8> {
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let spki = key.to_public_key().to_public_key_der().unwrap();
    let signer = pkcs1v15::SigningKey::<Sha256>::new(key);
    build_csr(
        spki.as_bytes(),
        serial,
        usage,
        |m| {
            let sig: pkcs1v15::Signature = signer.sign(m);
            Ok::<_, Error>(Box::<[u8]>::from(sig).to_vec())
        },
        SigAlg::RsaPkcs1Sha256,
    )
    .unwrap()
}

#[test]
fn openssl_accepts_our_requests_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = LocalCa::init(&d.join("ca"), "interop root").unwrap();
    let root_text = openssl(d, &["x509", "-in", "ca/ca.pem", "-noout", "-text"]);
    assert!(root_text.contains("CA:TRUE"), "{root_text}");
    assert!(
        root_text.contains("Certificate Sign, CRL Sign"),
        "{root_text}"
    );
    assert!(root_text.contains("ecdsa-with-SHA256"), "{root_text}");
    // The key file is a PKCS#8 key openssl reads.
    openssl(d, &["pkey", "-in", "ca/ca.key", "-noout"]);

    for (name, csr, usage) in [
        (
            "ec",
            p256_csr("00000000000000A1", Usage::Device),
            Usage::Device,
        ),
        (
            "rsa",
            rsa_csr("00000000000000A2", Usage::Client),
            Usage::Client,
        ),
    ] {
        std::fs::write(d.join(format!("{name}.csr")), &csr).unwrap();
        let out = openssl(
            d,
            &[
                "req",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.csr"),
                "-verify",
                "-noout",
                "-text",
            ],
        );
        assert!(
            out.contains("verify OK")
                || out.contains("Certificate request self-signature verify OK"),
            "{out}"
        );
        assert!(out.contains("serialNumber"), "{out}");
        let info = verify_csr(&csr).unwrap();
        assert_eq!(info.usage, usage);
        let cert = ca.issue(&info, 30).unwrap();
        std::fs::write(
            d.join(format!("{name}.pem")),
            vtoken_pki::cert_der_to_pem(&cert),
        )
        .unwrap();
        let out = openssl(
            d,
            &["verify", "-CAfile", "ca/ca.pem", &format!("{name}.pem")],
        );
        assert!(out.contains(&format!("{name}.pem: OK")), "{out}");
        let text = openssl(
            d,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-noout",
                "-text",
                "-nameopt",
                "RFC2253",
            ],
        );
        assert!(
            text.contains(&format!("serialNumber={}", info.serial)),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Digital Signature"), "{text}");
        if usage == Usage::Client {
            assert!(text.contains("TLS Web Client Authentication"), "{text}");
            let out = openssl(
                d,
                &[
                    "verify",
                    "-purpose",
                    "sslclient",
                    "-CAfile",
                    "ca/ca.pem",
                    &format!("{name}.pem"),
                ],
            );
            assert!(out.contains("OK"), "{out}");
        }
        // Nothing but the serial in the subject.
        let subject = openssl(
            d,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
            ],
        );
        assert_eq!(
            subject.trim(),
            format!("subject=serialNumber={0},CN=vtoken {0}", info.serial)
        );
    }
}

#[test]
fn we_accept_openssl_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (key, genargs, usage) in [
        (
            "p256",
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Usage::Client,
        ),
        (
            "p384",
            vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            Usage::Device,
        ),
        (
            "rsa",
            vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Usage::Signing,
        ),
    ] {
        let keyfile = format!("{key}.key");
        let mut args = vec!["genpkey"];
        args.extend(genargs);
        args.extend(["-out", &keyfile]);
        openssl(d, &args);
        let ext = match usage {
            Usage::Client => "extendedKeyUsage=clientAuth",
            Usage::Signing => "keyUsage=critical,digitalSignature,nonRepudiation",
            _ => "keyUsage=critical,digitalSignature",
        };
        let csrfile = format!("{key}.csr");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &keyfile,
                "-subj",
                "/CN=vtoken 0000000000000ABC/serialNumber=0000000000000ABC",
                "-addext",
                ext,
                "-outform",
                "DER",
                "-out",
                &csrfile,
            ],
        );
        let der = std::fs::read(d.join(&csrfile)).unwrap();
        let info = verify_csr(&der).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(info.serial, "0000000000000ABC");
        assert_eq!(info.usage, usage, "{key}");
        openssl(
            d,
            &[
                "pkey", "-in", &keyfile, "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        assert_eq!(info.spki, std::fs::read(d.join("pub.der")).unwrap());
        // One flipped bit in the signature: refused.
        let mut bad = der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            verify_csr(&bad).is_err(),
            "{key}: tampered request accepted"
        );
    }
    // Personal data in a request's subject never reaches the certificate (E7).
    openssl(
        d,
        &[
            "req", "-new", "-key", "p256.key", "-subj",
            "/CN=Alice Example/O=Alice Corp/emailAddress=alice@example.com/serialNumber=0000000000000ABD",
            "-outform", "DER", "-out", "personal.csr",
        ],
    );
    let info = verify_csr(&std::fs::read(d.join("personal.csr")).unwrap()).unwrap();
    let ca = LocalCa::generate("interop", 30).unwrap();
    std::fs::write(
        d.join("personal.pem"),
        vtoken_pki::cert_der_to_pem(&ca.issue(&info, 30).unwrap()),
    )
    .unwrap();
    let subject = openssl(
        d,
        &[
            "x509",
            "-in",
            "personal.pem",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
    );
    assert_eq!(
        subject.trim(),
        "subject=serialNumber=0000000000000ABD,CN=vtoken 0000000000000ABD"
    );
    // No serial in the subject: refused with a clear error.
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "p256.key",
            "-subj",
            "/CN=alice",
            "-outform",
            "DER",
            "-out",
            "noserial.csr",
        ],
    );
    let der = std::fs::read(d.join("noserial.csr")).unwrap();
    assert!(matches!(verify_csr(&der), Err(Error::NoTokenSerial)));
}

/// An openssl-made chain: RSA root -> P-384 intermediate (SHA-384) -> P-256 leaf.
#[test]
fn we_verify_openssl_chains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         [leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "root.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/CN=openssl root",
            "-days",
            "30",
            "-sha256",
            "-extensions",
            "ca",
            "-config",
            "ext.cnf",
            "-out",
            "root.pem",
            "-outform",
            "DER",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "int.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=openssl intermediate",
            "-out",
            "int.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAform",
            "DER",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "ca",
            "-outform",
            "DER",
            "-out",
            "int.der",
        ],
    );
    let leaf_key = SigningKey::random(&mut rand_core::OsRng);
    std::fs::write(
        d.join("leaf.key"),
        leaf_key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=vtoken 00000000000000FF/serialNumber=00000000000000FF",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.der",
            "-CAform",
            "DER",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-sha384",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
            "-outform",
            "DER",
            "-out",
            "leaf.der",
        ],
    );
    let root = std::fs::read(d.join("root.pem")).unwrap();
    let int = std::fs::read(d.join("int.der")).unwrap();
    let leaf = std::fs::read(d.join("leaf.der")).unwrap();
    let now = SystemTime::now();
    let v = verify_chain(&leaf, std::slice::from_ref(&int), &root, now).unwrap();
    assert_eq!(v.token_serial, "00000000000000FF");
    assert_eq!(
        v.spki,
        leaf_key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
    );
    // Without the intermediate, or against our own root: refused.
    assert!(verify_chain(&leaf, &[], &root, now).is_err());
    let ours = LocalCa::generate("openssl root", 30).unwrap();
    assert!(verify_chain(&leaf, &[int], ours.cert_der(), now).is_err());
}
