//! The prompt agents (SPEC V5/V6) against real programs: shell scripts for the
//! command agent, a fake pinentry speaking Assuan, and the `[prompt]` configuration.
//! A real pinentry on a real terminal is driven in `tests/tests/prompt_tty.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vault_core::config::{Config, PromptAgent, PromptConfig};
use vault_core::error::NotConfirmed;
use vault_core::prompt::{self, pinentry, Answer, Command, Pinentry, Prompt, Request, Tty};
use vault_core::Error;

fn req() -> Request {
    Request {
        title: "Store vault entry?".into(),
        description: "site: example.org\nuser: alice\nnote: 100% sure".into(),
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn command(p: &Path, timeout: Duration) -> Command {
    Command::new(p.to_str().unwrap(), timeout)
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            matches!(rest.split_whitespace().next(), Some("Z" | "X"))
        }
    }
}

fn wait_dead(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn read_pid(p: &Path) -> u32 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

// ---------------------------------------------------------------- command agent

#[test]
fn command_exit_status_is_the_answer() {
    let d = tempfile::tempdir().unwrap();
    let yes = script(d.path(), "yes.sh", "exit 0");
    let no = script(d.path(), "no.sh", "exit 1");
    let t = Duration::from_secs(10);
    assert_eq!(command(&yes, t).confirm(&req()).unwrap(), Answer::Confirmed);
    assert_eq!(command(&no, t).confirm(&req()).unwrap(), Answer::Refused);
    assert_eq!(command(&no, t).name(), "command");
}

#[test]
fn command_gets_title_and_description_in_env_and_stdin() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().display().to_string();
    let s = script(
        d.path(),
        "check.sh",
        &format!(
            "printf '%s' \"$VTOKEN_PROMPT_TITLE\" > {out}/title\n\
             printf '%s' \"$VTOKEN_PROMPT_DESCRIPTION\" > {out}/desc\n\
             cat > {out}/stdin\n\
             echo 'stdout is discarded'\n\
             [ \"$1\" = one ] && [ \"$2\" = two ] || exit 1\n\
             exit 0"
        ),
    );
    let mut c = command(&s, Duration::from_secs(10));
    c.args = vec!["one".into(), "two".into()];
    assert_eq!(c.confirm(&req()).unwrap(), Answer::Confirmed);
    let r = req();
    assert_eq!(
        std::fs::read_to_string(d.path().join("title")).unwrap(),
        r.title
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("desc")).unwrap(),
        r.description
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("stdin")).unwrap(),
        format!("{}\n", r.description)
    );
    // Wrong arguments: the script refuses.
    c.args = vec!["one".into()];
    assert_eq!(c.confirm(&req()).unwrap(), Answer::Refused);
}

#[test]
fn command_past_timeout_is_killed_with_its_children() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    let s = script(
        d.path(),
        "slow.sh",
        &format!("echo $$ > {dir}/pid\nsleep 30 &\necho $! > {dir}/sleeppid\nwait\nexit 0"),
    );
    let t0 = Instant::now();
    let a = command(&s, Duration::from_secs(1)).confirm(&req()).unwrap();
    let took = t0.elapsed();
    assert_eq!(a, Answer::TimedOut);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let pid = read_pid(&d.path().join("pid"));
    let sleep_pid = read_pid(&d.path().join("sleeppid"));
    assert!(wait_dead(pid), "the script {pid} still runs");
    assert!(
        wait_dead(sleep_pid),
        "the script's sleep {sleep_pid} still runs"
    );
}

#[test]
fn command_that_ignores_stdin_and_odd_statuses() {
    let d = tempfile::tempdir().unwrap();
    // Never reads its input (a large description must not block us).
    let s = script(d.path(), "deaf.sh", "exit 0");
    let big = Request {
        title: "t".into(),
        description: "x".repeat(1 << 20),
    };
    assert_eq!(
        command(&s, Duration::from_secs(10)).confirm(&big).unwrap(),
        Answer::Confirmed
    );
    // A large description: cut in the environment, whole on stdin.
    let out = d.path().display().to_string();
    let s = script(
        d.path(),
        "count.sh",
        &format!(
            "printf '%s' \"$VTOKEN_PROMPT_DESCRIPTION\" | wc -c > {out}/env\nwc -c > {out}/in"
        ),
    );
    assert_eq!(
        command(&s, Duration::from_secs(10)).confirm(&big).unwrap(),
        Answer::Confirmed
    );
    let n = |f: &str| -> usize {
        std::fs::read_to_string(d.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(n("env"), prompt::command::ENV_MAX);
    assert_eq!(n("in"), (1 << 20) + 1);
    let s = script(d.path(), "three.sh", "exit 3");
    let e = command(&s, Duration::from_secs(10))
        .confirm(&req())
        .unwrap_err();
    assert!(e.to_string().contains("status 3"), "{e}");
    let s = script(d.path(), "sig.sh", "kill -9 $$");
    assert!(command(&s, Duration::from_secs(10))
        .confirm(&req())
        .is_err());
    let e = Command::new("/nonexistent/vtoken-prompt", Duration::from_secs(1))
        .confirm(&req())
        .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}

#[test]
fn token_confirm_uses_the_agent() {
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let reg = vault_core::slots::Registry::new(Config::for_dir(d.path().join("tokens")));
    let e = reg.create("prompt", b"so-secret-1", None).unwrap();
    let tok = reg.open(&e).unwrap();
    // The default agent denies: no agent can ask.
    let e = tok.confirm(&req()).unwrap_err();
    assert!(
        matches!(e, Error::NotConfirmed(NotConfirmed::NoAgent { .. })),
        "{e:?}"
    );
    assert_eq!(e.ckr(), vault_core::pkcs11::CKR_FUNCTION_REJECTED);
    let yes = script(d.path(), "yes.sh", "exit 0");
    let no = script(d.path(), "no.sh", "exit 1");
    let slow = script(d.path(), "slow.sh", "sleep 5");
    tok.set_prompt(Arc::new(command(&yes, Duration::from_secs(10))));
    tok.confirm(&req()).unwrap();
    tok.set_prompt(Arc::new(command(&no, Duration::from_secs(10))));
    let e = tok.confirm(&req()).unwrap_err();
    assert!(
        matches!(&e, Error::NotConfirmed(NotConfirmed::Refused { agent }) if agent == "command"),
        "{e:?}"
    );
    assert_eq!(e.ckr(), vault_core::pkcs11::CKR_FUNCTION_REJECTED);
    tok.set_prompt(Arc::new(command(&slow, Duration::from_millis(300))));
    let e = tok.confirm(&req()).unwrap_err();
    assert!(
        matches!(e, Error::NotConfirmed(NotConfirmed::TimedOut { .. })),
        "{e:?}"
    );
    assert_eq!(e.ckr(), vault_core::pkcs11::CKR_FUNCTION_REJECTED);
    tok.set_prompt(Arc::new(Tty {
        device: d.path().join("no-such-tty"),
        timeout: Duration::from_secs(1),
    }));
    let e = tok.confirm(&req()).unwrap_err();
    assert!(
        matches!(e, Error::NotConfirmed(NotConfirmed::NoAgent { .. })),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- pinentry agent

/// A fake pinentry: greets, logs every command to `log`, answers OK, answers
/// CONFIRM with `confirm_reply` (or hangs when it is empty), and GETPIN with
/// `getpin_reply` lines.
fn fake_pinentry(dir: &Path, name: &str, confirm_reply: &str, getpin_reply: &str) -> PathBuf {
    let log = dir.join(format!("{name}.log"));
    let confirm = if confirm_reply.is_empty() {
        "echo $$ > \"$LOG.pid\"; sleep 60".to_string()
    } else {
        format!("echo '{confirm_reply}'")
    };
    script(
        dir,
        name,
        &format!(
            "LOG='{log}'\n\
             echo 'OK Pleased to meet you'\n\
             while IFS= read -r line; do\n\
               printf '%s\\n' \"$line\" >> \"$LOG\"\n\
               case \"$line\" in\n\
                 CONFIRM*) {confirm} ;;\n\
                 GETPIN*) printf '%b' '{getpin_reply}' ;;\n\
                 BYE*) echo 'OK closing connection'; exit 0 ;;\n\
                 SETNOPE*) echo 'ERR 536871187 Unknown IPC command <User defined source 1>' ;;\n\
                 *) echo '# a comment'; echo 'S PROGRESS x'; echo OK ;;\n\
               esac\n\
             done",
            log = log.display()
        ),
    )
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn pinentry_ok_confirms_and_speaks_assuan() {
    let d = tempfile::tempdir().unwrap();
    let p = fake_pinentry(d.path(), "pe-ok", "OK", "");
    let mut agent = Pinentry::new(&p, Duration::from_secs(7));
    agent.tty = Some("/dev/pts/99".into());
    assert_eq!(agent.confirm(&req()).unwrap(), Answer::Confirmed);
    assert_eq!(agent.name(), "pinentry");
    let log = log_of(d.path(), "pe-ok");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.contains(&"OPTION ttyname=/dev/pts/99"), "{log}");
    assert!(lines.contains(&"SETTITLE Store vault entry?"), "{log}");
    assert!(
        lines.contains(
            &"SETDESC Store vault entry?%0A%0Asite: example.org%0Auser: alice%0Anote: 100%25 sure"
        ),
        "{log}"
    );
    assert!(lines.contains(&"SETTIMEOUT 7"), "{log}");
    assert!(lines.contains(&"SETOK _Yes"), "{log}");
    assert!(lines.contains(&"SETCANCEL _No"), "{log}");
    let confirm = lines.iter().position(|l| *l == "CONFIRM").expect("CONFIRM");
    assert_eq!(lines.last(), Some(&"BYE"), "{log}");
    assert!(lines[..confirm].iter().any(|l| l.starts_with("SETDESC")));
}

#[test]
fn pinentry_cancel_is_refused_and_timeout_timed_out() {
    let d = tempfile::tempdir().unwrap();
    let t = Duration::from_secs(5);
    let p = fake_pinentry(
        d.path(),
        "pe-cancel",
        "ERR 83886179 Operation cancelled <Pinentry>",
        "",
    );
    assert_eq!(
        Pinentry::new(&p, t).confirm(&req()).unwrap(),
        Answer::Refused
    );
    assert!(log_of(d.path(), "pe-cancel").ends_with("BYE\n"));
    let p = fake_pinentry(
        d.path(),
        "pe-nc",
        "ERR 83886194 Not confirmed <Pinentry>",
        "",
    );
    assert_eq!(
        Pinentry::new(&p, t).confirm(&req()).unwrap(),
        Answer::Refused
    );
    let p = fake_pinentry(d.path(), "pe-to", "ERR 83886142 Timeout <Pinentry>", "");
    assert_eq!(
        Pinentry::new(&p, t).confirm(&req()).unwrap(),
        Answer::TimedOut
    );
    // A pinentry that cannot reach its terminal: no prompt could be shown.
    let p = fake_pinentry(
        d.path(),
        "pe-notty",
        "ERR 83918950 Inappropriate ioctl for device <Pinentry>",
        "",
    );
    let e = Pinentry::new(&p, t).confirm(&req()).unwrap_err();
    assert!(e.to_string().contains("Inappropriate ioctl"), "{e}");
}

#[test]
fn pinentry_that_hangs_is_killed_by_the_watchdog() {
    let d = tempfile::tempdir().unwrap();
    let p = fake_pinentry(d.path(), "pe-hang", "", "");
    let t0 = Instant::now();
    let a = Pinentry::new(&p, Duration::from_secs(1))
        .confirm(&req())
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(a, Answer::TimedOut);
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    let pid = read_pid(&d.path().join("pe-hang.log.pid"));
    assert!(wait_dead(pid), "the hung pinentry {pid} still runs");
}

#[test]
fn pinentry_bad_programs_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let e = Pinentry::new("/nonexistent/pinentry", Duration::from_secs(1))
        .confirm(&req())
        .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
    // Exits at once: no greeting.
    let p = script(d.path(), "mute", "exit 0");
    assert!(Pinentry::new(&p, Duration::from_secs(1))
        .confirm(&req())
        .is_err());
    // Greets with an error.
    let p = script(d.path(), "grumpy", "echo 'ERR 1 go away'; sleep 1");
    assert!(Pinentry::new(&p, Duration::from_secs(1))
        .confirm(&req())
        .is_err());
}

#[test]
fn pinentry_get_pin() {
    let d = tempfile::tempdir().unwrap();
    let p = fake_pinentry(d.path(), "pe-pin", "OK", "D se%25cr\\nD et%0A\\nOK\\n");
    let agent = Pinentry::new(&p, Duration::from_secs(5));
    let pin = agent.get_pin("Unlock token", "PIN:").unwrap().unwrap();
    assert_eq!(pin.as_str(), "se%cret\n");
    let log = log_of(d.path(), "pe-pin");
    assert!(log.contains("SETPROMPT PIN:\nGETPIN\nBYE\n"), "{log}");
    let p = fake_pinentry(
        d.path(),
        "pe-pin-cancel",
        "OK",
        "ERR 83886179 Operation cancelled <Pinentry>\\n",
    );
    assert!(Pinentry::new(&p, Duration::from_secs(5))
        .get_pin("Unlock token", "PIN:")
        .unwrap()
        .is_none());
    let p = fake_pinentry(d.path(), "pe-pin-empty", "OK", "OK\\n");
    let pin = Pinentry::new(&p, Duration::from_secs(5))
        .get_pin("t", "p")
        .unwrap()
        .unwrap();
    assert_eq!(pin.as_str(), "");
}

#[test]
fn percent_escaping() {
    assert_eq!(pinentry::escape("a%b"), "a%25b");
    assert_eq!(pinentry::escape("l1\r\nl2"), "l1%0D%0Al2");
    assert_eq!(pinentry::escape("plain: ünïcode"), "plain: ünïcode");
    assert_eq!(pinentry::unescape(b"%25%0d%0A%41"), b"%\r\nA");
    assert_eq!(pinentry::unescape(b"100%"), b"100%");
    assert_eq!(pinentry::unescape(b"%g1"), b"%g1");
    for s in ["", "%%%", "a\nb\rc%d", "x%0Ay"] {
        assert_eq!(
            pinentry::unescape(pinentry::escape(s).as_bytes()),
            s.as_bytes()
        );
    }
}

#[test]
fn descriptions_are_made_terminal_safe() {
    assert_eq!(prompt::display_safe("a\nb\tc"), "a\nb\tc");
    assert_eq!(
        prompt::display_safe("evil\x1b[2J\rok"),
        "evil\\x1b[2J\\x0dok"
    );
    assert_eq!(prompt::display_safe("\u{202e}gro"), "\\u{202e}gro");
    assert_eq!(prompt::display_safe("\u{9b}31m"), "\\u{9b}31m");
}

// ---------------------------------------------------------------- tty agent

#[test]
fn tty_without_device_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let t = Tty {
        device: d.path().join("no-such-tty"),
        timeout: Duration::from_secs(1),
    };
    let e = t.confirm(&req()).unwrap_err();
    assert!(e.to_string().contains("cannot open terminal"), "{e}");
    assert_eq!(t.name(), "tty");
    assert!(prompt::tty::is_yes(" Yes\n"));
    assert!(prompt::tty::is_yes("y"));
    assert!(!prompt::tty::is_yes("yess"));
    assert!(!prompt::tty::is_yes(""));
}

// ---------------------------------------------------------------- configuration

#[test]
fn prompt_config_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.prompt, PromptConfig::default());
    assert_eq!(c.prompt.agent, PromptAgent::Deny);
    assert_eq!(c.prompt.timeout_secs, 60);
    assert!(c.prompt.needs("vault-write"));
    assert!(!c.prompt.needs("vault-read"));
    assert_eq!(Config::for_dir("/tmp/x").prompt, PromptConfig::default());
    let a = prompt::build(&c.prompt).unwrap();
    assert_eq!(a.name(), "deny");
    assert_eq!(a.confirm(&req()).unwrap(), Answer::Refused);
}

#[test]
fn prompt_config_parsing() {
    let c = Config::from_toml(
        "[prompt]\nagent = \"pinentry\"\nprogram = \"/usr/bin/pinentry-tty\"\n\
         timeout_secs = 15\ntty = \"/dev/pts/3\"\n\
         confirm = [\"vault-write\", \"otp-code\", \"key-export\"]\n",
    )
    .unwrap()
    .prompt;
    assert_eq!(c.agent, PromptAgent::Pinentry);
    assert_eq!(c.program, Some(PathBuf::from("/usr/bin/pinentry-tty")));
    assert_eq!(c.timeout(), Duration::from_secs(15));
    assert_eq!(c.tty, Some(PathBuf::from("/dev/pts/3")));
    assert!(c.needs("otp-code") && c.needs("key-export") && !c.needs("vault-read"));

    let c = Config::from_toml("[prompt]\nagent = \"command\"\ncommand = \"/bin/ask -q  --x\"\n")
        .unwrap()
        .prompt;
    assert_eq!(c.command, ["/bin/ask", "-q", "--x"]);
    let c =
        Config::from_toml("[prompt]\nagent = \"command\"\ncommand = [\"/bin/my ask\", \"a b\"]\n")
            .unwrap()
            .prompt;
    assert_eq!(c.command, ["/bin/my ask", "a b"]);
    let c = Config::from_toml("[prompt]\nconfirm = []\n")
        .unwrap()
        .prompt;
    assert!(!c.needs("vault-write"));

    for bad in [
        "[prompt]\nagent = \"gui\"\n",
        "[prompt]\nagent = \"command\"\n",
        "[prompt]\ntimeout_secs = 0\n",
        "[prompt]\nconfirm = [\"vault-wrte\"]\n",
        "[prompt]\nagnet = \"tty\"\n",
    ] {
        let e = Config::from_toml(bad).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{bad}: {e}");
    }
}

#[test]
fn prompt_overrides_and_building() {
    let base = PromptConfig {
        timeout_secs: 9,
        confirm: vec!["vault-read".into()],
        ..PromptConfig::default()
    };
    let c = base.with_override("deny").unwrap();
    assert_eq!(c.agent, PromptAgent::Deny);
    let c = base.with_override("tty").unwrap();
    assert_eq!(c.agent, PromptAgent::Tty);
    let c = base.with_override("tty:/dev/pts/7").unwrap();
    assert_eq!(c.tty, Some(PathBuf::from("/dev/pts/7")));
    let c = base
        .with_override("pinentry:/usr/bin/pinentry-tty")
        .unwrap();
    assert_eq!(c.agent, PromptAgent::Pinentry);
    assert_eq!(c.program, Some(PathBuf::from("/usr/bin/pinentry-tty")));
    let c = base
        .with_override("command:/path/to/script --flag")
        .unwrap();
    assert_eq!(c.agent, PromptAgent::Command);
    assert_eq!(c.command, ["/path/to/script", "--flag"]);
    // The rest of the configuration stays.
    assert_eq!(c.timeout_secs, 9);
    assert!(c.needs("vault-read"));
    assert!(base.with_override("command").is_err());
    assert!(base.with_override("command:").is_err());
    assert!(base.with_override("deny:x").is_err());
    assert!(base.with_override("zenity").is_err());

    // Building.
    let d = tempfile::tempdir().unwrap();
    let yes = script(d.path(), "yes.sh", "exit 0");
    let c = base
        .with_override(&format!("command:{}", yes.display()))
        .unwrap();
    let a = prompt::build(&c).unwrap();
    assert_eq!(a.name(), "command");
    assert_eq!(a.confirm(&req()).unwrap(), Answer::Confirmed);
    let c = base
        .with_override("pinentry:/nonexistent/pinentry")
        .unwrap();
    let e = prompt::build(&c).err().expect("missing pinentry");
    assert!(e.to_string().contains("not found"), "{e}");
    let fake = fake_pinentry(d.path(), "pe-build", "OK", "");
    let c = base
        .with_override(&format!("pinentry:{}", fake.display()))
        .unwrap();
    let a = prompt::build(&c).unwrap();
    assert_eq!(a.name(), "pinentry");
    assert_eq!(a.confirm(&req()).unwrap(), Answer::Confirmed);
    assert!(log_of(d.path(), "pe-build").contains("SETTIMEOUT 9\n"));
    let a = prompt::build(&base.with_override("tty:/nonexistent/tty").unwrap()).unwrap();
    assert_eq!(a.name(), "tty");
    assert!(a.confirm(&req()).is_err());
}

/// The only test touching `VTOKEN_PROMPT` (the environment is process-wide).
#[test]
fn vtoken_prompt_env_wins_over_the_file() {
    let d = tempfile::tempdir().unwrap();
    let no = script(d.path(), "no.sh", "exit 1");
    let file = Config::from_toml("[prompt]\nagent = \"tty\"\ntimeout_secs = 5\n")
        .unwrap()
        .prompt;
    std::env::set_var("VTOKEN_PROMPT", format!("command:{}", no.display()));
    let eff = file.effective();
    let agent = prompt::from_config(&file);
    std::env::set_var("VTOKEN_PROMPT", "bogus");
    let bad = prompt::from_config(&file);
    std::env::set_var("VTOKEN_PROMPT", "");
    let empty = file.effective();
    std::env::remove_var("VTOKEN_PROMPT");
    let eff = eff.unwrap();
    assert_eq!(eff.agent, PromptAgent::Command);
    assert_eq!(eff.timeout_secs, 5);
    let agent = agent.unwrap();
    assert_eq!(agent.name(), "command");
    assert_eq!(agent.confirm(&req()).unwrap(), Answer::Refused);
    assert!(bad.is_err());
    assert_eq!(empty.unwrap(), file);
    assert_eq!(file.effective().unwrap(), file);
}
