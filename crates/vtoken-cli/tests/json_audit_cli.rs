//! `--json` is honoured by every command or refused where it means nothing (issue
//! 22): never silently ignored. The test walks the real binary's command tree (as
//! `vtoken … --help` lists it), so a new command must be added to one of the two
//! lists below, a decision made.
//!
//! - A refused command (`JSON_REFUSED` in `src/cli.rs`) fails at once under
//!   `--json`, with one JSON object on stderr naming the command, before reading
//!   any other argument.
//! - Every other command is not refused, and when it fails after its arguments
//!   were read, the failure is one JSON object on stderr.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

/// Commands that print JSON under `--json`.
const HONOURED: &[&str] = &[
    "init",
    "list",
    "info",
    "pin change",
    "pin unlock",
    "key generate",
    "import",
    "export",
    "objects list",
    "delete",
    "verify",
    "otp add",
    "otp list",
    "otp code",
    "otp codes",
    "otp delete",
    "otp show",
    "vault status",
    "vault activate",
    "vault enable",
    "vault disable",
    "vault policy",
    "vault banks",
    "vault add",
    "vault put",
    "vault resync",
    "vault edit",
    "vault delete",
    "vault list",
    "vault search",
    "vault show",
    "vault get",
    "vault import-csv",
    "vault import-kdbx",
    "vault export-kdbx",
    "wallet init",
    "wallet install",
    "wallet load",
    "wallet settle",
    "wallet balance",
    "wallet log",
    "wallet trust-card",
    "wallet transfer",
    "wallet discard",
    "wallet pay",
    "card create",
    "card balance",
    "card pay",
    "gate status",
    "gate configure",
    "gate reattach",
    "ca init",
    "device info",
    "device certify",
    "device attest",
    "device verify",
    "device open",
    "rks derive-dik2",
    "rks station-load",
    "rks provision",
    "rks inject",
    "rks download",
    "backup start",
    "backup request",
    "backup export",
    "backup import",
    "enroll operator-request",
    "enroll operator-install",
    "enroll collect",
    "enroll derive-pin",
    "reattach",
    "prompt show",
    "prompt set",
];

/// Commands that refuse `--json` (their output is data of its own).
const REFUSED: &[&str] = &[
    "sign",
    "completions",
    "card key",
    "device cert",
    "device seal",
    "vault export-csv",
];

/// The subcommands `vtoken PATH --help` lists (none: a leaf).
fn subcommands(path: &[&str]) -> Vec<String> {
    let o = std::process::Command::new(common::vtoken())
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success(), "{path:?} --help: {o:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    let Some(start) = text.find("\nCommands:\n") else {
        return Vec::new();
    };
    text[start + "\nCommands:\n".len()..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

fn leaves(path: Vec<String>, out: &mut Vec<String>) {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let subs = subcommands(&p);
    if subs.is_empty() {
        out.push(path.join(" "));
    }
    for s in subs {
        let mut next = path.clone();
        next.push(s);
        leaves(next, out);
    }
}

/// Runs with stdin closed; a command still running after 30 s is killed (`None`).
fn run(h: &common::Harness, args: &[&str]) -> Option<Output> {
    let mut c: Child = h
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(c.wait_with_output().unwrap())
}

#[test]
fn every_command_honours_or_refuses_json() {
    let mut all = Vec::new();
    leaves(Vec::new(), &mut all);
    assert!(all.len() > 50, "{all:?}");
    let undecided: Vec<&String> = all
        .iter()
        .filter(|c| !HONOURED.contains(&c.as_str()) && !REFUSED.contains(&c.as_str()))
        .collect();
    assert!(
        undecided.is_empty(),
        "commands without a --json decision (add each to HONOURED or to REFUSED and \
         JSON_REFUSED in src/cli.rs): {undecided:?}"
    );
    let gone: Vec<&&str> = HONOURED
        .iter()
        .chain(REFUSED)
        .filter(|c| !all.iter().any(|a| a == *c))
        .collect();
    assert!(gone.is_empty(), "listed but not in the binary: {gone:?}");

    let h = common::harness("");
    for c in &all {
        let mut args = vec!["--json"];
        args.extend(c.split(' '));
        let Some(o) = run(&h, &args) else {
            assert!(
                !REFUSED.contains(&c.as_str()),
                "{c}: a refusal must be at once"
            );
            continue;
        };
        let err = String::from_utf8_lossy(&o.stderr);
        if REFUSED.contains(&c.as_str()) {
            assert_eq!(o.status.code(), Some(1), "{c}: {o:?}");
            assert!(o.stdout.is_empty(), "{c}: {o:?}");
            let v: serde_json::Value = serde_json::from_str(err.trim())
                .unwrap_or_else(|e| panic!("{c}: not one JSON object ({e}): {err}"));
            let msg = v["error"].as_str().unwrap();
            assert!(
                msg.starts_with(&format!("--json is not available for `vtoken {c}`")),
                "{c}: {msg}"
            );
        } else {
            assert!(!err.contains("--json is not available"), "{c}: {err}");
            // Exit 1 is the command's own failure (no token here, say): one JSON
            // object. Exit 2 is clap's usage error (required arguments missing).
            if o.status.code() == Some(1) {
                let v: serde_json::Value = serde_json::from_str(err.trim())
                    .unwrap_or_else(|e| panic!("{c}: not one JSON object ({e}): {err}"));
                assert!(v["error"].is_string(), "{c}: {err}");
            }
        }
    }
}
