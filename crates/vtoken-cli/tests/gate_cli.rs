//! `vtoken gate`, `vtoken reattach`, `--gate` and the CLI's picture check, end to end.
//!
//! Tests that type the right answer need a `vtoken` built with the test-only hook:
//! `artifacts::hooked_cli` (`VTOKEN_HOOKED_BIN` when set, as `scripts/test` does,
//! else built once into `target/test-hooks`, never touching the normal build).

use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{artifacts, Harness, PIN, SO_PIN};

/// The shared harness with a token `gate` and a data file.
struct Env(Harness);

impl Deref for Env {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        let env = Env(common::harness(""));
        std::fs::write(env.path("data"), b"pay 100 to bob\n").unwrap();
        env.ok(&["init", "--label", "gate", "--so-pin", SO_PIN, "--pin", PIN]);
        env
    }

    fn status(&self) -> Value {
        self.json(&["gate", "status", "--json"])
    }

    fn sign_args<'a>(&self, label: &'a str, out: &'a str) -> Vec<&'a str> {
        vec![
            "sign", "--label", label, "-i", "DATA", "-o", out, "--pin", PIN,
        ]
    }
}

/// `vtoken sign` arguments with the data file filled in.
fn with_data(env: &Env, args: Vec<&str>) -> Vec<String> {
    let data = env.path("data");
    args.into_iter()
        .map(|a| {
            if a == "DATA" {
                data.to_string_lossy().into_owned()
            } else {
                a.to_string()
            }
        })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn off_by_default_status_and_info() {
    let env = Env::new();
    let s = env.status();
    assert_eq!(s["state"], "initial");
    assert_eq!(s["locked"], false);
    assert_eq!(s["policy"]["enabled"], true);
    assert_eq!(s["policy"]["classes"], serde_json::json!([]));
    assert_eq!(s["policy"]["chances"], 3);
    assert_eq!(s["policy"]["lifetime_ms"], 5000);
    assert_eq!(s["policy"]["transport_ms"], 1000);
    assert_eq!(s["chances_left"], 3);
    let info = env.json(&["info", "--json"]);
    assert_eq!(info["gate"], "initial");
    assert!(env.ok(&["info"]).contains("state:          initial"));
    // An unflagged key signs without any picture.
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    let out = env.path("sig").to_string_lossy().into_owned();
    let args = with_data(&env, env.sign_args("k", &out));
    env.ok(&strs(&args));
}

#[test]
fn gate_flag_at_generation_and_in_listing() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "g", "--gate", "--pin", PIN,
    ]);
    env.ok(&[
        "key", "generate", "--type", "aes256", "--label", "s", "--gate", "--pin", PIN,
    ]);
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "p", "--pin", PIN,
    ]);
    let list = env.json(&["objects", "list", "--json", "--pin", PIN]);
    let gated: Vec<(String, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (format!("{}/{}", o["label"], o["class"]), o["gated"].clone()))
        .collect();
    for (what, g) in &gated {
        let want = if what.contains("public") {
            Value::Null
        } else if what.contains("\"p\"") {
            Value::Bool(false)
        } else {
            Value::Bool(true)
        };
        assert_eq!(g, &want, "{what}: {gated:?}");
    }
    let text = env.ok(&["objects", "list", "--pin", PIN]);
    assert_eq!(text.matches("gated").count(), 2, "{text}");
}

#[test]
fn wrong_answers_lock_until_reattach() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    env.ok(&["gate", "configure", "--classes", "sign", "--pin", PIN]);
    assert_eq!(
        env.status()["policy"]["classes"],
        serde_json::json!(["sign"])
    );
    let out = env.path("sig").to_string_lossy().into_owned();
    let args = with_data(&env, env.sign_args("k", &out));
    // A wrong answer, a refresh (`r`, the token's tty agent's key too), another
    // wrong answer: locked.
    let o = env.run_in(&strs(&args), "WRONG1\nr\nWRONG2\n");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Enter alone or r: new picture, q: give up"),
        "{err}"
    );
    assert!(
        err.contains("Picture check failed: wrong answer; 2 chances left"),
        "{err}"
    );
    // The lock says what became of the last chance (the third answer was wrong).
    assert!(
        err.contains("the answer to the last picture was wrong; the token is locked"),
        "{err}"
    );
    assert!(err.contains("may be compromised"), "{err}");
    assert!(err.contains("vtoken reattach"), "{err}");
    assert!(!Path::new(&out).exists());
    // The lock is in the token file: a new process sees it, and everything fails.
    let s = env.status();
    assert_eq!(s["state"], "locked");
    assert_eq!(s["locked"], true);
    assert_eq!(env.json(&["info", "--json"])["gate"], "locked");
    assert!(env.ok(&["info"]).contains("LOCKED"));
    for args in [
        vec!["objects", "list"],
        vec!["objects", "list", "--pin", PIN],
        vec![
            "key", "generate", "--type", "ec-p256", "--label", "x", "--pin", PIN,
        ],
        vec!["otp", "list", "--pin", PIN],
        vec![
            "gate",
            "configure",
            "--classes",
            "sign,decrypt",
            "--pin",
            PIN,
        ],
    ] {
        let e = env.fails(&args);
        assert!(e.contains("locked"), "{args:?}: {e}");
    }
    // The attack: a script holding the user PIN tries to clear the lock and go on
    // guessing. The user PIN never clears it, however it is given.
    let e = env.fails(&["reattach", "--pin", PIN]);
    assert!(
        e.contains("the user PIN cannot clear a gate lock") && e.contains("SO PIN"),
        "{e}"
    );
    assert_eq!(env.status()["locked"], true);
    let o = env
        .cmd(&["reattach"])
        .env("VTOKEN_PIN", PIN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no SO PIN given") && e.contains("the user PIN cannot clear it"),
        "{e}"
    );
    assert_eq!(env.status()["locked"], true);
    // The user PIN passed as the SO PIN is just a wrong SO PIN.
    let e = env.fails(&["reattach", "--so-pin", PIN]);
    assert!(e.contains("incorrect SO PIN"), "{e}");
    let e = env.fails(&["reattach", "--so-pin", "99999999"]);
    assert!(e.contains("incorrect SO PIN"), "{e}");
    assert_eq!(env.status()["locked"], true);
    assert_eq!(env.status()["state"], "locked");
    // The SO PIN clears it.
    let out2 = env.ok(&["reattach", "--so-pin", SO_PIN]);
    assert!(out2.contains("reattached"), "{out2}");
    let s = env.status();
    assert_eq!(
        (s["locked"].clone(), s["chances_left"].clone()),
        (Value::Bool(false), Value::from(3))
    );
    // `gate reattach` is the same command; quitting a picture uses its chance.
    env.ok(&["gate", "reattach", "--so-pin", SO_PIN]);
    let o = env.run_in(&strs(&args), "q\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("abandoned"));
    assert_eq!(env.status()["chances_left"], 2);
}

#[test]
fn low_privilege_requests_pass_untouched() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    env.ok(&[
        "gate",
        "configure",
        "--classes",
        "decrypt,unwrap",
        "--chances",
        "2",
        "--pin",
        PIN,
    ]);
    let out = env.path("sig").to_string_lossy().into_owned();
    let args = with_data(&env, env.sign_args("k", &out));
    env.ok(&strs(&args));
    let data = env.path("data").to_string_lossy().into_owned();
    env.ok(&["verify", "--label", "k", "-i", &data, "--signature", &out]);
    assert_eq!(env.status()["chances_left"], 2);
}

#[test]
fn weakening_needs_a_picture_and_bad_options_are_refused() {
    let env = Env::new();
    env.ok(&[
        "gate",
        "configure",
        "--classes",
        "sign,otp-code",
        "--pin",
        PIN,
    ]);
    // Strengthening: PIN only.
    env.ok(&[
        "gate",
        "configure",
        "--chances",
        "2",
        "--lifetime",
        "4",
        "--pin",
        PIN,
    ]);
    let s = env.status();
    assert_eq!(s["policy"]["chances"], 2);
    assert_eq!(s["policy"]["lifetime_ms"], 4000);
    // Weakening: a picture first; giving up leaves the policy as it was.
    let o = env.run_in(&["gate", "configure", "--off", "--pin", PIN], "q\n");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("weakens"));
    assert_eq!(env.status()["policy"]["enabled"], true);
    for bad in [
        vec![
            "gate",
            "configure",
            "--classes",
            "sign,teleport",
            "--pin",
            PIN,
        ],
        vec!["gate", "configure", "--classes", "configure", "--pin", PIN],
        vec!["gate", "configure", "--chances", "0", "--pin", PIN],
        vec!["gate", "configure", "--length", "3", "--pin", PIN],
    ] {
        env.fails(&bad);
    }
}

/// The SO PIN sets any policy without a picture (a user who cannot pass the picture
/// is never trapped, even while locked); without it, or with a wrong one, nothing
/// changes, and the user PIN still cannot weaken the gate without a picture.
#[test]
fn so_pin_sets_any_policy_without_a_picture() {
    let env = Env::new();
    env.ok(&["gate", "configure", "--classes", "sign", "--pin", PIN]);
    let before = env.status()["policy"].clone();
    // No SO PIN from a script: refused before anything is read or written.
    let e = env.fails(&["gate", "configure", "--so", "--off"]);
    assert!(e.contains("no SO PIN given"), "{e}");
    // A wrong SO PIN, or the user PIN in its place: refused, policy unchanged.
    for wrong in ["99999999", PIN] {
        let e = env.fails(&["gate", "configure", "--so", "--off", "--so-pin", wrong]);
        assert!(e.contains("incorrect SO PIN"), "{e}");
        assert_eq!(env.status()["policy"], before);
    }
    // The user PIN alone cannot weaken without a picture (stdin closed: abandoned).
    let e = env.fails(&["gate", "configure", "--off", "--pin", PIN]);
    assert!(e.contains("abandoned"), "{e}");
    assert_eq!(env.status()["policy"], before);
    // The SO PIN: weaker settings, no picture, nothing on stdin.
    env.ok(&[
        "gate",
        "configure",
        "--so",
        "--chances",
        "5",
        "--classes",
        "none",
        "--so-pin",
        SO_PIN,
    ]);
    let s = env.status();
    assert_eq!(s["policy"]["chances"], 5);
    assert_eq!(s["policy"]["classes"], serde_json::json!([]));
    env.ok(&["gate", "configure", "--so", "--off", "--so-pin", SO_PIN]);
    assert_eq!(env.status()["policy"]["enabled"], false);
}

// ---------------------------------------------------------------- with the test hook

/// Waits for the hook to write the next answer; removes the file.
fn next_answer(file: &Path, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(file) {
            if !a.is_empty() {
                std::fs::remove_file(file).unwrap();
                return a;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("vtoken exited ({st}) before showing a picture");
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no picture");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hooked_sign(env: &Env, label: &str, out: &str) -> (Child, PathBuf) {
    let answer_file = env.path("answer");
    let _ = std::fs::remove_file(&answer_file);
    let args = with_data(env, env.sign_args(label, out));
    let mut c = env.cmd_with(artifacts::hooked_cli(), &strs(&args));
    c.env("VTOKEN_TEST_CAPTCHA_ANSWER_FILE", &answer_file)
        .env("VTOKEN_GATE_PNG", env.path("challenge.png"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (c.spawn().unwrap(), answer_file)
}

#[test]
fn right_answer_signs_and_the_signature_verifies() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--gate", "--pin", PIN,
    ]);
    let out = env.path("sig").to_string_lossy().into_owned();
    let (mut child, file) = hooked_sign(&env, "k", &out);
    let mut stdin = child.stdin.take().unwrap();
    // A wrong answer first, then the right one to the next picture.
    let _ = next_answer(&file, &mut child);
    stdin.write_all(b"WRONG1\n").unwrap();
    let a = next_answer(&file, &mut child);
    stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("wrong answer"), "{err}");
    // The picture was a PNG of the configured size.
    let png = std::fs::read(env.path("challenge.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The answer never reaches the output.
    assert!(!err.contains(&a), "answer printed: {err}");
    let data = env.path("data").to_string_lossy().into_owned();
    env.ok(&["verify", "--label", "k", "-i", &data, "--signature", &out]);
    // A right answer gives the chances back.
    assert_eq!(env.status()["chances_left"], 3);
}

#[test]
fn late_answer_uses_a_chance() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    env.ok(&[
        "gate",
        "configure",
        "--classes",
        "sign",
        "--lifetime",
        "1",
        "--transport",
        "0",
        "--pin",
        PIN,
    ]);
    let out = env.path("sig").to_string_lossy().into_owned();
    let (mut child, file) = hooked_sign(&env, "k", &out);
    let mut stdin = child.stdin.take().unwrap();
    let a = next_answer(&file, &mut child);
    std::thread::sleep(Duration::from_millis(1300));
    stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
    // The late answer fails; a third wrong one... here: quit.
    let _ = next_answer(&file, &mut child);
    stdin.write_all(b"q\n").unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("too late"), "{err}");
    assert_eq!(env.status()["chances_left"], 1);
}

/// The CLI's own picture flow says why the last chance failed: a right answer that
/// came too late to the only picture locks the token, and the message says so.
#[test]
fn late_last_answer_says_it_came_too_late() {
    let env = Env::new();
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    env.ok(&[
        "gate",
        "configure",
        "--classes",
        "sign",
        "--chances",
        "1",
        "--lifetime",
        "1",
        "--transport",
        "0",
        "--pin",
        PIN,
    ]);
    let out = env.path("sig").to_string_lossy().into_owned();
    let (mut child, file) = hooked_sign(&env, "k", &out);
    let mut stdin = child.stdin.take().unwrap();
    let a = next_answer(&file, &mut child);
    std::thread::sleep(Duration::from_millis(1300));
    stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the answer to the last picture came too late; the token is locked"),
        "{err}"
    );
    assert!(err.contains("vtoken reattach"), "{err}");
    assert!(!err.contains(&a), "answer printed: {err}");
    assert!(!Path::new(&out).exists());
    assert_eq!(env.status()["locked"], true);
}
