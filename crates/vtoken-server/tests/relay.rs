//! The relay in front of the real CA: forwarding (single, batch, certificates, EST) and,
//! with --verify, refusing bad requests without the CA ever seeing them.

mod common;

use std::time::SystemTime;

use common::*;
use vtoken_pki::{client, verify_chain, Error};

#[test]
fn verifying_relay_forwards_good_and_refuses_bad_locally() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let station = Operator::register(&dir, "station", "device");
    let st = station.cred();
    let relay = Server::relay(&dir, &ca.url, true, &station);

    let token = Token::new(0x77);
    let cert = client::enroll(&relay.url, &token.csr(), Some(&st)).unwrap();
    let roots = client::ca_certs(&relay.url).unwrap();
    assert_eq!(roots, client::ca_certs(&ca.url).unwrap());
    verify_chain(&cert, &[], &roots[0], SystemTime::now()).unwrap();
    openssl_verify(&dir, &cert);
    // Published certificates come through the relay too.
    assert_eq!(
        client::fetch_cert(&relay.url, &token.serial).unwrap(),
        Some(cert)
    );
    assert_eq!(
        client::fetch_cert(&relay.url, "0000000000000099").unwrap(),
        None
    );

    let seen = request_count(&dir);
    match client::enroll(&relay.url, &token.forged_csr(), Some(&st)) {
        Err(Error::Http {
            status: 400,
            message,
        }) => assert!(message.contains("relay"), "{message}"),
        other => panic!("{other:?}"),
    }
    let outside = Token::new(0xFFFF_FFFF_0000);
    match client::enroll(&relay.url, &outside.csr(), Some(&st)) {
        Err(Error::Http {
            status: 403,
            message,
        }) => assert!(message.contains("relay"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        request_count(&dir),
        seen,
        "the CA saw a request the relay refused"
    );

    // A batch: bad ones answered by the relay, good ones by the CA, in order.
    let good: Vec<Token> = (0..5).map(|i| Token::new(0x500 + i)).collect();
    let mut csrs: Vec<Vec<u8>> = good.iter().map(Token::csr).collect();
    csrs.insert(2, outside.csr());
    csrs.insert(4, token.forged_csr());
    let res = client::enroll_batch(&relay.url, csrs, Some(&st)).unwrap();
    assert_eq!(res.len(), 7);
    assert!(res[2].1.as_ref().unwrap_err().contains("range"));
    assert!(res[4].1.as_ref().unwrap_err().contains("signature"));
    let issued: Vec<_> = res
        .iter()
        .filter_map(|(s, r)| r.as_ref().ok().map(|c| (s.clone(), c.clone())))
        .collect();
    assert_eq!(issued.len(), 5);
    for ((serial, cert), t) in issued.iter().zip(&good) {
        assert_eq!(serial, &t.serial);
        assert_eq!(vtoken_pki::cert_token_serial(cert).unwrap(), t.serial);
    }
    assert_eq!(request_count(&dir), seen + 5);
    assert_eq!(cert_count(&dir), 6);

    // EST through the relay with curl.
    let certs = sh(&format!(
        "curl -sf {}/.well-known/est/cacerts | openssl base64 -d | openssl pkcs7 -inform DER -print_certs",
        relay.url
    ));
    assert!(certs.contains("Test Token CA"), "{certs}");
    let est = client::est_simpleenroll(&relay.url, &Token::new(0x88).csr(), Some(&st)).unwrap();
    openssl_verify(&dir, &est[0]);
}

#[test]
fn plain_relay_passes_the_ca_refusal_through() {
    let (_tmp, dir) = init_ca();
    let ca = Server::ca(&dir);
    let station = Operator::register(&dir, "station", "device");
    let st = station.cred();
    let relay = Server::relay(&dir, &ca.url, false, &station);
    let token = Token::new(0x99);
    let seen = request_count(&dir);
    match client::enroll(&relay.url, &token.forged_csr(), Some(&st)) {
        Err(Error::Http {
            status: 400,
            message,
        }) => {
            assert!(!message.contains("relay"), "{message}");
            assert!(message.contains("signature"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // This time the CA saw (and refused) it.
    assert_eq!(request_count(&dir), seen + 1);
    let res = client::enroll_batch(&relay.url, vec![token.csr()], Some(&st)).unwrap();
    assert!(res[0].1.is_ok());
    assert_eq!(cert_count(&dir), 1);
}

#[test]
fn relay_reports_an_unreachable_ca() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_tmp, dir) = init_ca();
    let station = Operator::register(&dir, "station", "device");
    let relay = Server::relay(&dir, &format!("http://127.0.0.1:{port}"), true, &station);
    match client::enroll(&relay.url, &Token::new(1).csr(), Some(&station.cred())) {
        Err(Error::Http {
            status: 502,
            message,
        }) => assert!(message.contains("CA"), "{message}"),
        other => panic!("{other:?}"),
    }
}
