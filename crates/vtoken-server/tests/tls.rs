//! HTTPS (`--tls-cert`/`--tls-key`, rustls) on the CA and the relay, with a private
//! TLS root: curl and the Rust client (`vtoken_pki::client::trust_tls_roots`) talk to
//! them; a client without the root, and plain HTTP to the TLS port, get nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vtoken_pki::client;

/// A private TLS root and a P-256 server certificate for 127.0.0.1 issued by it
/// (openssl); returns (root, server cert, server key). rustls, like browsers, refuses
/// a CA certificate used as the server's own, so the root stays separate.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (root, rkey) = (dir.join("tls-root.pem"), dir.join("tls-root.key"));
    let (cert, key) = (dir.join("tls.pem"), dir.join("tls.key"));
    let (csr, ext) = (dir.join("tls.csr"), dir.join("tls.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let d = |p: &PathBuf| p.display().to_string();
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
         -subj '/CN=vtoken test TLS root' -keyout {rk} -out {r} 2>/dev/null && \
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -subj /CN=127.0.0.1 -keyout {k} -out {q} 2>/dev/null && \
         openssl x509 -req -in {q} -CA {r} -CAkey {rk} -CAcreateserial -days 2 \
         -extfile {e} -out {c} 2>/dev/null",
        rk = d(&rkey),
        r = d(&root),
        k = d(&key),
        q = d(&csr),
        e = d(&ext),
        c = d(&cert),
    ));
    (root, cert, key)
}

fn curl_status(args: &str) -> i32 {
    Command::new("sh")
        .arg("-c")
        .arg(format!("curl -s -o /dev/null {args}"))
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn https_ca_and_relay_with_a_private_tls_root() {
    let (tmp, dir) = init_ca();
    let (root, cert, key) = tls_files(tmp.path());
    let (r, c, k) = (
        root.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let ca = Server::start(&[
        "ca",
        "serve",
        "--dir",
        dir.to_str().unwrap(),
        "--serial-range",
        RANGE,
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ]);
    assert!(ca.url.starts_with("https://127.0.0.1:"), "{}", ca.url);
    let station = Operator::register(&dir, "station", "device");
    let op = station.cred();

    // curl trusting the TLS root: EST answers with the CA certificate.
    let certs = sh(&format!(
        "curl -sf --cacert {r} {}/.well-known/est/cacerts | openssl base64 -d | \
         openssl pkcs7 -inform DER -print_certs",
        ca.url
    ));
    assert!(certs.contains("Test Token CA"), "{certs}");
    // Without the root the server certificate is refused (curl 60); plain HTTP to
    // the TLS port gets no HTTP answer.
    let est = format!("{}/.well-known/est/cacerts", ca.url);
    assert_eq!(curl_status(&est), 60, "curl without --cacert");
    let plain = est.replacen("https://", "http://", 1);
    assert_ne!(
        curl_status(&format!("-f {plain}")),
        0,
        "plain HTTP answered"
    );

    // The Rust client, before it trusts the root, fails at the handshake.
    let t = Token::new(0x71);
    let e = client::enroll(&ca.url, &t.csr(), Some(&op)).unwrap_err();
    assert!(matches!(e, vtoken_pki::Error::Transport(_)), "{e}");
    assert_eq!(cert_count(&dir), 0);

    client::trust_tls_roots(&std::fs::read(&root).unwrap()).unwrap();
    let leaf = client::enroll(&ca.url, &t.csr(), Some(&op)).unwrap();
    openssl_verify(&dir, &leaf);
    assert!(
        client::trust_tls_roots(&std::fs::read(&root).unwrap()).is_err(),
        "roots are set once"
    );

    // A TLS relay in front of the TLS CA, trusting the CA's TLS root.
    let files = relay_files(&dir, &station);
    let mut args = vec![
        "relay",
        "serve",
        "--upstream",
        &ca.url,
        "--upstream-tls-ca",
        r,
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ];
    args.extend(files.iter().map(String::as_str));
    let relay = Server::start(&args);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    let leaf = client::enroll(&relay.url, &Token::new(0x72).csr(), Some(&op)).unwrap();
    openssl_verify(&dir, &leaf);
    assert_eq!(cert_count(&dir), 2);

    // A relay without the root (Mozilla roots only) cannot reach the CA.
    let mut args = vec!["relay", "serve", "--upstream", &ca.url];
    args.extend(files.iter().map(String::as_str));
    let blind = Server::start(&args);
    let e = client::enroll(&blind.url, &Token::new(0x73).csr(), Some(&op)).unwrap_err();
    match &e {
        vtoken_pki::Error::Http {
            status: 502,
            message,
        } => {
            assert!(message.contains("CA unreachable"), "{message}")
        }
        other => panic!("expected the relay's 502, got {other}"),
    }
    assert_eq!(
        cert_count(&dir),
        2,
        "nothing issued through the blind relay"
    );
}

#[test]
fn tls_options_are_checked() {
    let (tmp, dir) = init_ca();
    let (_, cert, _) = tls_files(tmp.path());
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["ca", "serve", "--dir", dir.to_str().unwrap()])
            .args(["--serial-range", RANGE, "--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap()
    };
    // --tls-cert needs --tls-key.
    let o = run(&["--tls-cert", cert.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tls-key"),
        "{o:?}"
    );
    // A missing key file: a clear error naming it, no server.
    let o = run(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        "/nonexistent/tls.key",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/tls.key"), "{err}");
}
