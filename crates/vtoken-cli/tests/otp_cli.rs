//! `vtoken otp` end to end: the exact command forms scripts rely on, agreement with
//! `oathtool`, the QR code, wrong PINs, and HOTP counters under SIGKILL.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::ops::Deref;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use otp_core::{hotp, Algorithm};
use serde_json::Value;

mod common;
use common::{Harness, Tmux, PIN, SO_PIN};
/// RFC 4226's secret "12345678901234567890" in base32.
const RFC_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const RFC_HEX: &str = "3132333435363738393031323334353637383930";

/// The shared harness; failures here print nothing on stdout.
struct Env(Harness);

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Env {
    /// A temporary token directory with one token (SO PIN [`SO_PIN`], user PIN [`PIN`]).
    fn new() -> Env {
        let env = Env(common::harness(""));
        env.ok(&["init", "--label", "otp", "--so-pin", SO_PIN, "--pin", PIN]);
        env
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.stdout.is_empty(), "nothing on stdout: {o:?}");
        common::fails_stderr(args, o)
    }

    /// The stored state of credential `name` from `otp list --json`.
    fn cred(&self, name: &str) -> Value {
        let list = self.json(&["otp", "list", "--json", "--pin", PIN]);
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {list}"))
            .clone()
    }
}

fn oathtool(args: &[&str]) -> String {
    let o = Command::new("oathtool").args(args).output().unwrap();
    assert!(o.status.success(), "oathtool {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn exact_forms_agree_with_oathtool() {
    let env = Env::new();
    // HOTP from a URI: the name is the URI's label.
    let uri = format!("otpauth://hotp/ACME:alice?secret={RFC_B32}&issuer=ACME&counter=7");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    for c in 7..12 {
        let out = env.ok(&["otp", "code", "--pin", PIN, "ACME:alice"]);
        assert_eq!(
            out,
            format!("{}\n", oathtool(&["-c", &c.to_string(), RFC_HEX]))
        );
    }
    assert_eq!(env.cred("ACME:alice")["counter"], 12);

    // TOTP, SHA-256, 8 digits, 60 s, from --name/--secret; --time picks the moment.
    env.ok(&[
        "otp",
        "add",
        "--pin",
        PIN,
        "--name",
        "Bank:bob",
        "--secret",
        RFC_B32,
        "--digits",
        "8",
        "--period",
        "60",
        "--algorithm",
        "sha256",
    ]);
    for t in ["59", "1111111109", "1700000000", "2000000000"] {
        let out = env.ok(&["otp", "code", "--pin", PIN, "Bank:bob", "--time", t]);
        let want = oathtool(&[
            "--totp=SHA256",
            "-s",
            "60s",
            "-d",
            "8",
            "-N",
            &format!("@{t}"),
            RFC_HEX,
        ]);
        assert_eq!(out.trim(), want, "T={t}");
    }
    // TOTP now (allow for a step boundary between the two runs).
    let now = env.ok(&["otp", "code", "--pin", PIN, "Bank:bob"]);
    let a = oathtool(&["--totp=SHA256", "-s", "60s", "-d", "8", RFC_HEX]);
    let b = oathtool(&[
        "--totp=SHA256",
        "-s",
        "60s",
        "-d",
        "8",
        "-N",
        "now - 60 seconds",
        RFC_HEX,
    ]);
    assert!(now.trim() == a || now.trim() == b, "{now} vs {a}/{b}");

    // HOTP from --name/--issuer/--secret with a starting counter, PIN from VTOKEN_PIN.
    env.ok(&[
        "otp",
        "add",
        "--pin",
        PIN,
        "--name",
        "carol",
        "--issuer",
        "Shop",
        "--secret",
        RFC_B32,
        "--hotp",
        "--counter",
        "100",
        "--digits",
        "8",
    ]);
    let o = env
        .cmd(&["otp", "code", "Shop:carol"])
        .env("VTOKEN_PIN", PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().trim(),
        oathtool(&["-c", "100", "-d", "8", RFC_HEX])
    );

    // list --json
    let list = env.json(&["otp", "list", "--json", "--pin", PIN]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ACME:alice", "Bank:bob", "Shop:carol"]);
    let bob = &list[1];
    assert_eq!(bob["kind"], "totp");
    assert_eq!(bob["algorithm"], "SHA256");
    assert_eq!(bob["digits"], 8);
    assert_eq!(bob["period"], 60);
    assert_eq!(list[2]["counter"], 101);
    // Text list never shows a secret.
    let text = env.ok(&["otp", "list", "--pin", PIN]);
    assert!(
        text.contains("ACME:alice") && !text.contains(RFC_B32),
        "{text}"
    );

    // Duplicates and unknown names are clear errors; delete removes.
    let err = env.fails(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    assert!(err.contains("exists already"), "{err}");
    let err = env.fails(&["otp", "code", "--pin", PIN, "nobody"]);
    assert!(err.contains("no OTP credential"), "{err}");
    env.ok(&["otp", "delete", "--pin", PIN, "Shop:carol", "--force"]);
    env.fails(&["otp", "code", "--pin", PIN, "Shop:carol"]);
    assert_eq!(
        env.json(&["otp", "list", "--json", "--pin", PIN])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The credential shows up as a PKCS#11 secret key object.
    let objs = env.ok(&["objects", "list", "--pin", PIN]);
    assert!(objs.contains("ACME:alice"), "{objs}");
}

#[test]
fn wrong_pin_fails_and_leaves_the_counter() {
    let env = Env::new();
    let uri = format!("otpauth://hotp/W:x?secret={RFC_B32}&issuer=W&counter=0");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    let err = env.fails(&["otp", "code", "--pin", "999999", "W:x"]);
    assert!(err.contains("incorrect user PIN"), "{err}");
    // No PIN and no terminal: an error, not a hang.
    env.fails(&["otp", "code", "W:x"]);
    env.fails(&[
        "otp",
        "add",
        "--pin",
        "000000",
        "--uri",
        &uri.replace("W:x", "W:y"),
    ]);
    assert_eq!(env.cred("W:x")["counter"], 0);
    assert_eq!(
        env.ok(&["otp", "code", "--pin", PIN, "W:x"]).trim(),
        "755224"
    );
}

#[test]
fn confirm_flag_refuses_without_a_prompt_agent() {
    let env = Env::new();
    let uri = format!("otpauth://hotp/C:x?secret={RFC_B32}&issuer=C&counter=0");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri, "--confirm"]);
    assert_eq!(env.cred("C:x")["confirm"], true);
    // The default agent is `deny`: no code, and the counter does not move.
    let err = env.fails(&["otp", "code", "--pin", PIN, "C:x"]);
    assert!(err.contains("not confirmed"), "{err}");
    // "No agent" is told apart from a refusal, with the fix.
    assert!(
        err.contains("no prompt agent") && err.contains("vtoken prompt set --agent"),
        "{err}"
    );
    assert_eq!(env.cred("C:x")["counter"], 0);
}

#[test]
fn show_prints_the_uri_and_a_half_block_qr_code() {
    let env = Env::new();
    let uri = format!("otpauth://totp/Example:alice@example.com?secret={RFC_B32}&issuer=Example");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    let out = env.ok(&[
        "otp",
        "show",
        "--pin",
        PIN,
        "Example:alice@example.com",
        "--qr",
    ]);
    let mut lines = out.lines();
    let shown = lines.next().unwrap();
    assert!(
        shown.starts_with("otpauth://totp/Example:alice%40example.com?secret="),
        "{shown}"
    );
    assert_eq!(
        otp_core::OtpUri::parse(shown).unwrap(),
        otp_core::OtpUri::parse(&uri).unwrap()
    );
    let qr: Vec<&str> = lines.collect();
    assert!(qr.len() > 10, "{out}");
    assert!(
        out.contains('▀') && out.contains('▄') && out.contains('█'),
        "{out}"
    );
    // Square: rows are half as many as columns (two modules per character).
    let width = qr[0].chars().count();
    assert!(qr.iter().all(|l| l.chars().count() == width));
    assert!((qr.len() as isize - (width as isize + 1) / 2).abs() <= 1);
    // Without --qr: only the URI.
    let out = env.ok(&["otp", "show", "--pin", PIN, "Example:alice@example.com"]);
    assert_eq!(out.lines().count(), 1);
    env.fails(&[
        "otp",
        "show",
        "--pin",
        "000000",
        "Example:alice@example.com",
        "--qr",
    ]);
}

/// A small deterministic PRNG (xorshift64*), seeded from the clock.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn hotp_counter_never_repeats_across_50_sigkills() {
    let env = Env::new();
    // 10 digits: the dynamic-truncation values themselves, so codes identify counters.
    let uri = format!("otpauth://hotp/Kill:test?secret={RFC_B32}&issuer=Kill&counter=0&digits=10");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    const RANGE: u64 = 5000;
    let table: HashMap<String, u64> = (0..RANGE)
        .map(|c| {
            (
                hotp(b"12345678901234567890", c, 10, Algorithm::Sha1).unwrap(),
                c,
            )
        })
        .collect();
    assert_eq!(table.len() as u64, RANGE, "codes identify their counters");

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut printed: Vec<u64> = Vec::new(); // counters of every code ever printed
    let mut completed: Vec<u64> = Vec::new(); // counters of runs that exited 0
    let mut killed_after_printing = 0;
    let start = Instant::now();
    let mut runs = 0;
    while kills < 50 {
        assert!(runs < 2000, "too many runs without 50 kills");
        runs += 1;
        let mut child = env
            .cmd(&["otp", "code", "--pin", PIN, "Kill:test"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let delay = rng.below(31);
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
        }
        let status = child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = out.trim();
        let counter = if code.is_empty() {
            None
        } else {
            Some(
                *table
                    .get(code)
                    .unwrap_or_else(|| panic!("printed {code:?}: not an HOTP code of 0..{RANGE}")),
            )
        };
        if let Some(c) = counter {
            printed.push(c);
        }
        if status.signal() == Some(libc_sigkill()) {
            kills += 1;
            if counter.is_some() {
                killed_after_printing += 1;
            }
        } else {
            assert!(status.success(), "run {runs}: {status:?}, stderr: {err}");
            completed.push(counter.expect("a completed run prints a code"));
        }
    }
    // The token still works after all that, and continues above every used counter.
    for _ in 0..3 {
        let code = env.ok(&["otp", "code", "--pin", PIN, "Kill:test"]);
        let c = table[code.trim()];
        printed.push(c);
        completed.push(c);
    }
    let unique: HashSet<u64> = printed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        printed.len(),
        "a counter was printed twice: {printed:?}"
    );
    assert!(
        completed.windows(2).all(|w| w[0] < w[1]),
        "completed runs' counters not strictly increasing: {completed:?}"
    );
    let stored = env.cred("Kill:test")["counter"].as_u64().unwrap();
    assert!(stored >= printed.len() as u64);
    assert!(stored > *printed.iter().max().unwrap());
    eprintln!(
        "SIGKILL test: {runs} runs + 3, {kills} SIGKILLs ({killed_after_printing} after printing), \
         {} completed, {} codes printed, all distinct; stored counter {stored} \
         ({} counters burned by kills); {:?}",
        completed.len(),
        printed.len(),
        stored - printed.len() as u64,
        start.elapsed()
    );
}

fn libc_sigkill() -> i32 {
    9
}

#[test]
fn names_match_ignoring_case_and_by_unique_prefix() {
    let env = Env::new();
    for (name, secret) in [
        ("GitHub:alice", RFC_B32),
        ("GitLab:bob", "JBSWY3DPEHPK3PXP"),
    ] {
        env.ok(&[
            "otp", "add", "--pin", PIN, "--name", name, "--secret", secret,
        ]);
    }
    let at = |sel: &str| env.ok(&["otp", "code", "--pin", PIN, sel, "--time", "1700000000"]);
    let want = oathtool(&["--totp", "-N", "@1700000000", RFC_HEX]);
    for sel in ["GitHub:alice", "github:ALICE", "github", "GITH", "alice"] {
        assert_eq!(at(sel).trim(), want, "{sel}");
    }
    // Ambiguous: an error naming both, no code.
    let err = env.fails(&["otp", "code", "--pin", PIN, "git"]);
    assert!(
        err.contains("GitHub:alice") && err.contains("GitLab:bob"),
        "{err}"
    );
    let err = env.fails(&["otp", "code", "--pin", PIN, "nobody"]);
    assert!(err.contains("no OTP credential"), "{err}");
}

#[test]
fn codes_shows_every_totp_with_seconds_left_and_never_moves_hotp() {
    let env = Env::new();
    env.ok(&[
        "otp", "add", "--pin", PIN, "--name", "Bank:bob", "--secret", RFC_B32,
    ]);
    let uri = format!("otpauth://hotp/H:x?secret={RFC_B32}&issuer=H&counter=5");
    env.ok(&["otp", "add", "--pin", PIN, "--uri", &uri]);
    let text = env.ok(&["otp", "codes", "--pin", PIN]);
    let bob = text.lines().find(|l| l.starts_with("Bank:bob")).unwrap();
    let code = bob.split_whitespace().nth(1).unwrap();
    let (a, b) = (
        oathtool(&["--totp", RFC_HEX]),
        oathtool(&["--totp", "-N", "now - 30 seconds", RFC_HEX]),
    );
    assert!(code == a || code == b, "{bob} vs {a}/{b}");
    assert!(bob.contains("s left)"), "{bob}");
    let h = text.lines().find(|l| l.starts_with("H:x")).unwrap();
    assert!(h.contains("HOTP"), "{h}");
    let v = env.json(&["otp", "codes", "--json", "--pin", PIN]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let left = rows[0]["valid_for"].as_u64().unwrap();
    assert!((1..=30).contains(&left), "{v}");
    assert_eq!(rows[1]["code"], Value::Null);
    assert_eq!(env.cred("H:x")["counter"], 5, "codes never advances HOTP");
    // A filter by prefix.
    let only = env.ok(&["otp", "codes", "--pin", PIN, "bank"]);
    assert_eq!(only.lines().count(), 1, "{only}");
}

#[test]
fn delete_asks_unless_forced() {
    let env = Env::new();
    env.ok(&[
        "otp", "add", "--pin", PIN, "--name", "Del:me", "--secret", RFC_B32,
    ]);
    // No terminal: refused with the fix, nothing deleted.
    let err = env.fails(&["otp", "delete", "--pin", PIN, "del"]);
    assert!(err.contains("--force"), "{err}");
    env.cred("Del:me");
    // On a terminal: "n" keeps it, "y" deletes it.
    let tmux = Tmux::new();
    let bin = common::vtoken().display().to_string();
    tmux.run(
        &env,
        "no",
        &format!("{bin} otp delete del"),
        &[("VTOKEN_PIN", PIN)],
    );
    tmux.wait_for("no", "Delete OTP credential \"Del:me\"? [y/N]");
    tmux.type_line("no", "n");
    let s = tmux.wait_for("no", "[exit 1]");
    assert!(s.contains("not deleted"), "{s}");
    env.cred("Del:me");
    tmux.run(
        &env,
        "yes",
        &format!("{bin} otp delete del"),
        &[("VTOKEN_PIN", PIN)],
    );
    tmux.wait_for("yes", "[y/N]");
    tmux.type_line("yes", "y");
    tmux.wait_for("yes", "[exit 0]");
    assert!(env
        .json(&["otp", "list", "--json", "--pin", PIN])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn add_asks_the_secret_without_echo() {
    let env = Env::new();
    let tmux = Tmux::new();
    let bin = common::vtoken().display().to_string();
    tmux.run(
        &env,
        "add",
        &format!("{bin} otp add --name Echo:test"),
        &[("VTOKEN_PIN", PIN)],
    );
    tmux.wait_for("add", "Secret (base32");
    // A typo first: asked again, not aborted.
    tmux.type_line("add", "not base32!");
    tmux.wait_for("add", "try again");
    tmux.type_line("add", "gezd gnbv gy3t qojq gezd gnbv gy3t qojq");
    let s = tmux.wait_for("add", "[exit 0]");
    assert!(
        !s.to_lowercase().contains("gezd"),
        "the secret was echoed:\n{s}"
    );
    assert_eq!(
        env.ok(&["otp", "code", "--pin", PIN, "Echo:test", "--time", "59"])
            .trim(),
        oathtool(&["--totp", "-N", "@59", RFC_HEX])
    );
    // Without a terminal: a clear error naming the options.
    let err = env.fails(&["otp", "add", "--pin", PIN, "--name", "x"]);
    assert!(err.contains("--secret"), "{err}");
}

#[test]
fn add_from_a_qr_code_picture() {
    let env = Env::new();
    let uri = format!("otpauth://totp/QR:carol?secret={RFC_B32}&issuer=QR&digits=8");
    let png = env.path("qr.png");
    let o = Command::new("qrencode")
        .args(["-o", png.to_str().unwrap(), "-s", "6", &uri])
        .output()
        .expect("qrencode (apt-get install qrencode)");
    assert!(o.status.success(), "{o:?}");
    env.ok(&[
        "otp",
        "add",
        "--pin",
        PIN,
        "--qr-image",
        png.to_str().unwrap(),
    ]);
    assert_eq!(env.cred("QR:carol")["digits"], 8);
    assert_eq!(
        env.ok(&["otp", "code", "--pin", PIN, "qr", "--time", "59"])
            .trim(),
        oathtool(&["--totp", "-d", "8", "-N", "@59", RFC_HEX])
    );
    // A picture without a QR code: a clear error.
    let blank = env.path("blank.png");
    let o = Command::new("qrencode")
        .args(["-o", blank.to_str().unwrap(), "x"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = env.fails(&[
        "otp",
        "add",
        "--pin",
        PIN,
        "--qr-image",
        blank.to_str().unwrap(),
    ]);
    assert!(err.contains("not an OTP credential"), "{err}");
    let err = env.fails(&["otp", "add", "--pin", PIN, "--qr-image", "/nonexistent.png"]);
    assert!(err.contains("cannot read the picture"), "{err}");
}
