//! Shared test helpers: the real `vtoken-server` binary on 127.0.0.1:0, real keys,
//! real SQLite, real curl/openssl.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use pkcs8::EncodePublicKey;
use vtoken_pki::{build_csr, Error, SigAlg, Usage};

pub const BIN: &str = env!("CARGO_BIN_EXE_vtoken-server");
pub const RANGE: &str = "0000000000000000-00000000FFFFFFFF";

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Start `vtoken-server ARGS --listen 127.0.0.1:0` and wait for its address line.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("VTOKEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vtoken-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, url }
    }

    pub fn ca(dir: &Path) -> Server {
        Server::start(&[
            "ca",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--serial-range",
            RANGE,
        ])
    }

    pub fn relay(upstream: &str, verify: bool) -> Server {
        let mut args = vec!["relay", "serve", "--upstream", upstream];
        if verify {
            args.extend(["--verify", "--serial-range", RANGE]);
        }
        Server::start(&args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vtoken-server ca init` in a fresh directory; returns (tempdir, CA dir).
pub fn init_ca() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = Command::new(BIN)
        .args([
            "ca",
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--name",
            "Test Token CA",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, dir)
}

/// A token stand-in: a P-256 key and a serial.
pub struct Token {
    pub serial: String,
    pub key: SigningKey,
}

impl Token {
    pub fn new(n: u64) -> Token {
        Token {
            serial: format!("{n:016X}"),
            key: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    pub fn spki(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    pub fn csr(&self) -> Vec<u8> {
        build_csr(
            &self.spki(),
            &self.serial,
            Usage::Device,
            |m| Ok::<_, Error>(Signer::<Signature>::sign(&self.key, m).to_bytes().to_vec()),
            SigAlg::EcdsaSha256,
        )
        .unwrap()
    }

    /// A request whose signature does not match its content.
    pub fn forged_csr(&self) -> Vec<u8> {
        let mut csr = self.csr();
        let pos = csr
            .windows(self.serial.len())
            .position(|w| w == self.serial.as_bytes())
            .unwrap();
        csr[pos] = if csr[pos] == b'0' { b'1' } else { b'0' };
        csr
    }
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("ca.db")).unwrap()
}

/// Certificates stored by the CA.
pub fn cert_count(dir: &Path) -> i64 {
    db(dir)
        .query_row("SELECT count(*) FROM certs", [], |r| r.get(0))
        .unwrap()
}

/// Requests the CA has seen (accepted or refused).
pub fn request_count(dir: &Path) -> i64 {
    db(dir)
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap()
}

/// Run a shell pipeline; returns stdout; panics on failure.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify -CAfile ca.pem` on a DER certificate.
pub fn openssl_verify(ca_dir: &Path, cert_der: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let pem = tmp.path().join("leaf.pem");
    std::fs::write(&pem, vtoken_pki::cert_der_to_pem(cert_der)).unwrap();
    let out = sh(&format!(
        "openssl verify -CAfile {} {}",
        ca_dir.join("ca.pem").display(),
        pem.display()
    ));
    assert!(out.trim().ends_with(": OK"), "{out}");
}
