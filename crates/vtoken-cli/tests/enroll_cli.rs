//! `vtoken enroll` (SPEC E1–E5, E9, E10) end to end: the real `vtoken` binary against
//! the real `vtoken-server` CA and relay on 127.0.0.1, with certificates checked by
//! `openssl verify` and by NSS (`modutil`/`certutil` on the real PKCS#11 module).
//!
//! `vtoken-server` and `libvtoken_pkcs11.so` come from `artifacts` (the module from
//! `VTOKEN_P11_TEST_MODULE` when set, as `scripts/test` does; else built once).

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::SystemTime;

use cryptoki_sys::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use vault_core::config::Config;
use vault_core::slots::Registry;
use vault_core::token::UserType;
use vault_core::Attributes;

mod common;
use common::{artifacts, Harness, SO_PIN};

const OPERATOR_PIN: &str = "operator-2468";
const SECRET: &str = "station secret for the enroll tests\n";
/// The serials the CA (and the verifying relay) accept. Test serials differ in their
/// first four bytes, from which slot IDs are derived (NSS tells tokens apart by slot).
const RANGE: &str = "1000000000000000-1FFFFFFFFFFFFFFF";

/// A running `vtoken-server`; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(artifacts::server())
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("VTOKEN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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

    fn ca(dir: &Path) -> Server {
        Server::start(&[
            "ca",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--serial-range",
            RANGE,
        ])
    }

    /// A relay serving the test station, with its own credential (a self-signed
    /// certificate made by openssl) registered at the CA.
    fn relay(env: &Env, upstream: &str) -> Server {
        let (cert, key) = (env.path("relay.pem"), env.path("relay.key"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=enroll test relay", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        env.server(&[
            "ca",
            "operator",
            "add",
            "--name",
            "relay",
            "--profiles",
            "device,client",
            "--cert",
            cert.to_str().unwrap(),
        ]);
        Server::start(&[
            "relay",
            "serve",
            "--upstream",
            upstream,
            "--verify",
            "--serial-range",
            RANGE,
            "--station-cert",
            env.path("op.pem").to_str().unwrap(),
            "--client-cert",
            cert.to_str().unwrap(),
            "--client-key",
            key.to_str().unwrap(),
        ])
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The shared harness with an operator token, a CA directory and scratch files.
struct Env {
    h: Harness,
    ca_dir: PathBuf,
}

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl Env {
    fn new() -> Env {
        let h = common::harness("");
        std::fs::write(h.path("secret"), SECRET).unwrap();
        std::fs::write(h.path("op.pin"), format!("{OPERATOR_PIN}\n")).unwrap();
        let ca_dir = h.path("ca");
        let out = Command::new(artifacts::server())
            .args(["ca", "init", "--dir", ca_dir.to_str().unwrap()])
            .args(["--name", "Enroll Test CA"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let env = Env { h, ca_dir };
        env.token("operator", "0F0F0F0F00000000", OPERATOR_PIN);
        env.register_operator("station", "device,client");
        env
    }

    /// The operator credential: key and request made in the operator token, the
    /// certificate issued by `vtoken-server ca operator add --csr`, installed beside
    /// the key.
    fn register_operator(&self, name: &str, profiles: &str) {
        let (csr, pem) = (self.path("op.csr"), self.path("op.pem"));
        let pin = self.path("op.pin");
        let op = |sub: &str, flag: &str, file: &Path| {
            let out = self.run(&[
                "enroll",
                sub,
                "--operator",
                "operator",
                "--operator-pin-file",
                pin.to_str().unwrap(),
                flag,
                file.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{out:?}");
        };
        op("operator-request", "-o", &csr);
        self.server(&[
            "ca",
            "operator",
            "add",
            "--name",
            name,
            "--profiles",
            profiles,
            "--csr",
            csr.to_str().unwrap(),
            "-o",
            pem.to_str().unwrap(),
        ]);
        op("operator-install", "--cert", &pem);
    }

    /// `vtoken-server ARGS --dir CA` (a CA administration command), which must succeed.
    fn server(&self, args: &[&str]) -> Output {
        let out = Command::new(artifacts::server())
            .args(args)
            .args(["--dir", self.ca_dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out
    }

    fn registry(&self) -> Registry {
        Registry::new(Config::from_file(self.conf()).unwrap())
    }

    /// A token with this label, serial and user PIN (as an issuer prepares it).
    fn token(&self, label: &str, serial: &str, pin: &str) {
        let reg = self.registry();
        let entry = reg.create(label, SO_PIN.as_bytes(), Some(serial)).unwrap();
        let t = reg.open(&entry).unwrap();
        let sid = &t.open_session(true).unwrap();
        t.login(UserType::So, SO_PIN.as_bytes()).unwrap();
        t.init_pin(pin.as_bytes()).unwrap();
        t.close_session(sid).unwrap();
    }

    /// The DER certificates on a token, and its number of private keys.
    fn contents(&self, serial: &str, pin: &str) -> (Vec<Vec<u8>>, usize) {
        let reg = self.registry();
        let t = reg.open(&reg.find(serial).unwrap()).unwrap();
        let sid = &t.open_session(false).unwrap();
        t.login(UserType::User, pin.as_bytes()).unwrap();
        let of = |class| {
            let mut a = Attributes::new();
            a.set_ulong(CKA_CLASS, class);
            t.search(&a).unwrap()
        };
        let certs = of(CKO_CERTIFICATE)
            .into_iter()
            .map(|h| t.attributes(h).unwrap().get(CKA_VALUE).unwrap().to_vec())
            .collect();
        let keys = of(CKO_PRIVATE_KEY).len();
        t.close_session(sid).unwrap();
        (certs, keys)
    }

    /// `vtoken enroll --json --operator operator --operator-pin-file op.pin ARGS`.
    fn enroll(&self, url: &str, args: &[&str]) -> (Option<i32>, Value, String) {
        let out = self.run(&self.enroll_args(url, args));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        (out.status.code(), json, stderr)
    }

    fn enroll_args(&self, url: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--json",
            "enroll",
            "--ca",
            url,
            "--operator",
            "operator",
            "--operator-pin-file",
            self.path("op.pin").to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn ca_pem(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }
}

/// The documented E2 algorithm, written out independently of the CLI.
fn derived_pin(serial: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.trim_end().as_bytes()).unwrap();
    mac.update(serial.as_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[31] & 0x0f) as usize;
    let v = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    format!("{:08}", v % 100_000_000)
}

fn serial(n: u32) -> String {
    format!("{:08X}{:08X}", 0x1000_0000 + n, 0xE000 + n)
}

/// The summary row of `serial`.
fn row<'a>(json: &'a Value, serial: &str) -> &'a Value {
    json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == serial)
        .unwrap_or_else(|| panic!("no row for {serial}: {json:#}"))
}

/// A certificate verifies against the CA, carries `serial` and is the only one.
fn assert_one_valid_cert(env: &Env, serial: &str, pin: &str) {
    let (certs, _) = env.contents(serial, pin);
    assert_eq!(certs.len(), 1, "token {serial}");
    let ca = vtoken_pki::certs_from_pem(&std::fs::read_to_string(env.ca_pem()).unwrap()).unwrap();
    let v = vtoken_pki::verify_chain(&certs[0], &[], &ca[0], SystemTime::now()).unwrap();
    assert_eq!(v.token_serial, serial);
}

fn tool(cmd: &str, args: &[&str], conf: &Path) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("VTOKEN_CONF", conf)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn batch_of_twenty_with_derived_pins_verifies_with_openssl_and_pairs_in_nss() {
    let env = Env::new();
    let serials: Vec<String> = (1..=20).map(serial).collect();
    for (i, s) in serials.iter().enumerate() {
        env.token(&format!("tok{:02}", i + 1), s, &derived_pin(s));
    }
    let ca = Server::ca(&env.ca_dir);
    let secret = env.path("secret");
    let (code, json, stderr) = env.enroll(
        &ca.url,
        &[
            "--all",
            "--pin-from-serial",
            secret.to_str().unwrap(),
            "--mode",
            "batch",
        ],
    );
    assert_eq!(code, Some(0), "{json:#}\n{stderr}");
    assert_eq!(json["enrolled"], 20, "{json:#}");
    assert_eq!(json["failed"], 0);
    assert_eq!(
        json["tokens"].as_array().unwrap().len(),
        20,
        "operator skipped"
    );
    assert!(stderr.contains("SHA-256"), "fingerprint printed: {stderr}");
    assert!(stderr.contains("[20/20]"), "progress lines: {stderr}");

    // Every certificate, exported by the CLI, verifies with openssl against the CA.
    let mut files = Vec::new();
    for s in &serials {
        let f = env.path(&format!("{s}.pem"));
        let out = env.run(&[
            "--token",
            s,
            "export",
            "--label",
            "enroll-device",
            "--type",
            "cert",
            "-o",
            f.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        files.push(f.to_str().unwrap().to_string());
    }
    let ca_pem = env.ca_pem();
    let mut args = vec!["verify", "-CAfile", ca_pem.to_str().unwrap()];
    args.extend(files.iter().map(|s| s.as_str()));
    let verified = tool("openssl", &args, env.conf());
    assert_eq!(verified.matches(": OK").count(), 20, "{verified}");
    let subject = tool(
        "openssl",
        &["x509", "-noout", "-subject", "-in", &files[4]],
        env.conf(),
    );
    assert!(subject.contains(&serials[4]), "{subject}");

    // NSS loads the module, lists each certificate and pairs it with its key.
    let db = env.path("nssdb");
    std::fs::create_dir(&db).unwrap();
    let dbs = format!("sql:{}", db.display());
    tool(
        "certutil",
        &["-N", "-d", &dbs, "--empty-password"],
        env.conf(),
    );
    let module = artifacts::pkcs11_module();
    tool(
        "modutil",
        &[
            "-dbdir",
            &dbs,
            "-add",
            "vtoken",
            "-libfile",
            module.to_str().unwrap(),
            "-force",
        ],
        env.conf(),
    );
    for i in [0usize, 9, 19] {
        let label = format!("tok{:02}", i + 1);
        let nick = format!("{label}:enroll-device");
        // NSS logs in to list a login-required token's certificates too.
        let pw = env.path("nss.pw");
        std::fs::write(&pw, derived_pin(&serials[i])).unwrap();
        let listed = tool(
            "certutil",
            &["-d", &dbs, "-L", "-h", &label, "-f", pw.to_str().unwrap()],
            env.conf(),
        );
        // "u,u,u": NSS found the private key of the certificate (a user certificate).
        let cert_line = listed
            .lines()
            .find(|l| l.contains(&nick))
            .unwrap_or_else(|| panic!("{nick} not listed: {listed}"));
        assert!(
            cert_line.ends_with("u,u,u"),
            "not paired with a key: {listed}"
        );
        let keys = tool(
            "certutil",
            &["-d", &dbs, "-K", "-h", &label, "-f", pw.to_str().unwrap()],
            env.conf(),
        );
        let key_id = row(&json, &serials[i])["key_id"]
            .as_str()
            .unwrap()
            .to_string();
        let line = keys
            .lines()
            .find(|l| l.contains(&key_id))
            .unwrap_or_else(|| panic!("key {key_id} not listed: {keys}"));
        assert!(line.contains("enroll-device"), "{line}");
    }

    // A second run finds every token enrolled and changes nothing.
    let (code, json, _) = env.enroll(
        &ca.url,
        &[
            "--all",
            "--pin-from-serial",
            secret.to_str().unwrap(),
            "--mode",
            "batch",
        ],
    );
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["already_enrolled"], 20, "{json:#}");
    assert_one_valid_cert(&env, &serials[7], &derived_pin(&serials[7]));
}

#[test]
fn relay_with_verify_refuses_a_serial_outside_the_range_and_enrols_the_rest() {
    let env = Env::new();
    let outside = "2000000100000001";
    let inside: Vec<String> = (1..=4).map(serial).collect();
    for (i, s) in inside.iter().enumerate() {
        env.token(&format!("r{i}"), s, "123456");
        if i == 1 {
            env.token("far", outside, "123456");
        }
    }
    let ca = Server::ca(&env.ca_dir);
    let relay = Server::relay(&env, &ca.url);
    std::fs::write(env.path("pin"), "123456\n").unwrap();
    let (code, json, stderr) = env.enroll(
        &relay.url,
        &[
            "--all",
            "--pin-file",
            env.path("pin").to_str().unwrap(),
            "--ca-cert",
            env.ca_pem().to_str().unwrap(),
            "--mode",
            "batch",
            "--usage",
            "client",
        ],
    );
    assert_eq!(code, Some(1), "{json:#}\n{stderr}");
    assert_eq!(json["enrolled"], 4, "{json:#}");
    assert_eq!(json["failed"], 1);
    let far = row(&json, outside);
    assert_eq!(far["result"], "failed");
    let err = far["error"].as_str().unwrap();
    assert!(err.contains("outside the agreed range"), "{err}");
    assert!(stderr.contains(outside), "{stderr}");
    assert!(env.contents(outside, "123456").0.is_empty());
    for s in &inside {
        assert_eq!(row(&json, s)["result"], "enrolled");
        assert_one_valid_cert(&env, s, "123456");
    }
    // The usage asked for is the usage certified (clientAuth).
    let f = env.path("r0.pem");
    let out = env.run(&[
        "--token",
        "r0",
        "export",
        "--label",
        "enroll-client",
        "--type",
        "cert",
        "-o",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = tool(
        "openssl",
        &[
            "x509",
            "-noout",
            "-ext",
            "extendedKeyUsage",
            "-in",
            f.to_str().unwrap(),
        ],
        env.conf(),
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
}

#[test]
fn killed_server_leaves_no_half_written_token_and_a_rerun_completes() {
    let env = Env::new();
    let serials: Vec<String> = (1..=12).map(serial).collect();
    for (i, s) in serials.iter().enumerate() {
        env.token(&format!("k{i:02}"), s, "123456");
    }
    let mut ca = Server::ca(&env.ca_dir);
    // RSA key generation makes each token take a noticeable time.
    let args = env.enroll_args(
        &ca.url,
        &[
            "--all",
            "--pin",
            "123456",
            "--key-type",
            "rsa2048",
            "--mode",
            "sequential",
        ],
    );
    let mut child = env
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut successes = 0;
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("): enrolled") {
            successes += 1;
            if successes == 3 {
                ca.kill();
            }
        }
        seen.push(line);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{seen:#?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = json["failed"].as_u64().unwrap();
    assert!(failed >= 5, "the run after the kill failed: {json:#}");
    let errors: Vec<&str> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert!(errors.iter().all(|e| e.contains("CA")), "{errors:?}");
    // Every token holds no certificate or exactly one valid one; keys stay for reuse.
    for s in &serials {
        let (certs, keys) = env.contents(s, "123456");
        assert!(certs.len() <= 1, "{s}: {} certificates", certs.len());
        if certs.len() == 1 {
            assert_one_valid_cert(&env, s, "123456");
        }
        assert!(keys <= 1, "{s}: {keys} private keys");
        assert_eq!(
            row(&json, s)["result"] == "enrolled",
            certs.len() == 1,
            "{s}"
        );
    }

    // Restart the CA on the same directory and rerun: everything is enrolled, with the
    // key pairs generated the first time (no new key on any token).
    let ca = Server::ca(&env.ca_dir);
    let (code, json, stderr) = env.enroll(
        &ca.url,
        &["--all", "--pin", "123456", "--key-type", "rsa2048"],
    );
    assert_eq!(code, Some(0), "{json:#}\n{stderr}");
    assert_eq!(
        json["enrolled"].as_u64().unwrap() + json["already_enrolled"].as_u64().unwrap(),
        12,
        "{json:#}"
    );
    for s in &serials {
        assert_one_valid_cert(&env, s, "123456");
        assert_eq!(env.contents(s, "123456").1, 1, "{s}: one key pair");
        assert_eq!(row(&json, s)["key_generated"], false, "{s}");
    }
}

#[test]
fn enrols_over_https_when_given_the_tls_root() {
    let env = Env::new();
    let s = serial(1);
    env.token("tls", &s, "123456");
    // A private TLS root and a server certificate for 127.0.0.1 issued by it.
    let p = |n: &str| env.path(n).to_str().unwrap().to_string();
    std::fs::write(
        env.path("tls.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    let script = format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
         -subj '/CN=enroll TLS root' -keyout {rk} -out {r} && \
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -subj /CN=127.0.0.1 -keyout {k} -out {q} && \
         openssl x509 -req -in {q} -CA {r} -CAkey {rk} -CAcreateserial -days 2 \
         -extfile {e} -out {c}",
        rk = p("root.key"),
        r = p("root.pem"),
        k = p("tls.key"),
        q = p("tls.csr"),
        e = p("tls.ext"),
        c = p("tls.pem"),
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let ca = Server::start(&[
        "ca",
        "serve",
        "--dir",
        env.ca_dir.to_str().unwrap(),
        "--serial-range",
        RANGE,
        "--tls-cert",
        &p("tls.pem"),
        "--tls-key",
        &p("tls.key"),
    ]);
    assert!(ca.url.starts_with("https://"), "{}", ca.url);
    let args = ["--all", "--pin", "123456"];
    // Without the root the server is not trusted: nothing is touched.
    let out = env.run(&env.enroll_args(&ca.url, &args));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(env.contents(&s, "123456"), (vec![], 0), "untouched");
    // --tls-ca names a file that is not PEM: a clear error.
    let mut bad = args.to_vec();
    let notpem = p("tls.ext");
    bad.extend(["--tls-ca", &notpem]);
    let out = env.run(&env.enroll_args(&ca.url, &bad));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-ca"));
    // With it, the token is enrolled.
    let root = p("root.pem");
    let mut good = args.to_vec();
    good.extend(["--tls-ca", &root]);
    let (code, json, err) = env.enroll(&ca.url, &good);
    assert_eq!(code, Some(0), "{json:#} {err}");
    assert_eq!(row(&json, &s)["result"], "enrolled", "{json:#}");
    assert_one_valid_cert(&env, &s, "123456");
}

#[test]
fn wrong_operator_pin_or_ca_fingerprint_enrols_nothing() {
    let env = Env::new();
    let serials: Vec<String> = (1..=3).map(serial).collect();
    for (i, s) in serials.iter().enumerate() {
        env.token(&format!("w{i}"), s, "123456");
    }
    let ca = Server::ca(&env.ca_dir);
    let out = env.run(&[
        "enroll",
        "--ca",
        &ca.url,
        "--operator",
        "operator",
        "--operator-pin",
        "not-the-pin",
        "--all",
        "--pin",
        "123456",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("operator authentication failed") && err.contains("incorrect user PIN"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    for s in &serials {
        assert_eq!(env.contents(s, "123456"), (vec![], 0), "{s} untouched");
    }
    // A CA certificate other than the one pinned: refused before any token is touched.
    let out = env.run(&[
        "enroll",
        "--ca",
        &ca.url,
        "--ca-fingerprint",
        "00:11:22",
        "--operator",
        "operator",
        "--operator-pin",
        OPERATOR_PIN,
        "--all",
        "--pin",
        "123456",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to enrol"));
    for s in &serials {
        assert_eq!(env.contents(s, "123456"), (vec![], 0), "{s} untouched");
    }
    // No operator PIN at all, without a terminal: a clear error.
    let out = env.run(&[
        "enroll",
        "--ca",
        &ca.url,
        "--operator",
        "operator",
        "--all",
        "--pin",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operator PIN given"));
}

#[test]
fn wrong_pin_and_locked_tokens_are_reported_and_the_others_enrolled() {
    let env = Env::new();
    let serials: Vec<String> = (1..=6).map(serial).collect();
    for (i, s) in serials.iter().enumerate() {
        let pin = if i == 2 { "999999" } else { "123456" };
        env.token(&format!("m{i}"), s, pin);
    }
    // Token 5's user PIN is locked.
    {
        let reg = env.registry();
        let t = reg.open(&reg.find(&serials[4]).unwrap()).unwrap();
        for _ in 0..10 {
            assert!(t.login(UserType::User, b"000000").is_err());
            if t.info().unwrap().user_pin.locked {
                break;
            }
        }
        assert!(t.info().unwrap().user_pin.locked);
    }
    let ca = Server::ca(&env.ca_dir);
    let (code, json, stderr) = env.enroll(
        &ca.url,
        &["--tokens", &serials.join(","), "--pin", "123456"],
    );
    assert_eq!(code, Some(1), "{json:#}\n{stderr}");
    assert_eq!(json["enrolled"], 4, "{json:#}");
    assert_eq!(json["failed"], 2);
    let wrong = row(&json, &serials[2]);
    assert!(
        wrong["error"]
            .as_str()
            .unwrap()
            .contains("incorrect user PIN"),
        "{wrong}"
    );
    let locked = row(&json, &serials[4]);
    assert!(
        locked["error"].as_str().unwrap().contains("locked"),
        "{locked}"
    );
    assert_eq!(env.contents(&serials[2], "999999"), (vec![], 0));
    for i in [0, 1, 3, 5] {
        assert_one_valid_cert(&env, &serials[i], "123456");
    }
    // The text summary names the failures too.
    let out =
        env.run(&env.enroll_args(&ca.url, &["--tokens", &serials[2], "--pin", "123456"])[1..]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED") && text.contains("1 failed"),
        "{text}"
    );
    // An unknown token is reported as such, and the run does not stop for it.
    let (code, json, _) = env.enroll(
        &ca.url,
        &[
            "--tokens",
            &format!("nosuch,{}", serials[0]),
            "--pin",
            "123456",
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(json["already_enrolled"], 1, "{json:#}");
    assert!(row(&json, "nosuch")["error"]
        .as_str()
        .unwrap()
        .contains("no token"));
}

#[test]
fn derive_pin_follows_the_documented_algorithm_and_help_teaches() {
    let env = Env::new();
    let secret = env.path("secret");
    for s in ["00000000000000A1", "0000000100000001"] {
        let out = env.run(&[
            "enroll",
            "derive-pin",
            "--serial",
            &s.to_ascii_lowercase(),
            "--secret-file",
            secret.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let pin = String::from_utf8(out.stdout).unwrap();
        // The MAC by openssl, the truncation by hand.
        let mac = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {s} | openssl dgst -sha256 -mac HMAC -macopt 'key:{}' -r",
                SECRET.trim_end()
            ))
            .output()
            .unwrap();
        let hexmac = String::from_utf8(mac.stdout).unwrap();
        let h = hex::decode(hexmac.split_whitespace().next().unwrap()).unwrap();
        let o = (h[31] & 0x0f) as usize;
        let v = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
        assert_eq!(pin.trim(), format!("{:08}", v % 100_000_000));
        assert_eq!(pin.trim(), derived_pin(s));
    }
    let short = env.path("short");
    std::fs::write(&short, "tiny\n").unwrap();
    let out = env.run(&[
        "enroll",
        "derive-pin",
        "--serial",
        "01",
        "--secret-file",
        short.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 16 bytes"));

    let out = env.run(&["enroll", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "HMAC-SHA256",
        "--pin-from-serial",
        "Examples:",
        "derive-pin",
        "--mode",
    ] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
    let out = env.run(&["enroll", "--operator", "operator"]);
    assert_eq!(out.status.code(), Some(2), "--ca is required");
}

#[test]
fn enrolment_needs_a_registered_operator_credential_and_its_policy() {
    let env = Env::new();
    let s = serial(1);
    env.token("t1", &s, "123456");
    let ca = Server::ca(&env.ca_dir);
    // An operator token without a credential: refused before any token is touched.
    env.token("bare", "0F0F0F0F00000001", OPERATOR_PIN);
    let mut args = env.enroll_args(&ca.url, &["--tokens", &s, "--pin", "123456"]);
    let at = args.iter().position(|a| a == "operator").unwrap();
    args[at] = "bare".into();
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no operator credential"), "{err}");
    assert_eq!(env.contents(&s, "123456"), (vec![], 0), "untouched");
    // A usage the CA's policy does not grant this operator: refused by the CA.
    let (code, json, _) = env.enroll(
        &ca.url,
        &["--tokens", &s, "--pin", "123456", "--usage", "signing"],
    );
    assert_eq!(code, Some(1), "{json:#}");
    let e = row(&json, &s)["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("403") && e.contains("may not request signing"),
        "{e}"
    );
    assert!(env.contents(&s, "123456").0.is_empty(), "no certificate");
    // The operator removed from the CA: refused at step 201, before any token.
    env.server(&["ca", "operator", "remove", "--name", "station"]);
    let out = env.run(&env.enroll_args(&ca.url, &["--tokens", &s, "--pin", "123456"]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("403") && e.contains("not registered"), "{e}");
    assert!(env.contents(&s, "123456").0.is_empty(), "no certificate");
    assert_eq!(
        vtoken_pki::client::fetch_cert(&ca.url, &s).unwrap(),
        None,
        "nothing issued or published"
    );
}

#[test]
fn device_verify_refuses_an_attestation_whose_certificate_is_not_device_identity() {
    use vtoken_pki::{LocalCa, Usage};
    let env = Env::new();
    let s = serial(7);
    env.token("dev", &s, "123456");
    let root = LocalCa::generate("Attestation Test Root", 30).unwrap();
    let root_pem = env.path("root.pem");
    std::fs::write(&root_pem, root.cert_pem()).unwrap();
    let certify = |usage: Usage| {
        let reg = env.registry();
        let t = reg.open(&reg.find(&s).unwrap()).unwrap();
        let sid = &t.open_session(true).unwrap();
        t.login(UserType::User, b"123456").unwrap();
        let spki = t.identity_info().unwrap().spki;
        let leaf = root.issue_for_spki(&spki, &s, usage).unwrap();
        t.identity_set_chain(vec![leaf, root.cert_der().to_vec()], &spki)
            .unwrap();
        t.close_session(sid).unwrap();
    };
    let nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let attest_and_verify = || {
        let a = env.path("a.json");
        let out = env.run(&[
            "--token",
            "dev",
            "device",
            "attest",
            "--nonce",
            nonce,
            "--pin",
            "123456",
            "-o",
            a.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        env.run(&[
            "device",
            "verify",
            "--root",
            root_pem.to_str().unwrap(),
            "--attestation",
            a.to_str().unwrap(),
            "--nonce",
            nonce,
        ])
    };
    // A clientAuth certificate of the same root for the token's own device key:
    // chain, serial, nonce and signature are all right, the usage is not.
    for usage in [Usage::Client, Usage::Signing, Usage::Operator] {
        certify(usage);
        let out = attest_and_verify();
        assert_eq!(out.status.code(), Some(1), "{usage}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("device NOT authenticated") && err.contains("not a device certificate"),
            "{usage}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    // The device profile passes (control).
    certify(Usage::Device);
    let out = attest_and_verify();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("device authenticated"));
}

/// An operator token `label` (serial `serial`) with its key and a certificate issued
/// by the CA in `ca_dir` (`ca operator add --csr`, registered there as `name`, with
/// `extra` arguments), installed beside the key.
fn make_operator(env: &Env, label: &str, serial: &str, ca_dir: &Path, name: &str, extra: &[&str]) {
    env.token(label, serial, OPERATOR_PIN);
    let (csr, pem) = (
        env.path(&format!("{label}.csr")),
        env.path(&format!("{label}.pem")),
    );
    let pin = env.path("op.pin");
    let op = |sub: &str, flag: &str, file: &Path| {
        let out = env.run(&[
            "enroll",
            sub,
            "--operator",
            label,
            "--operator-pin-file",
            pin.to_str().unwrap(),
            flag,
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
    };
    op("operator-request", "-o", &csr);
    let out = Command::new(artifacts::server())
        .args(["ca", "operator", "add", "--name", name, "--csr"])
        .arg(&csr)
        .arg("-o")
        .arg(&pem)
        .args(extra)
        .args(["--dir", ca_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    op("operator-install", "--cert", &pem);
}

/// `vtoken enroll` with operator token `label`: exit code and stderr.
fn enroll_as(env: &Env, url: &str, label: &str, s: &str) -> (Option<i32>, String) {
    let mut args = env.enroll_args(url, &["--tokens", s, "--pin", "123456"]);
    let at = args.iter().position(|a| a == "operator").unwrap();
    args[at] = label.into();
    let out = env.run(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// E1, seed 001 step 201, in its order: the operator's PIN, then the operator
/// certificate of this CA on the token, then the CA's verdict on the token's answer
/// to a fresh challenge. Each refusal stops the run before step 202 (no token is
/// touched); an answer works once.
#[test]
fn step_201_authorises_only_operator_tokens_of_this_ca_answering_a_fresh_challenge() {
    let env = Env::new();
    let s = serial(1);
    env.token("t1", &s, "123456");
    let ca = Server::ca(&env.ca_dir);
    let untouched = |what: &str| {
        assert_eq!(
            env.contents(&s, "123456"),
            (vec![], 0),
            "{what}: token untouched"
        );
    };

    // A token whose PIN the operator knows, without an operator certificate.
    env.token("bare", "0F0F0F0F00000001", OPERATOR_PIN);
    let (code, err) = enroll_as(&env, &ca.url, "bare", &s);
    assert_eq!(code, Some(1));
    assert!(err.contains("holds no operator credential"), "{err}");
    untouched("no certificate");

    // An operator certificate of another CA, even registered here by --cert (so the
    // CA would take its signed requests): refused at the station.
    let other = env.path("other-ca");
    let out = Command::new(artifacts::server())
        .args([
            "ca",
            "init",
            "--dir",
            other.to_str().unwrap(),
            "--name",
            "Other CA",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    make_operator(&env, "foreign", "0F0F0F0F00000002", &other, "foreign", &[]);
    env.server(&[
        "ca",
        "operator",
        "add",
        "--name",
        "foreign",
        "--cert",
        env.path("foreign.pem").to_str().unwrap(),
    ]);
    let (code, err) = enroll_as(&env, &ca.url, "foreign", &s);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("'foreign' is not authorised") && err.contains("not one of this CA"),
        "{err}"
    );
    untouched("foreign CA");

    // An operator certificate of this CA that has expired.
    make_operator(
        &env,
        "expired",
        "0F0F0F0F00000003",
        &env.ca_dir,
        "expired",
        &["--days", "0"],
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, err) = enroll_as(&env, &ca.url, "expired", &s);
    assert_eq!(code, Some(1));
    assert!(err.contains("'expired' is not authorised"), "{err}");
    untouched("expired");

    // One the CA revoked (by the operator token's serial): refused by the CA.
    make_operator(
        &env,
        "revoked",
        "0F0F0F0F00000004",
        &env.ca_dir,
        "revoked",
        &[],
    );
    env.server(&["ca", "revoke", "--serial", "0F0F0F0F00000004"]);
    let (code, err) = enroll_as(&env, &ca.url, "revoked", &s);
    assert_eq!(code, Some(1));
    assert!(err.contains("403") && err.contains("is revoked"), "{err}");
    untouched("revoked");

    // One the CA no longer registers.
    make_operator(
        &env,
        "removed",
        "0F0F0F0F00000005",
        &env.ca_dir,
        "removed",
        &[],
    );
    env.server(&["ca", "operator", "remove", "--name", "removed"]);
    let (code, err) = enroll_as(&env, &ca.url, "removed", &s);
    assert_eq!(code, Some(1));
    assert!(err.contains("not registered"), "{err}");
    untouched("removed");

    // The authorised operator: step 201 passes, the token is enrolled.
    let (code, err) = enroll_as(&env, &ca.url, "operator", &s);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("operator station authorised by the CA"),
        "{err}"
    );
    assert_one_valid_cert(&env, &s, "123456");

    // The challenge protocol itself, with the operator token's real key.
    let reg = env.registry();
    let op = vtoken_enroll::Operator::login(
        &reg,
        &vtoken_enroll::Operator::find(&reg, "operator").unwrap(),
        OPERATOR_PIN,
    )
    .unwrap();
    let cred = op.credential(vtoken_pki::Usage::Operator).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let answer = |challenge: &str, signed: &str| vtoken_pki::api::OperatorAnswer {
        challenge: challenge.to_string(),
        cert: b64.encode(cred.cert_der()),
        signature: b64.encode(cred.answer_challenge(signed).unwrap()),
    };
    let c1 = vtoken_pki::client::operator_challenge(&ca.url).unwrap();
    let a1 = answer(&c1.challenge, &c1.challenge);
    let ok = vtoken_pki::client::operator_authorise(&ca.url, &a1).unwrap();
    assert_eq!(ok.operator, "station");
    // Replayed: the challenge is used up.
    let e = vtoken_pki::client::operator_authorise(&ca.url, &a1).unwrap_err();
    assert!(e.to_string().contains("already answered"), "{e}");
    // An old answer moved onto a new challenge does not verify (and uses it up).
    let c2 = vtoken_pki::client::operator_challenge(&ca.url).unwrap();
    let mut moved = a1.clone();
    moved.challenge = c2.challenge.clone();
    let e = vtoken_pki::client::operator_authorise(&ca.url, &moved).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    let e = vtoken_pki::client::operator_authorise(&ca.url, &answer(&c2.challenge, &c2.challenge))
        .unwrap_err();
    assert!(e.to_string().contains("already answered"), "{e}");
    // A challenge the CA never gave.
    let made_up = "00".repeat(32);
    let e =
        vtoken_pki::client::operator_authorise(&ca.url, &answer(&made_up, &made_up)).unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
}

/// E8, seed 001 steps 310–311 in order: the station submits a batch and leaves
/// (`--mode submit`), the CA issues and publishes each certificate to the
/// certificate server (its own SQLite state), whose record is the "certificate
/// ready" notice; `vtoken enroll collect` polls the notices, fetches by token serial,
/// verifies and loads each certificate once. Refusals: nothing published yet, a
/// certificate of another CA offered to the server, a station trusting another CA,
/// the certificate server down.
#[test]
fn certificate_server_path_submit_then_collect_by_serial_once() {
    let env = Env::new();
    let serials: Vec<String> = (1..=3).map(serial).collect();
    for (i, s) in serials.iter().enumerate() {
        env.token(&format!("c{i}"), s, "123456");
    }
    let certs_dir = env.path("certsrv");
    let mut certs = Server::start(&[
        "certs",
        "serve",
        "--dir",
        certs_dir.to_str().unwrap(),
        "--ca-cert",
        env.ca_pem().to_str().unwrap(),
    ]);
    let ca = Server::start(&[
        "ca",
        "serve",
        "--dir",
        env.ca_dir.to_str().unwrap(),
        "--serial-range",
        RANGE,
        "--publish-to",
        &certs.url,
    ]);
    let certs_url = certs.url.clone();
    let ca_pem = env.ca_pem().to_str().unwrap().to_string();
    let collect = |extra: &[&str]| -> (Option<i32>, Value) {
        let mut args = vec![
            "--json", "enroll", "collect", "--from", &certs_url, "--all", "--skip", "operator",
            "--pin", "123456",
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--ca-cert") {
            args.extend_from_slice(&["--ca-cert", &ca_pem]);
        }
        let out = env.run(&args);
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        (out.status.code(), json)
    };

    // Nothing issued yet: every token is "not ready", none touched.
    let (code, json) = collect(&[]);
    assert_eq!(code, Some(1), "{json:#}");
    for s in &serials {
        let e = row(&json, s)["error"].as_str().unwrap();
        assert!(e.contains("no certificate published"), "{e}");
        assert_eq!(env.contents(s, "123456"), (vec![], 0));
    }

    // Step 308-310: the batch is submitted; nothing is written to the tokens now.
    let (code, json, _) = env.enroll(&ca.url, &["--all", "--pin", "123456", "--mode", "submit"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["submitted"], 3, "{json:#}");
    for s in &serials {
        assert_eq!(row(&json, s)["result"], "submitted");
        let (c, keys) = env.contents(s, "123456");
        assert!(
            c.is_empty() && keys == 1,
            "{s}: key made, no certificate yet"
        );
    }
    // The notices: one per token, by serial.
    let notices = vtoken_pki::client::notices(&certs.url, 0).unwrap();
    let mut noticed: Vec<String> = notices.iter().map(|n| n.token_serial.clone()).collect();
    noticed.sort();
    assert_eq!(noticed, serials);

    // A station trusting another CA loads nothing.
    let other = env.path("other-ca");
    let out = Command::new(artifacts::server())
        .args([
            "ca",
            "init",
            "--dir",
            other.to_str().unwrap(),
            "--name",
            "Other CA",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let other_pem = other.join("ca.pem");
    let (code, json) = collect(&["--ca-cert", other_pem.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{json:#}");
    for s in &serials {
        assert_eq!(row(&json, s)["result"], "failed", "{json:#}");
        assert!(env.contents(s, "123456").0.is_empty(), "{s} untouched");
    }

    // Step 311-313: collected, verified, loaded beside the key.
    let (code, json) = collect(&["--wait", "10"]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["enrolled"], 3, "{json:#}");
    for s in &serials {
        assert_one_valid_cert(&env, s, "123456");
    }
    // A rerun loads nothing twice.
    let (code, json) = collect(&[]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["already_enrolled"], 3, "{json:#}");
    for s in &serials {
        assert_one_valid_cert(&env, s, "123456");
    }

    // The certificate server takes only certificates of its CA.
    let other_ca = vtoken_pki::LocalCa::load(&other).unwrap();
    let spki = vtoken_pki::cert_spki(other_ca.cert_der()).unwrap();
    let forged = other_ca
        .issue_for_spki(&spki, &serial(9), vtoken_pki::Usage::Device)
        .unwrap();
    let e = vtoken_pki::client::publish(&certs.url, &forged).unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    assert_eq!(
        vtoken_pki::client::fetch_cert(&certs.url, &serial(9)).unwrap(),
        None
    );

    // The certificate server down: a clear failure, nothing written.
    env.token("late", &serial(4), "123456");
    certs.kill();
    let (code, json) = collect(&[]);
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(row(&json, &serial(4))["result"], "failed");
    assert_eq!(env.contents(&serial(4), "123456"), (vec![], 0));
}
