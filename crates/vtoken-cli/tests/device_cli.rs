//! `vtoken ca`, `vtoken device` and `vtoken backup` end to end (SPEC V7, V8, V11),
//! cross-checked with `openssl cms` / `openssl dgst`.

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{Harness, PIN, SO_PIN as SO};

/// The shared harness with a prompt agent that confirms or refuses.
struct Station(Harness);

impl Deref for Station {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Station {
    /// Tokens in a temp dir, cheap KDF, and a prompt agent that answers with
    /// `answer` ("true" confirms, "false" refuses).
    fn new() -> Station {
        let s = Station(common::harness(""));
        s.prompt_answers(true);
        s
    }

    /// The tokens' agent (token policy, set from this configuration at `init`) is
    /// one script; its answer changes by rewriting the script.
    fn prompt_answers(&self, yes: bool) {
        use std::os::unix::fs::PermissionsExt;
        let script = self.path("answer.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nexit {}\n", if yes { 0 } else { 1 }),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.config(&format!(
            "[prompt]\nagent = \"command\"\ncommand = \"{}\"\n",
            script.display()
        ));
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
}

fn openssl(args: &[&str]) -> Output {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {o:?}");
    o
}

fn init(st: &Station, label: &str, extra: &[&str]) {
    let ca = st.s("ca");
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
    st.ok(&a);
    // The vault is switched on by its own step (SPEC V4, S202).
    st.ok(&["--token", label, "vault", "enable", "--pin", PIN]);
}

fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap();
}

#[test]
fn certify_attest_verify_and_refuse_replay_and_wrong_root() {
    let st = Station::new();
    let ca = st.s("ca");
    st.ok(&["ca", "init", "--dir", &ca]);
    // Refuses to overwrite a root.
    st.fails(&["ca", "init", "--dir", &ca]);
    init(&st, "a", &[]);
    let info = st.json(&["--token", "a", "device", "info"]);
    assert_eq!(info["certified"], true);
    assert_eq!(info["allow_key_backup"], false);
    // The certificate carries the serial and chains to the root (openssl agrees).
    st.ok(&["--token", "a", "device", "cert", "-o", &st.s("a.pem")]);
    let text = openssl(&["x509", "-in", &st.s("a.pem"), "-noout", "-subject"]);
    let serial = info["serial"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains(serial));
    openssl(&["verify", "-CAfile", &st.s("ca/ca.pem"), &st.s("a.pem")]);

    // Local challenge.
    let out = st.ok(&[
        "--token",
        "a",
        "device",
        "verify",
        "--root",
        &st.s("ca/ca.pem"),
        "--pin",
        PIN,
    ]);
    assert!(out.contains("device authenticated"), "{out}");
    // Remote-style: answer to a chosen nonce, checked elsewhere.
    let nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    st.ok(&[
        "--token",
        "a",
        "device",
        "attest",
        "--nonce",
        nonce,
        "-o",
        &st.s("att.json"),
        "--pin",
        PIN,
    ]);
    let att = st.s("att.json");
    st.ok(&[
        "device",
        "verify",
        "--root",
        &st.s("ca/ca.pem"),
        "--attestation",
        &att,
        "--nonce",
        nonce,
    ]);
    // Replay against a new challenge.
    let other_nonce = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let e = st.fails(&[
        "device",
        "verify",
        "--root",
        &st.s("ca/ca.pem"),
        "--attestation",
        &att,
        "--nonce",
        other_nonce,
    ]);
    assert!(e.contains("NOT authenticated"), "{e}");
    // Wrong root.
    st.ok(&["ca", "init", "--dir", &st.s("ca2")]);
    st.fails(&[
        "device",
        "verify",
        "--root",
        &st.s("ca2/ca.pem"),
        "--attestation",
        &att,
        "--nonce",
        nonce,
    ]);
    // A forged answer: signature bytes changed.
    let mut v: Value = serde_json::from_slice(&std::fs::read(&att).unwrap()).unwrap();
    let sig = v["signature"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    v["signature"] = Value::String(flipped);
    write(&st.path("forged.json"), v.to_string().as_bytes());
    st.fails(&[
        "device",
        "verify",
        "--root",
        &st.s("ca/ca.pem"),
        "--attestation",
        &st.s("forged.json"),
        "--nonce",
        nonce,
    ]);
    // Wrong PIN: no attestation.
    st.fails(&[
        "--token", "a", "device", "attest", "--nonce", nonce, "--pin", "999999",
    ]);
}

#[test]
fn openssl_seals_to_the_token_and_the_token_opens_inside() {
    let st = Station::new();
    st.ok(&["ca", "init", "--dir", &st.s("ca")]);
    init(&st, "a", &[]);
    st.ok(&["--token", "a", "device", "cert", "-o", &st.s("a.pem")]);

    // An EC key made by openssl, sealed by openssl (OAEP + AES-256-GCM), opened into
    // the token, then used to sign; openssl verifies with the original public key.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &st.s("k.pem"),
    ]);
    // PKCS#8 DER (genpkey's DER output is SEC1).
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &st.s("k.pem"),
        "-outform",
        "DER",
        "-out",
        &st.s("k.der"),
    ]);
    openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        &st.s("k.der"),
        "-pubout",
        "-out",
        &st.s("k.pub.pem"),
    ]);
    openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-outform",
        "DER",
        "-aes-256-gcm",
        "-recip",
        &st.s("a.pem"),
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-in",
        &st.s("k.der"),
        "-out",
        &st.s("k.cms"),
    ]);
    st.ok(&[
        "--token",
        "a",
        "device",
        "open",
        "--in",
        &st.s("k.cms"),
        "--as",
        "key",
        "--label",
        "sealed",
        "--pin",
        PIN,
    ]);
    write(&st.path("msg"), b"signed with a key that arrived sealed");
    st.ok(&[
        "--token",
        "a",
        "sign",
        "--label",
        "sealed",
        "-i",
        &st.s("msg"),
        "-o",
        &st.s("sig"),
        "--der",
        "--pin",
        PIN,
    ]);
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &st.s("k.pub.pem"),
        "-signature",
        &st.s("sig"),
        &st.s("msg"),
    ]);

    // A password into the vault, sealed by vtoken's own client side.
    write(&st.path("pw"), b"correct horse battery staple");
    st.ok(&[
        "device",
        "seal",
        "--to",
        &st.s("a.pem"),
        "--in",
        &st.s("pw"),
        "-o",
        &st.s("pw.cms"),
    ]);
    st.ok(&[
        "--token",
        "a",
        "device",
        "open",
        "--in",
        &st.s("pw.cms"),
        "--as",
        "vault",
        "--label",
        "mail",
        "--pin",
        PIN,
    ]);
    let out = st.ok(&["--token", "a", "vault", "list", "--pin", PIN]);
    assert!(out.contains("mail"), "{out}");

    // PKCS#1 v1.5 key transport (openssl's default) is refused; a tampered envelope too.
    openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-outform",
        "DER",
        "-aes-256-cbc",
        "-recip",
        &st.s("a.pem"),
        "-in",
        &st.s("pw"),
        "-out",
        &st.s("v15.cms"),
    ]);
    let e = st.fails(&[
        "--token",
        "a",
        "device",
        "open",
        "--in",
        &st.s("v15.cms"),
        "--as",
        "vault",
        "--label",
        "x",
        "--pin",
        PIN,
    ]);
    assert!(e.contains("v1.5"), "{e}");
    let mut t = std::fs::read(st.path("pw.cms")).unwrap();
    let n = t.len();
    t[n - 20] ^= 1;
    write(&st.path("bad.cms"), &t);
    st.fails(&[
        "--token",
        "a",
        "device",
        "open",
        "--in",
        &st.s("bad.cms"),
        "--as",
        "vault",
        "--label",
        "y",
        "--pin",
        PIN,
    ]);
}

#[test]
fn backup_one_machine_and_bundle_with_failures_that_move_nothing() {
    let st = Station::new();
    st.ok(&["ca", "init", "--dir", &st.s("ca")]);
    init(&st, "src", &["--allow-key-backup"]);
    init(&st, "dst", &[]);
    init(&st, "spare", &[]);
    let root = st.s("ca/ca.pem");
    // Content: a non-extractable signing key, an OTP credential, a vault entry.
    st.ok(&[
        "--token", "src", "key", "generate", "--type", "ec-p256", "--label", "signer", "--pin", PIN,
    ]);
    st.ok(&[
        "--token",
        "src",
        "export",
        "--label",
        "signer",
        "-o",
        &st.s("signer.pub.pem"),
    ]);
    st.ok(&[
        "--token",
        "src",
        "otp",
        "add",
        "--uri",
        "otpauth://totp/Ex:bob?secret=JBSWY3DPEHPK3PXP&issuer=Ex",
        "--pin",
        PIN,
    ]);
    let src_count = st.objects("src");
    assert!(src_count >= 3, "{src_count}");

    // Wrong PIN on either side: nothing moves.
    let e = st.fails(&[
        "backup",
        "--from",
        "src",
        "--to",
        "dst",
        "--root",
        &root,
        "--from-pin",
        "000000",
        "--to-pin",
        PIN,
    ]);
    assert!(e.contains("source token"), "{e}");
    st.fails(&[
        "backup",
        "--from",
        "src",
        "--to",
        "dst",
        "--root",
        &root,
        "--from-pin",
        PIN,
        "--to-pin",
        "000000",
    ]);
    assert_eq!(st.objects("dst"), 0);
    // Refused on the target's prompt: nothing moves.
    st.prompt_answers(false);
    st.fails(&[
        "backup",
        "--from",
        "src",
        "--to",
        "dst",
        "--root",
        &root,
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    assert_eq!(st.objects("dst"), 0);
    // Wrong root: nothing moves.
    st.prompt_answers(true);
    st.ok(&["ca", "init", "--dir", &st.s("ca2")]);
    st.fails(&[
        "backup",
        "--from",
        "src",
        "--to",
        "dst",
        "--root",
        &st.s("ca2/ca.pem"),
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    assert_eq!(st.objects("dst"), 0);

    // Confirmed: dst holds what src held, and signs with the restored key.
    let out = st.ok(&[
        "backup",
        "--from",
        "src",
        "--to",
        "dst",
        "--root",
        &root,
        "--from-pin",
        PIN,
        "--to-pin",
        PIN,
    ]);
    assert!(out.contains("1 non-extractable"), "{out}");
    assert_eq!(st.objects("dst"), src_count);
    write(&st.path("m"), b"restored key at work");
    st.ok(&[
        "--token",
        "dst",
        "sign",
        "--label",
        "signer",
        "-i",
        &st.s("m"),
        "-o",
        &st.s("m.sig"),
        "--der",
        "--pin",
        PIN,
    ]);
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &st.s("signer.pub.pem"),
        "-signature",
        &st.s("m.sig"),
        &st.s("m"),
    ]);
    let a = st.ok(&["--token", "src", "otp", "list", "--pin", PIN]);
    let b = st.ok(&["--token", "dst", "otp", "list", "--pin", PIN]);
    assert_eq!(a, b);

    // Across machines: the source's start, `spare`'s answer, a bundle for it;
    // tampering and a wrong source move nothing.
    st.ok(&[
        "backup",
        "start",
        "--from",
        "src",
        "-o",
        &st.s("src.start"),
        "--from-pin",
        PIN,
    ]);
    st.ok(&[
        "backup",
        "request",
        "--to",
        "spare",
        "--start",
        &st.s("src.start"),
        "-o",
        &st.s("spare.req"),
        "--to-pin",
        PIN,
    ]);
    st.ok(&[
        "backup",
        "export",
        "--from",
        "src",
        "--request",
        &st.s("spare.req"),
        "--root",
        &root,
        "-o",
        &st.s("b.p7m"),
        "--from-pin",
        PIN,
    ]);
    let bundle = std::fs::read(st.path("b.p7m")).unwrap();
    let mut bad = bundle.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    write(&st.path("bad.p7m"), &bad);
    st.fails(&[
        "backup",
        "import",
        "--to",
        "spare",
        "--in",
        &st.s("bad.p7m"),
        "--root",
        &root,
        "--to-pin",
        PIN,
    ]);
    st.fails(&[
        "backup",
        "import",
        "--to",
        "spare",
        "--in",
        &st.s("b.p7m"),
        "--root",
        &root,
        "--from-serial",
        "0000000000000001",
        "--to-pin",
        PIN,
    ]);
    // The bundle is for spare, not dst.
    st.fails(&[
        "backup",
        "import",
        "--to",
        "dst",
        "--in",
        &st.s("b.p7m"),
        "--root",
        &root,
        "--to-pin",
        PIN,
    ]);
    assert_eq!(st.objects("spare"), 0);
    // A target certified by another root gets no bundle.
    st.ok(&[
        "init",
        "--label",
        "rogue",
        "--so-pin",
        SO,
        "--pin",
        PIN,
        "--certify-with",
        &st.s("ca2"),
    ]);
    st.ok(&[
        "backup",
        "start",
        "--from",
        "src",
        "-o",
        &st.s("src2.start"),
        "--from-pin",
        PIN,
    ]);
    // It does not even answer: src's certificate is not under its root.
    let e = st.fails(&[
        "backup",
        "request",
        "--to",
        "rogue",
        "--start",
        &st.s("src2.start"),
        "-o",
        &st.s("rogue.req"),
        "--to-pin",
        PIN,
    ]);
    assert!(e.contains("source certificate refused"), "{e}");
    assert!(!st.path("rogue.req").exists());
    // The real thing (--root optional: the target checks against its own root).
    st.ok(&[
        "backup",
        "import",
        "--to",
        "spare",
        "--in",
        &st.s("b.p7m"),
        "--to-pin",
        PIN,
    ]);
    assert_eq!(st.objects("spare"), src_count);
}

fn vault_titles(st: &Station, token: &str) -> Vec<String> {
    st.json(&["--token", token, "vault", "list", "--pin", PIN])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

/// SPEC V8: both delivery options of `vtoken device seal` — a CMS envelope and data
/// encrypted directly to the device key (`--direct`) — open in `vtoken device open`,
/// and a sealed vault entry may be any kind with all its fields. A tampered
/// ciphertext, another token, and a refused confirmation store nothing.
#[test]
fn both_delivery_options_open_and_a_sealed_entry_keeps_every_field() {
    let st = Station::new();
    st.ok(&["ca", "init", "--dir", &st.s("ca")]);
    init(&st, "a", &[]);
    init(&st, "b", &[]);
    st.ok(&["--token", "a", "device", "cert", "-o", &st.s("a.pem")]);
    let seal = |input: &str, out: &str, direct: bool| {
        let (i, o, to) = (st.s(input), st.s(out), st.s("a.pem"));
        let mut a = vec!["device", "seal", "--to", &to, "--in", &i, "-o", &o];
        if direct {
            a.push("--direct");
        }
        st.ok(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    };
    let open_args = |token: &'static str, input: &str, extra: &[&str]| {
        let mut a: Vec<String> = ["--token", token, "device", "open", "--in"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(st.s(input));
        a.extend(
            ["--as", "vault", "--pin", PIN]
                .iter()
                .map(|s| s.to_string()),
        );
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    // A bank card with every preset field and two of its own, sealed in CMS.
    let fields = serde_json::json!([
        {"name": "bank", "value": "HSBC", "secret": false},
        {"name": "card_number", "value": "4111111111111111", "secret": true},
        {"name": "card_pin", "value": "4321", "secret": true},
        {"name": "cvv", "value": "123", "secret": true},
        {"name": "holder", "value": "A. Smith", "secret": false},
    ]);
    let card = serde_json::json!({
        "kind": "bank-card", "title": "visa", "url": "https://bank.example", "fields": fields,
    });
    write(&st.path("card.json"), card.to_string().as_bytes());
    seal("card.json", "card.cms", false);
    st.ok(&open_args("a", "card.cms", &[]));
    let shown = st.json(&[
        "--token", "a", "vault", "show", "visa", "--reveal", "--pin", PIN,
    ]);
    assert_eq!(shown["kind"], "bank-card");
    assert_eq!(shown["url"], "https://bank.example");
    assert_eq!(shown["fields"], fields, "{shown}");

    // Direct: a bare password (custom entry named by --label) and a small entry.
    write(&st.path("pw"), b"correct horse battery staple\n");
    seal("pw", "pw.bin", true);
    assert_eq!(std::fs::read(st.path("pw.bin")).unwrap().len(), 256);
    st.ok(&open_args("a", "pw.bin", &["--label", "mail"]));
    assert_eq!(
        st.ok(&["--token", "a", "vault", "get", "mail", "--pin", PIN]),
        "correct horse battery staple\n"
    );
    let small = serde_json::json!({"kind": "email", "title": "box", "fields": [
        {"name": "address", "value": "me@example.com"},
        {"name": "password", "value": "pw-9", "secret": true}]});
    write(&st.path("small.json"), small.to_string().as_bytes());
    seal("small.json", "small.bin", true);
    st.ok(&open_args("a", "small.bin", &[]));
    let shown = st.json(&[
        "--token", "a", "vault", "show", "box", "--reveal", "--pin", PIN,
    ]);
    assert_eq!(shown["kind"], "email");
    assert_eq!(shown["fields"][1]["value"], "pw-9");
    // A direct AES key opens into a key object.
    write(&st.path("aes"), &[7u8; 32]);
    seal("aes", "aes.bin", true);
    let before = st.objects("a");
    st.ok(&[
        "--token",
        "a",
        "device",
        "open",
        "--in",
        &st.s("aes.bin"),
        "--as",
        "secret",
        "--label",
        "k",
        "--pin",
        PIN,
    ]);
    assert_eq!(st.objects("a"), before + 1);
    let titles = vault_titles(&st, "a");

    // Tampered direct ciphertext: refused, nothing stored.
    let mut bad = std::fs::read(st.path("pw.bin")).unwrap();
    bad[100] ^= 1;
    write(&st.path("bad.bin"), &bad);
    let e = st.fails(&open_args("a", "bad.bin", &["--label", "tampered"]));
    assert!(e.contains("directly"), "{e}");
    // Another token cannot open either option.
    st.fails(&open_args("b", "pw.bin", &["--label", "stolen"]));
    st.fails(&open_args("b", "card.cms", &[]));
    assert!(vault_titles(&st, "b").is_empty());
    // The user refuses what the token shows: nothing stored.
    st.prompt_answers(false);
    st.fails(&open_args("a", "small.bin", &["--label", "refused"]));
    assert_eq!(vault_titles(&st, "a"), titles);
}

/// The Fig. 6 flow as one command (SPEC V4–V8): `vtoken vault put --sealed` verifies
/// the token against the root, seals the entry to it, and the token stores what the
/// user confirms; another root, a refusal or a vault not enabled store nothing.
#[test]
fn vault_put_sealed_verifies_the_token_first() {
    let st = Station::new();
    st.ok(&["ca", "init", "--dir", &st.s("ca")]);
    st.ok(&["ca", "init", "--dir", &st.s("ca2")]);
    init(&st, "a", &[]);
    let root = st.s("ca/ca.pem");
    let put = |root: &str| -> Vec<String> {
        [
            "--token",
            "a",
            "vault",
            "put",
            "--sealed",
            "--root",
            root,
            "--kind",
            "bank-card",
            "--title",
            "visa",
            "--bank",
            "HSBC",
            "--card-number",
            "4111111111111111",
            "--card-pin",
            "4321",
            "--pin",
            PIN,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Another root: the device does not verify, nothing stored.
    let e = st.fails(&put(&st.s("ca2/ca.pem")));
    assert!(e.contains("rejected"), "{e}");
    assert!(vault_titles(&st, "a").is_empty());
    // The user refuses what the token shows.
    st.prompt_answers(false);
    st.fails(&put(&root));
    assert!(vault_titles(&st, "a").is_empty());
    st.prompt_answers(true);
    st.ok(&put(&root));
    let shown = st.json(&[
        "--token", "a", "vault", "show", "visa", "--reveal", "--pin", PIN,
    ]);
    assert_eq!(shown["fields"][1]["value"], "4111111111111111", "{shown}");
    assert_eq!(shown["fields"][2]["value"], "4321", "{shown}");
    // A vault switched off answers the storage-enable request with its state.
    st.ok(&["--token", "a", "vault", "disable", "--pin", PIN]);
    let e = st.fails(&put(&root));
    assert!(e.contains("disabled"), "{e}");
}
