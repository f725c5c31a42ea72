//! Shared test helpers: the real `vtoken-server` binary on 127.0.0.1:0, real keys,
//! real SQLite, real curl/openssl.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use pkcs8::{EncodePrivateKey, EncodePublicKey};
use vtoken_pki::auth::Credential;
use vtoken_pki::{build_csr, Error, LocalCa, SigAlg, Usage};

pub const BIN: &str = env!("CARGO_BIN_EXE_vtoken-server");
pub const RANGE: &str = "0000000000000000-00000000FFFFFFFF";

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Start `vtoken-server ARGS --listen 127.0.0.1:0` and wait for its address line.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("VTOKEN_LOG", "warn")
            .stderr(Stdio::inherit());
        Server::spawn(cmd)
    }

    /// Start `cmd` (a `vtoken-server ... serve`, its log and environment set by the
    /// caller) on 127.0.0.1:0 and wait for its address line.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
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

    /// A CA with extra options (e.g. `--rate-limit`).
    pub fn ca_with(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "ca",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--serial-range",
            RANGE,
        ];
        args.extend(extra);
        Server::start(&args)
    }

    /// A relay serving `station`, with its own credential registered at the CA in
    /// `ca_dir` as operator `relay` (profiles device,client).
    pub fn relay(ca_dir: &Path, upstream: &str, verify: bool, station: &Operator) -> Server {
        Server::relay_with(ca_dir, upstream, verify, station, &[])
    }

    pub fn relay_with(
        ca_dir: &Path,
        upstream: &str,
        verify: bool,
        station: &Operator,
        extra: &[&str],
    ) -> Server {
        let files = relay_files(ca_dir, station);
        let mut args = vec!["relay", "serve", "--upstream", upstream];
        args.extend(files.iter().map(String::as_str));
        if verify {
            args.extend(["--verify", "--serial-range", RANGE]);
        }
        args.extend(extra);
        Server::start(&args)
    }
}

/// The relay's credential files (registered at the CA once) and the station's
/// certificate file, as `relay serve` options.
pub fn relay_files(ca_dir: &Path, station: &Operator) -> Vec<String> {
    let dir = ca_dir.parent().unwrap();
    let (cert, key) = (dir.join("relay.pem"), dir.join("relay.key"));
    if !cert.exists() {
        let relay = Operator::register(ca_dir, "relay", "device,client");
        std::fs::write(&cert, vtoken_pki::cert_der_to_pem(&relay.cert)).unwrap();
        std::fs::write(
            &key,
            relay
                .key
                .to_pkcs8_pem(pkcs8::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    }
    let st = dir.join(format!("station-{}.pem", station.name));
    std::fs::write(&st, vtoken_pki::cert_der_to_pem(&station.cert)).unwrap();
    vec![
        "--station-cert".into(),
        st.display().to_string(),
        "--client-cert".into(),
        cert.display().to_string(),
        "--client-key".into(),
        key.display().to_string(),
    ]
}

/// An operator (issuing station or relay): a P-256 key and its certificate.
pub struct Operator {
    pub name: String,
    pub key: SigningKey,
    pub cert: Vec<u8>,
}

impl Operator {
    /// Register a new operator with `vtoken-server ca operator add --csr` (the real
    /// binary): the CA issues its certificate.
    pub fn register(ca_dir: &Path, name: &str, profiles: &str) -> Operator {
        Operator::register_with(ca_dir, name, profiles, &[])
    }

    /// [`Operator::register`] with more `ca operator add` options (e.g. `--database`).
    pub fn register_with(ca_dir: &Path, name: &str, profiles: &str, extra: &[&str]) -> Operator {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let csr = build_csr(
            spki.as_bytes(),
            "0F0F0F0F00000001",
            Usage::Operator,
            |m| Ok::<_, Error>(Signer::<Signature>::sign(&key, m).to_bytes().to_vec()),
            SigAlg::EcdsaSha256,
        )
        .unwrap();
        let dir = ca_dir.parent().unwrap();
        let csr_file = dir.join(format!("{name}.csr"));
        std::fs::write(&csr_file, csr).unwrap();
        let out = Command::new(BIN)
            .args(["ca", "operator", "add", "--dir", ca_dir.to_str().unwrap()])
            .args(["--name", name, "--profiles", profiles, "--csr"])
            .arg(&csr_file)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let cert = vtoken_pki::certs_from_pem(&String::from_utf8(out.stdout).unwrap())
            .unwrap()
            .remove(0);
        Operator {
            name: name.into(),
            key,
            cert,
        }
    }

    /// An operator the CA does not know: its certificate from another CA (same name).
    pub fn unregistered(name: &str) -> Operator {
        let other = LocalCa::generate("Test Token CA", 30).unwrap();
        let key = SigningKey::random(&mut rand_core::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let cert = other
            .issue_for_spki(spki.as_bytes(), "0F0F0F0F00000002", Usage::Operator)
            .unwrap();
        Operator {
            name: name.into(),
            key,
            cert,
        }
    }

    /// Its credential, asking for the default profile.
    pub fn cred(&self) -> Credential {
        let key = self.key.clone();
        Credential::new(
            self.cert.clone(),
            Box::new(move |m| Ok(Signer::<Signature>::sign(&key, m).to_bytes().to_vec())),
        )
        .unwrap()
    }

    /// Its credential, asking for `profile`.
    pub fn cred_for(&self, profile: Usage) -> Credential {
        let mut c = self.cred();
        c.profile = Some(profile);
        c
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

/// GET `url` with `headers`: (status, body, the response's `x-request-id`).
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut req = ureq::get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let id = r.header("x-request-id").map(str::to_string);
    (r.status(), r.into_string().unwrap(), id)
}

/// GET `url`: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let (s, b, _) = get_with(url, &[]);
    (s, b)
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
