//! `vtoken vault` end to end: the binary, a temporary token directory, and a real
//! command prompt agent (a shell script that exits 0 or 1).

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::{script, Harness, PIN, SO_PIN};

const SECRET: &str = "S3cret-Marker-9931";

/// The shared harness; every command gets both PINs and the prompt agent
/// `prompt.sh` from the environment.
struct Env {
    h: Harness,
    prompt: PathBuf,
}

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.h
    }
}

impl Env {
    fn new() -> Env {
        let mut h = common::harness("");
        let prompt = h.path("prompt.sh");
        h.set_var("VTOKEN_PROMPT", format!("command:{}", prompt.display()));
        h.set_var("VTOKEN_PIN", PIN);
        h.set_var("VTOKEN_SO_PIN", SO_PIN);
        let e = Env { h, prompt };
        e.answer(true);
        e
    }

    /// The prompt agent: records the request, then confirms or refuses.
    fn answer(&self, yes: bool) {
        let log = self.path("prompts.log");
        script(
            &self.prompt,
            &format!(
                "echo \"== $VTOKEN_PROMPT_TITLE\" >> '{}'\ncat >> '{}'\nexit {}",
                log.display(),
                log.display(),
                if yes { 0 } else { 1 }
            ),
        );
    }

    fn prompts(&self) -> String {
        std::fs::read_to_string(self.path("prompts.log")).unwrap_or_default()
    }

    fn fails(&self, args: &[&str]) -> String {
        let err = self.h.fails(args);
        assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
        err
    }

    fn token_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for f in std::fs::read_dir(self.path("tokens")).unwrap() {
            all.extend(std::fs::read(f.unwrap().path()).unwrap_or_default());
        }
        all
    }
}

fn add_site(env: &Env, title: &str) -> u64 {
    let v = env.json(&[
        "--json",
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        title,
        "--url",
        "https://example.com",
        "--username",
        "alice",
        "--password",
        SECRET,
    ]);
    v["id"].as_u64().unwrap()
}

#[test]
fn add_list_show_get_with_confirmation() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    // V4, S202 (¶0083): an available vault needs no activation, but it is switched
    // on by its own step before first use.
    let st = env.json(&["--json", "vault", "status"]);
    assert_eq!(st["usable"], false);
    assert_eq!(st["state"], "activated");
    assert_eq!(st["mode"], "available");
    assert_eq!(env.json(&["--json", "info"])["vault"], "activated");
    assert!(env.ok(&["info"]).contains("vault:          activated"));
    let err = env.fails(&[
        "vault", "add", "--kind", "custom", "--title", "c", "--field", "a=b",
    ]);
    assert!(err.contains("vtoken vault enable"), "{err}");
    assert!(env.prompts().is_empty(), "nothing shown before enable");
    env.ok(&["vault", "enable"]);
    let st = env.json(&["--json", "vault", "status"]);
    assert_eq!(st["usable"], true);
    assert_eq!(st["state"], "enabled");
    assert_eq!(env.json(&["--json", "info"])["vault"], "enabled");

    // An entry without a field its kind requires: said in the entry's words (not
    // PKCS#11's template words), with where each kind's fields are listed.
    let err = env.fails(&[
        "vault",
        "add",
        "--kind",
        "email",
        "--title",
        "mail",
        "--password",
        SECRET,
    ]);
    assert!(
        err.contains(
            "the field \"address\" is required for an entry of kind email; \
             each kind's fields: `vtoken vault add --help`"
        ),
        "{err}"
    );
    assert!(!err.contains("template"), "{err}");

    // Refused: nothing written.
    env.answer(false);
    let err = env.fails(&[
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "site",
        "--password",
        SECRET,
    ]);
    assert!(err.contains("not confirmed"), "{err}");
    assert!(env.prompts().contains("site"));
    // V5: the token shows the entry as it received it, the secret included.
    assert!(
        env.prompts()
            .contains(&format!("password (secret): {SECRET}")),
        "{}",
        env.prompts()
    );
    assert!(env.ok(&["vault", "list"]).contains("no vault entries"));

    env.answer(true);
    let id = add_site(&env, "site");
    let list = env.json(&["--json", "vault", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["title"], "site");
    assert_eq!(list[0]["username"], "alice");
    assert!(!list.to_string().contains(SECRET));

    let shown = env.ok(&["vault", "show", "site"]);
    assert!(
        shown.contains("alice") && shown.contains("••••••"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET));
    let revealed = env.ok(&["vault", "show", &id.to_string(), "--reveal"]);
    assert!(revealed.contains(SECRET));

    assert_eq!(env.ok(&["vault", "get", "site"]), format!("{SECRET}\n"));
    assert_eq!(
        env.ok(&["vault", "get", "site", "--field", "username"]),
        "alice\n"
    );

    // Search by title, URL and kind.
    env.ok(&[
        "vault",
        "add",
        "--kind",
        "bank-card",
        "--title",
        "visa",
        "--bank",
        "hsbc",
        "--card-number",
        "4111111111111111",
        "--card-pin",
        "000000",
    ]);
    env.fails(&[
        "vault",
        "add",
        "--kind",
        "bank-card",
        "--title",
        "x",
        "--bank",
        "Nobank",
        "--card-number",
        "1",
    ]);
    env.ok(&[
        "vault",
        "add",
        "--kind",
        "bank-card",
        "--title",
        "local",
        "--bank-other",
        "Nobank",
        "--card-number",
        "1",
    ]);
    let s = env.json(&["--json", "vault", "search", "--kind", "bank-card"]);
    assert_eq!(s.as_array().unwrap().len(), 2);
    let s = env.json(&["--json", "vault", "search", "EXAMPLE.com"]);
    assert_eq!(s[0]["title"], "site");
    let card = env.json(&["--json", "vault", "show", "visa"]);
    assert_eq!(card["fields"][0]["value"], "HSBC");
    assert_eq!(card["fields"][1]["value"], "••••••");

    // Edit and delete, both confirmed.
    env.ok(&[
        "vault",
        "edit",
        "site",
        "--title",
        "site2",
        "--field",
        "team=blue",
    ]);
    assert!(env.ok(&["vault", "show", "site2"]).contains("team"));
    env.answer(false);
    env.fails(&["vault", "delete", "site2"]);
    env.answer(true);
    env.ok(&["vault", "delete", "site2"]);
    env.fails(&["vault", "get", "site2"]);

    // Nothing readable on disk.
    let bytes = env.token_bytes();
    for needle in ["4111111111111111", "alice", "visa"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} on disk"
        );
    }
}

#[test]
fn optional_vault_activation_enable_disable() {
    let env = Env::new();
    let init = env.json(&["--json", "init", "--label", "t", "--vault", "optional"]);
    let code = init["vault"]["activation_code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code.len(), 23);

    for args in [
        &["vault", "list"][..],
        &["vault", "search", "x"],
        &[
            "vault", "add", "--kind", "custom", "--title", "c", "--field", "a=b",
        ],
        &["vault", "export-csv", "-"],
    ] {
        let err = env.fails(args);
        assert!(err.contains("not activated"), "{args:?}: {err}");
    }
    assert!(env.prompts().is_empty(), "no prompt for a missing vault");

    let err = env.fails(&["vault", "activate", "--code", "WRONG-WRONG"]);
    assert!(err.contains("4 tries left"), "{err}");
    assert_eq!(
        env.json(&["--json", "vault", "status"])["activation_failures"],
        1
    );
    assert_eq!(env.json(&["--json", "info"])["vault"], "absent");
    // S201 then S202: the code activates, and only activates.
    let out = env.ok(&["vault", "activate", "--code", &code.to_lowercase()]);
    assert!(out.contains("vtoken vault enable"), "{out}");
    assert_eq!(
        env.json(&["--json", "vault", "status"])["state"],
        "activated"
    );
    let err = env.fails(&["vault", "list"]);
    assert!(err.contains("vtoken vault enable"), "{err}");
    env.ok(&["vault", "enable"]);
    assert_eq!(env.json(&["--json", "info"])["vault"], "enabled");
    add_site(&env, "site");
    env.ok(&["vault", "disable"]);
    assert_eq!(env.json(&["--json", "info"])["vault"], "disabled");
    let err = env.fails(&["vault", "get", "site"]);
    assert!(err.contains("vtoken vault enable"), "{err}");
    // Invisible to the key/object listing too.
    let objs = env.ok(&["objects", "list"]);
    assert!(!objs.contains("site"), "{objs}");
    env.ok(&["vault", "enable"]);
    assert_eq!(env.ok(&["vault", "get", "site"]), format!("{SECRET}\n"));
}

#[test]
fn activation_locks_after_five_wrong_codes() {
    let env = Env::new();
    env.ok(&[
        "init",
        "--label",
        "t",
        "--vault",
        "optional",
        "--vault-code",
        "ISSUER-CODE-0001",
    ]);
    for _ in 0..4 {
        env.fails(&["vault", "activate", "--code", "nope-nope-nope"]);
    }
    let err = env.fails(&["vault", "activate", "--code", "nope-nope-nope"]);
    assert!(err.contains("re-initializing"), "{err}");
    let err = env.fails(&["vault", "activate", "--code", "ISSUER-CODE-0001"]);
    assert!(err.contains("locked"), "{err}");
    assert_eq!(
        env.json(&["--json", "vault", "status"])["activation_locked"],
        true
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// V9, ¶0093–0095: the event factor belongs to the token. Each `--event` use
/// advances the entry's counter, committed before the password is shown, so no
/// two processes — sequential, concurrent, or killed half-way — ever get the same
/// dynamic password; `--time --event` combines both factors; a refused gate or a
/// bad argument does not move the counter.
#[test]
fn event_dynamic_password_never_repeats() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    add_site(&env, "site");
    add_site(&env, "other");
    let get = ["vault", "get", "site", "--dynamic", "--event"];
    let mut seen = std::collections::HashSet::new();
    // Sequential processes: counters 0, 1, 2.
    for k in 0..3u64 {
        let code = env.ok(&get).trim().to_string();
        assert_eq!(
            code,
            otp_core::dynamic_password(SECRET, None, Some(k), 6).unwrap()
        );
        assert!(seen.insert(code));
    }
    // A bad argument is refused before the counter moves.
    env.fails(&[
        "vault",
        "get",
        "site",
        "--dynamic",
        "--event",
        "--digits",
        "3",
    ]);
    // Each entry has its own counter: "other" starts at 0.
    let other = env.ok(&["vault", "get", "other", "--dynamic", "--event"]);
    assert_eq!(
        other.trim(),
        otp_core::dynamic_password(SECRET, None, Some(0), 6).unwrap()
    );
    // Concurrent processes: all different, and together they used 3..7.
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.cmd(&get)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        codes.push(String::from_utf8(o.stdout).unwrap().trim().to_string());
    }
    let mut want: Vec<String> = (3..7u64)
        .map(|k| otp_core::dynamic_password(SECRET, None, Some(k), 6).unwrap())
        .collect();
    codes.sort();
    want.sort();
    assert_eq!(codes, want, "concurrent processes shared an event");
    seen.extend(codes);
    // Processes killed at any point: whatever they printed, later ones never
    // repeat it (the counter is committed before the password is computed).
    for delay_ms in [0u64, 5, 20, 40, 80] {
        let mut c = env
            .cmd(&get)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = c.kill();
        let o = c.wait_with_output().unwrap();
        let printed = String::from_utf8(o.stdout).unwrap().trim().to_string();
        if !printed.is_empty() {
            assert!(seen.insert(printed), "a killed process repeated a password");
        }
    }
    for _ in 0..3 {
        let code = env.ok(&get).trim().to_string();
        assert!(
            seen.insert(code.clone()),
            "dynamic password {code} repeated"
        );
    }
    // Combined factor: the token's clock and the next event.
    let before = now();
    let code = env.ok(&["vault", "get", "site", "--dynamic", "--event", "--time"]);
    let after = now();
    let next = env.json(&["--json", "vault", "get", "site", "--dynamic", "--event"]);
    let k = (0..64u64)
        .find(|k| {
            [before, after].iter().any(|t| {
                otp_core::dynamic_password(SECRET, Some((*t, 30)), Some(*k), 6).unwrap()
                    == code.trim()
            })
        })
        .expect("combined factor: time step and an event counter");
    assert_eq!(
        next["value"],
        otp_core::dynamic_password(SECRET, None, Some(k + 1), 6).unwrap(),
        "the combined password used and advanced the event counter"
    );
}

#[test]
fn encrypted_and_dynamic_output() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    let id = add_site(&env, "site");
    // Dynamic password = otp_core::dynamic_password over the stored password, with
    // the entry's event counter kept by the token (V9): 0, 1, 2 …
    for k in 0..2u64 {
        let code = env.ok(&[
            "vault",
            "get",
            "site",
            "--dynamic",
            "--event",
            "--digits",
            "8",
        ]);
        assert_eq!(
            code.trim(),
            otp_core::dynamic_password(SECRET, None, Some(k), 8).unwrap()
        );
    }
    // The event counter is the token's (V9): a caller's `--counter` is refused.
    let o = env.run(&["vault", "get", "site", "--dynamic", "--counter", "5"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--counter"));
    // RSA-OAEP to a key on the token, decrypted by openssl with a key we hold: use
    // an imported key pair so openssl has the private half.
    let have_openssl = Command::new("openssl").arg("version").output().is_ok();
    if !have_openssl {
        eprintln!("openssl missing: RSA-OAEP CLI check skipped");
        return;
    }
    let key = env.path("k.pem");
    let pubk = env.path("k.pub.pem");
    assert!(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out"
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    assert!(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&pubk)
        .status()
        .unwrap()
        .success());
    let decrypt = |ct: &Path| -> Vec<u8> {
        let o = Command::new("openssl")
            .args(["pkeyutl", "-decrypt", "-inkey"])
            .arg(&key)
            .args([
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
                "-in",
            ])
            .arg(ct)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        o.stdout
    };
    let ct = env.path("pw.bin");
    env.ok(&[
        "vault",
        "get",
        &id.to_string(),
        "--encrypt-to-pem",
        pubk.to_str().unwrap(),
        "-o",
        ct.to_str().unwrap(),
    ]);
    assert_eq!(decrypt(&ct), SECRET.as_bytes());
    // To a key on the token, by label.
    env.ok(&["import", "--file", key.to_str().unwrap(), "--label", "rsa"]);
    let ct2 = env.path("pw2.bin");
    env.ok(&[
        "vault",
        "get",
        "site",
        "--encrypt-to",
        "rsa",
        "-o",
        ct2.to_str().unwrap(),
    ]);
    assert_eq!(decrypt(&ct2), SECRET.as_bytes());
}

#[test]
fn csv_import_export() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    let csv = env.path("in.csv");
    std::fs::write(
        &csv,
        "\"Group\",\"Title\",\"Username\",\"Password\",\"URL\",\"Notes\",\"TOTP\",\"Icon\",\"Last Modified\",\"Created\"\n\
         \"Root\",\"Example\",\"alice\",\"pw,1\",\"https://example.com\",\"two\nlines\",\"\",\"0\",\"2024-01-31T12:00:00Z\",\"2024-01-31T12:00:00Z\"\n\
         \"Root\",\"Other\",\"bob\",\"hunter2\",\"https://other.example\",\"\",\"\",\"0\",\"2024-01-31T12:00:00Z\",\"2024-01-31T12:00:00Z\"\n",
    )
    .unwrap();
    env.answer(false);
    env.fails(&["vault", "import-csv", csv.to_str().unwrap()]);
    env.answer(true);
    assert!(env
        .ok(&["vault", "import-csv", csv.to_str().unwrap()])
        .contains("2 vault entries imported"));
    assert_eq!(env.ok(&["vault", "get", "Example"]), "pw,1\n");
    // Export without secrets needs no confirmation; with secrets it does.
    let out = env.path("out.csv");
    env.answer(false);
    env.ok(&["vault", "export-csv", out.to_str().unwrap(), "--no-secrets"]);
    assert!(!std::fs::read_to_string(&out).unwrap().contains("hunter2"));
    let err = env.fails(&["vault", "export-csv", out.to_str().unwrap()]);
    assert!(err.contains("not confirmed"), "{err}");
    env.answer(true);
    env.ok(&["vault", "export-csv", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(text.contains("\"hunter2\""), "{text}");
    assert!(text.contains("\"two\nlines\""), "{text}");
    // Round trip into a second token.
    let env2 = Env::new();
    env2.ok(&["init", "--label", "u"]);
    env2.ok(&["vault", "enable"]);
    env2.ok(&["vault", "import-csv", out.to_str().unwrap()]);
    assert_eq!(env2.ok(&["vault", "get", "Other"]), "hunter2\n");
}

#[test]
fn clipboard_copy_and_clear() {
    let mut env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    add_site(&env, "site");
    // No clipboard: a clear error.
    let err = env.fails(&["vault", "get", "site", "-c"]);
    assert!(err.contains("no clipboard"), "{err}");
    // A fake xclip keeping the clipboard in a file.
    let bin = env.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let board = env.path("board");
    script(
        &bin.join("xclip"),
        &format!(
            "case \" $* \" in *\" -o \"*) cat '{b}' 2>/dev/null;; *) cat > '{b}';; esac",
            b = board.display()
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    env.set_var("DISPLAY", ":0");
    env.set_var("PATH", path);
    env.ok(&["vault", "get", "site", "-c", "--clip-seconds", "1"]);
    assert_eq!(std::fs::read_to_string(&board).unwrap(), SECRET);
    let mut cleared = false;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if std::fs::read_to_string(&board).unwrap().is_empty() {
            cleared = true;
            break;
        }
    }
    assert!(cleared, "clipboard not cleared");
}

/// Every CLI read of vault secrets is gated as `vault-password` (issue 15, item 3):
/// with the gate on that class and no picture answered (a script: stdin closed),
/// `vault show --reveal`, `vault export-csv` (stdout or file) and `vault get` fail
/// with a clear error and print nothing secret; the masked `show`, the list and an
/// export without secrets stay ungated.
#[test]
fn vault_secret_reads_pass_the_gate() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    add_site(&env, "site");
    env.ok(&[
        "gate",
        "configure",
        "--so",
        "--classes",
        "vault-password",
        "--chances",
        "10",
    ]);
    let out_file = env.path("export.csv");
    let out_s = out_file.to_string_lossy().into_owned();
    let reads = [
        vec!["vault", "show", "site", "--reveal"],
        vec!["--json", "vault", "show", "site", "--reveal"],
        vec!["vault", "export-csv", "-"],
        vec!["vault", "export-csv", &out_s],
        vec!["vault", "get", "site"],
        vec!["vault", "get", "site", "--dynamic"],
    ];
    // Twice: the token's agent refuses the picture; then the agent is `deny` and
    // stdin is /dev/null: nobody could see a picture, so none is drawn.
    for round in 0..2 {
        if round == 0 {
            env.answer(false);
        } else {
            env.ok(&["prompt", "set", "--agent", "deny"]);
            env.ok(&["reattach"]);
        }
        for args in &reads {
            let o = env.run(args);
            assert_eq!(o.status.code(), Some(1), "{args:?} passed the gate: {o:?}");
            let out = String::from_utf8_lossy(&o.stdout);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !out.contains(SECRET) && !err.contains(SECRET),
                "{args:?}: secret printed"
            );
            assert!(out.is_empty(), "{args:?}: printed {out}");
            // Under --json the error is one JSON object.
            let json_error = args[0] == "--json"
                && serde_json::from_str::<serde_json::Value>(&err)
                    .is_ok_and(|v| v["error"].is_string());
            assert!(err.contains("error: ") || json_error, "{args:?}: {err}");
            if round == 1 {
                // Nobody can see a picture (agent deny, stdin /dev/null): refused
                // before one is drawn, with the fix (issue 22).
                assert!(err.contains("nobody can see one here"), "{args:?}: {err}");
                assert!(!err.contains("Picture check"), "{args:?}: {err}");
            }
            assert!(!out_file.exists(), "{args:?}: export file written");
        }
        let s = env.json(&["gate", "status", "--json"]);
        let used = if round == 0 { 6 } else { 0 };
        assert_eq!(s["failures"], used, "round {round}: pictures used: {s}");
        assert_eq!(s["locked"], false);
    }
    // Not secret reads: no picture.
    assert!(!env.ok(&["vault", "show", "site"]).contains(SECRET));
    env.ok(&["vault", "list"]);
    let csv = env.ok(&["vault", "export-csv", "-", "--no-secrets"]);
    assert!(csv.contains("site") && !csv.contains(SECRET), "{csv}");
}

/// V10, ¶0098: `vtoken vault get` without a name: the token lists its entries
/// through the prompt agent, the user picks one there, and the password comes out
/// in the requested form; refusing every entry gets nothing.
#[test]
fn get_without_a_name_lets_the_user_pick_on_the_token() {
    let env = Env::new();
    env.ok(&["init", "--label", "t"]);
    env.ok(&["vault", "enable"]);
    add_site(&env, "alpha");
    add_site(&env, "bravo");
    env.ok(&["vault", "edit", "bravo", "--password", "pw-bravo"]);
    // The agent confirms the pick of "bravo" only (and every other request).
    let pick = |want: &str| {
        script(
            &env.prompt,
            &format!(
                "echo \"== $VTOKEN_PROMPT_TITLE\" >> '{log}'\ncat >> '{log}'\n\
                 case \"$VTOKEN_PROMPT_TITLE\" in\n\
                 'Use \"{want}\"?'*) exit 0;;\n\
                 Use*) exit 1;;\n\
                 *) exit 0;;\n\
                 esac",
                log = env.path("prompts.log").display()
            ),
        );
    };
    pick("bravo");
    assert_eq!(env.ok(&["vault", "get"]), "pw-bravo\n");
    let log = env.prompts();
    assert!(log.contains("== Use \"alpha\"? (1 of 2)"), "{log}");
    assert!(log.contains("== Use \"bravo\"? (2 of 2)"), "{log}");
    assert!(log.contains("→ 2. bravo"), "{log}");
    // Other output forms apply to the picked entry.
    let code = env.ok(&["vault", "get", "--dynamic", "--event"]);
    assert_eq!(
        code.trim(),
        otp_core::dynamic_password("pw-bravo", None, Some(0), 6).unwrap()
    );
    // Nobody picked: nothing comes out.
    pick("nobody");
    let err = env.fails(&["vault", "get"]);
    assert!(err.contains("not confirmed"), "{err}");
}
