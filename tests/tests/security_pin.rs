//! PIN tries and token-file hardening (issue 15, items 8 and 10), each performed as
//! the attack: real processes racing `C_Login` through the real module, `sqlite3` on
//! the token file, a world-writable token directory, terminal escapes in imported
//! data, the modes of files the CLI writes, and the CLI's dumpability.
//!
//! The race test needs the module built with `vault-core/test-hooks` (its PIN-check
//! pause point); the binaries come from `vtoken_testsupport::artifacts`
//! (`VTOKEN_HOOKED_MODULE`, `VTOKEN_HOOKED_BIN`, `VTOKEN_P11_TEST_MODULE` and
//! `VTOKEN_TEST_CLI` when set, as `scripts/test` does; else built once, the hooked
//! ones into `target/test-hooks`).
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use vtoken_testsupport::artifacts;

const SO: &str = "12345678";
const USER: &str = "123456";
const WRONG: &str = "999999";
const LIMIT: usize = 5;
/// Env var telling a spawned copy of this test binary to act as a child.
const ROLE_ENV: &str = "VTOKEN_SEC_CHILD";

/// The PKCS#11 error of a failed call.
fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(e, _) => e,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// A token directory with its config and one token `t` (SO PIN [`SO`], user PIN
/// [`USER`], at most [`LIMIT`] user tries).
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { dir };
        vtoken_testsupport::env::write_config(
            &env.conf(),
            &env.tokens(),
            &format!("[pin]\nuser_max_tries = {LIMIT}\n"),
        );
        let o = env.run(&["init", "--label", "t"], &[]);
        assert!(o.status.success(), "init: {}", show(&o));
        // The vault is switched on by its own step (SPEC V4, S202).
        let o = env.run(&["vault", "enable"], &[]);
        assert!(o.status.success(), "vault enable: {}", show(&o));
        env
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("vtoken.toml")
    }

    fn tokens(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The one token file.
    fn token_file(&self) -> PathBuf {
        std::fs::read_dir(self.tokens())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "vtoken"))
            .expect("a token file")
    }

    fn cmd(&self, bin: &Path, args: &[&str], pins: &[(&str, &str)]) -> Command {
        let mut c = vtoken_testsupport::env::command(bin, &self.conf());
        c.args(args)
            .env("VTOKEN_PIN", USER)
            .env("VTOKEN_SO_PIN", SO);
        for (k, v) in pins {
            c.env(k, v);
        }
        c
    }

    /// The normal CLI; `pins` overrides `VTOKEN_PIN`/`VTOKEN_SO_PIN` and the like.
    fn run(&self, args: &[&str], pins: &[(&str, &str)]) -> Output {
        self.cmd(artifacts::cli(), args, pins).output().unwrap()
    }

    /// A copy of this test binary in role `role` with the module `module`.
    fn child(&self, role: &str, module: &Path, extra: &[(&str, &Path)]) -> Child {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env("VTOKEN_SEC_MODULE", module)
            .env("VTOKEN_CONF", self.conf())
            .env_remove("VTOKEN_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }
}

fn show(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What a child reported (`RESULT=...` on stdout).
fn result_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| l.split_once("RESULT=").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("child gave no result: {}", show(o)))
        .to_string()
}

/// Child roles: `login:PIN` logs in as the user on token `t` through the module in
/// `VTOKEN_SEC_MODULE`; `labels` lists the token labels. Prints `RESULT=...`.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let p11 = Pkcs11::new(std::env::var_os("VTOKEN_SEC_MODULE").unwrap()).unwrap();
    if let Err(e) = p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        println!("RESULT=initialize:{e}");
        return;
    }
    let labels: Vec<(cryptoki::slot::Slot, String)> = match p11.get_slots_with_token() {
        Ok(slots) => slots
            .into_iter()
            .map(|s| (s, p11.get_token_info(s).unwrap().label().trim().to_string()))
            .collect(),
        Err(e) => {
            println!("RESULT=slots:{e}");
            return;
        }
    };
    if role == "labels" {
        let names: Vec<_> = labels.iter().map(|(_, l)| l.as_str()).collect();
        println!("RESULT=labels:{}", names.join(","));
        return;
    }
    let pin_text = role.strip_prefix("login:").expect("role");
    let Some((slot, _)) = labels.iter().find(|(_, l)| l == "t") else {
        println!("RESULT=no-token");
        return;
    };
    let s = p11.open_ro_session(*slot).unwrap();
    match s.login(UserType::User, Some(&AuthPin::new(pin_text.into()))) {
        Ok(()) => println!("RESULT=OK"),
        Err(e) => println!("RESULT={:?}", rv(e)),
    }
}

/// Whether a `labels` child's result names token `t`.
fn lists_t(result: &str) -> bool {
    result
        .strip_prefix("labels:")
        .is_some_and(|l| l.split(',').any(|x| x == "t"))
}

fn count_arrived(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("arrived-")
        })
        .count()
}

/// Twelve processes send a wrong PIN at once, all queued behind the token file's
/// write lock. Each pauses between its committed try and its PIN check, and the
/// test releases none of them until every process has either paused or returned:
/// exactly [`LIMIT`] PINs reach the check, the rest are refused as locked without a
/// check. While the [`LIMIT`] checks are still pending (no failure recorded as a
/// result yet), the right PIN is refused too: the committed count decides.
#[test]
fn concurrent_logins_check_at_most_the_limit() {
    let env = Env::new();
    let module = artifacts::hooked_module();
    let pause = env.path("pause");
    std::fs::create_dir(&pause).unwrap();
    let hook: [(&str, &Path); 1] = [("VTOKEN_TEST_PIN_PAUSE_DIR", &pause)];
    // Hold the write lock while the processes start, so they all queue for it.
    let holder = rusqlite::Connection::open(env.token_file()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let n = 12;
    let mut kids: Vec<Option<Child>> = (0..n)
        .map(|_| Some(env.child(&format!("login:{WRONG}"), module, &hook)))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let mut done: Vec<Output> = Vec::new();
    let start = Instant::now();
    loop {
        for k in kids.iter_mut() {
            if let Some(c) = k {
                if c.try_wait().unwrap().is_some() {
                    done.push(k.take().unwrap().wait_with_output().unwrap());
                }
            }
        }
        if count_arrived(&pause) + done.len() == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "processes neither paused nor returned: {} paused, {} returned",
            count_arrived(&pause),
            done.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        count_arrived(&pause),
        LIMIT,
        "PINs checked: at most the limit"
    );
    assert_eq!(done.len(), n - LIMIT);
    for o in &done {
        assert_eq!(result_of(o), "PinLocked", "{}", show(o));
    }
    // The right PIN now, while the checked tries have not failed yet.
    let o = env
        .child(&format!("login:{USER}"), module, &hook)
        .wait_with_output()
        .unwrap();
    assert_eq!(result_of(&o), "PinLocked", "right PIN at the limit");
    assert_eq!(
        count_arrived(&pause),
        LIMIT,
        "the right PIN was not checked"
    );
    std::fs::write(pause.join("release"), b"").unwrap();
    let mut results: Vec<String> = kids
        .into_iter()
        .flatten()
        .map(|c| result_of(&c.wait_with_output().unwrap()))
        .collect();
    results.sort();
    let mut want = vec!["PinIncorrect".to_string(); LIMIT - 1];
    want.push("PinLocked".into());
    want.sort();
    assert_eq!(results, want, "the checked tries");
    // Locked for good: the right PIN is refused, through the CLI too.
    let o = env
        .child(&format!("login:{USER}"), module, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(result_of(&o), "PinLocked");
    let o = env.run(&["--json", "info"], &[]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("info JSON");
    assert_eq!(info["user_pin"]["locked"], true, "{info}");
    // The SO unlocks with a new user PIN.
    let o = env.run(&["pin", "unlock", "--new-pin", "654321"], &[]);
    assert!(o.status.success(), "{}", show(&o));
    let o = env
        .child("login:654321", module, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(result_of(&o), "OK");
}

/// `sqlite3` deletes the `user_pin_failures` row of a locked PIN: the PIN stays
/// locked (a missing row reads as locked), for the CLI and the module.
#[test]
fn deleting_the_counter_row_keeps_the_pin_locked() {
    let env = Env::new();
    for _ in 0..LIMIT {
        let o = env.run(&["objects", "list"], &[("VTOKEN_PIN", WRONG)]);
        assert!(!o.status.success());
    }
    let o = env.run(&["objects", "list"], &[]);
    assert!(!o.status.success(), "locked: {}", show(&o));
    let st = Command::new("sqlite3")
        .arg(env.token_file())
        .arg("DELETE FROM counters WHERE name = 'user_pin_failures'")
        .status()
        .expect("run sqlite3");
    assert!(st.success());
    let o = env.run(&["objects", "list"], &[]);
    assert!(
        !o.status.success(),
        "right PIN after the deletion: {}",
        show(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("locked"), "{err}");
    let normal = artifacts::pkcs11_module();
    let o = env
        .child(&format!("login:{USER}"), normal, &[])
        .wait_with_output()
        .unwrap();
    assert_eq!(result_of(&o), "PinLocked");
    // Deleting the row of a PIN that was not locked locks it as well.
    let o = env.run(&["pin", "unlock", "--new-pin", "654321"], &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(env
        .run(&["objects", "list"], &[("VTOKEN_PIN", "654321")])
        .status
        .success());
    let st = Command::new("sqlite3")
        .arg(env.token_file())
        .arg("DELETE FROM counters WHERE name = 'user_pin_failures'")
        .status()
        .unwrap();
    assert!(st.success());
    let o = env.run(&["objects", "list"], &[("VTOKEN_PIN", "654321")]);
    assert!(!o.status.success(), "{}", show(&o));
}

/// A trigger that puts the PIN counter back after every try would give unlimited
/// guesses; a view or a trigger smuggled in with `writable_schema` as an "index" is
/// the same attack in disguise. Every such file is refused (no login, no write).
#[test]
fn triggers_and_views_in_the_token_file_are_refused() {
    let cases = [
        (
            "trigger",
            "CREATE TABLE saved AS SELECT * FROM counters;
             CREATE TRIGGER keep AFTER UPDATE ON counters BEGIN
               UPDATE counters SET v = (SELECT v FROM saved WHERE name = NEW.name)
                 WHERE name = NEW.name;
             END;",
        ),
        ("view", "CREATE VIEW v AS SELECT * FROM objects;"),
        (
            "writable-schema",
            "PRAGMA writable_schema = ON;
             INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES('index',
               'objects_extra', 'counters', 0,
               'CREATE TRIGGER objects_extra AFTER UPDATE ON counters BEGIN DELETE FROM counters; END');",
        ),
    ];
    for (name, sql) in cases {
        let env = Env::new();
        let file = env.token_file();
        let st = Command::new("sqlite3")
            .arg(&file)
            .arg(sql)
            .status()
            .expect("run sqlite3");
        assert!(st.success(), "{name}: sqlite3");
        let before = std::fs::read(&file).unwrap();
        for _ in 0..(LIMIT + 2) {
            let o = env.run(&["objects", "list"], &[("VTOKEN_PIN", WRONG)]);
            assert!(!o.status.success(), "{name}");
        }
        let o = env.run(&["objects", "list"], &[]);
        assert!(!o.status.success(), "{name}: {}", show(&o));
        // `vtoken list` says why the file is skipped.
        let o = env.run(&["list"], &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("schema") || err.contains("malformed"),
            "{name}: {err}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{name}: file written"
        );
        let o = env
            .child("labels", artifacts::pkcs11_module(), &[])
            .wait_with_output()
            .unwrap();
        assert!(
            !lists_t(&result_of(&o)),
            "{name}: the module lists it: {}",
            show(&o)
        );
    }
}

/// A token directory others can write to is refused by the CLI and the module,
/// with the reason; the sticky bit (as on /tmp) is accepted.
#[test]
fn writable_token_directory_is_refused() {
    let env = Env::new();
    let dir = env.tokens();
    for (mode, word) in [(0o777, "world-writable"), (0o770, "group-writable")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = env.run(&["list"], &[]);
        assert!(!o.status.success(), "{mode:o}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(word) && err.contains("chmod 700"), "{err}");
        let o = env
            .child("labels", artifacts::pkcs11_module(), &[])
            .wait_with_output()
            .unwrap();
        let r = result_of(&o);
        assert!(!lists_t(&r), "{mode:o}: the module used it: {r}");
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(
            log.contains(word),
            "{mode:o}: the module does not say why: {log}"
        );
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let o = env.run(&["list"], &[]);
    assert!(o.status.success(), "sticky: {}", show(&o));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = env.run(&["list"], &[]);
    assert!(o.status.success(), "0700: {}", show(&o));
    // Owned by another user (needs root to arrange).
    if unsafe { libc::geteuid() } == 0 {
        let p = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::chown(p.as_ptr(), 65534, 65534) }, 0);
        let o = env.run(&["list"], &[]);
        assert!(!o.status.success(), "foreign owner: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("belongs to uid 65534"), "{err}");
    }
}

/// New tokens need PINs of six characters; a shorter PIN sent to log in is a wrong
/// PIN like any other (`CKR_PIN_INCORRECT`, count-low flag, and it locks).
#[test]
fn short_pins_are_refused_and_count_as_wrong_tries() {
    let dir = tempfile::tempdir().unwrap();
    vtoken_testsupport::env::write_config(
        &dir.path().join("vtoken.toml"),
        &dir.path().join("tokens"),
        "",
    );
    let run = |args: &[&str], so: &str, user: &str| {
        vtoken_testsupport::env::command(artifacts::cli(), &dir.path().join("vtoken.toml"))
            .args(args)
            .env("VTOKEN_SO_PIN", so)
            .env("VTOKEN_PIN", user)
            .output()
            .unwrap()
    };
    let o = run(&["init", "--label", "t"], SO, "12345");
    assert!(!o.status.success(), "5-character user PIN: {}", show(&o));
    let o = run(&["init", "--label", "t"], "1234", USER);
    assert!(!o.status.success(), "4-character SO PIN: {}", show(&o));
    let o = run(&["init", "--label", "t"], SO, USER);
    assert!(o.status.success(), "{}", show(&o));
    let info = |o: Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    let o = run(&["objects", "list"], SO, "0000");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("incorrect"),
        "{}",
        show(&o)
    );
    let i = info(run(&["--json", "info"], SO, USER));
    assert_eq!(i["user_pin"]["failures"], 1, "{i}");
    assert_eq!(i["user_pin"]["count_low"], true, "{i}");
    for _ in 1..LIMIT {
        assert!(!run(&["objects", "list"], SO, "0000").status.success());
    }
    let i = info(run(&["--json", "info"], SO, USER));
    assert_eq!(i["user_pin"]["locked"], true, "{i}");
    assert!(!run(&["objects", "list"], SO, USER).status.success());
}

/// `vault get -o`, the log file and the gate's picture are the user's alone (0600).
#[test]
fn files_the_cli_writes_are_private() {
    let env = Env::new();
    let hooked_cli = artifacts::hooked_cli();
    let yes = [("VTOKEN_PROMPT", "command:/bin/true")];
    let o = env
        .cmd(
            hooked_cli,
            &[
                "vault",
                "add",
                "--kind",
                "website",
                "--title",
                "s",
                "--password",
                "pw-1",
            ],
            &yes,
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "vault add: {}", show(&o));
    let out = env.path("got");
    let log = env.path("vtoken.log");
    let o = env
        .cmd(
            hooked_cli,
            &["vault", "get", "s", "-o", out.to_str().unwrap()],
            &[("VTOKEN_LOG", &format!("info:{}", log.display())), yes[0]],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "vault get: {}", show(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"pw-1");
    for f in [&out, &log] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // The gate's picture.
    let o = env.run(
        &[
            "key", "generate", "--type", "ec-p256", "--label", "k", "--gate",
        ],
        &[],
    );
    assert!(o.status.success(), "gated key: {}", show(&o));
    std::fs::write(env.path("data"), b"data").unwrap();
    let png = env.path("challenge.png");
    let mut c = env.cmd(
        artifacts::cli(),
        &[
            "sign",
            "--label",
            "k",
            "-i",
            env.path("data").to_str().unwrap(),
            "-o",
            env.path("sig").to_str().unwrap(),
        ],
        &[("VTOKEN_GATE_PNG", png.to_str().unwrap())],
    );
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !png.exists() || std::fs::metadata(&png).unwrap().len() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no picture saved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&png).unwrap().permissions().mode() & 0o777;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(mode, 0o600, "gate picture");
}

/// Titles, user names and URLs from an imported CSV cannot drive the terminal:
/// `vault list`/`show`/`add` print control characters escaped, and the stored value
/// is kept as it was.
#[test]
fn terminal_escapes_in_vault_data_are_shown_escaped() {
    let env = Env::new();
    let hooked_cli = artifacts::hooked_cli();
    let yes = [("VTOKEN_PROMPT", "command:/bin/true")];
    let title = "evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{7f}";
    let csv = env.path("in.csv");
    std::fs::write(
        &csv,
        format!(
            "\"Group\",\"Title\",\"Username\",\"Password\",\"URL\",\"Notes\",\"TOTP\",\"Icon\",\"Last Modified\",\"Created\"\n\
             \"Root\",\"{title}\",\"al\u{1b}[8mice\",\"pw\",\"https://x.example/\u{1b}[1A\",\"\",\"\",\"0\",\"2024-01-31T12:00:00Z\",\"2024-01-31T12:00:00Z\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = env.cmd(hooked_cli, args, &yes).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    run(&["vault", "import-csv", csv.to_str().unwrap()]);
    let clean = |s: &str| !s.chars().any(|c| c.is_control() && c != '\n');
    let list = run(&["vault", "list"]);
    assert!(clean(&list), "raw control characters: {list:?}");
    assert!(
        list.contains("evil\\x1b]0;owned\\x07\\x1b[2J\\u{9b}31m\\x7f"),
        "{list}"
    );
    assert!(list.contains("al\\x1b[8mice"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&run(&["--json", "vault", "list"])).unwrap();
    let id = json[0]["id"].to_string();
    assert_eq!(json[0]["title"], title, "stored as it was");
    let show_out = run(&["vault", "show", &id]);
    assert!(clean(&show_out), "raw control characters: {show_out:?}");
    assert!(show_out.contains("\\x1b[1A"), "{show_out}");
    let added = run(&[
        "vault",
        "add",
        "--kind",
        "website",
        "--title",
        "a\u{1b}[2Jb",
    ]);
    assert!(clean(&added) && added.contains("a\\x1b[2Jb"), "{added:?}");
}

/// The CLI turns core dumps off and makes itself non-dumpable at start: seen from
/// outside in `/proc/PID/limits` (core size 0) and in the owner of `/proc/PID`
/// (root for a non-dumpable process, the process's own uid otherwise; as root the
/// CLI runs as `nobody` through `setpriv` to see the difference).
#[test]
fn the_cli_dumps_no_core_and_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The CLI reads its config from a FIFO: it waits there, alive, for the checks.
    let fifo = dir.path().join("conf");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy everyone may read: the kernel makes a process non-dumpable by itself
    // when it runs a program its user cannot read, which would prove nothing.
    let exe = dir.path().join("vtoken");
    std::fs::copy(artifacts::cli(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_user = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root_user {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let mut child = cmd
        .arg("list")
        .env("VTOKEN_CONF", &fifo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let start = Instant::now();
    let (mut limits, mut owner) = (String::new(), u32::MAX);
    while start.elapsed() < Duration::from_secs(10) {
        limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap_or_default();
        let exe = std::fs::read_link(proc_dir.join("exe")).unwrap_or_default();
        owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(proc_dir.join("status")).unwrap(),
        );
        let core_off = limits.lines().any(|l| {
            l.starts_with("Max core file size") && l.split_whitespace().nth(4) == Some("0")
        });
        if exe.file_name().is_some_and(|n| n == "vtoken") && core_off && owner == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or("")
        .to_string();
    let fields: Vec<_> = core.split_whitespace().collect();
    assert_eq!(
        fields.get(4..6),
        Some(&["0", "0"][..]),
        "core limit (soft, hard): {core}"
    );
    assert_eq!(
        owner, 0,
        "/proc/{pid} of a non-dumpable process belongs to root"
    );
}
