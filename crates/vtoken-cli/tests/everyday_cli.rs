//! Everyday CLI paths a new user meets (issue 22): PINs from the terminal while
//! stdin is a pipe, new PINs asked again after a typo, length errors said as such,
//! binary output kept off the terminal, errors as JSON under --json, backup
//! errors naming the options that exist. Terminals are real (tmux).

mod common;
use common::{Harness, Tmux, PIN, SO_PIN};

fn token() -> Harness {
    let h = common::harness("");
    h.ok(&["init", "--label", "t", "--so-pin", SO_PIN, "--pin", PIN]);
    h.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    h
}

#[test]
fn piped_data_and_the_pin_from_the_terminal() {
    let h = token();
    let bin = common::vtoken().display().to_string();
    let sig = h.s("sig.bin");
    let tmux = Tmux::new();
    // As with ssh and gpg: the data on stdin, the PIN typed on the terminal.
    tmux.run(
        &h,
        "pipe",
        &format!("echo hello | {bin} sign --label k -i - -o {sig}"),
        &[],
    );
    tmux.wait_for("pipe", "Enter user PIN");
    tmux.type_line("pipe", PIN);
    let s = tmux.wait_for("pipe", "[exit ");
    assert!(s.contains("[exit 0]"), "{s}");
    assert!(!s.contains(PIN), "the PIN was echoed:\n{s}");
    std::fs::write(h.path("data"), "hello\n").unwrap();
    h.ok(&[
        "verify",
        "--label",
        "k",
        "-i",
        &h.s("data"),
        "-s",
        &sig,
        "--pin",
        PIN,
    ]);

    // A binary signature is not written to the terminal ...
    tmux.run(
        &h,
        "tty",
        &format!("{bin} sign --label k -i {} --pin {PIN}", h.s("data")),
        &[],
    );
    let s = tmux.wait_for("tty", "[exit 1]");
    assert!(s.contains("-o FILE") && s.contains("--force"), "{s}");
    // ... unless asked to.
    tmux.run(
        &h,
        "forced",
        &format!(
            "{bin} sign --label k -i {} --pin {PIN} --force | wc -c",
            h.s("data")
        ),
        &[],
    );
    tmux.wait_for("forced", "[exit 0]");
}

#[test]
fn a_new_pin_with_a_typo_is_asked_again() {
    let h = common::harness("");
    let bin = common::vtoken().display().to_string();
    let tmux = Tmux::new();
    tmux.run(
        &h,
        "init",
        &format!("{bin} init --label t --so-pin {SO_PIN}"),
        &[],
    );
    tmux.wait_for("init", "Enter user PIN");
    tmux.type_line("init", "12");
    tmux.wait_for("init", "try again");
    tmux.type_line("init", "246810");
    tmux.wait_for("init", "Repeat user PIN");
    tmux.type_line("init", "246811");
    tmux.wait_for("init", "the two entries differ; try again");
    tmux.type_line("init", "246810");
    tmux.wait_for("init", "Repeat user PIN");
    tmux.type_line("init", "246810");
    // On a terminal, init asks which agent confirms vault and OTP uses.
    let s = tmux.wait_for("init", "Choice [1]");
    assert!(s.contains("2) desktop"), "{s}");
    tmux.type_line("init", "3");
    let s = tmux.wait_for("init", "[exit ");
    assert!(s.contains("[exit 0]"), "{s}");
    assert!(
        s.contains("PIN has 4 to") || s.contains("to 64 characters"),
        "{s}"
    );
    assert!(!s.contains("..="), "{s}");
    h.ok(&["objects", "list", "--pin", "246810"]);
    // Recorded in the token's policy.
    assert_eq!(h.json(&["--json", "prompt", "show"])["kind"], "pinentry");
    // Without a terminal nothing is asked (the configuration's default stays), and
    // --prompt-agent sets it directly.
    h.ok(&[
        "init",
        "--label",
        "u",
        "--so-pin",
        SO_PIN,
        "--pin",
        PIN,
        "--prompt-agent",
        "deny",
    ]);
    assert_eq!(
        h.json(&["--json", "--token", "u", "prompt", "show"])["kind"],
        "deny"
    );
}

#[test]
fn plain_words_for_lengths_and_json_errors() {
    let h = token();
    // A too-short SO PIN: a length error, and no try spent.
    let err = h.fails(&["pin", "unlock", "--so-pin", "12", "--new-pin", "654321"]);
    assert!(
        err.contains("SO PIN") && err.contains("characters"),
        "{err}"
    );
    assert!(!err.contains("incorrect") && !err.contains("..="), "{err}");
    let list = h.json(&["list", "--json"]);
    assert_eq!(list[0]["so_pin_failures"], 0, "{list}");
    // A too-short new PIN on the command line: plain words.
    let err = h.fails(&["init", "--label", "u", "--so-pin", SO_PIN, "--pin", "1"]);
    assert!(err.contains("user PIN") && !err.contains("..="), "{err}");
    // The core's "invalid arguments:" prefix is not repeated to a person.
    let err = h.fails(&["otp", "code", "--pin", PIN, "nothing"]);
    assert!(!err.contains("invalid arguments"), "{err}");
    // Under --json a failure is one JSON object on stderr, nothing on stdout.
    let o = h.run(&["--json", "otp", "code", "--pin", PIN, "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&o.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert!(
        v["error"].as_str().unwrap().contains("no OTP credential"),
        "{v}"
    );
}

#[test]
fn backup_errors_name_the_options_that_exist() {
    let h = common::harness("");
    for t in ["a", "b"] {
        h.ok(&["init", "--label", t, "--so-pin", SO_PIN, "--pin", PIN]);
    }
    let err = h.fails(&["backup", "--from", "a", "--to", "b"]);
    assert!(
        err.contains("--from-pin") && err.contains("VTOKEN_FROM_PIN"),
        "{err}"
    );
    assert!(!err.contains("--pin,"), "{err}");
}

#[test]
fn encrypted_pkcs8_import_asks_the_passphrase() {
    let h = common::harness("");
    h.ok(&["init", "--label", "t", "--so-pin", SO_PIN, "--pin", PIN]);
    let plain = h.s("plain.pem");
    let enc = h.s("enc.pem");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &plain,
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &plain,
        "-out",
        &enc,
        "-passout",
        "pass:open sesame",
    ]);
    // No passphrase and no terminal: the options that give it.
    let err = h.fails(&["import", "--file", &enc, "--label", "e", "--pin", PIN]);
    assert!(err.contains("--passphrase-file"), "{err}");
    // A wrong one: said so, nothing imported.
    let o = h.run_with(
        &["import", "--file", &enc, "--label", "e", "--pin", PIN],
        &[("VTOKEN_KEY_PASSPHRASE", "wrong".into())],
    );
    let err = common::fails_stderr(&["import"], o);
    assert!(err.contains("wrong passphrase"), "{err}");
    // On a terminal: asked without echo.
    let bin = common::vtoken().display().to_string();
    let tmux = Tmux::new();
    tmux.run(
        &h,
        "imp",
        &format!("{bin} import --file {enc} --label e --pin {PIN}"),
        &[],
    );
    tmux.wait_for("imp", "Passphrase of enc.pem");
    tmux.type_line("imp", "open sesame");
    let s = tmux.wait_for("imp", "[exit ");
    assert!(s.contains("[exit 0]") && !s.contains("open sesame"), "{s}");
    let objs = h.ok(&["objects", "list", "--pin", PIN]);
    assert!(objs.contains("e"), "{objs}");
    // The same key as the plain file: its public key matches.
    let pubkey = h.s("pub.pem");
    run(&["pkey", "-in", &plain, "-pubout", "-out", &pubkey]);
    let ours = h.ok(&["export", "--label", "e", "--type", "pubkey"]);
    assert_eq!(
        ours.trim(),
        std::fs::read_to_string(&pubkey).unwrap().trim()
    );
}

#[test]
fn pkcs12_import() {
    let h = common::harness("");
    h.ok(&["init", "--label", "t", "--so-pin", SO_PIN, "--pin", PIN]);
    let (key, cert, p12) = (h.s("k.pem"), h.s("c.pem"), h.s("id.p12"));
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        "/CN=alice",
        "-days",
        "30",
    ]);
    run(&[
        "pkcs12",
        "-export",
        "-inkey",
        &key,
        "-in",
        &cert,
        "-out",
        &p12,
        "-passout",
        "pass:p12 pass",
    ]);
    let o = h.run_with(
        &["import", "--file", &p12, "--pin", PIN],
        &[("VTOKEN_KEY_PASSPHRASE", "nope".into())],
    );
    let err = common::fails_stderr(&["import"], o);
    assert!(err.contains("wrong passphrase"), "{err}");
    let o = h.run_with(
        &[
            "--json", "import", "--file", &p12, "--pin", PIN, "--label", "alice",
        ],
        &[("VTOKEN_KEY_PASSPHRASE", "p12 pass".into())],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let objs = h.json(&["--json", "objects", "list", "--pin", PIN]);
    let classes: Vec<String> = objs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["class"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        classes.iter().any(|c| c == "private-key") && classes.iter().any(|c| c == "certificate"),
        "{objs}"
    );
    // The certificate comes back out as it went in.
    let ours = h.ok(&["export", "--label", "alice", "--type", "cert"]);
    assert_eq!(ours.trim(), std::fs::read_to_string(&cert).unwrap().trim());
}
