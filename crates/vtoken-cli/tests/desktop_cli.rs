//! The desktop prompt agent, end to end: a real X server (`Xvfb`), the real dialogs
//! (`yad` for the picture, `zenity` for confirmations) and `xdotool` typing into
//! them as a person would.
//!
//! The token's policy names the `desktop` agent and `vtoken` runs with stdin not a
//! terminal (as a browser's PKCS#11 module does), so the token, not the CLI, asks
//! through the agent. The test learns the picture's answer only through the
//! test-hooks build (`artifacts::hooked_cli`, `VTOKEN_TEST_CAPTCHA_ANSWER_FILE`).
//!
//! Needs `Xvfb`, `xdotool`, `zenity` and `yad` (`scripts/deps` installs them); when
//! `Xvfb` is missing every test says so and returns.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{artifacts, Harness, PIN, SO_PIN};

/// A private X server, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts `Xvfb` on a free display (`-displayfd` picks it); `None` when Xvfb is
    /// not installed.
    fn start() -> Option<Xvfb> {
        if vault_core::prompt::find_in_path("Xvfb").is_none() {
            eprintln!(
                "SKIPPED: Xvfb is not installed (apt-get install xvfb xdotool zenity yad, \
                 as scripts/deps does); the desktop agent was not tested"
            );
            return None;
        }
        for tool in ["xdotool", "zenity", "yad"] {
            assert!(
                vault_core::prompt::find_in_path(tool).is_some(),
                "{tool} is missing (scripts/deps installs it with Xvfb)"
            );
        }
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "1024x768x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("Xvfb display number");
        let n = line.trim();
        assert!(!n.is_empty(), "Xvfb did not report a display");
        Some(Xvfb {
            child,
            display: format!(":{n}"),
        })
    }

    /// `xdotool ARGS` on this display; its output.
    fn xdotool(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .output()
            .expect("run xdotool")
    }

    /// Waits for a visible window whose name contains `name`; its id. (X reuses
    /// window ids across clients, so a dialog is told from the one before it by
    /// when it is looked for: after the token issued its picture, the previous
    /// dialog has exited.)
    fn window(&self, name: &str, vtoken: &mut Child) -> String {
        let start = Instant::now();
        loop {
            let o = self.xdotool(&["search", "--onlyvisible", "--name", name]);
            let found = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .find(|w| !w.is_empty());
            if let Some(w) = found {
                return w;
            }
            if let Ok(Some(st)) = vtoken.try_wait() {
                panic!("vtoken exited ({st}) before the dialog {name:?} appeared");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no dialog {name:?} appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Focuses window `w`, then presses the keys `keys` (after typing `text`).
    fn type_into(&self, w: &str, text: Option<&str>, keys: &str) {
        let o = self.xdotool(&["windowfocus", "--sync", w]);
        assert!(o.status.success(), "windowfocus: {o:?}");
        // GTK takes a moment after mapping before its entry takes keys.
        std::thread::sleep(Duration::from_millis(400));
        if let Some(t) = text {
            let o = self.xdotool(&["type", "--delay", "30", t]);
            assert!(o.status.success(), "type: {o:?}");
        }
        let o = self.xdotool(&["key", keys]);
        assert!(o.status.success(), "key: {o:?}");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token `desk` whose prompt agent is `desktop`, and the X server it shows on.
fn setup() -> Option<(Harness, Xvfb)> {
    let x = Xvfb::start()?;
    let mut h = common::harness("");
    h.ok(&["init", "--label", "desk", "--so-pin", SO_PIN, "--pin", PIN]);
    h.ok(&["prompt", "set", "--agent", "desktop", "--so-pin", SO_PIN]);
    assert_eq!(h.json(&["--json", "prompt", "show"])["kind"], "desktop");
    h.set_var("DISPLAY", x.display.clone());
    Some((h, x))
}

/// `cmd` started with stdin `/dev/null` (no terminal: the token's agent asks).
fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vtoken")
}

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
        assert!(start.elapsed() < Duration::from_secs(60), "no picture");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vtoken sign` with the gated key `k`, through the hooked build.
fn hooked_sign(h: &Harness, out: &Path) -> (Child, std::path::PathBuf) {
    let answer_file = h.path("answer");
    let _ = std::fs::remove_file(&answer_file);
    let data = h.s("data");
    let out = out.display().to_string();
    let mut c = h.cmd_with(
        artifacts::hooked_cli(),
        &[
            "sign", "--label", "k", "-i", &data, "-o", &out, "--pin", PIN,
        ],
    );
    // A private TMPDIR, so the test sees the picture's directory come and go.
    std::fs::create_dir_all(h.path("tmp")).unwrap();
    c.env("VTOKEN_TEST_CAPTCHA_ANSWER_FILE", &answer_file)
        .env("TMPDIR", h.path("tmp"));
    (spawn(c), answer_file)
}

fn gate_status(h: &Harness) -> Value {
    h.json(&["gate", "status", "--json"])
}

const PICTURE: &str = "vtoken: Picture check";

/// A wrong answer typed into the picture dialog is counted and a new picture
/// comes; the right one signs (the signature verifies). Then Cancel on the picture
/// is a refusal that uses a chance.
#[test]
fn picture_dialog_right_wrong_and_cancel() {
    let Some((h, x)) = setup() else { return };
    std::fs::write(h.path("data"), b"pay 100 to bob\n").unwrap();
    h.ok(&[
        "key", "generate", "--type", "ec-p256", "--label", "k", "--gate", "--pin", PIN,
    ]);
    // A picture lives 60 s (the SO may lengthen it without a picture), so a slow
    // machine starting the dialogs never turns an answer into a late one.
    h.ok(&[
        "gate",
        "configure",
        "--so",
        "--lifetime",
        "60",
        "--so-pin",
        SO_PIN,
    ]);
    let sig = h.path("sig");

    let (mut child, file) = hooked_sign(&h, &sig);
    let _first = next_answer(&file, &mut child);
    let w = x.window(PICTURE, &mut child);
    assert_private_picture(&h);
    x.type_into(&w, Some("WRONG7"), "Return");
    // The wrong answer brings a new picture in a new dialog.
    let a = next_answer(&file, &mut child);
    let w = x.window(PICTURE, &mut child);
    x.type_into(&w, Some(&a), "Return");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains(&a), "answer printed: {err}");
    h.ok(&[
        "verify",
        "--label",
        "k",
        "-i",
        &h.s("data"),
        "--signature",
        &sig.display().to_string(),
    ]);
    // A right answer gives the chances back.
    assert_eq!(gate_status(&h)["chances_left"], 3);
    // The picture's private directory is gone.
    assert_eq!(tmp_entries(&h), Vec::<String>::new());

    // A wrong answer, then Cancel: two chances used, refused, nothing signed.
    std::fs::remove_file(&sig).unwrap();
    let (mut child, file) = hooked_sign(&h, &sig);
    let _ = next_answer(&file, &mut child);
    let w = x.window(PICTURE, &mut child);
    x.type_into(&w, Some("WRONG8"), "Return");
    let _ = next_answer(&file, &mut child);
    let w = x.window(PICTURE, &mut child);
    x.type_into(&w, None, "Escape");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!sig.exists());
    let s = gate_status(&h);
    assert_eq!(s["chances_left"], 1, "{s}");
    assert_eq!(s["locked"], false, "{s}");
}

/// The names in the `TMPDIR` of the signing processes.
fn tmp_entries(h: &Harness) -> Vec<String> {
    std::fs::read_dir(h.path("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// While the picture is shown: one private directory (0700) holding the picture
/// (0600), nothing else.
fn assert_private_picture(h: &Harness) {
    use std::os::unix::fs::PermissionsExt;
    let names = tmp_entries(h);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("vtoken-picture-"), "{names:?}");
    let dir = h.path("tmp").join(&names[0]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let png = dir.join("picture.png");
    assert_eq!(mode(&png), 0o600);
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
}

/// A vault write confirmed with Yes on the desktop dialog is stored; one answered
/// No is not, and the message says the user said no.
#[test]
fn vault_confirmation_yes_and_no() {
    let Some((h, x)) = setup() else { return };
    h.ok(&["vault", "enable", "--pin", PIN]);
    let add = |title: &str| {
        h.cmd(&[
            "vault",
            "add",
            "--kind",
            "website",
            "--title",
            title,
            "--password",
            "Desk-Top-Secret-1",
            "--pin",
            PIN,
        ])
    };
    let mut child = spawn(add("yes"));
    let w = x.window("vtoken: Store", &mut child);
    x.type_into(&w, None, "Return");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = spawn(add("no"));
    let w = x.window("vtoken: Store", &mut child);
    x.type_into(&w, None, "Escape");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not confirmed: you (or the desktop prompt agent) said no"),
        "{err}"
    );
    assert!(!err.contains("Desk-Top-Secret-1"), "{err}");

    let list = h.json(&["--json", "vault", "list", "--pin", PIN]);
    let titles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["yes"]);
}
