//! End-to-end tests of the `vtoken` binary against a temporary token directory,
//! cross-checked with the `openssl` command line.

mod common;

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output};

use common::{Harness, PIN, SO_PIN};
use serde_json::Value;

/// The shared harness (a temporary configuration with `token_dir` and the cheap KDF,
/// and a scratch directory); failures here also print one `error:` line.
struct Env(Harness);

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(common::harness(""))
    }

    /// Runs and asserts failure with exit status 1; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let err = self.0.fails(args);
        assert!(
            err.lines().any(|l| l.starts_with("error: ")),
            "no error line: {err}"
        );
        err
    }

    /// A token labelled `label` with the standard PINs.
    fn init(&self, label: &str) {
        self.ok(&["init", "--label", label, "--so-pin", SO_PIN, "--pin", PIN]);
    }
}

fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs")
}

#[test]
fn init_list_and_info() {
    let env = Env::new();
    let out = env.ok(&["init", "--label", "first", "--so-pin", SO_PIN, "--pin", PIN]);
    assert!(out.contains("first") && out.contains("serial"), "{out}");

    let list = env.json(&["list", "--json"]);
    let arr = list.as_array().expect("list --json prints an array");
    // The token, then the free slot (issue 22): what `C_GetSlotList` shows.
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["free"], true);
    assert_eq!(arr[1]["token_initialized"], false);
    assert_ne!(arr[1]["slot_id"], arr[0]["slot_id"]);
    let t = &arr[0];
    assert_eq!(t["label"], "first");
    assert_eq!(t["serial"].as_str().unwrap().len(), 16);
    assert!(t["slot_id"].as_u64().unwrap() > 0);
    assert!(Path::new(t["path"].as_str().unwrap()).exists());
    assert_eq!(t["user_pin_initialized"], true);
    assert_eq!(t["user_pin_locked"], false);
    assert_eq!(t["so_pin_locked"], false);
    assert_eq!(t["user_pin_failures"], 0);
    assert_eq!(t["objects"]["public"], 0);
    assert_eq!(t["objects"]["private"], 0);

    let info = env.json(&["info", "--json"]);
    assert_eq!(info["label"], "first");
    let flags: Vec<&str> = info["flag_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"TOKEN_INITIALIZED") && flags.contains(&"USER_PIN_INITIALIZED"),
        "{flags:?}"
    );
    assert!(env.ok(&["info"]).contains("TOKEN_INITIALIZED"));
    assert!(env.ok(&["list"]).contains("Free slot"));

    // A second token: now --token is needed, by label or serial.
    env.init("second");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 3);
    let err = env.fails(&["info"]);
    assert!(err.contains("--token"), "{err}");
    let serial = t["serial"].as_str().unwrap();
    assert_eq!(
        env.json(&["--token", serial, "info", "--json"])["label"],
        "first"
    );
    assert_eq!(
        env.json(&["--token", "second", "info", "--json"])["label"],
        "second"
    );
    env.fails(&["--token", "nosuch", "info"]);
    // Duplicate labels are refused.
    env.fails(&["init", "--label", "first", "--so-pin", SO_PIN, "--pin", PIN]);
}

#[test]
fn pins_from_env_and_file_and_no_tty() {
    let env = Env::new();
    // No PIN and stdin is not a terminal: a clear error, nothing created.
    let err = env.fails(&["init", "--label", "x"]);
    assert!(err.contains("no terminal"), "{err}");
    assert_eq!(
        env.json(&["list", "--json"]).as_array().unwrap().len(),
        1,
        "the free slot only"
    );
    // PIN files and environment variables.
    std::fs::write(env.path("so.txt"), format!("{SO_PIN}\n")).unwrap();
    let o = env
        .cmd(&["init", "--label", "x", "--so-pin-file"])
        .arg(env.path("so.txt"))
        .env("VTOKEN_PIN", PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::write(env.path("pin.txt"), format!("{PIN}\n")).unwrap();
    let pin_file = env.path("pin.txt");
    let pin_file = pin_file.to_str().unwrap();
    env.ok(&[
        "key",
        "generate",
        "--type",
        "ec-p256",
        "--label",
        "k",
        "--pin-file",
        pin_file,
    ]);
    // An explicit PIN file wins over an inherited VTOKEN_PIN.
    let o = env
        .cmd(&["objects", "list", "--pin-file", pin_file])
        .env("VTOKEN_PIN", "999999")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("private-key"));
    // A too-short PIN is refused before any token is made.
    let err = env.fails(&["init", "--label", "y", "--so-pin", SO_PIN, "--pin", "1"]);
    assert!(err.contains("user PIN"), "{err}");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 2);
}

#[test]
fn wrong_pin_lockout_and_unlock() {
    let env = Env::new();
    env.init("t");
    let err = env.fails(&["objects", "list", "--pin", "000000"]);
    assert!(
        err.contains("incorrect user PIN") && err.contains("4 tries left"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    for _ in 0..4 {
        env.fails(&["objects", "list", "--pin", "000000"]);
    }
    let info = env.json(&["info", "--json"]);
    assert_eq!(info["user_pin"]["locked"], true);
    assert!(
        info["flag_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "USER_PIN_LOCKED"),
        "{info}"
    );
    assert_eq!(env.json(&["list", "--json"])[0]["user_pin_locked"], true);
    // Even the right PIN is refused now.
    let err = env.fails(&["objects", "list", "--pin", PIN]);
    assert!(
        err.contains("locked") && err.contains("pin unlock"),
        "{err}"
    );
    // A wrong SO PIN does not unlock.
    env.fails(&[
        "pin",
        "unlock",
        "--so-pin",
        "87654321",
        "--new-pin",
        "654321",
    ]);
    env.ok(&["pin", "unlock", "--so-pin", SO_PIN, "--new-pin", "654321"]);
    let info = env.json(&["info", "--json"]);
    assert_eq!(info["user_pin"]["locked"], false);
    assert_eq!(info["so_pin"]["failures"], 0);
    env.ok(&["objects", "list", "--pin", "654321"]);
}

#[test]
fn pin_change() {
    let env = Env::new();
    env.init("t");
    env.ok(&["pin", "change", "--old-pin", PIN, "--new-pin", "567890"]);
    env.fails(&["objects", "list", "--pin", PIN]);
    env.ok(&["objects", "list", "--pin", "567890"]);
    env.fails(&[
        "pin",
        "change",
        "--old-pin",
        "000000",
        "--new-pin",
        "999999",
    ]);
    env.ok(&[
        "pin",
        "change",
        "--so",
        "--old-pin",
        SO_PIN,
        "--new-pin",
        "87654321",
    ]);
    env.fails(&["pin", "unlock", "--so-pin", SO_PIN, "--new-pin", "654321"]);
    env.ok(&[
        "pin",
        "unlock",
        "--so-pin",
        "87654321",
        "--new-pin",
        "654321",
    ]);
    env.ok(&["objects", "list", "--pin", "654321"]);
}

fn find<'a>(objs: &'a Value, class: &str, label: &str) -> &'a Value {
    objs.as_array()
        .unwrap()
        .iter()
        .find(|o| o["class"] == class && o["label"] == label)
        .unwrap_or_else(|| panic!("no {class} '{label}' in {objs}"))
}

#[test]
fn generate_sign_verify_and_openssl_cross_check() {
    let env = Env::new();
    env.init("t");
    let d = |n: &str| env.path(n).to_str().unwrap().to_string();
    std::fs::write(env.path("data"), b"the data to sign\n").unwrap();

    env.ok(&[
        "key", "generate", "--type", "rsa2048", "--label", "rsa", "--pin", PIN,
    ]);
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "ec", "--id", "0a0b", "--pin", PIN,
    ]);

    // Public objects are listed without a PIN, private ones with it.
    let public = env.json(&["objects", "list", "--json"]);
    assert_eq!(public.as_array().unwrap().len(), 2);
    assert!(public
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["class"] == "public-key"));
    let all = env.json(&["objects", "list", "--json", "--pin", PIN]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    let rsa_priv = find(&all, "private-key", "rsa");
    assert_eq!(rsa_priv["key_type"], "rsa");
    assert_eq!(rsa_priv["bits"], 2048);
    assert_eq!(rsa_priv["private"], true);
    assert_eq!(rsa_priv["sensitive"], true);
    assert_eq!(rsa_priv["extractable"], false);
    assert_eq!(rsa_priv["token"], true);
    assert_eq!(rsa_priv["id"], find(&all, "public-key", "rsa")["id"]);
    assert_eq!(
        rsa_priv["id"].as_str().unwrap().len(),
        40,
        "SHA-1 derived id"
    );
    assert_eq!(find(&all, "private-key", "ec")["id"], "0a0b");
    assert_eq!(find(&all, "public-key", "ec")["id"], "0a0b");

    // RSA: sign, verify, tampered signature, openssl.
    env.ok(&[
        "sign",
        "--label",
        "rsa",
        "-i",
        &d("data"),
        "-o",
        &d("rsa.sig"),
        "--pin",
        PIN,
    ]);
    assert_eq!(std::fs::read(env.path("rsa.sig")).unwrap().len(), 256);
    env.ok(&[
        "verify",
        "--label",
        "rsa",
        "-i",
        &d("data"),
        "--signature",
        &d("rsa.sig"),
    ]);
    let mut bad = std::fs::read(env.path("rsa.sig")).unwrap();
    bad[10] ^= 1;
    std::fs::write(env.path("bad.sig"), &bad).unwrap();
    let err = env.fails(&[
        "verify",
        "--label",
        "rsa",
        "-i",
        &d("data"),
        "--signature",
        &d("bad.sig"),
    ]);
    assert!(err.contains("signature invalid"), "{err}");
    env.ok(&[
        "export",
        "--label",
        "rsa",
        "--type",
        "pubkey",
        "-o",
        &d("rsa.pub.pem"),
    ]);
    let pem = std::fs::read_to_string(env.path("rsa.pub.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa.pub.pem",
            "-signature",
            "rsa.sig",
            "data",
        ],
        env.dir(),
    );
    assert!(o.status.success(), "openssl: {o:?}");
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa.pub.pem",
            "-signature",
            "bad.sig",
            "data",
        ],
        env.dir(),
    );
    assert!(!o.status.success());

    // RSA-PSS, checked by openssl too.
    env.ok(&[
        "sign",
        "--label",
        "rsa",
        "-m",
        "rsa-pss-sha256",
        "-i",
        &d("data"),
        "-o",
        &d("pss.sig"),
        "--pin",
        PIN,
    ]);
    env.ok(&[
        "verify",
        "--label",
        "rsa",
        "-m",
        "rsa-pss-sha256",
        "-i",
        &d("data"),
        "--signature",
        &d("pss.sig"),
    ]);
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
            "rsa.pub.pem",
            "-signature",
            "pss.sig",
            "data",
        ],
        env.dir(),
    );
    assert!(o.status.success(), "openssl pss: {o:?}");

    // ECDSA: raw r||s by default, DER with --der (what openssl reads).
    env.ok(&[
        "sign",
        "--label",
        "ec",
        "-i",
        &d("data"),
        "-o",
        &d("ec.raw"),
        "--pin",
        PIN,
    ]);
    assert_eq!(std::fs::read(env.path("ec.raw")).unwrap().len(), 64);
    env.ok(&[
        "verify",
        "--label",
        "ec",
        "-i",
        &d("data"),
        "--signature",
        &d("ec.raw"),
    ]);
    env.ok(&[
        "sign",
        "--id",
        "0a0b",
        "--der",
        "-i",
        &d("data"),
        "-o",
        &d("ec.der"),
        "--pin",
        PIN,
    ]);
    env.ok(&[
        "verify",
        "--label",
        "ec",
        "--der",
        "-i",
        &d("data"),
        "--signature",
        &d("ec.der"),
    ]);
    env.ok(&["export", "--label", "ec", "-o", &d("ec.pub.pem")]);
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "ec.pub.pem",
            "-signature",
            "ec.der",
            "data",
        ],
        env.dir(),
    );
    assert!(o.status.success(), "openssl ecdsa: {o:?}");
    // An openssl-made signature over other data fails to verify on the token.
    std::fs::write(env.path("other"), b"other data").unwrap();
    let err = env.fails(&[
        "verify",
        "--label",
        "ec",
        "--der",
        "-i",
        &d("other"),
        "--signature",
        &d("ec.der"),
    ]);
    assert!(err.contains("signature invalid"), "{err}");
    // A mechanism that does not fit the key.
    env.fails(&[
        "sign",
        "--label",
        "ec",
        "-m",
        "rsa-pkcs-sha256",
        "-i",
        &d("data"),
        "-o",
        &d("x"),
        "--pin",
        PIN,
    ]);
    // Signing with a wrong PIN fails with one error line.
    let err = env.fails(&[
        "sign",
        "--label",
        "rsa",
        "-i",
        &d("data"),
        "-o",
        &d("x"),
        "--pin",
        "999999",
    ]);
    assert!(err.contains("incorrect user PIN"), "{err}");

    // HMAC with a secret key.
    env.ok(&[
        "key", "generate", "--type", "hmac", "--label", "mac", "--pin", PIN,
    ]);
    env.ok(&[
        "sign",
        "--label",
        "mac",
        "-i",
        &d("data"),
        "-o",
        &d("mac"),
        "--pin",
        PIN,
    ]);
    env.ok(&[
        "verify",
        "--label",
        "mac",
        "-i",
        &d("data"),
        "--signature",
        &d("mac"),
        "--pin",
        PIN,
    ]);

    // Counts in list --json follow.
    let t = &env.json(&["list", "--json"])[0];
    assert_eq!(t["objects"]["public"], 2);
    assert_eq!(t["objects"]["private"], 3);
}

#[test]
fn import_key_and_certificate_share_an_id() {
    let env = Env::new();
    env.init("t");
    let dir = env.dir();
    let o = openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-subj",
            "/CN=t",
            "-days",
            "1",
        ],
        dir,
    );
    assert!(o.status.success(), "{o:?}");
    let d = |n: &str| env.path(n).to_str().unwrap().to_string();

    env.ok(&[
        "import",
        "--file",
        &d("k.pem"),
        "--label",
        "imported",
        "--pin",
        PIN,
    ]);
    env.ok(&["import", "--file", &d("c.pem")]);
    // The same certificate twice is refused.
    env.fails(&["import", "--file", &d("c.pem")]);
    let objs = env.json(&["objects", "list", "--json", "--pin", PIN]);
    let key = find(&objs, "private-key", "imported");
    let public = find(&objs, "public-key", "imported");
    // The certificate takes the label of the key it pairs with.
    let cert = find(&objs, "certificate", "imported");
    assert_eq!(key["id"], cert["id"]);
    assert_eq!(public["id"], cert["id"]);
    assert_eq!(key["sensitive"], true);
    assert_eq!(key["local"], false);
    assert_eq!(cert["subject"], "CN=t");

    // The imported key signs; openssl verifies with the certificate's public key.
    std::fs::write(env.path("data"), b"imported key data").unwrap();
    env.ok(&[
        "sign",
        "--label",
        "imported",
        "--der",
        "-i",
        &d("data"),
        "-o",
        &d("sig"),
        "--pin",
        PIN,
    ]);
    let o = openssl(
        &[
            "x509", "-in", "c.pem", "-pubkey", "-noout", "-out", "cpub.pem",
        ],
        dir,
    );
    assert!(o.status.success(), "{o:?}");
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "cpub.pem",
            "-signature",
            "sig",
            "data",
        ],
        dir,
    );
    assert!(o.status.success(), "{o:?}");

    // Certificate export round-trips (PEM and DER).
    env.ok(&[
        "export",
        "--label",
        "imported",
        "--type",
        "cert",
        "-o",
        &d("out.pem"),
    ]);
    let orig = openssl(&["x509", "-in", "c.pem", "-outform", "DER"], dir).stdout;
    let back = openssl(&["x509", "-in", "out.pem", "-outform", "DER"], dir).stdout;
    assert!(!orig.is_empty());
    assert_eq!(orig, back);
    env.ok(&[
        "export",
        "--id",
        cert["id"].as_str().unwrap(),
        "--type",
        "cert",
        "--der",
        "-o",
        &d("out.der"),
    ]);
    assert_eq!(std::fs::read(env.path("out.der")).unwrap(), orig);

    // RSA keys in DER: PKCS#8, and the PKCS#1 form OpenSSL 3.0 writes by default.
    let o = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
            "-out",
            "rsa.der",
        ],
        dir,
    );
    assert!(o.status.success(), "{o:?}");
    let o = openssl(
        &[
            "pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-in", "rsa.der", "-outform", "DER",
            "-out", "rsa8.der",
        ],
        dir,
    );
    assert!(o.status.success(), "{o:?}");
    env.ok(&[
        "import",
        "--file",
        &d("rsa8.der"),
        "--label",
        "rsa-imp",
        "--id",
        "77",
        "--pin",
        PIN,
    ]);
    let objs = env.json(&["objects", "list", "--json", "--pin", PIN]);
    assert_eq!(find(&objs, "private-key", "rsa-imp")["id"], "77");
    assert_eq!(find(&objs, "public-key", "rsa-imp")["bits"], 2048);
    // The same key again (other encoding, same derived id) is refused; a new id works.
    env.fails(&[
        "import",
        "--file",
        &d("rsa.der"),
        "--id",
        "77",
        "--pin",
        PIN,
    ]);
    env.ok(&[
        "import",
        "--file",
        &d("rsa.der"),
        "--label",
        "rsa-pkcs1",
        "--pin",
        PIN,
    ]);

    // Garbage is refused with a clear message.
    std::fs::write(env.path("junk"), b"not a key").unwrap();
    let err = env.fails(&["import", "--file", &d("junk"), "--pin", PIN]);
    assert!(err.contains("neither"), "{err}");
}

/// P-521: a 521-bit order in a 66-byte field. The CLI picks ECDSA-SHA512 for it,
/// signs through the token, and openssl verifies the DER signature with the
/// exported public key (and refuses it over other data).
#[test]
fn p521_key_signs_and_openssl_verifies() {
    let env = Env::new();
    env.init("t");
    let d = |n: &str| env.path(n).to_str().unwrap().to_string();
    std::fs::write(env.path("data"), b"p-521 data\n").unwrap();
    std::fs::write(env.path("other"), b"other data\n").unwrap();
    env.ok(&[
        "key", "generate", "--type", "ec-p521", "--label", "big", "--pin", PIN,
    ]);
    let all = env.json(&["objects", "list", "--json", "--pin", PIN]);
    assert_eq!(find(&all, "private-key", "big")["key_type"], "ec");
    env.ok(&[
        "sign",
        "--label",
        "big",
        "-i",
        &d("data"),
        "-o",
        &d("raw"),
        "--pin",
        PIN,
    ]);
    assert_eq!(std::fs::read(env.path("raw")).unwrap().len(), 132, "r || s");
    env.ok(&[
        "sign",
        "--label",
        "big",
        "--der",
        "-i",
        &d("data"),
        "-o",
        &d("sig.der"),
        "--pin",
        PIN,
    ]);
    env.ok(&["export", "--label", "big", "-o", &d("pub.pem")]);
    let text = openssl(
        &["pkey", "-pubin", "-in", "pub.pem", "-text", "-noout"],
        env.dir(),
    );
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("521 bit"),
        "{text:?}"
    );
    for (data, ok) in [("data", true), ("other", false)] {
        let o = openssl(
            &[
                "dgst",
                "-sha512",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.der",
                data,
            ],
            env.dir(),
        );
        assert_eq!(o.status.success(), ok, "openssl over {data}: {o:?}");
    }
    env.ok(&[
        "verify",
        "--label",
        "big",
        "--der",
        "-i",
        &d("data"),
        "--signature",
        &d("sig.der"),
    ]);
}

#[test]
fn export_refuses_private_and_secret_keys() {
    let env = Env::new();
    env.init("t");
    env.ok(&[
        "key", "generate", "--type", "aes256", "--label", "aes", "--pin", PIN,
    ]);
    env.ok(&[
        "key", "generate", "--type", "ec-p384", "--label", "ec", "--pin", PIN,
    ]);
    let err = env.fails(&["export", "--label", "aes", "--pin", PIN]);
    assert!(err.contains("refusing to export a secret key"), "{err}");
    let objs = env.json(&["objects", "list", "--json", "--pin", PIN]);
    let h = find(&objs, "private-key", "ec")["handle"]
        .as_u64()
        .unwrap()
        .to_string();
    let err = env.fails(&["export", "--handle", &h, "--pin", PIN]);
    assert!(err.contains("refusing to export a private key"), "{err}");
    // No certificate for this key.
    env.fails(&["export", "--label", "ec", "--type", "cert"]);
    // The public half exports fine (to stdout).
    let pem = env.ok(&["export", "--label", "ec"]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn delete_objects_and_token() {
    let env = Env::new();
    env.init("t");
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "a", "--pin", PIN,
    ]);
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "b", "--pin", PIN,
    ]);
    // Without --force and without a terminal: refused.
    let err = env.fails(&["delete", "--label", "a", "--pin", PIN]);
    assert!(err.contains("--force"), "{err}");
    let out = env.json(&["delete", "--label", "a", "--force", "--pin", PIN, "--json"]);
    assert_eq!(
        out["deleted"].as_array().unwrap().len(),
        2,
        "both halves of the pair"
    );
    let objs = env.json(&["objects", "list", "--json", "--pin", PIN]);
    assert_eq!(objs.as_array().unwrap().len(), 2);
    let h = objs[0]["handle"].as_u64().unwrap().to_string();
    env.ok(&["delete", "--handle", &h, "--force", "--pin", PIN]);
    assert_eq!(
        env.json(&["objects", "list", "--json", "--pin", PIN])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.fails(&["delete", "--label", "nosuch", "--force", "--pin", PIN]);

    // The whole token: only with --force, and it needs no PIN (a locked SO PIN).
    for _ in 0..10 {
        env.fails(&[
            "pin",
            "unlock",
            "--so-pin",
            "00000000",
            "--new-pin",
            "654321",
        ]);
    }
    assert_eq!(env.json(&["list", "--json"])[0]["so_pin_locked"], true);
    let err = env.fails(&["pin", "unlock", "--so-pin", SO_PIN, "--new-pin", "654321"]);
    assert!(err.contains("--token-file"), "{err}");
    let path = env.json(&["list", "--json"])[0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    env.fails(&["delete", "--token-file"]);
    assert!(Path::new(&path).exists());
    env.ok(&["--token", "t", "delete", "--token-file", "--force"]);
    assert!(!Path::new(&path).exists());
    let left = env.json(&["list", "--json"]);
    assert_eq!(
        left.as_array().unwrap().len(),
        1,
        "the free slot only: {left}"
    );
    assert_eq!(left[0]["free"], true);
}

#[test]
fn help_teaches_and_usage_errors_exit_2() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    assert!(
        help.contains("Examples:") && help.contains("VTOKEN_CONF"),
        "{help}"
    );
    let help = env.ok(&["sign", "--help"]);
    assert!(
        help.contains("rsa-pss-sha256") && help.contains("openssl dgst"),
        "{help}"
    );
    let o = env.run(&["key", "generate", "--type", "rsa1024", "--label", "x"]);
    assert_eq!(o.status.code(), Some(2));
    // With no token at all, commands say how to make one.
    let err = env.fails(&["info"]);
    assert!(err.contains("vtoken init"), "{err}");
}
