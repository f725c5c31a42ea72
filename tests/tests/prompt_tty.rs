//! The prompt agents on a real terminal, tried as a new user would (and `vtoken vault
//! add` with the tty agent, end to end): a tmux session
//! (private server `tmux -L vtoken-test-<pid>-<n>`, one per test) runs `vault-core`'s `prompt_demo`
//! example, the test reads the screen, presses the keys a person would, and checks
//! the answer the program prints. Standard input and output of the program are
//! redirected, as inside a PKCS#11 host, so the agents must find the terminal
//! themselves.
//!
//! Needs `tmux` and `pinentry-tty` (`pinentry-curses` is tried when installed); the
//! test fails without them unless `VTOKEN_SKIP_TMUX=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vtoken_testsupport::{artifacts, env};

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A private tmux server, killed on drop.
struct Tmux {
    program: PathBuf,
    socket: String,
}

impl Tmux {
    fn new(program: PathBuf) -> Tmux {
        // One server per test: the tests of this file run in parallel threads of
        // one process, so the pid alone would give them the same server (and the
        // first one to finish would kill the other's sessions).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            program,
            socket: format!("vtoken-test-{}-{n}", std::process::id()),
        };
        // A session that outlives the cases, so the server does not exit (and race
        // the next `new-session`) each time a case's program ends.
        t.start("keeper", "sleep 600");
        t
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.program)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Starts `line` (a shell command line) in a new 100x30 session.
    fn start(&self, session: &str, line: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "100",
            "-y",
            "30",
            line,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    /// Waits up to 10 s for `text` on the screen; returns the screen.
    fn wait_for(&self, session: &str, text: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.screen(session);
            if s.contains(text) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "waited 10 s for {text:?} in session {session}; the screen shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends keys (tmux key names such as `Enter`, `Escape`, or literal letters).
    fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Waits up to 10 s for the program's one line of output.
fn answer(out: &Path, screen_on_fail: impl Fn() -> String) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(out) {
            if s.ends_with('\n') {
                return s.trim().to_string();
            }
        }
        assert!(
            Instant::now() < end,
            "no answer in {} after 10 s; the screen shows:\n{}",
            out.display(),
            screen_on_fail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Case<'a> {
    spec: String,
    timeout_secs: u64,
    /// Text that shows the prompt is up.
    ready: &'a str,
    keys: &'a [&'a str],
    expect: &'a str,
}

fn run(tmux: &Tmux, demo: &Path, dir: &Path, n: usize, case: &Case) {
    let session = format!("case{n}");
    let out = dir.join(format!("case{n}.out"));
    let err = dir.join(format!("case{n}.err"));
    // stdin and stdout are not the terminal: the agents must open it themselves.
    let line = format!(
        "'{}' '{}' {} </dev/null >'{}' 2>'{}'",
        demo.display(),
        case.spec,
        case.timeout_secs,
        out.display(),
        err.display()
    );
    tmux.start(&session, &line);
    let screen = tmux.wait_for(&session, case.ready);
    assert!(
        screen.contains("demo@example.org"),
        "{}: the description is not on the screen:\n{screen}",
        case.spec
    );
    if !case.keys.is_empty() {
        // Let the prompt finish drawing and start reading.
        std::thread::sleep(Duration::from_millis(300));
        tmux.keys(&session, case.keys);
    }
    let got = answer(&out, || tmux.screen(&session));
    assert_eq!(
        got,
        case.expect,
        "{} with keys {:?}; stderr: {}",
        case.spec,
        case.keys,
        std::fs::read_to_string(&err).unwrap_or_default()
    );
}

#[test]
fn prompts_on_a_real_terminal() {
    if std::env::var("VTOKEN_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("VTOKEN_SKIP_TMUX=1: skipping the tmux prompt test");
        return;
    }
    let tmux = which("tmux").unwrap_or_else(|| {
        panic!("tmux is not installed: install it (apt-get install tmux) or set VTOKEN_SKIP_TMUX=1")
    });
    let pinentry_tty = which("pinentry-tty").unwrap_or_else(|| {
        panic!(
            "pinentry-tty is not installed: install it (apt-get install pinentry-tty) \
             or set VTOKEN_SKIP_TMUX=1"
        )
    });
    let demo = artifacts::prompt_demo().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(tmux);

    let pe = format!("pinentry:{}", pinentry_tty.display());
    let mut cases = vec![
        // pinentry-tty shows the description, "Yes", "No" and "[yn]?", and takes
        // one key.
        Case {
            spec: pe.clone(),
            timeout_secs: 30,
            ready: "[yn]?",
            keys: &["y"],
            expect: "Confirmed",
        },
        Case {
            spec: pe.clone(),
            timeout_secs: 30,
            ready: "[yn]?",
            keys: &["n"],
            expect: "Refused",
        },
        // Nobody answers: pinentry's own SETTIMEOUT ends it.
        Case {
            spec: pe.clone(),
            timeout_secs: 2,
            ready: "[yn]?",
            keys: &[],
            expect: "TimedOut",
        },
        // The tty agent: a line, then Enter.
        Case {
            spec: "tty".into(),
            timeout_secs: 30,
            ready: "Confirm? [y/N]",
            keys: &["y", "Enter"],
            expect: "Confirmed",
        },
        Case {
            spec: "tty".into(),
            timeout_secs: 30,
            ready: "Confirm? [y/N]",
            keys: &["n", "o", "Enter"],
            expect: "Refused",
        },
        Case {
            spec: "tty".into(),
            timeout_secs: 2,
            ready: "Confirm? [y/N]",
            keys: &[],
            expect: "TimedOut",
        },
    ];
    // pinentry-curses: a dialog with <Yes> focused; Enter takes it, Right moves to
    // <No>. (Escape does nothing in its confirm dialog.)
    if let Some(curses) = which("pinentry-curses") {
        let pc = format!("pinentry:{}", curses.display());
        cases.push(Case {
            spec: pc.clone(),
            timeout_secs: 30,
            ready: "<Yes>",
            keys: &["Enter"],
            expect: "Confirmed",
        });
        cases.push(Case {
            spec: pc,
            timeout_secs: 30,
            ready: "<Yes>",
            keys: &["Right", "Enter"],
            expect: "Refused",
        });
    } else {
        eprintln!("pinentry-curses not installed: only pinentry-tty tried");
    }
    for (n, case) in cases.iter().enumerate() {
        run(&tmux, &demo, dir.path(), n, case);
    }
}

/// `vtoken vault add` as a new user runs it in a terminal: the password is asked
/// without echo, the entry is shown with the password masked through the tty agent,
/// and only "y" stores it.
#[test]
fn vault_add_in_a_terminal() {
    if std::env::var("VTOKEN_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("VTOKEN_SKIP_TMUX=1: skipping the tmux vault test");
        return;
    }
    let tmux = which("tmux").unwrap_or_else(|| {
        panic!("tmux is not installed: install it (apt-get install tmux) or set VTOKEN_SKIP_TMUX=1")
    });
    let vtoken = artifacts::cli();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vtoken.toml");
    env::write_config(
        &conf,
        &dir.path().join("tokens"),
        "[prompt]\nagent = \"tty\"\ntimeout_secs = 30\n",
    );
    let run = |args: &[&str]| {
        env::command(vtoken, &conf)
            .args(args)
            .env("VTOKEN_PIN", "123456")
            .output()
            .unwrap()
    };
    let init = run(&[
        "init", "--label", "tty", "--so-pin", "12345678", "--pin", "123456",
    ]);
    assert!(init.status.success(), "{init:?}");
    // The vault is switched on by its own step (SPEC V4, S202).
    let enable = run(&["vault", "enable"]);
    assert!(enable.status.success(), "{enable:?}");
    let tmux = Tmux::new(tmux);
    for (n, (answer_keys, stored)) in [(&["y", "Enter"][..], true), (&["n", "Enter"][..], false)]
        .into_iter()
        .enumerate()
    {
        let session = format!("vault{n}");
        let title = format!("mail{n}");
        let line = format!(
            "VTOKEN_CONF='{}' VTOKEN_PIN=123456 '{}' vault add --kind website --title {title} \
             --url https://mail.example.org --username alice; echo EXIT=$?; sleep 30",
            conf.display(),
            vtoken.display()
        );
        tmux.start(&session, &line);
        // The password prompt (no echo), then the confirmation on the terminal.
        let screen = tmux.wait_for(&session, "assword");
        assert!(
            !screen.contains("Confirm?"),
            "confirmation before the password:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(300));
        tmux.keys(&session, &["-l", "S3cret-pass!"]);
        tmux.keys(&session, &["Enter"]);
        let screen = tmux.wait_for(&session, "Confirm? [y/N]");
        assert!(screen.contains(&title), "the entry is not shown:\n{screen}");
        assert!(
            screen.contains("mail.example.org"),
            "the URL is not shown:\n{screen}"
        );
        // Typed without echo; shown once, in the confirmation, as the token
        // received it (V5, ¶0087–0088).
        assert_eq!(
            screen.matches("S3cret-pass!").count(),
            1,
            "the password is echoed or not shown as received:\n{screen}"
        );
        assert!(
            screen.contains("password (secret): S3cret-pass!"),
            "{screen}"
        );
        std::thread::sleep(Duration::from_millis(300));
        tmux.keys(&session, answer_keys);
        let screen = tmux.wait_for(&session, "EXIT=");
        assert_eq!(
            screen.contains("EXIT=0"),
            stored,
            "exit status; screen:\n{screen}"
        );
        let list = run(&["vault", "list", "--json"]);
        assert!(list.status.success(), "{list:?}");
        let listed = String::from_utf8_lossy(&list.stdout).contains(&title);
        assert_eq!(listed, stored, "entry {title} stored = {listed}");
    }
}

/// A token with its vault switched on, its prompt agent given by `prompt` (a
/// `[prompt]` table body); returns the config path. `timeout_secs` goes to a
/// second config (same tokens) for the timeout case.
fn vault_token(dir: &Path, prompt: &str) -> PathBuf {
    let conf = dir.join("vtoken.toml");
    env::write_config(&conf, &dir.join("tokens"), &format!("[prompt]\n{prompt}\n"));
    let run = |args: &[&str]| {
        env::command(artifacts::cli(), &conf)
            .args(args)
            .env("VTOKEN_PIN", "123456")
            .output()
            .unwrap()
    };
    let init = run(&[
        "init", "--label", "tty", "--so-pin", "12345678", "--pin", "123456",
    ]);
    assert!(init.status.success(), "{init:?}");
    let enable = run(&["vault", "enable"]);
    assert!(enable.status.success(), "{enable:?}");
    conf
}

/// The titles listed in the vault (logged in from the client, as a check only).
fn vault_titles(conf: &Path) -> String {
    let list = env::command(artifacts::cli(), conf)
        .args(["vault", "list", "--json"])
        .env("VTOKEN_PIN", "123456")
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    String::from_utf8_lossy(&list.stdout).into_owned()
}

/// Starts `vtoken vault add --kind website --on-token` in tmux session `session`,
/// with standard input and output redirected (not the terminal) and no PIN in
/// its environment: everything must come through the token's prompt.
fn start_on_token(tmux: &Tmux, session: &str, conf: &Path, out: &Path) {
    let line = format!(
        "env -u VTOKEN_PIN VTOKEN_CONF='{}' '{}' vault add --kind website --on-token \
         </dev/null >'{}' 2>&1; echo EXIT=$?; sleep 30",
        conf.display(),
        artifacts::cli().display(),
        out.display()
    );
    tmux.start(session, &line);
}

/// Types `text` and Enter once `ready` is on the screen.
fn answer_with(tmux: &Tmux, session: &str, ready: &str, text: &str) -> String {
    let screen = tmux.wait_for(session, ready);
    std::thread::sleep(Duration::from_millis(200));
    if !text.is_empty() {
        tmux.keys(session, &["-l", text]);
    }
    tmux.keys(session, &["Enter"]);
    screen
}

/// SPEC V6 (¶0065, ¶0081) with the real terminal agent: the PIN and every field are
/// typed on the token's prompt, secrets without echo; the client's output holds
/// only the id and the title. Then each branch: refusal (Ctrl-D) in the middle,
/// a wrong PIN, a timeout, and the confirmation refused — none stores anything.
#[test]
fn vault_add_on_token_in_a_terminal() {
    if std::env::var("VTOKEN_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("VTOKEN_SKIP_TMUX=1: skipping the tmux vault test");
        return;
    }
    let tmux = which("tmux").expect("tmux is not installed (or set VTOKEN_SKIP_TMUX=1)");
    let dir = tempfile::tempdir().unwrap();
    let conf = vault_token(dir.path(), "agent = \"tty\"\ntimeout_secs = 30");
    let tmux = Tmux::new(tmux);
    let out = dir.path().join("ok.out");

    // The happy path, in the patent's order: PIN, then the fields, then the
    // entry shown as received, then the confirmation.
    start_on_token(&tmux, "ok", &conf, &out);
    answer_with(&tmux, "ok", "User PIN (not shown):", "123456");
    answer_with(&tmux, "ok", "Title:", "bank-login");
    answer_with(&tmux, "ok", "URL (optional):", "https://bank.example.org");
    answer_with(&tmux, "ok", "Username (optional):", "alice");
    answer_with(
        &tmux,
        "ok",
        "Password (optional) (not shown):",
        "T0ken-typed!",
    );
    answer_with(&tmux, "ok", "Notes (optional):", "");
    let screen = tmux.wait_for("ok", "Confirm? [y/N]");
    assert!(!screen.contains("123456"), "the PIN was echoed:\n{screen}");
    assert_eq!(
        screen.matches("T0ken-typed!").count(),
        1,
        "the password must be typed unseen and shown once, as received:\n{screen}"
    );
    assert!(
        screen.contains("password (secret): T0ken-typed!"),
        "{screen}"
    );
    std::thread::sleep(Duration::from_millis(200));
    tmux.keys("ok", &["y", "Enter"]);
    let screen = tmux.wait_for("ok", "EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        printed.contains("added on the token: bank-login"),
        "{printed}"
    );
    for secret in ["T0ken-typed!", "123456", "alice"] {
        assert!(
            !printed.contains(secret),
            "the client printed {secret:?}: {printed}"
        );
    }
    assert!(vault_titles(&conf).contains("bank-login"));
    let shown = env::command(artifacts::cli(), &conf)
        .args(["vault", "show", "bank-login", "--reveal", "--json"])
        .env("VTOKEN_PIN", "123456")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("T0ken-typed!") && shown.contains("https://bank.example.org"),
        "{shown}"
    );

    // Refused in the middle (Ctrl-D at the password): nothing stored.
    let out = dir.path().join("eof.out");
    start_on_token(&tmux, "eof", &conf, &out);
    answer_with(&tmux, "eof", "User PIN (not shown):", "123456");
    answer_with(&tmux, "eof", "Title:", "half-typed");
    answer_with(&tmux, "eof", "URL (optional):", "");
    answer_with(&tmux, "eof", "Username (optional):", "");
    tmux.wait_for("eof", "Password (optional) (not shown):");
    std::thread::sleep(Duration::from_millis(200));
    tmux.keys("eof", &["C-d"]);
    let screen = tmux.wait_for("eof", "EXIT=");
    assert!(!screen.contains("EXIT=0"), "{screen}");
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("not confirmed"),
        "{screen}"
    );

    // A wrong PIN typed on the token: counted like any login, nothing asked after.
    let out = dir.path().join("pin.out");
    start_on_token(&tmux, "pin", &conf, &out);
    answer_with(&tmux, "pin", "User PIN (not shown):", "999999");
    let screen = tmux.wait_for("pin", "EXIT=");
    assert!(
        !screen.contains("EXIT=0") && !screen.contains("Title:"),
        "{screen}"
    );
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(printed.contains("incorrect user PIN"), "{printed}");

    // The confirmation refused after every field was typed.
    let out = dir.path().join("no.out");
    start_on_token(&tmux, "no", &conf, &out);
    answer_with(&tmux, "no", "User PIN (not shown):", "123456");
    answer_with(&tmux, "no", "Title:", "refused-entry");
    for ready in ["URL", "Username", "Password", "Notes"] {
        answer_with(&tmux, "no", ready, "");
    }
    answer_with(&tmux, "no", "Confirm? [y/N]", "n");
    let screen = tmux.wait_for("no", "EXIT=");
    assert!(!screen.contains("EXIT=0"), "{screen}");

    // Nobody types: the prompt's timeout ends the input.
    let slow = dir.path().join("slow.toml");
    env::write_config(
        &slow,
        &dir.path().join("tokens"),
        "[prompt]\nagent = \"tty\"\ntimeout_secs = 2\n",
    );
    let out = dir.path().join("slow.out");
    start_on_token(&tmux, "slow", &slow, &out);
    answer_with(&tmux, "slow", "User PIN (not shown):", "123456");
    tmux.wait_for("slow", "Title:");
    let screen = tmux.wait_for("slow", "EXIT=");
    assert!(screen.contains("timed out"), "{screen}");
    assert!(!screen.contains("EXIT=0"), "{screen}");

    let titles = vault_titles(&conf);
    for t in ["half-typed", "refused-entry"] {
        assert!(!titles.contains(t), "{t} stored: {titles}");
    }
}

/// The same input through pinentry-tty's GETPIN, and the `deny` agent, which
/// cannot take input: it refuses with a message saying what to do.
#[test]
fn vault_add_on_token_with_pinentry_and_deny() {
    if std::env::var("VTOKEN_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("VTOKEN_SKIP_TMUX=1: skipping the tmux vault test");
        return;
    }
    let tmux = which("tmux").expect("tmux is not installed (or set VTOKEN_SKIP_TMUX=1)");
    let pinentry = which("pinentry-tty").expect("pinentry-tty is not installed");
    let dir = tempfile::tempdir().unwrap();
    let conf = vault_token(
        dir.path(),
        &format!(
            "agent = \"pinentry\"\nprogram = \"{}\"\ntimeout_secs = 30",
            pinentry.display()
        ),
    );
    let tmux = Tmux::new(tmux);
    let out = dir.path().join("pe.out");
    start_on_token(&tmux, "pe", &conf, &out);
    answer_with(&tmux, "pe", "User PIN:", "123456");
    answer_with(&tmux, "pe", "Title:", "pinentry-typed");
    answer_with(&tmux, "pe", "URL (optional):", "");
    answer_with(&tmux, "pe", "Username (optional):", "bob");
    answer_with(&tmux, "pe", "Password (optional):", "Pe-secret-1");
    answer_with(&tmux, "pe", "Notes (optional):", "");
    let screen = tmux.wait_for("pe", "[yn]?");
    assert!(
        screen.contains("Pe-secret-1"),
        "shown as received:\n{screen}"
    );
    std::thread::sleep(Duration::from_millis(200));
    tmux.keys("pe", &["y"]);
    let screen = tmux.wait_for("pe", "EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        printed.contains("pinentry-typed") && !printed.contains("Pe-secret-1"),
        "{printed}"
    );
    assert!(vault_titles(&conf).contains("pinentry-typed"));

    // `deny`: refused at once, nothing asked, nothing stored.
    let deny = dir.path().join("deny.toml");
    env::write_config(
        &deny,
        &dir.path().join("tokens2"),
        "[prompt]\nagent = \"deny\"\n",
    );
    let run = |args: &[&str], pin: bool| {
        let mut c = env::command(artifacts::cli(), &deny);
        c.args(args);
        if pin {
            c.env("VTOKEN_PIN", "123456");
        } else {
            c.env_remove("VTOKEN_PIN");
        }
        c.output().unwrap()
    };
    let init = run(
        &[
            "init", "--label", "d", "--so-pin", "12345678", "--pin", "123456",
        ],
        true,
    );
    assert!(init.status.success(), "{init:?}");
    assert!(run(&["vault", "enable"], true).status.success());
    let add = run(&["vault", "add", "--kind", "website", "--on-token"], false);
    assert!(!add.status.success());
    let err = String::from_utf8_lossy(&add.stderr);
    assert!(
        err.contains("not confirmed") && err.contains("prompt agent"),
        "{err}"
    );
}
