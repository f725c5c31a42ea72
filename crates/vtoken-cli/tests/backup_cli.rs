//! Attacks on `vtoken backup` with the real CLI binary (issue 15, item 6): the
//! target must chain to the SOURCE token's own device root and be a device
//! certificate, the export is gated and confirmed on the source, a bundle imports
//! once, re-imports merge, and keys left behind are named.

use std::ops::Deref;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

mod common;
use common::{Harness, PIN, SO_PIN as SO};

/// A vault password that must never appear anywhere an attacker can read.
const SECRET: &str = "vault-secret-7d1c";

/// The shared harness with a local root and a prompt agent; no output ever shows
/// [`SECRET`].
struct Station(Harness);

impl Deref for Station {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Station {
    /// Tokens in a temp dir, cheap KDF, a local root in `ca`, and a prompt agent
    /// that confirms.
    fn new() -> Station {
        let s = Station(common::harness(""));
        s.prompt_answers(true);
        s.ok(&["ca", "init", "--dir", &s.s("ca")]);
        s
    }

    /// The tokens' agent is a script fixed in each token's prompt policy when the
    /// token is created (the config only gives new tokens their default); changing
    /// the script changes the answer.
    fn prompt_answers(&self, yes: bool) {
        use std::os::unix::fs::PermissionsExt;
        let agent = self.path("agent.sh");
        let tmp = self.path("agent.sh.new");
        std::fs::write(
            &tmp,
            format!("#!/bin/sh\nexit {}\n", if yes { 0 } else { 1 }),
        )
        .unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &agent).unwrap();
        self.config(&format!(
            "[prompt]\nagent = \"command\"\ncommand = \"{}\"\n",
            agent.display()
        ));
    }

    /// Nothing ever shows the vault password.
    fn no_secret(args: &[&str], o: &Output) {
        for out in [&o.stdout, &o.stderr] {
            assert!(
                !String::from_utf8_lossy(out).contains(SECRET),
                "vtoken {args:?} revealed the secret"
            );
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let o = self.0.run(args);
        Station::no_secret(args, &o);
        o
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok_stdout(args, self.run(args))
    }

    /// Fails with exit status 1; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        common::fails_stderr(args, self.run(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn objects(&self, token: &str) -> usize {
        self.json(&["--token", token, "objects", "list", "--pin", PIN])
            .as_array()
            .unwrap()
            .len()
    }

    /// A token certified by the root in `ca_dir`.
    fn init(&self, label: &str, ca_dir: &str, extra: &[&str]) {
        let ca = self.s(ca_dir);
        let mut a = vec![
            "init",
            "--label",
            label,
            "--so-pin",
            SO,
            "--pin",
            PIN,
            "--certify-with",
            &ca,
        ];
        a.extend_from_slice(extra);
        self.ok(&a);
        // The vault is switched on by its own step (SPEC V4, S202).
        self.ok(&["--token", label, "vault", "enable", "--pin", PIN]);
    }

    /// A source with a vault entry, an OTP credential and a non-extractable key.
    fn source(&self, label: &str, extra: &[&str]) {
        self.init(label, "ca", extra);
        let t = ["--token", label];
        let mut a = t.to_vec();
        a.extend_from_slice(&[
            "vault",
            "add",
            "--kind",
            "website",
            "--title",
            "mail",
            "--username",
            "alice",
            "--password",
            SECRET,
            "--pin",
            PIN,
        ]);
        self.ok(&a);
        let mut a = t.to_vec();
        a.extend_from_slice(&[
            "otp",
            "add",
            "--uri",
            "otpauth://totp/Ex:bob?secret=JBSWY3DPEHPK3PXP&issuer=Ex",
            "--pin",
            PIN,
        ]);
        self.ok(&a);
        let mut a = t.to_vec();
        a.extend_from_slice(&[
            "key",
            "generate",
            "--type",
            "ec-p256",
            "--label",
            "sealed-signer",
            "--pin",
            PIN,
        ]);
        self.ok(&a);
    }

    /// The handshake (¶0104–0105): `from` makes the "enable backup" start, `to`
    /// answers "verification passed" into `out`.
    fn request(&self, from: &str, to: &str, out: &str) {
        let start = format!("{out}.start");
        self.ok(&strs(&self.start_args(from, &start)));
        self.ok(&strs(&self.request_args(to, &start, out)));
    }

    fn start_args(&self, from: &str, out: &str) -> Vec<String> {
        [
            "backup",
            "start",
            "--from",
            from,
            "-o",
            &self.s(out),
            "--from-pin",
            PIN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn request_args(&self, to: &str, start: &str, out: &str) -> Vec<String> {
        [
            "backup",
            "request",
            "--to",
            to,
            "--start",
            &self.s(start),
            "-o",
            &self.s(out),
            "--to-pin",
            PIN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn export_args<'a>(&'a self, from: &'a str, req: &'a str, out: &'a str) -> Vec<String> {
        [
            "backup",
            "export",
            "--from",
            from,
            "--request",
            &self.s(req),
            "-o",
            &self.s(out),
            "--from-pin",
            PIN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn import_args(&self, to: &str, bundle: &str) -> Vec<String> {
        [
            "backup",
            "import",
            "--to",
            to,
            "--in",
            &self.s(bundle),
            "--to-pin",
            PIN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn openssl(args: &[&str]) -> Output {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {o:?}");
    o
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    let o = openssl(&[
        "x509",
        "-in",
        &path.display().to_string(),
        "-outform",
        "DER",
    ]);
    o.stdout
}

#[test]
fn attacker_root_and_attacker_token_get_nothing() {
    let st = Station::new();
    st.source("t1", &[]);
    // The attacker's own CA and a token certified by it.
    st.ok(&["ca", "init", "--dir", &st.s("evil-ca")]);
    st.init("evil", "evil-ca", &[]);
    st.ok(&[
        "--token",
        "evil",
        "device",
        "cert",
        "--chain",
        "-o",
        &st.s("evil.pem"),
    ]);
    let evil_root = st.s("evil-ca/ca.pem");

    // The command of the report, verbatim: refused, no bundle.
    let e = st.fails(&[
        "backup",
        "export",
        "--from",
        "t1",
        "--to-cert",
        &st.s("evil.pem"),
        "--root",
        &evil_root,
        "-o",
        &st.s("b1"),
        "--from-pin",
        PIN,
    ]);
    assert!(e.contains("--to-cert is no longer accepted"), "{e}");
    assert!(!st.path("b1").exists());

    // Through the handshake: the attacker's token refuses t1's start (t1 is not
    // under its root), so it cannot answer; its answer to a start of its own
    // kind, taken to t1, is refused there.
    st.ok(&strs(&st.start_args("t1", "t1.start")));
    let e = st.fails(&strs(&st.request_args("evil", "t1.start", "evil.req")));
    assert!(e.contains("source certificate refused"), "{e}");
    st.init("evil2", "evil-ca", &[]);
    st.request("evil2", "evil", "evil.req");
    let mut a = st.export_args("t1", "evil.req", "b2");
    a.extend(["--root".to_string(), evil_root.clone()]);
    let e = st.fails(&strs(&a));
    assert!(
        e.contains("not the device root this source token trusts"),
        "{e}"
    );
    assert!(!st.path("b2").exists());
    // Without --root: the source's own root decides.
    let e = st.fails(&strs(&st.export_args("t1", "evil.req", "b3")));
    assert!(e.contains("target certificate refused"), "{e}");
    assert!(e.contains("does not chain to the device root"), "{e}");
    assert!(!st.path("b3").exists());

    // The PIN holder re-roots t1 to the attacker's CA first: refused, and the
    // export is still refused.
    let e = st.fails(&[
        "--token",
        "t1",
        "device",
        "certify",
        "--ca-dir",
        &st.s("evil-ca"),
        "--pin",
        PIN,
    ]);
    assert!(e.contains("device root is fixed"), "{e}");
    st.fails(&strs(&st.export_args("t1", "evil.req", "b4")));
    assert!(!st.path("b4").exists());

    // Both tokens on this machine, the attacker's root named: nothing moves.
    st.fails(&[
        "backup",
        "--from",
        "t1",
        "--to",
        "evil",
        "--root",
        &evil_root,
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    st.fails(&[
        "backup",
        "--from",
        "t1",
        "--to",
        "evil",
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    assert_eq!(st.objects("evil"), 0);
}

/// A request whose certificate chains to the right root but is not a device
/// certificate: the attacker holds the key (an openssl key), signs the request,
/// and the certificate was issued by the real CA with another usage.
#[test]
fn right_root_without_device_usage_is_refused() {
    let st = Station::new();
    st.source("t1", &[]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &st.s("k.pem"),
    ]);
    let serial = "00000000DEADBEEF";
    openssl(&[
        "req",
        "-new",
        "-key",
        &st.s("k.pem"),
        "-subj",
        &format!("/CN=vtoken {serial}/serialNumber={serial}"),
        "-out",
        &st.s("k.csr"),
    ]);
    std::fs::write(
        st.path("ext.cnf"),
        "[client]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n[bare]\nbasicConstraints=critical,CA:FALSE\n\
         [device]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    // The answer to a start of t1: a nonce of "the target", then t1's random.
    st.ok(&strs(&st.start_args("t1", "t1.start")));
    let start: Value =
        serde_json::from_slice(&std::fs::read(st.path("t1.start")).unwrap()).unwrap();
    let mut nonce = vec![0x5a_u8; 32];
    nonce.extend_from_slice(&hex::decode(start["random"].as_str().unwrap()).unwrap());
    let mut msg = b"vtoken device attestation v1\0".to_vec();
    msg.extend_from_slice(serial.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&nonce);
    std::fs::write(st.path("msg"), &msg).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        &st.s("k.pem"),
        "-out",
        &st.s("sig"),
        &st.s("msg"),
    ]);
    let sig = std::fs::read(st.path("sig")).unwrap();
    let root = pem_der(&st.path("ca/ca.pem"));
    for (section, why) in [
        ("client", "usage is client"),
        ("bare", "no keyUsage"),
        ("device", ""),
    ] {
        let cert = st.s(&format!("{section}.pem"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &st.s("k.csr"),
            "-CA",
            &st.s("ca/ca.pem"),
            "-CAkey",
            &st.s("ca/ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &st.s("ext.cnf"),
            "-extensions",
            section,
            "-out",
            &cert,
        ]);
        // It does chain to the real root.
        openssl(&["verify", "-CAfile", &st.s("ca/ca.pem"), &cert]);
        let req = json!({
            "version": 2,
            "serial": serial,
            "nonce": hex::encode(&nonce),
            "signature": hex::encode(&sig),
            "chain": [hex::encode(pem_der(&st.path(&format!("{section}.pem")))), hex::encode(&root)],
        });
        std::fs::write(st.path("x.req"), req.to_string()).unwrap();
        if section == "device" {
            // Control: the same request with the device profile passes every check
            // (so the refusals above are the usage check's, nothing else's).
            st.ok(&strs(&st.export_args("t1", "x.req", "ok")));
            assert!(st.path("ok").exists());
            continue;
        }
        let e = st.fails(&strs(&st.export_args("t1", "x.req", "b")));
        assert!(e.contains("not a device certificate"), "{section}: {e}");
        assert!(e.contains(why), "{section}: {e}");
        assert!(!st.path("b").exists());
    }
}

#[test]
fn a_bundle_imports_once_and_a_new_one_merges_without_duplicates() {
    let st = Station::new();
    st.source("t1", &["--allow-key-backup"]);
    st.init("t2", "ca", &[]);
    let n1 = st.objects("t1");
    st.request("t1", "t2", "r1");
    st.ok(&strs(&st.export_args("t1", "r1", "b1")));
    st.ok(&strs(&st.import_args("t2", "b1")));
    assert_eq!(st.objects("t2"), n1);
    // (c) Replay: refused, nothing written.
    let e = st.fails(&strs(&st.import_args("t2", "b1")));
    assert!(e.contains("already imported"), "{e}");
    assert_eq!(st.objects("t2"), n1);
    // A second bundle for the same (already answered) request: the source refuses
    // it (its random is spent), so no bundle is made.
    let e = st.fails(&strs(&st.export_args("t1", "r1", "b1b")));
    assert!(e.contains("backup start"), "{e}");
    assert!(!st.path("b1b").exists());
    assert_eq!(st.objects("t2"), n1);

    // (d) A new request, a new bundle of the same objects: no duplicates.
    st.request("t1", "t2", "r2");
    st.ok(&strs(&st.export_args("t1", "r2", "b2")));
    let mut a = vec!["--json".to_string()];
    a.extend(st.import_args("t2", "b2"));
    let v: Value = serde_json::from_str(&st.ok(&strs(&a))).unwrap();
    assert_eq!(v["created"], 0, "{v}");
    assert_eq!(v["unchanged"], n1, "{v}");
    assert_eq!(st.objects("t2"), n1);
    // And the local form (same steps internally) twice: still no duplicates.
    for _ in 0..2 {
        st.ok(&[
            "backup",
            "--from",
            "t1",
            "--to",
            "t2",
            "--root",
            &st.s("ca/ca.pem"),
            "--from-pin",
            PIN,
            "--to-pin",
            PIN,
        ]);
        assert_eq!(st.objects("t2"), n1);
    }
    // The restored vault entry is there (shown only through the gate-free list).
    let list = st.ok(&["--token", "t2", "vault", "list", "--pin", PIN]);
    assert!(list.contains("mail"), "{list}");
}

#[test]
fn export_is_gated_and_confirmed_on_the_source() {
    let st = Station::new();
    st.source("ke", &["--allow-key-backup"]);
    st.source("vp", &["--allow-key-backup"]);
    st.init("t2", "ca", &[]);
    st.ok(&[
        "--token",
        "ke",
        "gate",
        "configure",
        "--classes",
        "key-export",
        "--pin",
        PIN,
    ]);
    st.ok(&[
        "--token",
        "vp",
        "gate",
        "configure",
        "--classes",
        "vault-password",
        "--pin",
        PIN,
    ]);
    // (e) No one types the picture: refused, no bundle.
    for src in ["ke", "vp"] {
        st.request(src, "t2", "r");
        let e = st.fails(&strs(&st.export_args(src, "r", "b")));
        assert!(e.to_lowercase().contains("picture"), "{src}: {e}");
        assert!(!st.path("b").exists(), "{src}");
    }
    assert_eq!(st.objects("t2"), 0);

    // (f) The source's prompt refuses: nothing exported.
    st.source("t1", &["--allow-key-backup"]);
    st.request("t1", "t2", "r");
    st.prompt_answers(false);
    st.fails(&strs(&st.export_args("t1", "r", "b")));
    assert!(!st.path("b").exists());
    // Confirmed: exported.
    st.prompt_answers(true);
    st.ok(&strs(&st.export_args("t1", "r", "b")));
    assert!(st.path("b").exists());
}

#[test]
fn skipped_keys_are_named() {
    let st = Station::new();
    st.source("t1", &[]);
    st.init("t2", "ca", &[]);
    st.request("t1", "t2", "r");
    let out = st.ok(&strs(&st.export_args("t1", "r", "b")));
    assert!(out.contains("WARNING"), "{out}");
    assert!(out.contains("sealed-signer"), "{out}");
    assert!(out.contains("NOT in the backup"), "{out}");
    st.request("t1", "t2", "r2");
    let mut a = vec!["--json".to_string()];
    a.extend(st.export_args("t1", "r2", "b2"));
    let o = st.run(&strs(&a));
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["skipped_labels"], json!(["sealed-signer"]), "{v}");
    assert_eq!(v["skipped_keys"], 1);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("sealed-signer"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("sealed-signer"));
    // The local form names them as well.
    let out = st.ok(&[
        "backup",
        "--from",
        "t1",
        "--to",
        "t2",
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    assert!(out.contains("sealed-signer"), "{out}");
}

/// Replay by racing: several processes import the same bundle at once; exactly one
/// stores it (the nonce is consumed by one committed transaction).
#[test]
fn concurrent_imports_of_one_bundle_store_it_once() {
    let st = Station::new();
    st.source("t1", &["--allow-key-backup"]);
    st.init("t2", "ca", &[]);
    let n1 = st.objects("t1");
    st.request("t1", "t2", "r");
    st.ok(&strs(&st.export_args("t1", "r", "b")));
    let args = st.import_args("t2", "b");
    let children: Vec<_> = (0..4)
        .map(|_| {
            st.cmd(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "{outs:?}");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("already imported"), "{e}");
    }
    assert_eq!(st.objects("t2"), n1);
}

/// ¶0109 from the command line: `export --chunked` sends the data in parts, each
/// sealed to the target; `import` takes it as any bundle, once.
#[test]
fn chunked_export_imports_once() {
    let st = Station::new();
    st.source("t1", &["--allow-key-backup"]);
    st.init("t2", "ca", &[]);
    let n1 = st.objects("t1");
    st.request("t1", "t2", "r");
    let mut small = st.export_args("t1", "r", "b");
    small.extend(["--chunked", "--chunk-size", "100"].map(String::from));
    let e = st.fails(&strs(&small));
    assert!(e.contains("at least 256"), "{e}");
    let mut a = st.export_args("t1", "r", "b");
    a.extend(["--chunked", "--chunk-size", "256"].map(String::from));
    st.ok(&strs(&a));
    st.ok(&strs(&st.import_args("t2", "b")));
    assert_eq!(st.objects("t2"), n1);
    let e = st.fails(&strs(&st.import_args("t2", "b")));
    assert!(e.contains("already imported"), "{e}");
}
