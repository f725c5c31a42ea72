//! The e-wallet end to end (SPEC W1–W7, issue 18): the real `vtoken` CLI on a real
//! token file, the real `vtoken-server bank` on 127.0.0.1 with its SQLite
//! database, the confirmation through a `command:` prompt agent the SO set in the
//! token's policy. Every outcome is checked on both sides: the account balance
//! (bank) and the wallet balance (token), and their sum is conserved.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use vtoken_testsupport::artifacts;
use vtoken_testsupport::cli::Env;
use vtoken_wallet::Envelope;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

struct Bank {
    child: Child,
    url: String,
}

impl Drop for Bank {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(args: &[&str]) -> Output {
    Command::new(artifacts::server())
        .args(args)
        .output()
        .unwrap()
}

fn server_ok(args: &[&str]) -> String {
    let o = server(args);
    assert!(
        o.status.success(),
        "vtoken-server {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn serve(dir: &Path) -> Bank {
    let mut child = Command::new(artifacts::server())
        .args([
            "bank",
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("VTOKEN_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Bank { child, url }
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A token with a wallet registered at a bank on account ACC1 (1000.00), the
/// confirmation agent `agent.sh` (answer in `answer`: 0 yes, 1 no, sleep: timeout).
struct World {
    env: Env,
    bank_dir: PathBuf,
    bank: Bank,
    serial: String,
}

impl World {
    fn new() -> World {
        let env = Env::with_config(artifacts::cli(), "[prompt]\ntimeout_secs = 2\n");
        env.ok(&["init", "--label", "w", "--so-pin", SO_PIN, "--pin", PIN]);
        let answer = env.path("answer");
        std::fs::write(&answer, "0").unwrap();
        let agent = env.path("agent.sh");
        script(
            &agent,
            &format!(
                "echo \"$VTOKEN_PROMPT_TITLE|$VTOKEN_PROMPT_DESCRIPTION\" >> '{log}'\n\
                 a=$(cat '{answer}')\nif [ \"$a\" = sleep ]; then sleep 30; exit 0; fi\nexit $a",
                log = env.path("prompts.log").display(),
                answer = answer.display()
            ),
        );
        env.ok(&[
            "prompt",
            "set",
            "--agent",
            &format!("command:{}", agent.display()),
            "--so-pin",
            SO_PIN,
        ]);
        let serial = env.json(&["--json", "list"])[0]["serial"]
            .as_str()
            .unwrap()
            .to_string();
        let bank_dir = env.path("bank");
        let b = bank_dir.to_str().unwrap();
        server_ok(&["bank", "init", "--dir", b]);
        server_ok(&[
            "bank",
            "account",
            "open",
            "--dir",
            b,
            "--account",
            "ACC1",
            "--holder",
            "Li Lei",
            "--balance",
            "1000.00",
        ]);
        server_ok(&[
            "bank",
            "account",
            "open",
            "--dir",
            b,
            "--account",
            "ACC2",
            "--holder",
            "Other",
            "--balance",
            "50.00",
        ]);
        let pem = bank_dir.join("bank.pem");
        let csr = env.s("wallet.csr");
        env.ok(&[
            "wallet",
            "init",
            "--bank-cert",
            pem.to_str().unwrap(),
            "-o",
            &csr,
            "--pin",
            PIN,
        ]);
        server_ok(&[
            "bank",
            "register",
            "--dir",
            b,
            "--account",
            "ACC1",
            "--csr",
            &csr,
            "-o",
            &env.s("wallet.pem"),
        ]);
        env.ok(&[
            "wallet",
            "install",
            "--cert",
            &env.s("wallet.pem"),
            "--pin",
            PIN,
        ]);
        let bank = serve(&bank_dir);
        World {
            env,
            bank_dir,
            bank,
            serial,
        }
    }

    fn answer(&self, a: &str) {
        std::fs::write(self.env.path("answer"), a).unwrap();
    }

    fn account(&self, acc: &str) -> String {
        let out = server_ok(&[
            "bank",
            "account",
            "show",
            "--dir",
            self.bank_dir.to_str().unwrap(),
            "--account",
            acc,
            "--json",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["currency"], "CNY");
        v["balance"].as_str().unwrap().to_string()
    }

    fn wallet(&self) -> Value {
        self.env
            .json(&["--json", "wallet", "balance", "--pin", PIN])
    }

    fn balance(&self) -> String {
        self.wallet()["balance"].as_str().unwrap().to_string()
    }

    fn load(&self, account: &str, amount: &str) -> Output {
        self.load_via(&self.bank.url, account, amount)
    }

    /// A load through `url` (a relay to the bank).
    fn load_via(&self, url: &str, account: &str, amount: &str) -> Output {
        self.env.run(&[
            "wallet",
            "load",
            "--bank",
            url,
            "--account",
            account,
            "--amount",
            amount,
            "--pin",
            PIN,
        ])
    }

    fn loads(&self) -> Value {
        serde_json::from_str(&server_ok(&[
            "bank",
            "loads",
            "--dir",
            self.bank_dir.to_str().unwrap(),
            "--serial",
            &self.serial,
            "--json",
        ]))
        .unwrap()
    }

    /// Account ACC1 + wallet, in minor units.
    fn total(&self) -> u64 {
        minor(&self.account("ACC1")) + minor(&self.balance())
    }
}

fn minor(s: &str) -> u64 {
    let (a, b) = s.split_once('.').unwrap();
    a.parse::<u64>().unwrap() * 100 + b.parse::<u64>().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn load_end_to_end_with_the_trusted_prompt() {
    let w = World::new();
    assert_eq!(w.balance(), "0.00");
    // The wallet key is outside the PKCS#11 object space: no object to find, use
    // or export, even for the logged-in user.
    let objects = w.env.json(&["--json", "objects", "list", "--pin", PIN]);
    assert_eq!(objects.as_array().map(|a| a.len()), Some(0), "{objects}");
    let o = w.load("ACC1", "100.00");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(w.account("ACC1"), "900.00");
    assert_eq!(w.balance(), "100.00");
    // The user saw the load-initialise command through the token's agent.
    let prompts = std::fs::read_to_string(w.env.path("prompts.log")).unwrap();
    assert!(
        prompts.contains("Load 100.00 CNY from bank account ACC1"),
        "{prompts}"
    );
    // Both logs agree: the bank's record 1 is confirmed, the wallet's too.
    let loads = w.loads();
    assert_eq!(loads[0]["seq"], 1);
    assert_eq!(loads[0]["state"], "confirmed");
    assert_eq!(loads[0]["amount"], "100.00");
    let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
    let states: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["requested", "credited", "confirmed"]);
    // A second load uses sequence number 2.
    assert!(w.load("ACC1", "0.50").status.success());
    assert_eq!(w.balance(), "100.50");
    assert_eq!(w.account("ACC1"), "899.50");
    assert_eq!(w.loads()[1]["seq"], 2);
    assert_eq!(w.wallet()["next_seq"], 3);
}

#[test]
fn refusals_change_no_balance() {
    let w = World::new();
    let total = w.total();
    // Wrong PIN (302-305): stopped on the token, nothing sent.
    let o = w.env.run(&[
        "wallet",
        "load",
        "--bank",
        &w.bank.url,
        "--account",
        "ACC1",
        "--amount",
        "1.00",
        "--pin",
        "999999",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("incorrect user PIN"), "{}", stderr(&o));
    assert!(w.loads().as_array().unwrap().is_empty());
    // Refused confirmation (306-308): nothing sent, no sequence number used.
    w.answer("1");
    let o = w.load("ACC1", "1.00");
    assert!(stderr(&o).contains("not confirmed"), "{}", stderr(&o));
    assert!(w.loads().as_array().unwrap().is_empty());
    assert_eq!(w.wallet()["next_seq"], 1);
    // No answer within the configured wait: the same.
    w.answer("sleep");
    let t = std::time::Instant::now();
    let o = w.load("ACC1", "1.00");
    assert!(stderr(&o).contains("not confirmed"), "{}", stderr(&o));
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert!(w.loads().as_array().unwrap().is_empty());
    w.answer("0");
    // Wrong account: the bank refuses, nothing debited anywhere, the token's
    // record is closed (no pending load).
    let o = w.load("ACC2", "1.00");
    assert!(
        stderr(&o).contains("not bound to account ACC2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.account("ACC2"), "50.00");
    assert!(w.wallet()["pending_load"].is_null());
    // Insufficient funds.
    let o = w.load("ACC1", "1000.01");
    assert!(stderr(&o).contains("insufficient funds"), "{}", stderr(&o));
    assert!(w.wallet()["pending_load"].is_null());
    // Bad amounts never reach the token.
    for bad in ["1.001", "abc", "0"] {
        assert!(!w.load("ACC1", bad).status.success());
    }
    assert_eq!(w.total(), total);
    assert_eq!(w.balance(), "0.00");
    // Every sequence number was used once.
    let seqs: Vec<u64> = w
        .loads()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(w.load("ACC1", "10.00").status.success());
    assert_eq!(w.total(), total);
}

#[test]
fn a_server_with_another_certificate_is_refused() {
    let w = World::new();
    let other = w.env.path("other-bank");
    server_ok(&["bank", "init", "--dir", other.to_str().unwrap()]);
    let fake = serve(&other);
    let o = w.env.run(&[
        "wallet",
        "load",
        "--bank",
        &fake.url,
        "--account",
        "ACC1",
        "--amount",
        "1.00",
        "--pin",
        PIN,
    ]);
    assert!(
        stderr(&o).contains("not the bank certificate"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.wallet()["next_seq"], 1);
    assert_eq!(w.account("ACC1"), "1000.00");
}

#[test]
fn revoked_wallet_certificate_is_refused() {
    let w = World::new();
    server_ok(&[
        "bank",
        "revoke",
        "--dir",
        w.bank_dir.to_str().unwrap(),
        "--serial",
        &w.serial,
    ]);
    let o = w.load("ACC1", "1.00");
    assert!(stderr(&o).contains("revoked"), "{}", stderr(&o));
    assert_eq!(w.account("ACC1"), "1000.00");
    assert_eq!(w.balance(), "0.00");
}

#[test]
fn card_transfer_and_payments() {
    let w = World::new();
    assert!(w.load("ACC1", "100.00").status.success());
    let card = w.env.s("card.vcard");
    std::fs::write(w.env.path("card.pin"), "2468\n").unwrap();
    std::fs::write(w.env.path("bad.pin"), "0000\n").unwrap();
    w.env.ok(&[
        "card",
        "create",
        "--file",
        &card,
        "--number",
        "6222001",
        "--pin-file",
        &w.env.s("card.pin"),
        "--trust",
        &w.serial,
    ]);
    let transfer = |amount: &str, pin: &str| {
        w.env.run(&[
            "wallet",
            "transfer",
            "--card",
            &card,
            "--amount",
            amount,
            "--card-pin-file",
            &w.env.s(pin),
            "--pin",
            PIN,
        ])
    };
    let card_balance = || w.env.json(&["--json", "card", "balance", "--file", &card]);
    // G: the card is not on the token's list yet.
    let o = transfer("10.00", "card.pin");
    assert!(
        stderr(&o).contains("not on this wallet's list"),
        "{}",
        stderr(&o)
    );
    w.env
        .ok(&["wallet", "trust-card", "--number", "6222001", "--pin", PIN]);
    // I: a wrong card PIN uses a try and moves nothing.
    let o = transfer("10.00", "bad.pin");
    assert!(
        stderr(&o).contains("wrong card PIN (2 tries left)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.balance(), "100.00");
    assert_eq!(card_balance()["balance"], "0.00");
    let o = transfer("10.00", "card.pin");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(w.balance(), "90.00");
    assert_eq!(card_balance()["balance"], "10.00");
    assert_eq!(card_balance()["pin_tries_left"], 3);
    // More than the wallet has: refused, nothing moved.
    assert!(!transfer("90.01", "card.pin").status.success());
    assert_eq!(w.balance(), "90.00");
    assert_eq!(card_balance()["balance"], "10.00");

    // Wallet payment: debited, a signed record the bank verifies once.
    let rec = w.env.s("p1.rec");
    let v = w.env.json(&[
        "--json",
        "wallet",
        "pay",
        "--merchant",
        "shop-1",
        "--amount",
        "3.00",
        "-o",
        &rec,
        "--bank",
        &w.bank.url,
        "--pin",
        PIN,
    ]);
    assert_eq!(v["bank"]["verified"], true);
    assert_eq!(v["bank"]["amount"], "3.00");
    assert_eq!(w.balance(), "87.00");
    let o = server(&[
        "bank",
        "verify",
        "--dir",
        w.bank_dir.to_str().unwrap(),
        "--record",
        &rec,
    ]);
    assert!(!o.status.success(), "a record is accepted once");
    // A refused confirmation pays nothing.
    w.answer("1");
    assert!(!w
        .env
        .run(&[
            "wallet",
            "pay",
            "--merchant",
            "m",
            "--amount",
            "1.00",
            "-o",
            &rec,
            "--pin",
            PIN
        ])
        .status
        .success());
    assert_eq!(w.balance(), "87.00");
    w.answer("0");

    // Card payment: the bank verifies with the card key it registered.
    let key = w.env.s("card.pub.pem");
    w.env.ok(&["card", "key", "--file", &card, "-o", &key]);
    server_ok(&[
        "bank",
        "card-add",
        "--dir",
        w.bank_dir.to_str().unwrap(),
        "--number",
        "6222001",
        "--key",
        &key,
    ]);
    let rec2 = w.env.s("p2.rec");
    w.env.ok(&[
        "card",
        "pay",
        "--file",
        &card,
        "--merchant",
        "shop-2",
        "--amount",
        "2.50",
        "--pin-file",
        &w.env.s("card.pin"),
        "-o",
        &rec2,
    ]);
    assert_eq!(card_balance()["balance"], "7.50");
    let out = server_ok(&[
        "bank",
        "verify",
        "--dir",
        w.bank_dir.to_str().unwrap(),
        "--record",
        &rec2,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["amount"].as_str()),
        (Some("card"), Some("2.50"))
    );
    // An altered record fails.
    let mut b = std::fs::read(&rec2).unwrap();
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(&rec2, &b).unwrap();
    assert!(!server(&[
        "bank",
        "verify",
        "--dir",
        w.bank_dir.to_str().unwrap(),
        "--record",
        &rec2
    ])
    .status
    .success());
}

/// Steps G–I crash safety: the wallet's debit (a token write) and the card's
/// credit (a card file replace) are two files. The token writes the debit with a
/// pending transfer record (id, card, amount) first; the card applies a transfer
/// once by (token serial, id); the token closes the record after reading the card.
/// The test-hooks `vtoken` is killed at every point between and around the two
/// writes — after the debit, after the card's credit, and during the settlement
/// of the interrupted transfer by the next one — and after each: while the record
/// is pending, wallet + card + pending = total; once the next transfer with that
/// card has run, the interrupted one is either in the card (and out of the
/// wallet) or back in the wallet (and not in the card): both or neither.
#[test]
fn a_card_transfer_killed_between_the_two_writes_moves_both_or_neither() {
    let w = World::new();
    assert!(w.load("ACC1", "100.00").status.success());
    let card = w.env.s("card.vcard");
    std::fs::write(w.env.path("card.pin"), "2468\n").unwrap();
    w.env.ok(&[
        "card",
        "create",
        "--file",
        &card,
        "--number",
        "6222001",
        "--pin-file",
        &w.env.s("card.pin"),
        "--trust",
        &w.serial,
    ]);
    w.env
        .ok(&["wallet", "trust-card", "--number", "6222001", "--pin", PIN]);
    let args = |amount: &str| {
        [
            "wallet",
            "transfer",
            "--card",
            &card,
            "--amount",
            amount,
            "--card-pin-file",
            &w.env.s("card.pin"),
            "--pin",
            PIN,
        ]
        .map(|a| a.to_string())
    };
    let crash = |amount: &str, point: &str| {
        let o = w
            .env
            .cmd_with(artifacts::hooked_cli(), &args(amount))
            .env("VTOKEN_TEST_WALLET_EXIT_AT", point)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(CRASHED), "{point}: {}", stderr(&o));
    };
    let card_minor = || {
        minor(
            w.env.json(&["--json", "card", "balance", "--file", &card])["balance"]
                .as_str()
                .unwrap(),
        )
    };
    let pending = || {
        let v = w.wallet()["pending_transfer"].clone();
        (!v.is_null()).then(|| minor(v["amount"].as_str().unwrap()))
    };
    let total = minor(&w.balance()) + card_minor();
    // `outside`: debited from the wallet, not (yet) in the card.
    let conserved = |what: &str, outside: u64| {
        assert_eq!(
            minor(&w.balance()) + card_minor() + outside,
            total,
            "{what}: money created or lost"
        );
    };
    // 1. Killed right after the wallet's debit, before the card's write: the card
    // never saw it; the next transfer gives it back to the wallet, then moves its own.
    crash("1.00", "transfer-debited");
    assert_eq!(pending(), Some(100));
    assert_eq!(card_minor(), 0);
    conserved("after the debit", 100);
    let out = w.env.ok(&args("2.00"));
    assert!(out.contains("returned to the wallet"), "{out}");
    assert_eq!(pending(), None);
    assert_eq!((minor(&w.balance()), card_minor()), (9800, 200));
    conserved("settled (returned)", 0);
    // 2. Killed right after the card's credit, before the token closed its record:
    // the card has it; the next transfer completes it (not back to the wallet).
    crash("3.00", "card-credited");
    assert_eq!(pending(), Some(300));
    assert_eq!(card_minor(), 500);
    conserved("after the card's credit", 0);
    let out = w.env.ok(&args("0.50"));
    assert!(out.contains("completed"), "{out}");
    assert_eq!((minor(&w.balance()), card_minor()), (9450, 550));
    conserved("settled (completed)", 0);
    // 3. Killed while settling an interrupted transfer (each kind), before the
    // token closed it: the record stays and the following transfer settles it once.
    for (first, expect, outside) in [
        ("transfer-debited", "returned", 100),
        ("card-credited", "completed", 0),
    ] {
        let (wallet0, card0) = (minor(&w.balance()), card_minor());
        crash("1.00", first);
        crash("1.00", "transfer-settle");
        assert_eq!(pending(), Some(100), "{first}");
        conserved(first, outside);
        let out = w.env.ok(&args("0.25"));
        assert!(out.contains(expect), "{first}: {out}");
        assert_eq!(pending(), None);
        let moved = if expect == "completed" { 125 } else { 25 };
        assert_eq!(
            (minor(&w.balance()), card_minor()),
            (wallet0 - moved, card0 + moved),
            "{first}"
        );
        conserved(expect, 0);
    }
    // The card holds each transfer once: its id never applies twice.
    let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
    let transfers: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "transfer" && e["state"] != "debited")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut ids: Vec<u64> = transfers.iter().map(|t| t.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        transfers.len(),
        "a transfer closed twice: {transfers:?}"
    );
}

/// Two real processes on one wallet (W4): concurrent `wallet load`s and `wallet
/// pay`s on the same token are serialized by the wallet lock: every one succeeds,
/// none is settled as "interrupted" by the other, no update is lost (the balance
/// is the sum of all of them) and no sequence number is used twice.
#[test]
fn two_processes_on_one_wallet_are_serialized() {
    let w = World::new();
    let spawn = |args: Vec<String>| {
        w.env
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let load = |amount: &str| {
        [
            "wallet",
            "load",
            "--bank",
            &w.bank.url,
            "--account",
            "ACC1",
            "--amount",
            amount,
            "--pin",
            PIN,
        ]
        .map(str::to_string)
        .to_vec()
    };
    for _ in 0..3 {
        let (a, b) = (spawn(load("1.00")), spawn(load("2.00")));
        for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    assert_eq!(w.balance(), "9.00");
    assert_eq!(w.account("ACC1"), "991.00");
    let loads = w.loads();
    let loads = loads.as_array().unwrap();
    assert_eq!(loads.len(), 6);
    for (i, l) in loads.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1);
        assert_eq!(l["state"], "confirmed", "{l}");
    }
    let pays: Vec<Child> = (0..4)
        .map(|i| {
            spawn(
                [
                    "wallet",
                    "pay",
                    "--merchant",
                    "shop",
                    "--amount",
                    "0.50",
                    "-o",
                    &w.env.s(&format!("p{i}.rec")),
                    "--pin",
                    PIN,
                ]
                .map(str::to_string)
                .to_vec(),
            )
        })
        .collect();
    for p in pays {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(w.balance(), "7.00", "a payment was lost");
    let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
    let mut seqs: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "pay")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4]);
    // Each record is accepted by the bank (distinct payer sequence numbers).
    for i in 0..4 {
        server_ok(&[
            "bank",
            "verify",
            "--dir",
            w.bank_dir.to_str().unwrap(),
            "--record",
            &w.env.s(&format!("p{i}.rec")),
        ]);
    }
}

/// W4 with the lifecycle: `C_InitToken` through the real PKCS#11 module (driven by
/// `pkcs11-tool`) and `vtoken delete --token-file` refuse a token whose wallet
/// holds value, which stays intact; after the SO gives the wallet up (`vtoken
/// wallet discard`), both work.
#[test]
fn a_funded_wallet_refuses_c_inittoken_and_delete_until_discarded() {
    let w = World::new();
    assert!(w.load("ACC1", "5.00").status.success());
    let init = || {
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(artifacts::pkcs11_module())
            .args([
                "--slot-index",
                "0",
                "--init-token",
                "--label",
                "wiped",
                "--so-pin",
                SO_PIN,
            ])
            .env("VTOKEN_CONF", w.env.conf())
            .output()
            .unwrap()
    };
    let o = init();
    assert!(!o.status.success(), "C_InitToken wiped a funded wallet");
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &stderr(&o);
    // CKR_ACTION_PROHIBITED (0x1b; this pkcs11-tool does not know its name).
    assert!(
        out.contains("C_InitToken failed") && out.contains("0x1b"),
        "{out}"
    );
    assert_eq!(w.balance(), "5.00");
    let e = w.env.fails(&["delete", "--token-file", "--force"]);
    assert!(e.contains("holds value"), "{e}");
    assert_eq!(w.balance(), "5.00");
    // A wrong SO PIN discards nothing.
    w.env.fails(&["wallet", "discard", "--so-pin", "87654321"]);
    assert_eq!(w.balance(), "5.00");
    let v = w
        .env
        .json(&["--json", "wallet", "discard", "--so-pin", SO_PIN]);
    assert_eq!(v["discarded"], true);
    let o = init();
    assert!(o.status.success(), "{}", stderr(&o));
    // The re-initialized token has no user PIN and no wallet.
    w.env.fails(&["wallet", "balance", "--pin", PIN]);
    w.env.ok(&["delete", "--token-file", "--force"]);
}

/// The (path, body) of each request a recording relay forwarded.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A relay to the bank that keeps every request body it forwards (after `alter`).
fn recording_link(
    bank: &str,
    alter: impl Fn(&str, &mut Vec<u8>) + Send + 'static,
) -> (String, Seen) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let seen: Seen = Default::default();
    let keep = seen.clone();
    let upstream = bank.trim_start_matches("http://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let Some((head, mut body)) = read_http(&mut c) else {
                continue;
            };
            let first = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            alter(&path, &mut body);
            keep.lock().unwrap().push((path, body.clone()));
            let text: String = String::from_utf8_lossy(&head[..head.len() - 2])
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    !l.starts_with("connection:") && !l.starts_with("content-length:")
                })
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
                + &format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
            let mut up = TcpStream::connect(&upstream).unwrap();
            up.write_all(text.as_bytes()).unwrap();
            up.write_all(&body).unwrap();
            let mut answer = Vec::new();
            let _ = up.read_to_end(&mut answer);
            let _ = c.write_all(&answer);
        }
    });
    (format!("http://{addr}"), seen)
}

/// Step 309's "may encrypt" (`wallet load --encrypt`): the request goes encrypted to
/// the bank's certificate; the network sees neither the account number nor the
/// token serial (a plain load shows both: the control), the bank decrypts and
/// loads as usual. An encrypted request altered on the way does not decrypt: the
/// bank refuses it before debiting, the token gives the load up, and both
/// balances are unchanged.
#[test]
fn an_encrypted_load_request_hides_the_account_from_the_network() {
    let w = World::new();
    let has = |b: &[u8], what: &str| b.windows(what.len()).any(|x| x == what.as_bytes());
    let (link, seen) = recording_link(&w.bank.url, |_, _| {});
    assert!(w.load_via(&link, "ACC1", "1.00").status.success());
    let plain = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| p.contains("/load"))
        .unwrap()
        .clone();
    assert_eq!(plain.0, "/wallet/v1/load");
    assert!(has(&plain.1, "ACC1") && has(&plain.1, &w.serial));
    let enc = |url: &str, amount: &str| {
        w.env.run(&[
            "wallet",
            "load",
            "--bank",
            url,
            "--account",
            "ACC1",
            "--amount",
            amount,
            "--encrypt",
            "--pin",
            PIN,
        ])
    };
    let (link, seen) = recording_link(&w.bank.url, |_, _| {});
    let o = enc(&link, "2.00");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(w.balance(), "3.00");
    assert_eq!(w.account("ACC1"), "997.00");
    let sent = seen.lock().unwrap().clone();
    let (path, body) = sent.iter().find(|(p, _)| p.contains("load")).unwrap();
    assert_eq!(path, "/wallet/v1/load-sealed");
    assert!(
        !has(body, "ACC1") && !has(body, &w.serial),
        "the request is readable"
    );
    // Altered on the way: refused before any debit.
    let (link, _) = recording_link(&w.bank.url, |p, b| {
        if p.ends_with("load-sealed") {
            let n = b.len();
            b[n - 1] ^= 1;
        }
    });
    let o = enc(&link, "4.00");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not decrypt"), "{}", stderr(&o));
    assert_eq!(w.balance(), "3.00");
    assert_eq!(w.account("ACC1"), "997.00");
    assert!(w.wallet()["pending_load"].is_null());
}

/// What the lossy link does to a POST to one path.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cut {
    /// The message never reaches the bank.
    Before,
    /// The bank acts on it; its answer is lost.
    After,
}

/// A link to the bank on 127.0.0.1 that passes everything but cuts every
/// POST to `path` (a client retry is cut too) as `cut` (the connection is closed without an answer), as a
/// crash of the client or the network at that step would.
fn lossy_link(bank: &str, path: &'static str, cut: Cut) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let upstream = bank.trim_start_matches("http://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            // Read the head and the body (Content-Length).
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            let head_end = loop {
                let n = c.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&tmp[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = c.read(&mut tmp).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            let hit = head.starts_with("post ") && head.contains(&format!(" {path} "));
            if hit && cut == Cut::Before {
                continue; // dropped: the bank never sees it
            }
            // Forward (one request per connection).
            let text: String = String::from_utf8_lossy(&buf[..head_end - 2])
                .lines()
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
                + "connection: close\r\n\r\n";
            let mut up = TcpStream::connect(&upstream).unwrap();
            up.write_all(text.as_bytes()).unwrap();
            up.write_all(&buf[head_end..]).unwrap();
            let mut answer = Vec::new();
            let _ = up.read_to_end(&mut answer);
            if hit {
                continue; // the bank acted; its answer is lost
            }
            let _ = c.write_all(&answer);
        }
    });
    format!("http://{addr}")
}

/// A relay to the bank on 127.0.0.1 that passes everything but hands the bank's
/// answer to every `POST /wallet/v1/load` (the permit) to `tamper` first, as a
/// man in the middle on the public network would.
fn tampering_link(bank: &str, tamper: impl FnMut(Envelope) -> Envelope + Send + 'static) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let upstream = bank.trim_start_matches("http://").to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut tamper = tamper;
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let Some((head, body)) = read_http(&mut c) else {
                continue;
            };
            let lower = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let text: String = String::from_utf8_lossy(&head[..head.len() - 2])
                .lines()
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
                + "connection: close\r\n\r\n";
            let mut up = TcpStream::connect(&upstream).unwrap();
            up.write_all(text.as_bytes()).unwrap();
            up.write_all(&body).unwrap();
            let mut answer = Vec::new();
            let _ = up.read_to_end(&mut answer);
            let permit =
                lower.starts_with("post /wallet/v1/load ") && answer.starts_with(b"HTTP/1.1 200");
            if permit {
                let i = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let env = Envelope::from_bytes(&answer[i..]).unwrap();
                let out = tamper(env).to_bytes();
                answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    out.len()
                )
                .into_bytes();
                answer.extend_from_slice(&out);
            }
            let _ = c.write_all(&answer);
        }
    });
    format!("http://{addr}")
}

/// Reads one HTTP request: (head with its blank line, body by Content-Length).
fn read_http(c: &mut std::net::TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = c.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = c.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = buf.split_off(head_end);
    Some((buf, body))
}

/// Steps 313/315 against the real bank: a permit the token must not accept — a
/// bad bank signature, an altered body (check code recomputed: only the signature
/// catches it), a permit of an earlier load replayed, a permit signed by another
/// key than the bank certificate the wallet holds. Each time the bank really
/// debited; the token refuses the permit, does not credit, sends its signed
/// abort and the bank refunds: account and wallet are where they were, the load
/// is refunded on both sides.
#[test]
fn a_bad_permit_is_refused_by_the_token_and_refunded_by_the_bank() {
    use std::sync::{Arc, Mutex};
    use vtoken_wallet::msg::{Kind, LoadPermit};
    let w = World::new();
    // One good load through a recording relay: its permit is replayed below.
    let recorded: Arc<Mutex<Option<Envelope>>> = Arc::default();
    let rec = recorded.clone();
    let link = tampering_link(&w.bank.url, move |e| {
        *rec.lock().unwrap() = Some(e.clone());
        e
    });
    let o = w.load_via(&link, "ACC1", "5.00");
    assert!(o.status.success(), "{}", stderr(&o));
    let old_permit = recorded.lock().unwrap().clone().unwrap();
    let foreign = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    type Tamper = Box<dyn FnMut(Envelope) -> Envelope + Send>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "bad bank signature",
            Box::new(|mut e: Envelope| {
                let n = e.sig.len();
                e.sig[n - 1] ^= 1;
                e
            }),
        ),
        (
            "altered permit",
            Box::new(|mut e: Envelope| {
                let mut p: LoadPermit = postcard::from_bytes(&e.body).unwrap();
                p.host_date = "2099-01-01".into();
                e.body = postcard::to_allocvec(&p).unwrap();
                // A forger recomputes the check code; only the signature stops it.
                use sha2::Digest;
                e.check = sha2::Sha256::digest(vtoken_wallet::msg::signed_bytes(
                    e.kind, &e.user, &e.body,
                ))
                .into();
                e
            }),
        ),
        ("replayed permit", Box::new(move |_| old_permit.clone())),
        (
            "signed by another bank",
            Box::new(move |e: Envelope| {
                let p: LoadPermit = postcard::from_bytes(&e.body).unwrap();
                Envelope::seal_with(Kind::LoadPermit, &e.user, &p, &foreign).unwrap()
            }),
        ),
    ];
    for (what, tamper) in cases {
        let account = w.account("ACC1");
        let wallet = w.balance();
        let loads_before = w.loads().as_array().unwrap().len();
        let link = tampering_link(&w.bank.url, tamper);
        let o = w.load_via(&link, "ACC1", "7.00");
        assert!(!o.status.success(), "{what}: the token took it");
        let e = stderr(&o);
        assert!(e.contains("permit was refused"), "{what}: {e}");
        assert!(e.contains("the bank refunded the debit"), "{what}: {e}");
        assert_eq!(w.balance(), wallet, "{what}: the wallet was credited");
        assert_eq!(w.account("ACC1"), account, "{what}: the debit stayed");
        assert!(w.wallet()["pending_load"].is_null(), "{what}");
        let loads = w.loads();
        let loads = loads.as_array().unwrap();
        assert_eq!(
            loads.len(),
            loads_before + 1,
            "{what}: the bank saw the load"
        );
        assert_eq!(loads.last().unwrap()["state"], "refunded", "{what}");
        let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
        assert_eq!(
            log.as_array().unwrap().last().unwrap()["state"],
            "refunded",
            "{what}"
        );
    }
    assert_eq!(w.balance(), "5.00");
    assert_eq!(w.account("ACC1"), "995.00");
}

#[test]
fn a_load_cut_at_every_step_is_settled_once() {
    let w = World::new();
    let total = w.total();
    let mut expect_wallet = 0u64;
    for (i, (path, cut)) in [
        ("/wallet/v1/load", Cut::Before),
        ("/wallet/v1/load", Cut::After),
        ("/wallet/v1/receipt", Cut::Before),
        ("/wallet/v1/receipt", Cut::After),
    ]
    .into_iter()
    .enumerate()
    {
        let link = lossy_link(&w.bank.url, path, cut);
        let o = w.env.run(&[
            "wallet",
            "load",
            "--bank",
            &link,
            "--account",
            "ACC1",
            "--amount",
            "10.00",
            "--pin",
            PIN,
        ]);
        assert!(
            !o.status.success(),
            "{path} {cut:?} {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(
            stderr(&o).contains("no answer from the bank"),
            "{}",
            stderr(&o)
        );
        assert!(!w.wallet()["pending_load"].is_null(), "{path} {cut:?}");
        // The next contact settles it: refunded when the wallet was not credited
        // (the load was cut before the permit reached the token), confirmed when
        // it was.
        let out = w
            .env
            .ok(&["wallet", "settle", "--bank", &w.bank.url, "--pin", PIN]);
        if path.ends_with("receipt") {
            expect_wallet += 1000;
            assert!(out.contains("confirmed"), "{out}");
        } else {
            assert!(
                out.contains("refunded") || out.contains("cancelled"),
                "{out}"
            );
        }
        assert!(w.wallet()["pending_load"].is_null());
        assert_eq!(minor(&w.balance()), expect_wallet, "{path} {cut:?}");
        assert_eq!(w.total(), total, "conservation after {path} {cut:?}");
        // Both logs agree on this load's end, and no sequence number repeats.
        let loads = w.loads();
        let last = &loads.as_array().unwrap()[i];
        assert_eq!(last["seq"], i as u64 + 1);
        let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
        let mine = log.as_array().unwrap().last().unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string();
        match last["state"].as_str().unwrap() {
            "confirmed" => assert_eq!(mine, "confirmed"),
            "refunded" => assert_eq!(mine, "refunded"),
            "cancelled" => assert_eq!(mine, "cancelled"),
            s => panic!("bank left load {} {s}", i + 1),
        }
    }
    assert_eq!(w.wallet()["next_seq"], 5);
}

/// The exit code of a `vtoken` of the test-hooks build stopped at its crash point
/// (`vault_core::wallet::test_exit_point`).
const CRASHED: i32 = 86;

/// The crash points of a load in the CLI (`VTOKEN_TEST_WALLET_EXIT_AT`): right
/// after the named token write or right before the named send.
const LOAD_CRASH_POINTS: [&str; 4] = [
    "requested",  // Requested written, the request not sent
    "permit",     // the bank debited and answered, the token has not looked
    "credited",   // Credited written, the receipt not sent
    "settlement", // the bank confirmed, the token has not recorded it
];

/// Seeded soak of the same: each run interrupts the load at a random step, either
/// at the network (a cut before or after the bank acted) or by killing the client
/// (the test-hooks `vtoken` exits at a named crash point, as a SIGKILL would:
/// right after a token write or right before a send), sometimes kills the bank
/// (SIGKILL) and restarts it, sometimes kills the client again during the next
/// contact; then the next contact (`wallet settle`, or a new `wallet load`, which
/// settles first) must succeed and leave: account + wallet conserved, no load
/// pending. At the end both logs agree load by load and every sequence number
/// was used exactly once. `VTOKEN_WALLET_CRASH_RUNS` (default 200) and
/// `VTOKEN_WALLET_CRASH_SEED`. About 60 s in debug (5-6 processes a run).
#[test]
fn seeded_cuts_and_kills_of_either_side_conserve_money() {
    let runs: u64 = std::env::var("VTOKEN_WALLET_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut seed: u64 = std::env::var("VTOKEN_WALLET_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0004);
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let hooked = artifacts::hooked_cli();
    let mut w = World::new();
    let total = w.total();
    let steps = [
        ("/wallet/v1/load", Cut::Before),
        ("/wallet/v1/load", Cut::After),
        ("/wallet/v1/receipt", Cut::Before),
        ("/wallet/v1/receipt", Cut::After),
        ("/wallet/v1/abort", Cut::After),
    ];
    let load_args = |url: &str, amount: &str| -> Vec<String> {
        [
            "wallet",
            "load",
            "--bank",
            url,
            "--account",
            "ACC1",
            "--amount",
            amount,
            "--pin",
            PIN,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let (mut client_kills, mut settle_kills, mut bank_kills) = (0, 0, 0);
    for run in 0..runs {
        let amount = format!("0.{:02}", 1 + next() % 99);
        let what = if next() % 2 == 0 {
            let (path, cut) = steps[(next() % steps.len() as u64) as usize];
            let link = lossy_link(&w.bank.url, path, cut);
            let _ = w.env.run(&load_args(&link, &amount));
            format!("{path} {cut:?}")
        } else {
            let point = LOAD_CRASH_POINTS[(next() % LOAD_CRASH_POINTS.len() as u64) as usize];
            let o = w
                .env
                .cmd_with(hooked, &load_args(&w.bank.url, &amount))
                .env("VTOKEN_TEST_WALLET_EXIT_AT", point)
                .output()
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(CRASHED),
                "run {run}: the client did not stop at {point}: {}",
                stderr(&o)
            );
            client_kills += 1;
            format!("client killed at {point}")
        };
        if next() % 4 == 0 {
            // The bank dies (whatever it was doing is committed or not) and comes back.
            let _ = w.bank.child.kill();
            let _ = w.bank.child.wait();
            w.bank = serve(&w.bank_dir);
            bank_kills += 1;
        }
        let pending = !w.wallet()["pending_load"].is_null();
        if pending && next() % 3 == 0 {
            // The client dies again, during the next contact.
            let point = ["settle-send", "settlement"][(next() % 2) as usize];
            let o = w
                .env
                .cmd_with(
                    hooked,
                    &["wallet", "settle", "--bank", &w.bank.url, "--pin", PIN],
                )
                .env("VTOKEN_TEST_WALLET_EXIT_AT", point)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(CRASHED), "run {run}: {}", stderr(&o));
            settle_kills += 1;
        }
        // The next contact settles whatever is pending: `settle`, or a new load
        // (which settles first).
        let o = if next() % 2 == 0 {
            w.env
                .run(&["wallet", "settle", "--bank", &w.bank.url, "--pin", PIN])
        } else {
            w.env.run(&load_args(&w.bank.url, "0.01"))
        };
        assert!(o.status.success(), "run {run} ({what}): {}", stderr(&o));
        let v = w.wallet();
        assert!(v["pending_load"].is_null(), "run {run} ({what}): {v}");
        let sum = minor(&w.account("ACC1")) + minor(v["balance"].as_str().unwrap());
        assert_eq!(sum, total, "run {run} ({what}): money created or lost");
    }
    eprintln!(
        "{runs} runs: {client_kills} client kills during a load, {settle_kills} during a settlement, {bank_kills} bank kills"
    );
    if runs >= 50 {
        assert!(client_kills > 0 && settle_kills > 0 && bank_kills > 0);
    }
    // Both logs agree load by load; sequence numbers are 1..=n, each once.
    let bank = w.loads();
    let bank = bank.as_array().unwrap();
    let log = w.env.json(&["--json", "wallet", "log", "--pin", PIN]);
    let mut last: std::collections::BTreeMap<u64, String> = Default::default();
    for e in log.as_array().unwrap() {
        if e["kind"] == "load" {
            last.insert(
                e["seq"].as_u64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            );
        }
    }
    // (The token keeps its last 1000 log lines: older loads may have left it.)
    for (i, l) in bank.iter().enumerate() {
        let seq = l["seq"].as_u64().unwrap();
        assert_eq!(seq, i as u64 + 1, "sequence numbers used once, in order");
        if let Some(mine) = last.get(&seq) {
            assert_eq!(l["state"].as_str().unwrap(), mine, "load {seq}");
        }
    }
    assert!(last.keys().all(|s| *s as usize <= bank.len()));
    assert_eq!(last.keys().last().copied(), Some(bank.len() as u64));
    assert_eq!(
        w.wallet()["next_seq"].as_u64().unwrap(),
        bank.len() as u64 + 1
    );
}
