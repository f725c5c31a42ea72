//! SPEC C6 (CN102609656A ¶0038, Fig. 5): the token's state — initial, PIN-verified,
//! locked (the picture gate's lock), and the locked user PIN — in `vtoken info`,
//! `vtoken info --json` (`state`, the PIN flags) and the log, driven through every
//! transition in the patent's order: plug in (initial), PIN verified, wrong PINs up
//! to the PIN lock, the SO's unlock, then failed pictures up to the gate lock and the
//! SO's reattach.

use serde_json::Value;

mod common;
use common::{Harness, PIN, SO_PIN};

/// Runs `vtoken ARGS` logging at `info` into the harness's `log` file.
fn logged(env: &Harness, args: &[&str]) -> std::process::Output {
    env.run_with(args, &[("VTOKEN_LOG", format!("info:{}", env.s("log")))])
}

fn info(env: &Harness) -> Value {
    let o = logged(env, &["--json", "info"]);
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

fn flags(v: &Value) -> Vec<String> {
    v["flag_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// The states the log recorded (`token state` lines), in order.
fn logged_states(env: &Harness) -> Vec<String> {
    let log = std::fs::read_to_string(env.path("log")).unwrap_or_default();
    assert!(
        !log.contains(PIN) && !log.contains(SO_PIN),
        "a PIN in the log"
    );
    log.lines()
        .filter(|l| l.contains("token state"))
        .map(|l| {
            let at = l.find("state=").expect("state field") + "state=".len();
            l[at..]
                .trim_matches('"')
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn every_transition_shows_in_info_json_and_the_log() {
    let env = common::harness("");
    env.ok(&["init", "--label", "st", "--so-pin", SO_PIN, "--pin", PIN]);

    // Plugged in: initial.
    let v = info(&env);
    assert_eq!(v["state"], "initial", "{v}");
    assert_eq!(v["gate"], "initial");
    assert!(flags(&v).contains(&"USER_PIN_INITIALIZED".to_string()));
    assert!(env.ok(&["info"]).contains("state:          initial"));

    // PIN verified (in the process that verified it).
    let o = logged(&env, &["--json", "info", "--login", "--pin", PIN]);
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "pin-verified", "{v}");
    let o = logged(&env, &["info", "--login", "--pin", PIN]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("state:          pin-verified"));
    assert_eq!(logged_states(&env), ["pin-verified", "pin-verified"]);

    // Wrong PINs: count low, final try, then locked (5 tries by default).
    for n in 1..=5 {
        let o = logged(&env, &["info", "--login", "--pin", "999999"]);
        assert_eq!(o.status.code(), Some(1), "try {n}: {o:?}");
        let v = info(&env);
        let f = flags(&v);
        assert_eq!(v["user_pin"]["failures"], n);
        match n {
            1..=3 => {
                assert!(f.contains(&"USER_PIN_COUNT_LOW".into()), "{n}: {f:?}");
                assert!(!f.contains(&"USER_PIN_FINAL_TRY".into()), "{n}: {f:?}");
                assert_eq!(v["state"], "initial");
            }
            4 => {
                assert!(f.contains(&"USER_PIN_FINAL_TRY".into()), "{f:?}");
                assert_eq!(v["state"], "initial");
            }
            _ => {
                assert!(f.contains(&"USER_PIN_LOCKED".into()), "{f:?}");
                assert_eq!(v["state"], "pin-locked", "{v}");
            }
        }
    }
    assert!(env.ok(&["info"]).contains("state:          pin-locked"));
    // The right PIN no longer helps.
    let o = logged(&env, &["info", "--login", "--pin", PIN]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(info(&env)["state"], "pin-locked");
    assert_eq!(
        logged_states(&env),
        ["pin-verified", "pin-verified", "pin-locked"]
    );

    // The SO unlocks: initial again, and the user must change the PIN.
    let o = logged(
        &env,
        &["pin", "unlock", "--so-pin", SO_PIN, "--new-pin", "654321"],
    );
    assert!(o.status.success(), "{o:?}");
    let v = info(&env);
    assert_eq!(v["state"], "initial", "{v}");
    let f = flags(&v);
    assert!(f.contains(&"USER_PIN_TO_BE_CHANGED".into()), "{f:?}");
    assert!(!f.contains(&"USER_PIN_LOCKED".into()), "{f:?}");
    assert_eq!(logged_states(&env).last().unwrap(), "initial");
    env.ok(&["pin", "change", "--old-pin", "654321", "--new-pin", PIN]);
    assert!(!flags(&info(&env)).contains(&"USER_PIN_TO_BE_CHANGED".into()));

    // Failed pictures lock the token (the gate's own lock): state locked.
    env.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--pin", PIN,
    ]);
    env.ok(&["gate", "configure", "--classes", "sign", "--pin", PIN]);
    std::fs::write(env.path("data"), b"x").unwrap();
    let mut cmd = env.cmd(&[
        "sign",
        "--label",
        "k",
        "-i",
        &env.s("data"),
        "-o",
        &env.s("sig"),
        "--pin",
        PIN,
    ]);
    cmd.env("VTOKEN_LOG", format!("info:{}", env.s("log")))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"WRONG1\nWRONG2\nWRONG3\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = info(&env);
    assert_eq!(v["state"], "locked", "{v}");
    assert!(env.ok(&["info"]).contains("state:          locked"));
    let states = logged_states(&env);
    assert_eq!(states[states.len() - 2..], ["pin-verified", "locked"]);

    // Only the SO's reattach clears it: initial.
    let o = logged(&env, &["reattach", "--so-pin", SO_PIN]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(info(&env)["state"], "initial");
    assert_eq!(logged_states(&env).last().unwrap(), "initial");
}
