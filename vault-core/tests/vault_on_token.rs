//! Input on the token itself (SPEC V6, ¶0065, ¶0081) through the public API, on real
//! token files, with the real command agent: a shell script plays the user at the
//! token's prompt (typing the PIN and each field, then confirming). The terminal
//! agent and pinentry are driven under tmux in `tests/tests/prompt_tty.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vault_core::config::Config;
use vault_core::prompt::{Ask, AskReply, Command, Deny, Prompt};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{Kind, VaultMode};
use vault_core::Error;

const SO: &[u8] = b"so-secret-1";
const USER: &str = "user-1234";

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A user at the token's prompt: answers each question by its label (`answers`:
/// shell `case` arms), logs `kind label secret` per question to `log`, confirms
/// with exit `confirm`.
fn user(dir: &Path, name: &str, answers: &str, confirm: u8) -> (Arc<Command>, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let s = script(
        dir,
        name,
        &format!(
            "echo \"$VTOKEN_PROMPT_KIND|$VTOKEN_PROMPT_LABEL|$VTOKEN_PROMPT_SECRET\" >> '{log}'\n\
             if [ \"$VTOKEN_PROMPT_KIND\" = confirm ]; then cat >> '{log}'; exit {confirm}; fi\n\
             case \"$VTOKEN_PROMPT_LABEL\" in\n{answers}\n  *) echo ;;\nesac",
            log = log.display()
        ),
    );
    (
        Arc::new(Command::new(s.to_str().unwrap(), Duration::from_secs(5))),
        log,
    )
}

/// A token with the user PIN set and an available, enabled vault; nobody logged in.
fn token() -> (tempfile::TempDir, Arc<Token>) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(Config::for_dir(dir.path().join("tokens")));
    let e = reg.create("test", SO, None).unwrap();
    let t = reg.open(&e).unwrap();
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER.as_bytes()).unwrap();
    t.vault_setup(VaultMode::Available).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, USER.as_bytes()).unwrap();
    t.vault_enable().unwrap();
    t.logout().unwrap();
    (dir, t)
}

const TYPIST: &str = "  'User PIN') echo user-1234 ;;\n\
                      \x20 Title) echo bank ;;\n\
                      \x20 Bank) echo HSBC ;;\n\
                      \x20 'Card number') echo 4111111111111111 ;;\n\
                      \x20 'Card pin (optional)') echo 9876 ;;";

#[test]
fn the_pin_and_every_field_come_from_the_prompt_in_order() {
    let (d, t) = token();
    let (agent, log) = user(d.path(), "typist.sh", TYPIST, 0);
    t.set_prompt(agent);
    let (id, summary) = t.vault_add_on_token(Kind::BankCard).unwrap();
    assert_eq!(summary.title, "bank");
    // The patent's order: PIN (secret), the fields (secrets secret), the entry
    // shown as received, secrets included (V5), then stored.
    let log = std::fs::read_to_string(&log).unwrap();
    let asked: Vec<&str> = log.lines().take(6).collect();
    assert_eq!(
        asked,
        [
            "ask|User PIN|1",
            "ask|Title|0",
            "ask|Bank|0",
            "ask|Card number|1",
            "ask|Card pin (optional)|1",
            "ask|Notes (optional)|0",
        ]
    );
    assert!(log.contains("confirm||"), "{log}");
    assert!(
        log.contains("card_number (secret): 4111111111111111"),
        "{log}"
    );
    // No secret in the questions' context (each description lists what was typed).
    let before_confirm = log.split("confirm||").next().unwrap();
    assert!(!before_confirm.contains("4111111111111111"));
    let e = t.vault_get(id).unwrap();
    assert_eq!(e.field("card_number").unwrap().value, "4111111111111111");
    assert!(e.field("card_number").unwrap().secret);
    assert_eq!(e.field("card_pin").unwrap().value, "9876");
    assert!(
        e.field("notes").is_none(),
        "an empty optional field is left out"
    );
}

#[test]
fn logged_in_user_is_not_asked_the_pin() {
    let (d, t) = token();
    let (agent, log) = user(d.path(), "typist.sh", TYPIST, 0);
    t.set_prompt(agent);
    t.login(UserType::User, USER.as_bytes()).unwrap();
    t.vault_add_on_token(Kind::BankCard).unwrap();
    assert!(!std::fs::read_to_string(&log).unwrap().contains("User PIN"));
}

#[test]
fn every_refusal_stores_nothing() {
    let (d, t) = token();
    let count = |t: &Token| {
        let logged = t.logged_in().is_some();
        if !logged {
            t.login(UserType::User, USER.as_bytes()).unwrap();
        }
        let n = t.vault_list().unwrap().len();
        if !logged {
            t.logout().unwrap();
        }
        n
    };
    // A wrong PIN typed on the token: a counted failed login, no field asked.
    let (wrong, log) = user(
        d.path(),
        "wrong.sh",
        "  'User PIN') echo 000000 ;;\n  *) echo x ;;",
        0,
    );
    t.set_prompt(wrong);
    assert!(matches!(
        t.vault_add_on_token(Kind::Website),
        Err(Error::PinIncorrect)
    ));
    assert_eq!(t.info().unwrap().user_pin.failures, 1);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);

    // Refused in the middle (exit 1 at the card number).
    let (refuse, _) = user(
        d.path(),
        "refuse.sh",
        &format!("{TYPIST}\n  'Card number') exit 1 ;;").replacen(
            "\x20 'Card number') echo 4111111111111111 ;;",
            "",
            1,
        ),
        0,
    );
    t.set_prompt(refuse);
    assert!(matches!(
        t.vault_add_on_token(Kind::BankCard),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(count(&t), 0);
    t.logout().unwrap();

    // A required field left empty.
    let (empty, _) = user(
        d.path(),
        "empty.sh",
        "  'User PIN') echo user-1234 ;;\n  Title) echo ;;",
        0,
    );
    t.set_prompt(empty);
    let e = t.vault_add_on_token(Kind::Website).unwrap_err();
    assert!(e.to_string().contains("title"), "{e}");
    assert_eq!(count(&t), 0);
    t.logout().unwrap();

    // Everything typed, the confirmation refused.
    let (no, _) = user(d.path(), "no.sh", TYPIST, 1);
    t.set_prompt(no);
    assert!(matches!(
        t.vault_add_on_token(Kind::BankCard),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(count(&t), 0);
    t.logout().unwrap();

    // Nobody answers: the agent's timeout.
    let slow = script(d.path(), "slow.sh", "sleep 30");
    t.set_prompt(Arc::new(Command::new(
        slow.to_str().unwrap(),
        Duration::from_millis(500),
    )));
    assert!(matches!(
        t.vault_add_on_token(Kind::Website),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));

    // `deny` refuses at once.
    t.set_prompt(Arc::new(Deny));
    assert!(matches!(
        t.vault_add_on_token(Kind::Website),
        Err(Error::FunctionRejected | Error::NotConfirmed(_))
    ));
    assert_eq!(count(&t), 0);
}

/// An agent that can confirm but not take text (an embedding program's own): the
/// input is refused with the agent's clear error, nothing stored.
#[test]
fn an_agent_that_cannot_ask_says_so() {
    struct ConfirmOnly;
    impl Prompt for ConfirmOnly {
        fn confirm(
            &self,
            _: &vault_core::prompt::Request,
        ) -> vault_core::Result<vault_core::prompt::Answer> {
            Ok(vault_core::prompt::Answer::Confirmed)
        }
        fn name(&self) -> &str {
            "confirm-only"
        }
    }
    let (_d, t) = token();
    t.set_prompt(Arc::new(ConfirmOnly));
    let e = t.vault_add_on_token(Kind::Website).unwrap_err();
    assert!(e.to_string().contains("cannot take typed input"), "{e}");
}

/// The command agent's `ask`: the first line of its output is the value; exit 1
/// refuses; past the timeout it is killed.
#[test]
fn command_agent_ask_statuses() {
    let d = tempfile::tempdir().unwrap();
    let q = Ask {
        title: "t".into(),
        description: "d".into(),
        label: "Password".into(),
        secret: true,
    };
    let value = script(
        d.path(),
        "v.sh",
        "[ \"$VTOKEN_PROMPT_SECRET\" = 1 ] && echo \"  $VTOKEN_PROMPT_LABEL-x  \"",
    );
    let ask = |p: &Path, ms| Command::new(p.to_str().unwrap(), Duration::from_millis(ms)).ask(&q);
    assert_eq!(
        ask(&value, 5000).unwrap(),
        AskReply::Text(zeroize::Zeroizing::new("Password-x".into()))
    );
    let no = script(d.path(), "n.sh", "exit 1");
    assert_eq!(ask(&no, 5000).unwrap(), AskReply::Refused);
    let slow = script(d.path(), "s.sh", "sleep 30");
    assert_eq!(ask(&slow, 300).unwrap(), AskReply::TimedOut);
    let odd = script(d.path(), "o.sh", "exit 4");
    assert!(ask(&odd, 5000).is_err());
}
