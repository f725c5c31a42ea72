//! The picture gate (SPEC C1–C4) with real clients, as a user meets it:
//!
//! 1. `pkcs11-tool --sign` with a gated key through the PKCS#11 module: a prompt
//!    agent that answers (a `command` script reading the answer from the gate's
//!    test-only hook) lets the signature through, and it verifies with `openssl`;
//!    under `VTOKEN_PROMPT=deny` the sign fails with `CKR_FUNCTION_REJECTED`. The
//!    hook exists only in a build with the cargo feature `vault-core/test-hooks`
//!    (`vtoken_testsupport::artifacts::hooked_module`: `VTOKEN_HOOKED_MODULE`, or
//!    built in its own target directory, `target/test-hooks`), so that normal
//!    artifacts never contain it.
//! 2. `vtoken sign` with a gated key in a real terminal (tmux): the picture is drawn
//!    with half blocks, both by the CLI itself (a terminal on stdin) and by the
//!    token's `tty` prompt agent (stdin redirected, as inside a PKCS#11 host); the
//!    test reads the screen, checks a block of half blocks of the expected size is
//!    there, refuses, and checks the refusal is reported.
//!
//! Needs `pkcs11-tool` (OpenSC), `openssl` and `tmux`: the tests fail without them,
//! except that `VTOKEN_SKIP_TMUX=1` skips the tmux part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vault_core::prompt::{picture, tty};
use vtoken_testsupport::{artifacts, env};

const SO_PIN: &str = "12345678";
const PIN: &str = "123456";
/// The gate's default picture size (`vault_core::gate::challenge`).
const PNG_W: u32 = vault_core::gate::challenge::WIDTH;
const PNG_H: u32 = vault_core::gate::challenge::HEIGHT;

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn need(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: install it (apt-get install {package})")
    })
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A token directory with one token `gated` holding the gated P-256 key `k1`.
struct Setup {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Setup {
    fn new(cli: &Path) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("vtoken.toml");
        env::write_config(&conf, &dir.path().join("tokens"), "");
        let s = Setup { dir, conf };
        s.cli_ok(
            cli,
            &["init", "--label", "gated", "--so-pin", SO_PIN, "--pin", PIN],
        );
        s.cli_ok(
            cli,
            &[
                "--token", "gated", "key", "generate", "--type", "ec-p256", "--label", "k1",
                "--gate", "--pin", PIN,
            ],
        );
        s.cli_ok(
            cli,
            &[
                "--token",
                "gated",
                "export",
                "--label",
                "k1",
                "-o",
                s.path("k1.pub.pem").to_str().unwrap(),
            ],
        );
        std::fs::write(s.path("msg"), b"pay 100 to alice").unwrap();
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cli_ok(&self, cli: &Path, args: &[&str]) {
        let o = env::command(cli, &self.conf)
            .args(args)
            .env("VTOKEN_PROMPT", "deny")
            .output()
            .expect("run vtoken");
        assert!(o.status.success(), "vtoken {args:?}: {}", show(&o));
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

// ---------------------------------------------------------------- pkcs11-tool

fn pkcs11_sign(s: &Setup, module: &Path, prompt: &str, sig: &Path) -> Output {
    Command::new(need("pkcs11-tool", "opensc"))
        .arg("--module")
        .arg(module)
        .args([
            "--token-label",
            "gated",
            "--login",
            "--pin",
            PIN,
            "--sign",
            "-m",
            "ECDSA-SHA256",
            "--signature-format",
            "openssl",
            "--label",
            "k1",
            "-i",
        ])
        .arg(s.path("msg"))
        .arg("-o")
        .arg(sig)
        .env("VTOKEN_CONF", &s.conf)
        .env("VTOKEN_PROMPT", prompt)
        .env(vault_core::gate::TEST_ANSWER_FILE_ENV, s.path("answer"))
        .stdin(Stdio::null())
        .output()
        .expect("run pkcs11-tool")
}

/// Whether pkcs11-tool reports `CKR_FUNCTION_REJECTED` (0x200; older OpenSC
/// releases print it as "unknown PKCS11 error (0x200)").
fn rejected(o: &Output) -> bool {
    let e = String::from_utf8_lossy(&o.stderr);
    e.contains("CKR_FUNCTION_REJECTED") || e.contains("(0x200)")
}

#[test]
fn pkcs11_tool_signs_with_a_gated_key_only_when_the_picture_is_answered() {
    let openssl = need("openssl", "openssl");
    need("pkcs11-tool", "opensc");
    let (module, cli) = (artifacts::hooked_module(), artifacts::hooked_cli());
    let s = Setup::new(cli);
    let seen = s.path("pictures");
    // The agent: a script that checks what it is given and answers with what the
    // test hook wrote (a person would read it from the picture).
    let answer = s.script(
        "answer.sh",
        &format!(
            "[ \"$VTOKEN_PROMPT_KIND\" = captcha ] || exit 1\n\
             head -c 8 \"$VTOKEN_PROMPT_IMAGE\" | od -c | grep -q P.*N.*G || exit 3\n\
             echo \"$VTOKEN_PROMPT_TITLE\" >> '{seen}'\n\
             cat '{answer}'; echo\n\
             exit 0",
            seen = seen.display(),
            answer = s.path("answer").display()
        ),
    );

    // Answered: signed, and the signature verifies.
    let sig = s.path("msg.sig");
    let o = pkcs11_sign(&s, module, &format!("command:{}", answer.display()), &sig);
    assert!(o.status.success(), "pkcs11-tool --sign: {}", show(&o));
    let pictures = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(pictures.lines().count(), 1, "one picture shown: {pictures}");
    assert!(
        pictures.contains("k1"),
        "the title names the key: {pictures}"
    );
    let v = Command::new(&openssl)
        .args(["dgst", "-sha256", "-verify"])
        .arg(s.path("k1.pub.pem"))
        .arg("-signature")
        .arg(&sig)
        .arg(s.path("msg"))
        .output()
        .unwrap();
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stdout).contains("Verified OK"),
        "openssl verify: {}",
        show(&v)
    );

    // `deny`: no picture can be shown, the gated call is rejected.
    let sig2 = s.path("msg2.sig");
    let o = pkcs11_sign(&s, module, "deny", &sig2);
    assert!(!o.status.success(), "signed under deny: {}", show(&o));
    assert!(rejected(&o), "CKR_FUNCTION_REJECTED: {}", show(&o));
    assert!(
        std::fs::metadata(&sig2)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "no signature under deny"
    );

    // An agent that refuses: rejected too.
    let refuse = s.script("refuse.sh", "exit 1");
    let o = pkcs11_sign(&s, module, &format!("command:{}", refuse.display()), &sig2);
    assert!(!o.status.success(), "signed after a refusal: {}", show(&o));
    assert!(rejected(&o), "CKR_FUNCTION_REJECTED: {}", show(&o));

    // The hook is in the hooked build only: the normal CLI does not carry it.
    let hook = vault_core::gate::TEST_ANSWER_FILE_ENV.as_bytes();
    let carries = |p: &Path| {
        std::fs::read(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .windows(hook.len())
            .any(|w| w == hook)
    };
    assert!(carries(module), "{} has no hook", module.display());
    assert!(
        carries(artifacts::hooked_cli()),
        "the hooked CLI has no hook"
    );
    assert!(
        !carries(artifacts::cli()),
        "{} carries the test hook",
        artifacts::cli().display()
    );
}

// ---------------------------------------------------------------- tmux

/// A private tmux server, killed on drop.
struct Tmux {
    program: PathBuf,
    socket: String,
}

const COLS: u16 = 100;
const ROWS: u16 = 40;

impl Tmux {
    fn new(program: PathBuf) -> Tmux {
        // One server per Tmux: tests run in parallel threads of one process.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            program,
            socket: format!("vtoken-gate-{}-{n}", std::process::id()),
        };
        t.start("keeper", "sleep 600");
        t
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn start(&self, session: &str, line: &str) {
        let (c, r) = (COLS.to_string(), ROWS.to_string());
        let out = self.cmd(&["new-session", "-d", "-s", session, "-x", &c, "-y", &r, line]);
        assert!(out.status.success(), "tmux new-session: {}", show(&out));
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn wait_for(&self, session: &str, text: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen(session);
            if s.contains(text) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "waited 20 s for {text:?} in session {session}; the screen shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success(), "tmux send-keys {keys:?}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn is_block(c: char) -> bool {
    matches!(c, '█' | '▀' | '▄' | ' ')
}

/// The largest run of consecutive screen lines made only of half blocks and spaces
/// (with at least one block): (first line, rows, widest line, blocks in all).
fn picture_on(screen: &str) -> Option<(usize, usize, usize, usize)> {
    let lines: Vec<&str> = screen.lines().collect();
    let pic = |l: &str| l.chars().all(is_block) && l.chars().any(|c| c != ' ');
    let mut best: Option<(usize, usize, usize, usize)> = None;
    let mut i = 0;
    while i < lines.len() {
        if !pic(lines[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && (pic(lines[i]) || lines[i].is_empty()) {
            i += 1;
        }
        // Trailing blank lines are not part of it.
        let mut end = i;
        while end > start && lines[end - 1].is_empty() {
            end -= 1;
        }
        let run = &lines[start..end];
        let width = run.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let blocks = run
            .iter()
            .map(|l| l.chars().filter(|&c| c != ' ').count())
            .sum();
        if best.is_none_or(|b| end - start > b.1) {
            best = Some((start, end - start, width, blocks));
        }
    }
    best
}

/// Checks the screen shows one picture of `rows` × at most `cols`, drawn with
/// enough ink to be a picture, above the question.
fn assert_picture(screen: &str, rows: usize, cols: usize, question: &str) {
    let Some((start, got_rows, width, blocks)) = picture_on(screen) else {
        panic!("no half-block picture on the screen:\n{screen}");
    };
    // Rows at the picture's top or bottom may be blank paper (the noise is random),
    // which the screen shows as empty lines: the inked rows plus the empty lines right
    // around them (one of which separates the picture from the text) must hold it.
    let lines: Vec<&str> = screen.lines().collect();
    let blank_above = lines[..start]
        .iter()
        .rev()
        .take_while(|l| l.trim().is_empty())
        .count();
    let blank_below = lines[start + got_rows..]
        .iter()
        .take_while(|l| l.trim().is_empty())
        .count();
    assert!(
        got_rows <= rows && got_rows + blank_above + blank_below >= rows,
        "picture height {got_rows} (+{blank_above} blank above, +{blank_below} below), \
         expected {rows}; the screen:\n{screen}"
    );
    assert!(
        width <= cols && width + 8 >= cols,
        "picture width {width}, expected about {cols}; the screen:\n{screen}"
    );
    assert!(
        blocks >= rows * cols / 10,
        "only {blocks} blocks drawn; the screen:\n{screen}"
    );
    let q = screen
        .lines()
        .position(|l| l.contains(question))
        .unwrap_or_else(|| panic!("{question:?} on the screen:\n{screen}"));
    assert!(
        q > start + got_rows - 1,
        "the question under the picture:\n{screen}"
    );
}

fn tmux_or_skip() -> Option<Tmux> {
    if std::env::var_os("VTOKEN_SKIP_TMUX").is_some_and(|v| v == "1") {
        eprintln!("VTOKEN_SKIP_TMUX=1: skipping the tmux gate test");
        return None;
    }
    let t = which("tmux").unwrap_or_else(|| {
        panic!("tmux is not installed: install it (apt-get install tmux) or set VTOKEN_SKIP_TMUX=1")
    });
    Some(Tmux::new(t))
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn gated_vtoken_sign_draws_the_picture_in_a_terminal() {
    let Some(tmux) = tmux_or_skip() else {
        return;
    };
    let cli = artifacts::cli();
    let s = Setup::new(cli);
    let base = format!(
        "cd {dir} && export VTOKEN_CONF={conf} VTOKEN_PIN={PIN} VTOKEN_PROMPT_PICTURE=mono \
         NO_COLOR=1 && {cli} --token gated sign --label k1 --der -i msg -o msg.sig",
        dir = shell_quote(s.dir.path()),
        conf = shell_quote(&s.conf),
        cli = shell_quote(cli),
    );

    // (a) The token's tty agent (token policy, set by the SO): stdin is not a
    // terminal, so the CLI leaves the check to the prompt agent, which draws on the
    // terminal device.
    s.cli_ok(
        cli,
        &[
            "--token", "gated", "prompt", "set", "--agent", "tty", "--so-pin", SO_PIN,
        ],
    );
    let line = format!(
        "VTOKEN_PROMPT=tty; export VTOKEN_PROMPT; {base} < /dev/null; echo EXIT=$?; sleep 600"
    );
    tmux.start("agent", &line);
    let q = "Type the characters in the picture";
    let screen = tmux.wait_for("agent", q);
    let cols = tty::picture_cols(Some((COLS, ROWS)), PNG_W, PNG_H);
    let (w, h) = picture::fitted_size(PNG_W, PNG_H, cols);
    assert_picture(&screen, h as usize / 2, w as usize, q);
    assert!(screen.contains("Picture check"), "{screen}");
    assert!(
        screen.contains("k1"),
        "the request names the key:\n{screen}"
    );
    // A wrong answer: the next picture says so; then refuse.
    tmux.keys("agent", &["-l", "WRONG1"]);
    tmux.keys("agent", &["Enter"]);
    let screen = tmux.wait_for("agent", "Wrong answer");
    assert!(screen.contains("chance"), "{screen}");
    tmux.keys("agent", &["q", "Enter"]);
    let screen = tmux.wait_for("agent", "EXIT=");
    assert!(screen.contains("EXIT=1"), "vtoken sign failed:\n{screen}");
    assert!(
        screen.to_lowercase().contains("reject") || screen.to_lowercase().contains("refus"),
        "the refusal is reported:\n{screen}"
    );
    assert!(
        !s.path("msg.sig").exists() || std::fs::metadata(s.path("msg.sig")).unwrap().len() == 0
    );

    // (b) The CLI itself (captcha-aware): a terminal on stdin, no prompt agent.
    s.cli_ok(
        cli,
        &[
            "--token", "gated", "prompt", "set", "--agent", "deny", "--so-pin", SO_PIN,
        ],
    );
    let line = format!("VTOKEN_PROMPT=deny; export VTOKEN_PROMPT; {base}; echo EXIT=$?; sleep 600");
    tmux.start("cli", &line);
    let q = "Type the characters";
    let screen = tmux.wait_for("cli", q);
    let Some((_, rows, width, _)) = picture_on(&screen) else {
        panic!("no half-block picture on the screen:\n{screen}");
    };
    // It fits the terminal: whole rows (no wrapping), the proportions of the PNG.
    let (fw, fh) = picture::fitted_size(PNG_W, PNG_H, width as u16);
    assert!(
        width < COLS as usize && rows >= 8 && rows.abs_diff(fh as usize / 2) <= 2,
        "picture {width}x{rows} (expected about {fw}x{}) in a {COLS}x{ROWS} terminal:\n{screen}",
        fh / 2
    );
    tmux.keys("cli", &["q", "Enter"]);
    let screen = tmux.wait_for("cli", "EXIT=");
    assert!(screen.contains("EXIT=1"), "{screen}");
    // Giving up is reported; when it was the last chance, as the lock it causes.
    assert!(
        screen.contains("abandoned")
            || screen.contains("locked after too many failed picture checks"),
        "the refusal is reported:\n{screen}"
    );
}
