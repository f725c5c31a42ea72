//! Attacks on enrollment against the real `vtoken-server` on 127.0.0.1 (issue 15,
//! item 7 "the CA issues to anyone"): each one fails with a clear status and message,
//! and nothing is issued or published.

mod common;

use std::process::Command;

use common::*;
use vtoken_pki::{client, require_usage, Error, Usage};

/// `curl` exit status and `STATUS BODY` of a request.
fn curl(args: &str) -> String {
    sh(&format!("curl -s -w ' %{{http_code}}' {args}"))
}

fn refused(r: Result<Vec<u8>, Error>, status: u16, needle: &str) {
    match r {
        Err(Error::Http { status: s, message }) => {
            assert_eq!(s, status, "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[test]
fn unsigned_openssl_request_gets_401_and_nothing_is_issued_or_published() {
    let (tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let t = tmp.path().display().to_string();
    // The attacker's own key and a token-style subject.
    sh(&format!(
        "cd {t} && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout evil.key -subj '/CN=vtoken 00000000000000E5/serialNumber=00000000000000E5' \
         -outform DER -out evil.der 2>/dev/null"
    ));
    let h = "-H 'Content-Type: application/pkcs10'";
    let out = curl(&format!(
        "--data-binary @{t}/evil.der {h} {}/api/v1/enroll",
        ca.url
    ));
    assert!(out.ends_with(" 401"), "{out}");
    assert!(out.contains("no operator credential"), "{out}");
    // The same through EST (base64) and the batch endpoint.
    let out = curl(&format!(
        "--data-binary \"$(openssl base64 -in {t}/evil.der)\" {h} {}/.well-known/est/simpleenroll",
        ca.url
    ));
    assert!(out.ends_with(" 401"), "{out}");
    let out = curl(&format!(
        "--data-binary \"{{\\\"csrs\\\":[\\\"$(openssl base64 -A -in {t}/evil.der)\\\"]}}\" \
         -H 'Content-Type: application/json' {}/api/v1/enroll-batch",
        ca.url
    ));
    assert!(out.ends_with(" 401"), "{out}");
    assert_eq!(cert_count(&dir), 0, "nothing issued");
    // Nothing published for the serial.
    let out = curl(&format!("{}/api/v1/certs/00000000000000E5", ca.url));
    assert!(out.ends_with(" 404"), "{out}");
    // Every refusal is in the request log, with the client address.
    let logged: Vec<(i64, String)> = rusqlite::Connection::open(dir.join("ca.db"))
        .unwrap()
        .prepare("SELECT status, client FROM requests")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(
        logged.iter().all(|(s, c)| *s == 401 && c == "127.0.0.1"),
        "{logged:?}"
    );
    // The Rust client without a credential fares no better.
    refused(
        client::enroll(&ca.url, &Token::new(0xE6).csr(), None),
        401,
        "operator",
    );
    assert_eq!(cert_count(&dir), 0);
}

#[test]
fn unregistered_or_removed_operators_are_refused() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let token = Token::new(0xB0B);
    // A certificate from another CA with the same name.
    let stranger = Operator::unregistered("stranger");
    refused(
        client::enroll(&ca.url, &token.csr(), Some(&stranger.cred())),
        403,
        "not registered",
    );
    // A token certificate of this very CA is no operator credential either.
    let station = Operator::register(&dir, "station", "device");
    let issued = client::enroll(&ca.url, &token.csr(), Some(&station.cred())).unwrap();
    let as_operator = vtoken_pki::auth::Credential::new(issued, {
        let k = token.key.clone();
        Box::new(move |m| {
            let s: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&k, m);
            Ok(s.to_bytes().to_vec())
        })
    })
    .unwrap();
    refused(
        client::enroll(&ca.url, &Token::new(0xB0C).csr(), Some(&as_operator)),
        403,
        "not registered",
    );
    // The right certificate with another key's signature.
    let mut forged = Operator::unregistered("forger");
    forged.cert = station.cert.clone();
    refused(
        client::enroll(&ca.url, &Token::new(0xB0D).csr(), Some(&forged.cred())),
        401,
        "does not verify",
    );
    assert_eq!(cert_count(&dir), 1);
    // Removed: refused from then on.
    let out = Command::new(BIN)
        .args(["ca", "operator", "list", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("station"));
    let out = Command::new(BIN)
        .args(["ca", "operator", "remove", "--dir", dir.to_str().unwrap()])
        .args(["--name", "station"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    refused(
        client::enroll(&ca.url, &Token::new(0xB0E).csr(), Some(&station.cred())),
        403,
        "not registered",
    );
    assert_eq!(cert_count(&dir), 1);
}

#[test]
fn replayed_or_altered_signed_request_is_refused() {
    let (tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let station = Operator::register(&dir, "station", "device");
    let csr = Token::new(0xAEAE).csr();
    let body = tmp.path().join("r.der");
    std::fs::write(&body, &csr).unwrap();
    // Headers captured from one legitimate request.
    let headers: String = station
        .cred()
        .headers("POST", "/api/v1/enroll", &csr)
        .unwrap()
        .into_iter()
        .map(|(k, v)| format!("-H '{k}: {v}' "))
        .collect();
    let send = |file: &std::path::Path| {
        curl(&format!(
            "-o /dev/null {headers} -H 'Content-Type: application/pkcs10' \
             --data-binary @{} {}/api/v1/enroll",
            file.display(),
            ca.url
        ))
    };
    // The same signature on another request body: refused.
    let other = tmp.path().join("other.der");
    std::fs::write(&other, Token::new(0xAEAF).csr()).unwrap();
    assert_eq!(send(&other).trim(), "401");
    assert_eq!(cert_count(&dir), 0);
    assert_eq!(send(&body).trim(), "200");
    assert_eq!(cert_count(&dir), 1);
    // Replayed as is: refused, logged.
    let out = curl(&format!(
        "{headers} -H 'Content-Type: application/pkcs10' --data-binary @{} {}/api/v1/enroll",
        body.display(),
        ca.url
    ));
    assert!(out.ends_with(" 401"), "{out}");
    assert!(out.contains("replayed"), "{out}");
    // After a restart too (the nonces are in the database).
    drop(ca);
    let ca = Server::ca(&dir);
    let out = curl(&format!(
        "{headers} -H 'Content-Type: application/pkcs10' --data-binary @{} {}/api/v1/enroll",
        body.display(),
        ca.url
    ));
    assert!(out.contains("replayed"), "{out}");
    assert_eq!(cert_count(&dir), 1);
}

#[test]
fn requested_usage_is_ignored_profile_comes_from_policy() {
    let (tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let station = Operator::register(&dir, "station", "device");
    // A request asking for clientAuth gets the policy's device profile.
    let t = Token::new(0xD1);
    let csr = vtoken_pki::build_csr(
        &t.spki(),
        &t.serial,
        Usage::Operator,
        |m| {
            let s: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&t.key, m);
            Ok::<_, Error>(s.to_bytes().to_vec())
        },
        vtoken_pki::SigAlg::EcdsaSha256,
    )
    .unwrap();
    let cert = client::enroll(&ca.url, &csr, Some(&station.cred())).unwrap();
    require_usage(&cert, Usage::Device).unwrap();
    assert!(require_usage(&cert, Usage::Operator).is_err());
    // An openssl request asking to be a CA that signs certificates.
    let d = tmp.path().display().to_string();
    sh(&format!(
        "cd {d} && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout ca.key -subj '/CN=vtoken 00000000000000D2/serialNumber=00000000000000D2' \
         -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' \
         -addext 'extendedKeyUsage=serverAuth,clientAuth,1.3.6.1.5.5.7.3.28' \
         -outform DER -out ca.der 2>/dev/null"
    ));
    let csr = std::fs::read(tmp.path().join("ca.der")).unwrap();
    let cert = client::enroll(&ca.url, &csr, Some(&station.cred())).unwrap();
    require_usage(&cert, Usage::Device).unwrap();
    let pem = tmp.path().join("leaf.pem");
    std::fs::write(&pem, vtoken_pki::cert_der_to_pem(&cert)).unwrap();
    let text = sh(&format!("openssl x509 -noout -text -in {}", pem.display()));
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(!text.contains("Extended Key Usage"), "{text}");
    // Asking (in the signed request) for a profile the policy does not grant: 403.
    refused(
        client::enroll(
            &ca.url,
            &Token::new(0xD3).csr(),
            Some(&station.cred_for(Usage::Operator)),
        ),
        403,
        "may not request operator",
    );
    // A profile the policy grants is honoured.
    let both = Operator::register(&dir, "both", "device,client");
    let cert = client::enroll(
        &ca.url,
        &Token::new(0xD4).csr(),
        Some(&both.cred_for(Usage::Client)),
    )
    .unwrap();
    require_usage(&cert, Usage::Client).unwrap();
    assert_eq!(cert_count(&dir), 3);
}

#[test]
fn second_key_for_a_serial_is_409_until_revoked() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let op = Operator::register(&dir, "station", "device").cred();
    let first = Token::new(0x5EC);
    let cert = client::enroll(&ca.url, &first.csr(), Some(&op)).unwrap();
    // Same key again: the same certificate (idempotent).
    assert_eq!(
        client::enroll(&ca.url, &first.csr(), Some(&op)).unwrap(),
        cert
    );
    let second = Token {
        serial: first.serial.clone(),
        key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
    };
    refused(
        client::enroll(&ca.url, &second.csr(), Some(&op)),
        409,
        "already holds live certificate",
    );
    let res = client::enroll_batch(&ca.url, vec![second.csr()], Some(&op)).unwrap();
    assert!(res[0].1.as_ref().unwrap_err().contains("revoke"), "{res:?}");
    assert_eq!(cert_count(&dir), 1);
    assert_eq!(
        client::fetch_cert(&ca.url, &first.serial).unwrap(),
        Some(cert.clone())
    );
    // Revoked: the new key is certified; the old certificate is no longer published.
    let out = Command::new(BIN)
        .args(["ca", "revoke", "--dir", dir.to_str().unwrap()])
        .args(["--serial", &first.serial])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked certificate"));
    assert_eq!(client::fetch_cert(&ca.url, &first.serial).unwrap(), None);
    let newer = client::enroll(&ca.url, &second.csr(), Some(&op)).unwrap();
    assert_ne!(newer, cert);
    assert_eq!(
        client::fetch_cert(&ca.url, &first.serial).unwrap(),
        Some(newer)
    );
    // Revoking an unknown serial is an error.
    let out = Command::new(BIN)
        .args(["ca", "revoke", "--dir", dir.to_str().unwrap()])
        .args(["--serial", "00000000DEADBEEF"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn rate_limit_answers_429_and_the_log_stays_bounded() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca_with(&dir, &["--rate-limit", "5", "--log-keep", "3"]);
    let op = Operator::register(&dir, "station", "device").cred();
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            match client::enroll(&ca.url, &Token::new(0x7000 + i).csr(), Some(&op)) {
                Ok(_) => 200,
                Err(Error::Http { status, message }) => {
                    if status == 429 {
                        assert!(message.contains("too many requests"), "{message}");
                    }
                    status
                }
                Err(e) => panic!("{e}"),
            },
        );
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(cert_count(&dir), 5);
    // curl from the same address is limited too, on every endpoint.
    let out = curl(&format!("{}/api/v1/ca.pem", ca.url));
    assert!(out.ends_with(" 429"), "{out}");
    assert_eq!(request_count(&dir), 3, "the log keeps the newest 3");
}

#[test]
fn relay_refuses_unknown_stations_and_the_ca_refuses_an_unregistered_relay() {
    let (tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let station = Operator::register(&dir, "station", "device");
    let relay = Server::relay(&dir, &ca.url, true, &station);
    let seen = request_count(&dir);
    // No credential, or a station the relay does not know: refused at the relay.
    refused(
        client::enroll(&relay.url, &Token::new(0x81).csr(), None),
        401,
        "operator",
    );
    let stranger = Operator::unregistered("stranger");
    refused(
        client::enroll(&relay.url, &Token::new(0x82).csr(), Some(&stranger.cred())),
        403,
        "not agreed with this relay",
    );
    assert_eq!(request_count(&dir), seen, "the CA saw nothing");
    // A signed request replayed to the relay: refused there.
    let csr = Token::new(0x83).csr();
    let file = tmp.path().join("r83.der");
    std::fs::write(&file, &csr).unwrap();
    let headers: String = station
        .cred()
        .headers("POST", "/api/v1/enroll", &csr)
        .unwrap()
        .into_iter()
        .map(|(k, v)| format!("-H '{k}: {v}' "))
        .collect();
    let send = || {
        curl(&format!(
            "-o /dev/null {headers} -H 'Content-Type: application/pkcs10' --data-binary @{} {}/api/v1/enroll",
            file.display(),
            relay.url
        ))
    };
    assert_eq!(send().trim(), "200");
    let out = curl(&format!(
        "{headers} -H 'Content-Type: application/pkcs10' --data-binary @{} {}/api/v1/enroll",
        file.display(),
        relay.url
    ));
    assert!(out.ends_with(" 401") && out.contains("replayed"), "{out}");
    // The relay is removed from the CA: the station's requests now fail at the CA.
    let out = Command::new(BIN)
        .args(["ca", "operator", "remove", "--dir", dir.to_str().unwrap()])
        .args(["--name", "relay"])
        .output()
        .unwrap();
    assert!(out.status.success());
    refused(
        client::enroll(&relay.url, &Token::new(0x84).csr(), Some(&station.cred())),
        403,
        "not registered",
    );
    assert_eq!(cert_count(&dir), 1);
    // A relay credential whose key does not match its certificate does not start.
    let files = relay_files(&dir, &station);
    let bad_key = tmp.path().join("bad.key");
    sh(&format!(
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {} 2>/dev/null",
        bad_key.display()
    ));
    let mut args: Vec<String> = [
        "relay",
        "serve",
        "--upstream",
        &ca.url,
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(files);
    let k = args.iter().position(|a| a == "--client-key").unwrap();
    args[k + 1] = bad_key.display().to_string();
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the key of"),
        "{out:?}"
    );
}
