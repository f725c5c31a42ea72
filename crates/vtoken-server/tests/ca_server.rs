//! The CA server, started as the real binary: enrollment (single, batch, EST), refusals,
//! published certificates, restart and idempotent re-enrollment.

mod common;

use std::process::Command;
use std::time::SystemTime;

use common::*;
use vtoken_pki::{client, verify_chain, Error};

#[test]
fn enroll_with_the_client_and_check_with_openssl() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device,client").cred();
    let roots = client::ca_certs(&ca.url).unwrap();
    assert_eq!(roots.len(), 1);
    let root_file = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert_eq!(vtoken_pki::certs_from_pem(&root_file).unwrap(), roots);

    let token = Token::new(0x1234_5678);
    let cert = client::enroll(&ca.url, &token.csr(), Some(&op)).unwrap();
    let v = verify_chain(&cert, &[], &roots[0], SystemTime::now()).unwrap();
    assert_eq!(v.token_serial, token.serial);
    assert_eq!(v.spki, token.spki());
    openssl_verify(&dir, &cert);

    // RSA requests too.
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let spki = pkcs8::EncodePublicKey::to_public_key_der(&rsa_key.to_public_key()).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key);
    let csr = vtoken_pki::build_csr(
        spki.as_bytes(),
        "00000000000000AA",
        vtoken_pki::Usage::Client,
        |m| {
            use p256::ecdsa::signature::Signer;
            let s: rsa::pkcs1v15::Signature = signer.sign(m);
            Ok::<_, Error>(Box::<[u8]>::from(s).to_vec())
        },
        vtoken_pki::SigAlg::RsaPkcs1Sha256,
    )
    .unwrap();
    let rsa_cert = client::enroll(&ca.url, &csr, Some(&op)).unwrap();
    openssl_verify(&dir, &rsa_cert);

    // Published by serial (E8); the PEM endpoint gives the root.
    assert_eq!(
        client::fetch_cert(&ca.url, &token.serial).unwrap(),
        Some(cert)
    );
    assert_eq!(
        client::fetch_cert(&ca.url, "00000000DEADBEEF").unwrap(),
        None
    );
    let pem = sh(&format!("curl -sf {}/api/v1/ca.pem", ca.url));
    assert_eq!(pem, root_file);
    assert_eq!(cert_count(&dir), 2);
}

#[test]
fn est_with_curl_and_openssl() {
    let (tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device").cred();
    let t = tmp.path();
    let certs = sh(&format!(
        "curl -sf {}/.well-known/est/cacerts | openssl base64 -d | openssl pkcs7 -inform DER -print_certs",
        ca.url
    ));
    assert!(
        certs.contains("CN = Test Token CA") || certs.contains("CN=Test Token CA"),
        "{certs}"
    );

    // An openssl-made request, base64 as EST wants it.
    sh(&format!(
        "cd {t} && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem \
         -subj '/CN=vtoken 00000000000000E5/serialNumber=00000000000000E5' -outform DER -out r.der 2>/dev/null",
        t = t.display()
    ));
    // Unsigned, curl gets 401 and nothing is issued (the station signs: below).
    let status = sh(&format!(
        "cd {t} && openssl base64 -in r.der | curl -s -o /dev/null -w '%{{http_code}}' \
         --data-binary @- -H 'Content-Type: application/pkcs10' {u}/.well-known/est/simpleenroll",
        t = t.display(),
        u = ca.url
    ));
    assert_eq!(status, "401");
    assert_eq!(cert_count(&dir), 0);
    let req = std::fs::read(t.join("r.der")).unwrap();
    let reply = client::est_simpleenroll(&ca.url, &req, Some(&op)).unwrap();
    std::fs::write(
        t.join("reply.b64"),
        vtoken_pki::pkcs7::base64_lines(&vtoken_pki::pkcs7::certs_only(&reply).unwrap()),
    )
    .unwrap();
    let printed = sh(&format!(
        "cd {t} && openssl base64 -d -in reply.b64 | openssl pkcs7 -inform DER -print_certs -out leaf.pem && \
         openssl verify -CAfile {ca} leaf.pem && openssl x509 -in leaf.pem -noout -subject -nameopt RFC2253",
        t = t.display(),
        ca = dir.join("ca.pem").display()
    ));
    assert!(printed.contains("leaf.pem: OK"), "{printed}");
    assert!(
        printed.contains("subject=serialNumber=00000000000000E5,CN=vtoken 00000000000000E5"),
        "{printed}"
    );
    // The same through the library's EST client.
    let token = Token::new(0xE6);
    let got = client::est_simpleenroll(&ca.url, &token.csr(), Some(&op)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        vtoken_pki::cert_token_serial(&got[0]).unwrap(),
        token.serial
    );
}

#[test]
fn batch_of_twenty_then_rerun_is_idempotent() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device").cred();
    let tokens: Vec<Token> = (0..20).map(|i| Token::new(0x1000 + i)).collect();
    let csrs: Vec<Vec<u8>> = tokens.iter().map(Token::csr).collect();
    let first = client::enroll_batch(&ca.url, csrs.clone(), Some(&op)).unwrap();
    assert_eq!(first.len(), 20);
    let root = &client::ca_certs(&ca.url).unwrap()[0];
    for ((serial, outcome), token) in first.iter().zip(&tokens) {
        assert_eq!(serial, &token.serial);
        let cert = outcome.as_ref().unwrap();
        let v = verify_chain(cert, &[], root, SystemTime::now()).unwrap();
        assert_eq!(v.token_serial, token.serial);
        assert_eq!(v.spki, token.spki());
    }
    openssl_verify(&dir, first[7].1.as_ref().unwrap());
    assert_eq!(cert_count(&dir), 20);

    // An interrupted batch is simply rerun: the same certificates come back, no new ones.
    let again = client::enroll_batch(&ca.url, csrs, Some(&op)).unwrap();
    assert_eq!(again, first);
    assert_eq!(cert_count(&dir), 20);
    // A single re-enrollment of the same token and key too.
    assert_eq!(
        &client::enroll(&ca.url, &tokens[3].csr(), Some(&op)).unwrap(),
        first[3].1.as_ref().unwrap()
    );
    // A new key for the same token: enroll_auth.rs (409 until revoked).
}

#[test]
fn ca_refuses_bad_signature_and_out_of_range() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device").cred();
    let good = Token::new(0x42);
    match client::enroll(&ca.url, &good.forged_csr(), Some(&op)) {
        Err(Error::Http {
            status: 400,
            message,
        }) => {
            assert!(message.contains("signature"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let outside = Token::new(0x1_0000_0000);
    match client::enroll(&ca.url, &outside.csr(), Some(&op)) {
        Err(Error::Http {
            status: 403,
            message,
        }) => {
            assert!(message.contains("outside the agreed range"), "{message}");
            assert!(message.contains(&outside.serial), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Garbage.
    assert!(matches!(
        client::enroll(&ca.url, b"\x30\x03\x02\x01\x00", Some(&op)),
        Err(Error::Http { status: 400, .. })
    ));
    // Mixed batch: the good one is issued, the others carry their reasons.
    let res = client::enroll_batch(
        &ca.url,
        vec![good.forged_csr(), good.csr(), outside.csr()],
        Some(&op),
    )
    .unwrap();
    assert!(res[0].1.as_ref().unwrap_err().contains("signature"));
    assert!(res[1].1.is_ok());
    assert_eq!(res[2].0, outside.serial);
    assert!(res[2].1.as_ref().unwrap_err().contains("range"));
    // curl sees a JSON error and the status (401: curl does not sign).
    let forged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(forged.path(), good.forged_csr()).unwrap();
    let out = sh(&format!(
        "curl -s -w ' %{{http_code}}' --data-binary @{} -H 'Content-Type: application/pkcs10' {}/api/v1/enroll",
        forged.path().display(),
        ca.url
    ));
    assert!(
        out.starts_with("{\"error\":") && out.ends_with(" 401"),
        "{out}"
    );
    assert_eq!(cert_count(&dir), 1);
    assert_eq!(request_count(&dir), 7);
}

#[test]
fn concurrent_re_enrollment_issues_once() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device").cred();
    let token = Token::new(0xC0C0);
    let csr = token.csr();
    let certs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| client::enroll(&ca.url, &csr, Some(&op)).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(certs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cert_count(&dir), 1);
    assert_eq!(request_count(&dir), 8);
}

#[test]
fn restart_keeps_the_database() {
    let (_tmp, dir) = init_ca();
    let op = Operator::register(&dir, "station", "device").cred();
    let token = Token::new(0xAB_CDEF);
    let csr = token.csr();
    let cert = {
        let ca = Server::ca(&dir);
        client::enroll(&ca.url, &csr, Some(&op)).unwrap()
    }; // killed here
    let ca = Server::ca(&dir);
    assert_eq!(
        client::fetch_cert(&ca.url, &token.serial).unwrap().as_ref(),
        Some(&cert)
    );
    assert_eq!(client::enroll(&ca.url, &csr, Some(&op)).unwrap(), cert);
    assert_eq!(cert_count(&dir), 1);
}

#[test]
fn help_and_init_safety() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Examples:") && text.contains("ca serve"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["ca", "serve", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("/.well-known/est/simpleenroll"));
    // A second init never overwrites the CA.
    let (_tmp, dir) = init_ca();
    let before = std::fs::read(dir.join("ca.key")).unwrap();
    let out = Command::new(BIN)
        .args(["ca", "init", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    // A bad range is refused at start.
    let out = Command::new(BIN)
        .args([
            "ca",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--serial-range",
            "20-10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
