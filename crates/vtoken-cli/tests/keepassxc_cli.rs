//! `vtoken vault` against the real KeePassXC (`keepassxc-cli` from Debian's
//! `keepassxc` package, issue 22): CSV exported by KeePassXC read by vtoken and
//! written back without loss, KDBX 4 both ways, re-imports that add nothing; and
//! `vault add --generate`, duplicate warnings, lenient activation codes.

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{script, Harness, PIN, SO_PIN};

const KDBX_PW: &str = "kx-pass-77";
/// "Hello!\xde\xad\xbe\xef" in base32.
const TOTP_B32: &str = "JBSWY3DPEHPK3PXP";

/// A token with an enabled vault and a confirming prompt agent.
struct Env(Harness);

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        let mut h = common::harness("");
        let prompt = h.path("prompt.sh");
        script(&prompt, "cat > /dev/null\nexit 0");
        h.set_var("VTOKEN_PROMPT", format!("command:{}", prompt.display()));
        h.set_var("VTOKEN_PIN", PIN);
        h.set_var("VTOKEN_SO_PIN", SO_PIN);
        h.set_var("VTOKEN_KDBX_PASSPHRASE", KDBX_PW);
        let e = Env(h);
        e.ok(&["init", "--label", "kx"]);
        e.ok(&["vault", "enable"]);
        e
    }

    /// The entry titled `title`, secrets revealed, as `vault show --json` gives it.
    fn show(&self, title: &str) -> Value {
        self.json(&["--json", "vault", "show", title, "--reveal"])
    }

    fn field(&self, title: &str, name: &str) -> Option<String> {
        self.show(title)["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["value"].as_str().unwrap().to_string())
    }
}

/// `keepassxc-cli ARGS` with the database passphrase on stdin.
fn kx(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut c = Command::new("keepassxc-cli")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keepassxc-cli (apt-get install keepassxc)");
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "keepassxc-cli {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// A KDBX made by KeePassXC from its own XML format: a login with KeePassXC's
/// TOTP in the root group, and a bank card (vtoken's kind attribute, named
/// fields, protected where secret) in the group Bank.
fn keepassxc_db(dir: &Path) -> std::path::PathBuf {
    let xml = dir.join("in.xml");
    std::fs::write(
        &xml,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<KeePassFile><Meta><Generator>test</Generator></Meta><Root><Group>
<UUID>AAAAAAAAAAAAAAAAAAAAAQ==</UUID><Name>Passwords</Name>
<Entry><UUID>AAAAAAAAAAAAAAAAAAAAAg==</UUID>
<String><Key>Title</Key><Value>GitHub</Value></String>
<String><Key>UserName</Key><Value>alice</Value></String>
<String><Key>Password</Key><Value ProtectInMemory="True">gh-pass,"1"</Value></String>
<String><Key>URL</Key><Value>https://github.com</Value></String>
<String><Key>Notes</Key><Value>two
lines</Value></String>
<String><Key>otp</Key><Value ProtectInMemory="True">otpauth://totp/GitHub:alice?secret={TOTP_B32}&amp;period=30&amp;digits=6&amp;issuer=GitHub</Value></String>
</Entry>
<Group><UUID>AAAAAAAAAAAAAAAAAAAAAw==</UUID><Name>Bank</Name>
<Entry><UUID>AAAAAAAAAAAAAAAAAAAABA==</UUID>
<String><Key>Title</Key><Value>visa</Value></String>
<String><Key>vtoken-kind</Key><Value>bank-card</Value></String>
<String><Key>bank</Key><Value>HSBC</Value></String>
<String><Key>card_number</Key><Value ProtectInMemory="True">4111111111111111</Value></String>
<String><Key>card_pin</Key><Value ProtectInMemory="True">1234</Value></String>
</Entry></Group>
</Group></Root></KeePassFile>
"#
        ),
    )
    .unwrap();
    let db = dir.join("kx.kdbx");
    kx(
        &[
            "import",
            "-q",
            "-p",
            "-t",
            "100",
            xml.to_str().unwrap(),
            db.to_str().unwrap(),
        ],
        &format!("{KDBX_PW}\n{KDBX_PW}\n"),
    );
    db
}

fn oathtool_at(t: u64) -> String {
    let o = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{t}"), TOTP_B32])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The rows of a CSV text, by vtoken's own RFC 4180 reader.
fn rows(text: &str) -> Vec<Vec<String>> {
    vault_core::vault::csv::parse(text).unwrap()
}

#[test]
fn keepassxc_csv_round_trips_without_loss() {
    let env = Env::new();
    let db = keepassxc_db(env.dir());
    let theirs = kx(
        &["export", "-q", "-f", "csv", db.to_str().unwrap()],
        &format!("{KDBX_PW}\n"),
    );
    let csv = env.path("keepassxc.csv");
    std::fs::write(&csv, &theirs).unwrap();
    let r = env.json(&["--json", "vault", "import-csv", csv.to_str().unwrap()]);
    assert_eq!(r["added"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["otp_added"], serde_json::json!(["GitHub:alice"]));
    assert_eq!(env.ok(&["vault", "get", "GitHub"]), "gh-pass,\"1\"\n");
    assert_eq!(env.field("visa", "group").as_deref(), Some("Bank"));
    // The TOTP column is now an OTP credential whose codes match oathtool.
    let t = "1700000000";
    assert_eq!(
        env.ok(&["otp", "code", "GitHub:alice", "--time", t]).trim(),
        oathtool_at(1_700_000_000)
    );
    // Importing the same file again adds nothing.
    let r = env.json(&["--json", "vault", "import-csv", csv.to_str().unwrap()]);
    assert_eq!(r["added"], serde_json::json!([]));
    assert_eq!(r["unchanged"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.json(&["--json", "vault", "list"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        env.json(&["otp", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // vtoken's export: KeePassXC's columns hold the same values (the root group is
    // named Root instead of Passwords), the TOTP the same credential.
    let ours = env.ok(&["vault", "export-csv", "-"]);
    let (a, b) = (rows(&theirs), rows(&ours));
    assert_eq!(&b[0][..10], &a[0][..]);
    assert_eq!(b.len(), a.len());
    for (x, y) in a[1..].iter().zip(&b[1..]) {
        assert_eq!(
            y[0],
            x[0].replacen("Passwords", "Root", 1),
            "group of {}",
            x[1]
        );
        for c in [1, 2, 3, 4, 5, 8, 9] {
            assert_eq!(y[c], x[c], "column {} of {}", a[0][c], x[1]);
        }
        if x[6].is_empty() {
            assert!(y[6].is_empty());
        } else {
            assert_eq!(
                otp_core::OtpUri::parse(&y[6]).unwrap(),
                otp_core::OtpUri::parse(&x[6]).unwrap()
            );
        }
    }
    // ... and reads back into another token the same: no loss either way.
    let out = env.path("ours.csv");
    std::fs::write(&out, &ours).unwrap();
    let env2 = Env::new();
    env2.ok(&["vault", "import-csv", out.to_str().unwrap()]);
    assert_eq!(env2.ok(&["vault", "export-csv", "-"]), ours);
    assert_eq!(
        env2.ok(&["otp", "code", "GitHub:alice", "--time", t])
            .trim(),
        oathtool_at(1_700_000_000)
    );
}

#[test]
fn kdbx_both_ways_with_keepassxc() {
    let env = Env::new();
    // vtoken reads what KeePassXC wrote: kinds, groups, named secret fields, TOTP.
    let db = keepassxc_db(env.dir());
    let r = env.json(&["--json", "vault", "import-kdbx", db.to_str().unwrap()]);
    assert_eq!(r["added"].as_array().unwrap().len(), 2, "{r}");
    let visa = env.show("visa");
    assert_eq!(visa["kind"], "bank-card");
    assert_eq!(
        env.field("visa", "card_number").as_deref(),
        Some("4111111111111111")
    );
    assert_eq!(env.field("visa", "group").as_deref(), Some("Bank"));
    let secret: Vec<bool> = visa["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "card_pin" || f["name"] == "card_number")
        .map(|f| f["secret"].as_bool().unwrap())
        .collect();
    assert_eq!(secret, [true, true]);
    assert_eq!(
        env.ok(&["otp", "code", "GitHub:alice", "--time", "1700000000"])
            .trim(),
        oathtool_at(1_700_000_000)
    );
    // Again: nothing added.
    let r = env.json(&["--json", "vault", "import-kdbx", db.to_str().unwrap()]);
    assert_eq!(r["added"], serde_json::json!([]), "{r}");
    assert_eq!(r["otp_added"], serde_json::json!([]), "{r}");
    // A wrong passphrase: a clear error, nothing imported.
    let o = env.run_with(
        &["vault", "import-kdbx", db.to_str().unwrap()],
        &[("VTOKEN_KDBX_PASSPHRASE", "wrong".to_string())],
    );
    let err = common::fails_stderr(&["import-kdbx"], o);
    assert!(err.contains("passphrase"), "{err}");

    // KeePassXC reads what vtoken wrote.
    let out = env.path("vtoken.kdbx");
    env.ok(&["vault", "export-kdbx", out.to_str().unwrap()]);
    let o = out.to_str().unwrap();
    let pw = format!("{KDBX_PW}\n");
    let ls = kx(&["ls", "-q", "-R", "-f", o], &pw);
    assert!(ls.contains("Bank/visa") && ls.contains("GitHub"), "{ls}");
    assert_eq!(
        kx(
            &["show", "-q", "-s", "-a", "card_number", o, "Bank/visa"],
            &pw
        )
        .trim(),
        "4111111111111111"
    );
    assert_eq!(
        kx(&["show", "-q", "-s", "-a", "Password", o, "GitHub"], &pw).trim(),
        "gh-pass,\"1\""
    );
    assert_eq!(
        kx(&["show", "-q", "-a", "UserName", o, "GitHub"], &pw).trim(),
        "alice"
    );
    // KeePassXC computes the same TOTP from the exported credential.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = kx(&["show", "-q", "-t", o, "GitHub"], &pw);
    assert!(
        [
            oathtool_at(now),
            oathtool_at(now + 30),
            oathtool_at(now - 30)
        ]
        .contains(&code.trim().to_string()),
        "{code}"
    );
    // And vtoken reads its own export into a second token the same.
    let env2 = Env::new();
    env2.ok(&["vault", "import-kdbx", o]);
    assert_eq!(env2.show("visa")["kind"], "bank-card");
    assert_eq!(env2.field("visa", "card_pin").as_deref(), Some("1234"));
    assert_eq!(env2.ok(&["vault", "get", "GitHub"]), "gh-pass,\"1\"\n");

    // A database KeePassXC made with db-create and add.
    let made = env.path("made.kdbx");
    let m = made.to_str().unwrap();
    kx(
        &["db-create", "-q", "-p", "-t", "100", m],
        &format!("{KDBX_PW}\n{KDBX_PW}\n"),
    );
    kx(&["mkdir", "-q", m, "Work"], &pw);
    kx(
        &[
            "add",
            "-q",
            "-u",
            "bob",
            "--url",
            "https://intra.example",
            "-p",
            m,
            "Work/Intranet",
        ],
        &format!("{KDBX_PW}\nhunter2\n"),
    );
    let env3 = Env::new();
    env3.ok(&["vault", "import-kdbx", m]);
    assert_eq!(env3.ok(&["vault", "get", "Intranet"]), "hunter2\n");
    assert_eq!(env3.field("Intranet", "group").as_deref(), Some("Work"));
    assert_eq!(env3.field("Intranet", "username").as_deref(), Some("bob"));
}

#[test]
fn generate_and_duplicate_warnings() {
    let env = Env::new();
    let o = env.run(&[
        "--json",
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "shop",
        "--generate",
        "--length",
        "24",
        "--no-symbols",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    let pw = err
        .lines()
        .find_map(|l| l.strip_prefix("generated password (shown once): "))
        .unwrap_or_else(|| panic!("{err}"))
        .to_string();
    assert_eq!(pw.len(), 24);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw}");
    assert_eq!(env.ok(&["vault", "get", "shop"]), format!("{pw}\n"));
    // With symbols by default; two generations differ.
    let o = env.run(&[
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "shop",
        "--generate",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: a vault entry titled \"shop\" exists already"),
        "{err}"
    );
    let pw2 = err
        .lines()
        .find_map(|l| l.strip_prefix("generated password (shown once): "))
        .unwrap();
    assert_eq!(pw2.len(), 20);
    assert_ne!(pw2, pw);
    // Plain-words length error; --generate and --password conflict.
    let err = env.fails(&[
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "x",
        "--generate",
        "--length",
        "4",
    ]);
    assert!(err.contains("8 to 128 characters"), "{err}");
    let o = env.run(&[
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "x",
        "--generate",
        "--password",
        "p",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    // Keys: the same label or ID again is a warning, not an error.
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "sig", "--id", "01",
    ]);
    let o = env.run(&[
        "key", "generate", "--type", "ec-p256", "--label", "sig", "--id", "01",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("a key labelled \"sig\" is on the token already"),
        "{err}"
    );
    assert!(
        err.contains("a key with ID 01 is on the token already"),
        "{err}"
    );
}

#[test]
fn activation_codes_forgive_look_alikes() {
    let env = Env(common::harness(""));
    let v = env.json(&[
        "--json", "init", "--label", "o", "--so-pin", SO_PIN, "--pin", PIN, "--vault", "optional",
    ]);
    let code = v["vault"]["activation_code"].as_str().unwrap().to_string();
    assert!(!code.contains(['I', 'L', 'O', 'U']), "{code}");
    // A wrong code costs a try.
    let err = env.fails(&[
        "vault",
        "activate",
        "--pin",
        PIN,
        "--code",
        "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ",
    ]);
    assert!(err.contains("4"), "{err}");
    // The right one typed with every look-alike swapped, lower case, no dashes.
    let typed: String = code
        .chars()
        .filter(|c| *c != '-')
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    env.ok(&["vault", "activate", "--pin", PIN, "--code", &typed]);
    let st = env.json(&["--json", "vault", "status"]);
    assert_eq!(st["activated"], true, "{st}");
}

/// Every export names an entry by the same UUID (derived from the token and the
/// entry's id), so KeePassXC's merge of two exports, with an entry renamed in
/// between, updates that entry instead of adding a second copy of everything.
#[test]
fn kdbx_exports_merge_without_duplicates() {
    let env = Env::new();
    let db = keepassxc_db(env.dir());
    env.ok(&["vault", "import-kdbx", db.to_str().unwrap()]);
    let first = env.path("first.kdbx");
    let second = env.path("second.kdbx");
    let (a, b) = (first.to_str().unwrap(), second.to_str().unwrap());
    env.ok(&["vault", "export-kdbx", a]);
    // KeePassXC's merge keeps the newer entry by its modification time, in seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["vault", "edit", "GitHub", "--title", "GitHub2"]);
    env.ok(&["vault", "export-kdbx", b]);
    let pw = format!("{KDBX_PW}\n");
    // The same entry has the same UUID in both exports, even renamed.
    let uuid = |db: &str, e: &str| kx(&["show", "-q", "-a", "Uuid", db, e], &pw);
    assert_eq!(uuid(a, "Bank/visa"), uuid(b, "Bank/visa"));
    assert_eq!(uuid(a, "GitHub"), uuid(b, "GitHub2"));
    assert_ne!(uuid(a, "GitHub"), uuid(a, "Bank/visa"));
    kx(&["merge", "-q", "-s", a, b], &pw);
    let ls = kx(&["ls", "-q", "-R", "-f", a], &pw);
    let entries: Vec<&str> = ls
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .collect();
    assert_eq!(entries, vec!["GitHub2", "Bank/visa"], "{ls}");
    // Exporting the same vault again gives a database KeePassXC merges to no change.
    let third = env.path("third.kdbx");
    let c = third.to_str().unwrap();
    env.ok(&["vault", "export-kdbx", c]);
    kx(&["merge", "-q", "-s", a, c], &pw);
    assert_eq!(kx(&["ls", "-q", "-R", "-f", a], &pw), ls);
}
